/* SPDX-License-Identifier: MIT */
/* The QEMU sandbox and the cgroup refusal on this (hybrid) host:
 * - qvisor's seccomp filter, installed in a forked helper, makes each denied
 *   syscall fail with EPERM (clone3: ENOSYS) while ordinary ones and thread
 *   creation work; without the filter the same calls do not give EPERM;
 * - through a real qvisord: a VM whose spec has limits is refused with a
 *   message naming the missing controllers and the host layout; a VM without
 *   limits boots the test guest under its own per-VM uid with no_new_privs
 *   and seccomp mode 2, and stops cleanly through ACPI. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"
#include "qemu/sandbox.h"
#include "sched/cgroup.h"

#define MAX_PROBES 64

struct probe_result {
	int n;
	int err[MAX_PROBES];   /* errno of each denied syscall (0 = it succeeded) */
	int clone_ns_err;      /* clone(CLONE_NEWUSER) */
	int clone_uts_err;     /* clone(CLONE_NEWUTS) */
	int unshare_err;       /* unshare(CLONE_NEWUTS) */
	int clone3_err;
	int thread_ok, fork_ok, pipe_ok;
	pid_t getpid_ret;
};

static void *thread_fn(void *arg)
{
	return arg;
}

static int try_clone(unsigned long flags)
{
	long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (r == 0)
		_exit(0);
	if (r > 0) {
		waitpid((pid_t)r, NULL, 0);
		return 0;
	}
	return errno;
}

/* Arguments chosen so that, filter or not, nothing happens: bad pointers,
 * bad fds, invalid flags (kexec_load flags -1 cannot unload an image). */
static void probe(struct probe_result *res)
{
	for (int i = 0; qemu_sandbox_denied[i] && i < MAX_PROBES; i++) {
		/* resolved through libseccomp, as the filter does */
		int nr = seccomp_syscall_resolve_name(qemu_sandbox_denied[i]);
		errno = 0;
		long r = syscall(nr, -1L, 0L, 0L, -1L, -1L, 0L);
		res->err[i] = r < 0 ? errno : 0;
		res->n = i + 1;
	}
	res->clone_ns_err = try_clone(CLONE_NEWUSER);
	res->clone_uts_err = try_clone(CLONE_NEWUTS);
	res->unshare_err = unshare(CLONE_NEWUTS) < 0 ? errno : 0;
	res->clone3_err = syscall(SYS_clone3, NULL, 0) < 0 ? errno : 0;
	pthread_t t;
	void *ret = NULL;
	res->thread_ok = pthread_create(&t, NULL, thread_fn, (void *)0x42) == 0 &&
			 pthread_join(t, &ret) == 0 && ret == (void *)0x42;
	pid_t p = fork();
	if (p == 0)
		_exit(7);
	int st = 0;
	res->fork_ok = p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 7;
	int pfd[2];
	char c = 'x';
	res->pipe_ok = pipe(pfd) == 0 && write(pfd[1], &c, 1) == 1 && read(pfd[0], &c, 1) == 1 &&
		       c == 'x';
	res->getpid_ret = getpid();
}

/* Run probe() in a child, with or without the filter. */
static struct probe_result run_probe(const qemu_sandbox *sb)
{
	struct probe_result res = {};
	int pfd[2];

	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct probe_result r = {};
		close(pfd[0]);
		if (sb && qemu_sandbox_install(sb) < 0)
			_exit(2);
		probe(&r);
		_exit(write(pfd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 3);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &res, sizeof(res)), (ssize_t)sizeof(res), "probe child failed");
	close(pfd[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "probe child status 0x%x", st);
	return res;
}

Test(sandbox, filter_denies_each_listed_syscall_and_allows_the_rest, .timeout = 60)
{
	_cleanup_(qemu_sandbox_freep) qemu_sandbox *sb = NULL;
	struct qv_error err = {};

	cr_assert_eq(qemu_sandbox_new(&sb, &err), 0, "%s", err.message);
	cr_assert_gt(qemu_sandbox_filter_len(sb), 10);

	struct probe_result with = run_probe(sb);
	struct probe_result without = run_probe(NULL);
	cr_assert_gt(with.n, 20);
	for (int i = 0; i < with.n; i++) {
		cr_expect_eq(with.err[i], EPERM, "%s: got %s, want EPERM", qemu_sandbox_denied[i],
			     with.err[i] ? strerror(with.err[i]) : "success");
		cr_expect_neq(without.err[i], EPERM, "%s fails with EPERM even without the filter",
			      qemu_sandbox_denied[i]);
	}
	cr_assert_eq(with.clone_ns_err, EPERM, "clone(CLONE_NEWUSER): %s",
		     strerror(with.clone_ns_err));
	cr_assert_eq(with.clone_uts_err, EPERM);
	cr_assert_eq(with.unshare_err, EPERM);
	cr_assert_eq(with.clone3_err, ENOSYS);
	cr_assert(with.thread_ok, "pthread_create under the filter");
	cr_assert(with.fork_ok, "fork under the filter");
	cr_assert(with.pipe_ok, "read/write under the filter");
	cr_assert_gt(with.getpid_ret, 1);
	/* The control: as root, the namespace calls work without the filter. */
	cr_assert_eq(without.unshare_err, 0, "unshare(CLONE_NEWUTS) without filter: %s",
		     strerror(without.unshare_err));
	cr_assert_eq(without.clone_uts_err, 0);
	cr_assert_neq(without.clone3_err, ENOSYS);
}

/* Signals only to itself; userfaultfd only in the postcopy variant. Each
 * value is the errno of the call in a child under the filter (0 = allowed). */
static void signal_and_uffd_probe(const void *variant, int ret[4])
{
	int pfd[2], st;
	pid_t pid;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int e[4];
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    qemu_sandbox_child_setup((void *)variant) < 0)
			_exit(3);
		e[0] = kill(getppid(), 0) < 0 ? errno : 0;
		e[1] = kill(getpid(), 0) < 0 ? errno : 0;
		e[2] = syscall(SYS_tgkill, getpid(), gettid(), 0) < 0 ? errno : 0;
		e[3] = syscall(SYS_userfaultfd, O_CLOEXEC) < 0 ? errno : 0;
		_exit(write(pfd[1], e, sizeof(e)) == sizeof(e) ? 0 : 4);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], ret, 4 * sizeof(int)), (ssize_t)(4 * sizeof(int)));
	close(pfd[0]);
	waitpid(pid, &st, 0);
}

Test(sandbox, signals_only_to_itself_and_userfaultfd_only_for_postcopy, .timeout = 30)
{
	_cleanup_(qemu_sandbox_freep) qemu_sandbox *sb = NULL;
	struct qv_error err = {};
	int e[4];

	cr_assert_eq(qemu_sandbox_new(&sb, &err), 0, "%s", err.message);
	signal_and_uffd_probe(qemu_sandbox_variant(sb, false), e);
	cr_expect_eq(e[0], EPERM, "kill(parent): %s", strerror(e[0]));
	cr_expect_eq(e[1], 0, "kill(self): %s", strerror(e[1]));
	cr_expect_eq(e[2], 0, "tgkill(self): %s", strerror(e[2]));
	cr_expect_eq(e[3], EPERM, "userfaultfd: %s", strerror(e[3]));
	signal_and_uffd_probe(qemu_sandbox_variant(sb, true), e);
	cr_expect_eq(e[0], EPERM);
	cr_expect_neq(e[3], EPERM, "userfaultfd in the postcopy variant: %s", strerror(e[3]));
}

/* --- through qvisord -------------------------------------------------------- */

static bool host_can_enforce(char *why, size_t size)
{
	struct cg_host h;
	cg_host_detect(NULL, NULL, &h);
	cg_host_describe(&h, why, size);
	return (h.v2_controllers & (CG_CPU | CG_MEMORY)) == (CG_CPU | CG_MEMORY);
}

static struct qvt_daemon dmn;

static void daemon_up(void)
{
	QVT_REQUIRE_GUEST();
	memset(&dmn, 0, sizeof(dmn));
	cr_assert_eq(qvt_daemon_start(&dmn), 0, "qvisord did not start");
}

static void daemon_down(void)
{
	if (dmn.pid)
		qvt_daemon_cleanup(&dmn);
}

Test(sandbox, spec_with_limits_is_refused_naming_controllers_and_layout, .init = daemon_up,
     .fini = daemon_down, .timeout = 120)
{
	char layout[512];
	struct qv_error err = {};

	if (host_can_enforce(layout, sizeof(layout)))
		cr_skip_test("this host can enforce limits (%s): nothing to refuse", layout);
	cr_assert_eq(qvt_define_guest(&dmn, "limited",
				      "{\"limits\":{\"cpu_max\":\"50%\",\"memory_max\":\"512M\","
				      "\"pids_max\":100}}", &err), 0, "%s", err.message);
	json_object *r = qvt_call_name(&dmn, "vm.start", "limited", &err);
	cr_assert_null(r, "a VM with limits started on a host that cannot enforce them");
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert(strstr(err.message, "controllers cpu, memory, pids not available"), "%s",
		  err.message);
	cr_assert(strstr(err.message, layout), "message lacks the layout \"%s\": %s", layout,
		  err.message);
	char st[32];
	cr_assert_str_eq(qvt_vm_state(&dmn, "limited", st, sizeof(st)), "stopped");

	/* Live limits on a VM without any are refused the same way. */
	cr_assert_eq(qvt_define_guest(&dmn, "plain", NULL, &err), 0, "%s", err.message);
	json_object *p = json_object_new_object(), *lim = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string("plain"));
	json_object_object_add(lim, "memory_max", json_object_new_string("512M"));
	json_object_object_add(p, "limits", lim);
	qv_error_clear(&err);
	cr_assert_null(qvt_call(&dmn, "vm.set-limits", p, &err));
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert(strstr(err.message, "controller memory not available"), "%s", err.message);
}

static void read_status(pid_t pid, char *uid, int *nnp, int *seccomp)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f, "%s", path);
	*nnp = *seccomp = -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Uid: %31s", uid) == 1)
			continue;
		if (sscanf(line, "NoNewPrivs: %d", nnp) == 1)
			continue;
		(void)sscanf(line, "Seccomp: %d", seccomp);
	}
	fclose(f);
}

Test(sandbox, vm_without_limits_boots_as_its_own_uid_under_seccomp, .init = daemon_up,
     .fini = daemon_down, .timeout = 240)
{
	struct qv_error err = {};
	char uid[32] = "";
	int nnp, sec;

	cr_assert_eq(qvt_define_guest(&dmn, "boxed", NULL, &err), 0, "%s", err.message);
	json_object *r = qvt_call_name(&dmn, "vm.start", "boxed", &err);
	cr_assert_not_null(r, "start: %s", err.message);
	json_object_put(r);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&dmn, "boxed"), QVT_GUEST_READY,
					       180000), 0, "guest never became ready");
	pid_t pid = qvt_vm_pid(&dmn, "boxed");
	cr_assert_gt(pid, 0);
	read_status(pid, uid, &nnp, &sec);
	/* One uid per VM from the daemon's --vm-uid-range (tests/helpers). */
	unsigned long u = strtoul(uid, NULL, 10);
	cr_assert(u >= 2000100000ul && u < 2000100000ul + 64ul * 100000ul,
		  "QEMU runs as uid %s, not one of the VM range", uid);
	cr_assert_eq(nnp, 1, "NoNewPrivs");
	cr_assert_eq(sec, 2, "Seccomp mode");
	/* QEMU's own filter is layered on ours. */
	char path[64], cmd[8192];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f);
	size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	bool sandbox_arg = false;
	for (size_t i = 0; i < n; i += strlen(cmd + i) + 1)
		if (streq(cmd + i, "-sandbox"))
			sandbox_arg = true;
	cr_assert(sandbox_arg, "QEMU was started without -sandbox");

	/* Without controllers there are no per-VM stats, said clearly. */
	char layout[512];
	if (!host_can_enforce(layout, sizeof(layout))) {
		qv_error_clear(&err);
		cr_assert_null(qvt_call_name(&dmn, "vm.stats", "boxed", &err));
		cr_assert_str_eq(err.reason, "unsupported");
	}

	qv_error_clear(&err);
	r = qvt_call_name(&dmn, "vm.stop", "boxed", &err);
	cr_assert_not_null(r, "stop: %s", err.message);
	json_object *how;
	cr_assert(json_object_object_get_ex(r, "how", &how));
	cr_assert_str_eq(json_object_get_string(how), "powerdown", "stopped by %s, not ACPI",
			 json_object_get_string(how));
	json_object_put(r);
	char st[32];
	cr_assert_str_eq(qvt_vm_state(&dmn, "boxed", st, sizeof(st)), "stopped");
	cr_assert_eq(kill(pid, 0), -1, "QEMU %d still exists", (int)pid);
}
