/* SPDX-License-Identifier: MIT */
/* Foundation integration tests: boot the real test guest under TCG through
 * qemu_instance, stop it through ACPI, see an outside SIGKILL through the
 * pidfd, re-attach, and probe the accelerator on this machine. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/stat.h>

#include "common/loop.h"
#include "common/macro.h"
#include "helpers/guest-ctl.h"
#include "helpers/guest.h"
#include "qemu/accel.h"
#include "qemu/instance.h"

#define BOOT_TIMEOUT_MS 60000

struct rec {
	int exits;
	struct qemu_exit_status exit_st;
	uint64_t exit_at;
	int stops;
	int stop_error;
	enum qemu_stop_step stop_step;
	struct qemu_exit_status stop_st;
	int shutdown_events;
};

static void on_event(qemu_instance *vm, const char *name, json_object *ev, void *ud)
{
	struct rec *r = ud;
	if (streq(name, "SHUTDOWN"))
		r->shutdown_events++;
}

static void on_exit_cb(qemu_instance *vm, const struct qemu_exit_status *st, void *ud)
{
	struct rec *r = ud;
	r->exits++;
	r->exit_st = *st;
	r->exit_at = qv_now_ms();
}

static void on_stop(qemu_instance *vm, int error, enum qemu_stop_step step,
		    const struct qemu_exit_status *st, void *ud)
{
	struct rec *r = ud;
	r->stops++;
	r->stop_error = error;
	r->stop_step = step;
	if (st)
		r->stop_st = *st;
}

static void run_until(qv_loop *l, const int *counter, int timeout_ms)
{
	uint64_t deadline = qv_now_ms() + (uint64_t)timeout_ms;
	while (*counter == 0 && qv_now_ms() < deadline)
		qv_loop_run_once(l, 100);
}

struct booted {
	qv_loop *loop;
	qemu_instance *vm;
	char *run_dir;
	struct vm_spec *spec;
	struct rec rec;
};

/* Start b->spec (already set) in a fresh run dir. */
static void boot_spec(struct booted *b, const char *tag)
{
	struct qv_error err = { 0 };

	b->run_dir = qvt_make_run_dir(tag);
	cr_assert_not_null(b->run_dir);
	cr_assert_eq(qv_loop_new(&b->loop), 0);
	struct qemu_argv_opts ao = { .run_dir = b->run_dir, .accel = VM_ACCEL_TCG };
	struct qemu_instance_config cfg = {
		.on_event = on_event, .on_exit = on_exit_cb, .userdata = &b->rec,
	};
	int r = qemu_instance_start(b->loop, b->spec, &ao, &cfg, &b->vm, &err);
	cr_assert_eq(r, 0, "start: %s", err.message);
	struct stat sb;
	cr_assert_eq(stat(b->run_dir, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0700);
}

static void boot(struct booted *b, const char *tag, bool wait_ready)
{
	int r;

	QVT_REQUIRE_GUEST();
	b->spec = qvt_guest_spec(tag);
	cr_assert_not_null(b->spec);
	boot_spec(b, tag);
	if (wait_ready) {
		_cleanup_free_ char *serial = NULL;
		cr_assert(asprintf(&serial, "%s/serial.log", b->run_dir) > 0);
		r = qvt_wait_for_line_in_file(serial, QVT_GUEST_READY, BOOT_TIMEOUT_MS);
		cr_assert_eq(r, 0, "guest not ready within %d ms", BOOT_TIMEOUT_MS);
	}
}

static void teardown(struct booted *b)
{
	if (b->vm && !qemu_instance_exited(b->vm)) {
		qemu_proc_signal(qemu_instance_proc(b->vm), SIGKILL);
		qemu_proc_wait(qemu_instance_proc(b->vm), 5000, NULL);
	}
	qemu_instance_free(b->vm);
	qv_loop_free(b->loop);
	vm_spec_free(b->spec);
	qvt_rm_rf(b->run_dir);
	free(b->run_dir);
}

Test(boot, tcg_guest_reaches_ready_and_runs, .timeout = 120)
{
	struct booted b = { 0 };
	struct qv_error err = { 0 };
	_cleanup_free_ char *status = NULL;

	boot(&b, "ready", true);
	cr_assert_eq(qemu_instance_query_status(b.vm, &status, &err), 0, "%s", err.message);
	cr_assert_str_eq(status, "running");
	free(TAKE_PTR(status));

	cr_assert_eq(qemu_instance_pause(b.vm, &err), 0, "%s", err.message);
	cr_assert_eq(qemu_instance_query_status(b.vm, &status, &err), 0);
	cr_assert_str_eq(status, "paused");
	free(TAKE_PTR(status));
	cr_assert_eq(qemu_instance_resume(b.vm, &err), 0, "%s", err.message);
	cr_assert_eq(qemu_instance_query_status(b.vm, &status, &err), 0);
	cr_assert_str_eq(status, "running");
	cr_assert_eq(b.rec.exits, 0);
	teardown(&b);
}

Test(boot, graceful_stop_via_acpi_powerdown, .timeout = 180)
{
	struct booted b = { 0 };
	char buf[QEMU_EXIT_STATUS_MAX];

	boot(&b, "acpi", true);
	cr_assert_eq(qemu_instance_stop(b.vm, QEMU_STOP_GRACEFUL, 60000, on_stop, &b.rec), 0);
	cr_assert(qemu_instance_stopping(b.vm));
	cr_assert_eq(qemu_instance_stop(b.vm, QEMU_STOP_GRACEFUL, 0, on_stop, &b.rec), -EBUSY);
	run_until(b.loop, &b.rec.stops, 90000);
	cr_assert_eq(b.rec.stops, 1);
	cr_assert_eq(b.rec.stop_error, 0);
	cr_assert_eq(b.rec.stop_step, QEMU_STOP_STEP_POWERDOWN, "ended by step %s",
		     qemu_stop_step_to_string(b.rec.stop_step));
	cr_assert_eq(b.rec.stop_st.kind, QEMU_EXIT_EXITED, "%s",
		     qemu_exit_status_format(&b.rec.stop_st, buf, sizeof(buf)));
	cr_assert_eq(b.rec.stop_st.code, 0);
	cr_assert_geq(b.rec.shutdown_events, 1);
	cr_assert_eq(b.rec.exits, 0, "on_exit must not fire for a requested stop");
	cr_assert(qemu_instance_exited(b.vm));
	teardown(&b);
}

Test(boot, outside_sigkill_reported_via_pidfd, .timeout = 120)
{
	struct booted b = { 0 };
	char buf[QEMU_EXIT_STATUS_MAX];

	boot(&b, "kill", false);
	/* Let the loop idle a bit: nothing must be reported. */
	qv_loop_run_once(b.loop, 200);
	cr_assert_eq(b.rec.exits, 0);
	uint64_t t0 = qv_now_ms();
	cr_assert_eq(kill(qemu_instance_pid(b.vm), SIGKILL), 0);
	run_until(b.loop, &b.rec.exits, 10000);
	cr_assert_eq(b.rec.exits, 1);
	cr_assert_eq(b.rec.exit_st.kind, QEMU_EXIT_KILLED);
	cr_assert_eq(b.rec.exit_st.signal, 9);
	cr_assert_str_eq(qemu_exit_status_format(&b.rec.exit_st, buf, sizeof(buf)),
			 "killed by signal 9 (SIGKILL)");
	cr_log_info("death reported %llu ms after kill()", (unsigned long long)(b.rec.exit_at - t0));
	cr_assert_eq(qemu_instance_stop(b.vm, QEMU_STOP_FORCE, 0, on_stop, &b.rec), -ESRCH);
	teardown(&b);
}

Test(boot, reattach_then_force_stop, .timeout = 120)
{
	struct booted b = { 0 };
	struct qv_error err = { 0 };
	_cleanup_free_ char *qmp = NULL, *status = NULL;

	boot(&b, "attach", false);
	pid_t pid = qemu_instance_pid(b.vm);
	uint64_t st = qemu_instance_start_time(b.vm);
	/* "Daemon restart": drop the instance, QEMU keeps running. */
	b.vm = qemu_instance_free(b.vm);
	cr_assert_eq(kill(pid, 0), 0);

	cr_assert(asprintf(&qmp, "%s/qmp.sock", b.run_dir) > 0);
	struct qemu_instance_config cfg = { .on_exit = on_exit_cb, .userdata = &b.rec };
	cr_assert_eq(qemu_instance_attach(b.loop, pid, st + 1, qmp, &cfg, &b.vm, &err), -ESRCH);
	qv_error_clear(&err);
	cr_assert_eq(qemu_instance_attach(b.loop, pid, st, qmp, &cfg, &b.vm, &err), 0, "%s",
		     err.message);
	cr_assert_eq(qemu_instance_query_status(b.vm, &status, &err), 0, "%s", err.message);
	cr_assert(streq(status, "running") || streq(status, "prelaunch"), "%s", status);

	cr_assert_eq(qemu_instance_stop(b.vm, QEMU_STOP_FORCE, 0, on_stop, &b.rec), 0);
	run_until(b.loop, &b.rec.stops, 15000);
	cr_assert_eq(b.rec.stops, 1);
	cr_assert_eq(b.rec.stop_step, QEMU_STOP_STEP_KILL);
	/* Still our child here (same test process), so the status is known. */
	cr_assert_eq(b.rec.stop_st.kind, QEMU_EXIT_KILLED);
	cr_assert_eq(b.rec.stop_st.signal, SIGKILL);
	cr_assert_eq(b.rec.exits, 0);
	teardown(&b);
}

Test(boot, startup_failure_reports_qemu_message, .timeout = 60)
{
	qv_loop *l = NULL;
	qemu_instance *vm = NULL;
	struct qv_error err = { 0 };
	_cleanup_free_ char *dir = qvt_make_run_dir("fail");
	cr_assert_eq(qv_loop_new(&l), 0);
	char *argv[] = { "qemu-system-x86_64", "-machine", "no-such-machine", "-nodefaults",
			 "-display", "none", NULL };
	uint64_t t0 = qv_now_ms();
	int r = qemu_instance_start_argv(l, argv, dir, NULL, 0, NULL, &vm, &err);
	cr_assert_lt(r, 0);
	cr_assert_null(vm);
	cr_assert(strstr(err.message, "QEMU exited with status 1 during startup"), "%s", err.message);
	cr_assert(strstr(err.message, "qemu-system-x86_64: unsupported machine type"), "%s",
		  err.message);
	cr_assert_lt(qv_now_ms() - t0, 9000, "death not noticed before the connect deadline");

	qv_error_clear(&err);
	argv[0] = "/nonexistent/qemu";
	cr_assert_eq(qemu_instance_start_argv(l, argv, dir, NULL, 0, NULL, &vm, &err), -ENOENT);
	cr_assert_str_eq(err.message, "Failed to execute /nonexistent/qemu: No such file or directory");
	qv_loop_free(l);
	qvt_rm_rf(dir);
}

Test(boot, accel_probe_on_this_machine, .timeout = 120)
{
	QVT_REQUIRE_GUEST();
	_cleanup_free_ char *kernel = qvt_guest_file("vmlinuz");
	_cleanup_free_ char *initrd = qvt_guest_file("initrd.img");
	_cleanup_free_ char *cache = qvt_make_run_dir("accel");
	struct qemu_accel_probe_opts o = {
		.kernel = kernel, .initrd = initrd, .cache_dir = cache, .timeout_ms = 10000,
	};
	struct qemu_accel_result res, res2;
	struct qv_error err = { 0 };
	bool dev = access("/dev/kvm", F_OK) == 0;

	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qemu_accel_probe(&o, &res, &err), 0, "%s", err.message);
	uint64_t took = qv_now_ms() - t0;
	cr_log_info("probe: %s (%llu ms)", res.reason, (unsigned long long)took);
	cr_assert_lt(took, 10000 + 20000, "probe overran its deadline");
	cr_assert_not(res.from_cache);
	if (!dev) {
		cr_assert_not(res.kvm_present);
		cr_assert(strstr(res.reason, "KVM not present"), "%s", res.reason);
	} else if (res.kvm_usable) {
		cr_assert_eq(res.chosen, VM_ACCEL_KVM);
	} else {
		/* This lab: /dev/kvm opens but nested guests hang. */
		cr_assert(res.kvm_present, "%s", res.reason);
		cr_assert(strstr(res.reason, "KVM present but unusable"), "%s", res.reason);
	}
	if (!res.kvm_usable) {
		cr_assert_eq(res.chosen, VM_ACCEL_TCG);
		cr_assert_eq(qemu_accel_resolve(VM_ACCEL_AUTO, &res), VM_ACCEL_TCG);
	}
	cr_assert_eq(qemu_accel_resolve(VM_ACCEL_KVM, &res), VM_ACCEL_KVM);

	t0 = qv_now_ms();
	cr_assert_eq(qemu_accel_probe(&o, &res2, &err), 0);
	if (res.kvm_present) {
		cr_assert(res2.from_cache, "second probe did not hit the cache");
		cr_assert_lt(qv_now_ms() - t0, 5000);
	}
	cr_assert_eq(res2.chosen, res.chosen);
	cr_assert_str_eq(res2.reason, res.reason);
	qvt_rm_rf(cache);
}

/* The test guest's control channel (qv.ctl=1, tests/helpers/guest-ctl.h):
 * other suites drive writes inside a running guest through it, so its
 * answers, failures and id matching are checked here once. */
Test(boot, guest_control_channel_answers, .timeout = 180)
{
	struct booted b = { 0 };
	char v[128];

	QVT_REQUIRE_GUEST();
	b.spec = qvt_guest_spec("ctl");
	cr_assert_not_null(b.spec);
	free(b.spec->cmdline);
	b.spec->cmdline = strdup("console=ttyS0 panic=-1 qv.ctl=1");
	boot_spec(&b, "ctl");
	_cleanup_free_ char *sock = NULL;
	cr_assert(asprintf(&sock, "%s/serial.sock", b.run_dir) > 0);
	qvt_ctl *c = qvt_ctl_open(sock, BOOT_TIMEOUT_MS);
	cr_assert_not_null(c, "guest control channel did not answer");
	cr_assert_eq(qvt_ctl_cmd(c, "ping", 20000, v, sizeof(v)), 0);
	cr_assert_str_eq(v, "pong");
	cr_assert_eq(qvt_ctl_cmd(c, "no-such-verb", 20000, v, sizeof(v)), -EIO);
	cr_assert_str_eq(v, "unknown-verb");
	cr_assert_eq(qvt_ctl_cmd(c, "blkwrite /dev/nonexistent 0 1 x", 20000, v, sizeof(v)), -EIO);
	cr_assert_str_eq(v, "usage");
	cr_assert_eq(qvt_ctl_cmd(c, "dirty 1 4", 20000, v, sizeof(v)), 0);
	cr_assert_gt(atoi(v), 1, "dirtier pid: %s", v);
	cr_assert_eq(qvt_ctl_cmd(c, "undirty", 20000, v, sizeof(v)), 0);
	qvt_ctl_close(c);
	teardown(&b);
}
