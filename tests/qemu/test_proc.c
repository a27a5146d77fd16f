/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/loop.h"
#include "common/macro.h"
#include "qemu/proc.h"
#include "qemu/rawsys.h"

static char *tmp_path(const char *name)
{
	char *p = NULL;
	cr_assert(asprintf(&p, "/tmp/qv-test-proc-%d-%s", (int)getpid(), name) > 0);
	unlink(p);
	return p;
}

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static int run_wait(char *const *argv, struct qemu_exit_status *st)
{
	qemu_proc *p = NULL;
	struct qv_error err = { 0 };
	int r = qemu_proc_spawn(argv, NULL, &p, &err);
	cr_assert_eq(r, 0, "spawn %s: %s", argv[0], err.message);
	cr_assert_gt(qemu_proc_pid(p), 0);
	cr_assert_eq(qemu_proc_wait(p, 10000, st), 0);
	cr_assert(qemu_proc_exited(p));
	qemu_proc_free(p);
	return 0;
}

Test(proc, exit_codes)
{
	struct qemu_exit_status st;
	char buf[QEMU_EXIT_STATUS_MAX];

	run_wait((char *[]){ "/bin/true", NULL }, &st);
	cr_assert_eq(st.kind, QEMU_EXIT_EXITED);
	cr_assert_eq(st.code, 0);

	run_wait((char *[]){ "/bin/false", NULL }, &st);
	cr_assert_eq(st.kind, QEMU_EXIT_EXITED);
	cr_assert_eq(st.code, 1);
	cr_assert_str_eq(qemu_exit_status_format(&st, buf, sizeof(buf)), "exited with status 1");

	/* $PATH lookup for a bare name */
	run_wait((char *[]){ "false", NULL }, &st);
	cr_assert_eq(st.code, 1);
}

Test(proc, format)
{
	char buf[QEMU_EXIT_STATUS_MAX];
	struct qemu_exit_status k = { .kind = QEMU_EXIT_KILLED, .signal = SIGKILL };
	struct qemu_exit_status u = { .kind = QEMU_EXIT_UNKNOWN };

	cr_assert_str_eq(qemu_exit_status_format(&k, buf, sizeof(buf)),
			 "killed by signal 9 (SIGKILL)");
	cr_assert_str_eq(qemu_exit_status_format(&u, buf, sizeof(buf)),
			 "exited while not our child; status unknown");
}

struct exit_rec {
	int calls;
	struct qemu_exit_status st;
	uint64_t at_ms;
};

static void on_exit_cb(qemu_proc *p, const struct qemu_exit_status *st, void *ud)
{
	struct exit_rec *rec = ud;
	rec->calls++;
	rec->st = *st;
	rec->at_ms = qv_now_ms();
}

static void run_until(qv_loop *l, struct exit_rec *rec, int timeout_ms)
{
	uint64_t deadline = qv_now_ms() + timeout_ms;
	while (rec->calls == 0 && qv_now_ms() < deadline)
		qv_loop_run_once(l, 100);
}

Test(proc, sigkill_reported_via_pidfd_on_loop)
{
	qv_loop *l = NULL;
	qemu_proc *p = NULL;
	struct exit_rec rec = { 0 };
	char buf[QEMU_EXIT_STATUS_MAX];

	cr_assert_eq(qv_loop_new(&l), 0);
	cr_assert_eq(qemu_proc_spawn((char *[]){ "/bin/sleep", "30", NULL }, NULL, &p, NULL), 0);
	cr_assert_eq(qemu_proc_watch(p, l, on_exit_cb, &rec), 0);
	/* Nothing happens while it runs. */
	qv_loop_run_once(l, 50);
	cr_assert_eq(rec.calls, 0);
	cr_assert_not(qemu_proc_exited(p));

	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qemu_proc_signal(p, SIGKILL), 0);
	run_until(l, &rec, 5000);
	cr_assert_eq(rec.calls, 1);
	cr_assert_eq(rec.st.kind, QEMU_EXIT_KILLED);
	cr_assert_eq(rec.st.signal, 9);
	cr_assert_str_eq(qemu_exit_status_format(&rec.st, buf, sizeof(buf)),
			 "killed by signal 9 (SIGKILL)");
	cr_log_info("death reported %llu ms after SIGKILL", (unsigned long long)(rec.at_ms - t0));
	cr_assert_eq(qemu_proc_signal(p, SIGKILL), -ESRCH);
	/* Reaped by us: the pid is gone. */
	cr_assert_eq(kill(qemu_proc_pid(p), 0), -1);
	qemu_proc_free(p);
	qv_loop_free(l);
}

Test(proc, kept_fds_keep_numbers_others_closed)
{
	_cleanup_free_ char *log = tmp_path("fds.log");
	int p1[2], p2[2];
	cr_assert_eq(pipe(p1), 0);
	cr_assert_eq(pipe(p2), 0);
	cr_assert_eq(dup2(p1[1], 50), 50);
	cr_assert_eq(dup2(p2[1], 57), 57);
	cr_assert_eq(dup2(p2[0], 53), 53); /* not kept, not CLOEXEC */
	int ffd = open("/etc/hostname", O_RDONLY); /* not CLOEXEC either */
	cr_assert_geq(ffd, 0);

	struct qemu_proc_opts o = {
		.log_path = log,
		.keep_fds = (int[]){ 57, 50 },
		.n_keep_fds = 2,
	};
	qemu_proc *p = NULL;
	struct qv_error err = { 0 };
	struct qemu_exit_status st;
	cr_assert_eq(qemu_proc_spawn((char *[]){ "/bin/ls", "/proc/self/fd", NULL }, &o, &p, &err),
		     0, "%s", err.message);
	cr_assert_eq(qemu_proc_wait(p, 10000, &st), 0);
	cr_assert_eq(st.kind, QEMU_EXIT_EXITED);
	cr_assert_eq(st.code, 0);
	qemu_proc_free(p);

	/* ls prints one number per line: 0 1 2, its own dir fd (3), 50, 57. */
	char *out = slurp(log);
	bool seen[1024] = { 0 };
	int n = 0;
	for (char *tok = strtok(out, "\n"); tok; tok = strtok(NULL, "\n")) {
		int fd = atoi(tok);
		cr_assert(fd >= 0 && fd < 1024);
		seen[fd] = true;
		n++;
	}
	cr_assert(seen[0] && seen[1] && seen[2]);
	cr_assert(seen[50], "kept fd 50 missing");
	cr_assert(seen[57], "kept fd 57 missing");
	cr_assert_not(seen[53], "unkept fd 53 leaked");
	cr_assert_not(seen[ffd], "unkept fd %d leaked", ffd);
	cr_assert_leq(n, 6, "unexpected fds in child (%d)", n);
}

Test(proc, log_appends_stdout_and_stderr)
{
	_cleanup_free_ char *log = tmp_path("append.log");
	struct qemu_proc_opts o = { .log_path = log };
	qemu_proc *p = NULL;

	for (int i = 0; i < 2; i++) {
		cr_assert_eq(qemu_proc_spawn((char *[]){ "/bin/echo", "hello", NULL }, &o, &p, NULL), 0);
		cr_assert_eq(qemu_proc_wait(p, 10000, NULL), 0);
		p = qemu_proc_free(p);
	}
	cr_assert_eq(qemu_proc_spawn((char *[]){ "/bin/ls", "/nonexistent-qv", NULL }, &o, &p, NULL), 0);
	cr_assert_eq(qemu_proc_wait(p, 10000, NULL), 0);
	qemu_proc_free(p);
	char *out = slurp(log);
	cr_assert(strncmp(out, "hello\nhello\n", 12) == 0, "log: %s", out);
	cr_assert(strstr(out, "nonexistent-qv"), "stderr not in log: %s", out);
	struct stat sb;
	cr_assert_eq(stat(log, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
}

Test(proc, exec_failure_reported)
{
	qemu_proc *p = NULL;
	struct qv_error err = { 0 };
	int r = qemu_proc_spawn((char *[]){ "/nonexistent/qemu-system-x86_64", NULL }, NULL, &p, &err);
	cr_assert_eq(r, -ENOENT);
	cr_assert_null(p);
	cr_assert_str_eq(err.message,
			 "Failed to execute /nonexistent/qemu-system-x86_64: No such file or directory");
	/* Not executable */
	qv_error_clear(&err);
	r = qemu_proc_spawn((char *[]){ "/etc/passwd", NULL }, NULL, &p, &err);
	cr_assert_eq(r, -EACCES);
	cr_assert(strstr(err.message, "Failed to execute /etc/passwd"), "%s", err.message);
	/* No child left behind (all reaped). */
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
	cr_assert_eq(errno, ECHILD);
}

Test(proc, bad_kept_fd_rejected)
{
	qemu_proc *p = NULL;
	struct qv_error err = { 0 };
	struct qemu_proc_opts o = { .keep_fds = (int[]){ 900 }, .n_keep_fds = 1 };
	cr_assert_eq(qemu_proc_spawn((char *[]){ "/bin/true", NULL }, &o, &p, &err), -EBADF);
	cr_assert(strstr(err.message, "900"));
}

static int setup_fails(void *ud)
{
	return -EPERM;
}

Test(proc, child_setup_hook_error_reported)
{
	qemu_proc *p = NULL;
	struct qv_error err = { 0 };
	struct qemu_proc_opts o = { .child_setup = setup_fails, .no_new_privs = true };
	cr_assert_eq(qemu_proc_spawn((char *[]){ "/bin/true", NULL }, &o, &p, &err), -EPERM);
	cr_assert(strstr(err.message, "child setup hook"), "%s", err.message);
}

Test(proc, new_session_and_start_time)
{
	qemu_proc *p = NULL, *a = NULL;
	struct qv_error err = { 0 };
	cr_assert_eq(qemu_proc_spawn((char *[]){ "/bin/sleep", "30", NULL }, NULL, &p, NULL), 0);
	pid_t pid = qemu_proc_pid(p);
	cr_assert_eq(getsid(pid), pid);
	cr_assert_neq(getsid(pid), getsid(0));
	uint64_t st = 0;
	cr_assert_eq(qemu_proc_read_start_time(pid, &st), 0);
	cr_assert_gt(st, 0);
	cr_assert_eq(qemu_proc_start_time(p), st);

	/* Wrong start time: pid reuse detected. */
	cr_assert_eq(qemu_proc_attach(pid, st + 1, &a, &err), -ESRCH);
	cr_assert_null(a);
	cr_assert(strstr(err.message, "pid reused"), "%s", err.message);
	/* Right one attaches. */
	cr_assert_eq(qemu_proc_attach(pid, st, &a, NULL), 0);
	cr_assert_eq(qemu_proc_pid(a), pid);
	cr_assert(qemu_proc_is_child(a));
	cr_assert_eq(qemu_proc_signal(a, SIGTERM), 0);
	struct qemu_exit_status es;
	cr_assert_eq(qemu_proc_wait(p, 10000, &es), 0);
	cr_assert_eq(es.kind, QEMU_EXIT_KILLED);
	cr_assert_eq(es.signal, SIGTERM);
	qemu_proc_free(a);
	qemu_proc_free(p);
	/* Gone: attach fails. */
	cr_assert_eq(qemu_proc_attach(pid, st, &a, NULL), -ESRCH);
}

Test(proc, attach_not_our_child_status_unknown)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t mid = fork();
	cr_assert_geq(mid, 0);
	if (mid == 0) {
		pid_t g = fork();
		if (g == 0) {
			execl("/bin/sleep", "sleep", "30", (char *)NULL);
			_exit(127);
		}
		ssize_t _unused_ w = write(pfd[1], &g, sizeof(g));
		_exit(0);
	}
	pid_t g;
	cr_assert_eq(read(pfd[0], &g, sizeof(g)), (ssize_t)sizeof(g));
	waitpid(mid, NULL, 0);

	uint64_t st;
	qemu_proc *p = NULL;
	qv_loop *l = NULL;
	struct exit_rec rec = { 0 };
	cr_assert_eq(qemu_proc_read_start_time(g, &st), 0);
	cr_assert_eq(qemu_proc_attach(g, st, &p, NULL), 0);
	cr_assert_eq(qv_loop_new(&l), 0);
	cr_assert_eq(qemu_proc_watch(p, l, on_exit_cb, &rec), 0);
	cr_assert_eq(qemu_proc_signal(p, SIGKILL), 0);
	run_until(l, &rec, 5000);
	cr_assert_eq(rec.calls, 1);
	if (!qemu_proc_is_child(p))
		cr_assert_eq(rec.st.kind, QEMU_EXIT_UNKNOWN);
	else
		cr_assert_eq(rec.st.kind, QEMU_EXIT_KILLED); /* we are a subreaper */
	qemu_proc_free(p);
	qv_loop_free(l);
}

Test(proc, clone_into_cgroup)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup/unified/qv-test-proc-%d", (int)getpid());
	if (mkdir(dir, 0755) < 0)
		cr_skip_test("no writable cgroup2 at /sys/fs/cgroup/unified: %s", strerror(errno));
	int cfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	cr_assert_geq(cfd, 0);
	qemu_proc *p = NULL;
	struct qv_error err = { 0 };
	struct qemu_proc_opts o = { .cgroup_fd = cfd };
	int r = qemu_proc_spawn((char *[]){ "/bin/sleep", "30", NULL }, &o, &p, &err);
	if (r < 0) {
		rmdir(dir);
		cr_assert_fail("spawn into cgroup: %s", err.message);
	}
	char path[64], want[160];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)qemu_proc_pid(p));
	snprintf(want, sizeof(want), "0::/qv-test-proc-%d\n", (int)getpid());
	char *cg = slurp(path);
	bool ok = strstr(cg, want) != NULL;
	qemu_proc_signal(p, SIGKILL);
	qemu_proc_wait(p, 5000, NULL);
	qemu_proc_free(p);
	close(cfd);
	rmdir(dir);
	cr_assert(ok, "child cgroup: %s", cg);
}

/* A slow child_setup hook (raw syscalls only: the child may share our
 * memory until exec), so the caller frees its argv and opts first. */
static int slow_setup(void *userdata)
{
	struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };

	(void)qv_sys(SYS_nanosleep, &ts, NULL);
	return 0;
}

Test(proc, caller_frees_argv_and_opts_before_the_child_execs)
{
	char **argv = calloc(4, sizeof(char *));
	struct qemu_proc_opts *o = calloc(1, sizeof(*o));
	struct qemu_exit_status st;
	struct qv_error err = { 0 };
	qemu_proc *p = NULL;
	int report_fd = -1;

	cr_assert(argv && o);
	argv[0] = strdup("sh"), argv[1] = strdup("-c"), argv[2] = strdup("exit 7");
	o->child_setup = slow_setup;
	cr_assert_eq(qemu_proc_spawn_nowait(argv, o, &p, &report_fd, &err), 0, "%s", err.message);
	/* Scribble over and free what the child was given. */
	for (int i = 0; i < 3; i++) {
		memset(argv[i], 'x', strlen(argv[i]));
		free(argv[i]);
	}
	free(argv);
	memset(o, 0xff, sizeof(*o));
	free(o);
	cr_assert_eq(qemu_proc_spawn_finish(p, report_fd, "sh", &err), 0, "%s", err.message);
	cr_assert_eq(qemu_proc_wait(p, 10000, &st), 0);
	cr_assert_eq(st.kind, QEMU_EXIT_EXITED);
	cr_assert_eq(st.code, 7);
	qemu_proc_free(p);
}

Test(proc, freed_before_exec_reported_waits_for_the_child)
{
	struct qemu_proc_opts o = { .child_setup = slow_setup };
	struct qv_error err = { 0 };
	qemu_proc *p = NULL;
	int report_fd = -1;

	/* Freed with its report unread: the free waits until the child no
	 * longer uses the spawn's memory (it exec'd), and never kills it. */
	cr_assert_eq(qemu_proc_spawn_nowait((char *[]){ "/bin/sleep", "1", NULL }, &o, &p,
					    &report_fd, &err),
		     0, "%s", err.message);
	pid_t pid = qemu_proc_pid(p);
	qemu_proc_free(p);
	close(report_fd);
	cr_assert_eq(kill(pid, 0), 0, "the child was killed or is gone");
	siginfo_t si = { 0 };
	cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED), 0);
	cr_assert_eq(si.si_code, CLD_EXITED);
	cr_assert_eq(si.si_status, 0);
}
