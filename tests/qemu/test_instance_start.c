/* SPDX-License-Identifier: MIT */
/* qemu_instance_start_async against stand-in binaries: a "QEMU" that never
 * opens its QMP socket fails at the connect deadline and is killed, one that
 * exits early reports its status and last log line, a missing binary says
 * so; the loop keeps running meanwhile and the callback never runs before
 * the call returns. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/loop.h"
#include "helpers/guest.h"
#include "qemu/instance.h"
#include "qemu/proc.h"

struct started {
	int calls;
	int error;
	char reason[32];
	char message[512];
	qv_loop *loop;
};

static void on_started(qemu_instance *vm, int error, const struct qv_error *errp, void *ud)
{
	struct started *s = ud;

	s->calls++;
	s->error = error;
	if (errp && errp->set) {
		snprintf(s->reason, sizeof(s->reason), "%s", errp->reason);
		snprintf(s->message, sizeof(s->message), "%s", errp->message);
	}
	qv_loop_quit(s->loop, 0);
}

static void on_tick(qv_source *src, void *ud)
{
	(*(int *)ud)++;
}

static void on_safety(qv_source *src, void *ud)
{
	qv_loop_quit(ud, -ETIMEDOUT);
}

static char *write_script(const char *dir, const char *name, const char *body)
{
	char *path;
	FILE *f;

	cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	cr_assert_eq(chmod(path, 0755), 0);
	return path;
}

/* Start `binary` with a minimal spec; runs the loop until the callback. */
static qemu_instance *start(const char *binary, const char *run_dir, int timeout_ms,
			    struct started *s, int *ticks)
{
	struct qemu_instance_config cfg = { .connect_timeout_ms = timeout_ms };
	struct qemu_argv_opts ao = { .qemu_binary = binary, .run_dir = run_dir,
				     .accel = VM_ACCEL_TCG };
	struct vm_spec *spec = NULL;
	struct qv_error err = {};
	qemu_instance *vm = NULL;
	qv_source *safety = NULL;

	cr_assert_eq(vm_spec_from_string("{\"name\": \"fake\", \"memory\": 64, \"kernel\": "
					 "\"/nonexistent/vmlinuz\"}", &spec, &err), 0,
		     "%s", err.message);
	cr_assert_eq(qemu_instance_start_async(s->loop, spec, &ao, &cfg, on_started, s, &vm, &err),
		     0, "%s", err.message);
	vm_spec_free(spec);
	cr_assert_eq(s->calls, 0, "the callback ran before the call returned");
	cr_assert(qemu_instance_starting(vm));
	cr_assert_eq(qv_loop_add_timer(s->loop, 50, on_tick, ticks, NULL), 0);
	cr_assert_eq(qv_loop_add_timer(s->loop, 20000, on_safety, s->loop, &safety), 0);
	cr_assert_eq(qv_loop_run(s->loop), 0, "no start callback within 20 s");
	qv_source_remove(safety);
	cr_assert_eq(s->calls, 1);
	return vm;
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0;
}

Test(instance_start, socket_never_opened_fails_at_deadline_and_kills)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	_cleanup_free_ char *dir = qvt_make_run_dir("istart"), *bin = NULL;
	struct started s = {};
	int ticks = 0;

	cr_assert_not_null(dir);
	cr_assert_eq(qv_loop_new(&loop), 0);
	s.loop = loop;
	bin = write_script(dir, "hang.sh", "exec sleep 60");
	qemu_instance *vm = start(bin, dir, 400, &s, &ticks);
	pid_t pid = qemu_instance_pid(vm);
	cr_assert_eq(s.error, -ETIMEDOUT, "%s", s.message);
	cr_assert_str_eq(s.reason, "timeout");
	cr_assert(strstr(s.message, "did not open its QMP socket") && strstr(s.message, "400 ms"),
		  "%s", s.message);
	cr_assert_eq(ticks, 1, "the loop was blocked while QEMU started");
	cr_assert(qemu_instance_exited(vm));
	qemu_instance_free(vm);
	cr_assert(!alive(pid), "the hung QEMU %d was not killed", (int)pid);
	qvt_rm_rf(dir);
}

Test(instance_start, early_exit_reports_status_and_log_line)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	_cleanup_free_ char *dir = qvt_make_run_dir("istart"), *bin = NULL;
	struct started s = {};
	int ticks = 0;

	cr_assert_not_null(dir);
	cr_assert_eq(qv_loop_new(&loop), 0);
	s.loop = loop;
	bin = write_script(dir, "die.sh",
			   "echo 'qemu-fake: -machine foo: unsupported machine type' >&2; exit 3");
	qemu_instance *vm = start(bin, dir, 5000, &s, &ticks);
	cr_assert_eq(s.error, -ECHILD, "%s", s.message);
	cr_assert_str_eq(s.reason, "qemu-error");
	cr_assert(strstr(s.message, "exited with status 3 during startup") &&
		  strstr(s.message, "unsupported machine type"), "%s", s.message);
	qemu_instance_free(vm);
	qvt_rm_rf(dir);
}

Test(instance_start, missing_binary_is_refused_at_once)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	_cleanup_free_ char *dir = qvt_make_run_dir("istart");
	struct qemu_argv_opts ao = { .qemu_binary = "/nonexistent/qemu-system-x86_64",
				     .run_dir = dir, .accel = VM_ACCEL_TCG };
	struct started s = {};
	struct vm_spec *spec = NULL;
	struct qv_error err = {};
	qemu_instance *vm = NULL;
	int ticks = 0;

	cr_assert_not_null(dir);
	cr_assert_eq(qv_loop_new(&loop), 0);
	s.loop = loop;
	cr_assert_eq(vm_spec_from_string("{\"name\": \"fake\", \"memory\": 64, \"kernel\": "
					 "\"/nonexistent/vmlinuz\"}", &spec, &err), 0);
	/* The exec failure arrives on the loop through the child's report. */
	int r = qemu_instance_start_async(loop, spec, &ao, NULL, on_started, &s, &vm, &err);
	vm_spec_free(spec);
	if (r < 0) {
		cr_assert(strstr(err.message, "Failed to execute"), "%s", err.message);
	} else {
		cr_assert_eq(qv_loop_add_timer(loop, 50, on_tick, &ticks, NULL), 0);
		cr_assert_eq(qv_loop_add_timer(loop, 20000, on_safety, loop, NULL), 0);
		cr_assert_eq(qv_loop_run(loop), 0);
		cr_assert_eq(s.calls, 1);
		cr_assert(strstr(s.message, "Failed to execute /nonexistent/qemu-system-x86_64"),
			  "%s", s.message);
		qemu_instance_free(vm);
	}
	qvt_rm_rf(dir);
}

/* qemu_instance_attach_async: a live "QEMU" whose QMP socket listens but
 * never greets (a stopped or hung QEMU) fails at the deadline with reason
 * timeout, the loop runs meanwhile, the callback never runs before the call
 * returned, and the process is left running (re-attach never kills). A
 * wrong start time (the pid was reused) is refused at once. */
Test(instance_start, attach_to_a_deaf_qmp_fails_at_deadline_and_leaves_it_running)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	_cleanup_free_ char *dir = qvt_make_run_dir("iattach"), *sock = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct qemu_instance_config cfg = { .connect_timeout_ms = 400 };
	struct started s = {};
	struct qv_error err = {};
	qemu_instance *vm = NULL;
	qv_source *safety = NULL;
	uint64_t st;
	int ticks = 0, lfd;

	cr_assert_not_null(dir);
	cr_assert_eq(qv_loop_new(&loop), 0);
	s.loop = loop;
	cr_assert(asprintf(&sock, "%s/qmp.sock", dir) > 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0); /* never accepted, never greets */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && qemu_proc_read_start_time(pid, &st) < 0; i++)
		usleep(5000);
	cr_assert_eq(qemu_proc_read_start_time(pid, &st), 0);

	cr_assert_eq(qemu_instance_attach_async(loop, pid, st + 1, sock, &cfg, on_started, &s,
						&vm, &err), -ESRCH, "a reused pid was accepted");
	qv_error_clear(&err);
	cr_assert_eq(qemu_instance_attach_async(loop, pid, st, sock, &cfg, on_started, &s, &vm,
						&err), 0, "%s", err.message);
	cr_assert_eq(s.calls, 0, "the callback ran before the call returned");
	cr_assert(qemu_instance_starting(vm));
	cr_assert_eq(qemu_instance_pid(vm), pid);
	cr_assert_eq(qv_loop_add_timer(loop, 50, on_tick, &ticks, NULL), 0);
	cr_assert_eq(qv_loop_add_timer(loop, 20000, on_safety, loop, &safety), 0);
	cr_assert_eq(qv_loop_run(loop), 0, "no attach callback within 20 s");
	qv_source_remove(safety);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.error, -ETIMEDOUT, "%s", s.message);
	cr_assert_str_eq(s.reason, "timeout");
	cr_assert_eq(ticks, 1, "the loop was blocked while attaching");
	cr_assert(alive(pid), "re-attach killed the process");
	qemu_instance_free(vm);
	cr_assert(alive(pid), "freeing the instance killed the process");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(lfd);
	qvt_rm_rf(dir);
}
