/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/log.h"
#include "qemu/proc-internal.h"

#define SPAWN_SETTLE_MS 5000

struct qemu_proc {
	pid_t pid;
	int pidfd;
	uint64_t start_time;
	bool is_child;
	bool exited;
	struct qemu_exit_status status;
	qv_source *watch;
	qemu_proc_exit_fn exit_fn;
	void *exit_userdata;
	/* What a child sharing our memory (CLONE_VM) reads until it exec'd or
	 * died, and a dup of its report pipe that says when that happened. */
	struct spawn_mem *spawn;
	int exec_fd;
};

static const char *const stage_text[] = {
	[STAGE_SIGNALS] = "reset signals",
	[STAGE_SETSID] = "create a new session",
	[STAGE_CGROUP] = "move into the cgroup",
	[STAGE_STDIO] = "set up stdio",
	[STAGE_FDS] = "set up the kept file descriptors",
	[STAGE_IDS] = "drop uid/gid",
	[STAGE_NNP] = "set no_new_privs",
	[STAGE_SETUP] = "run the child setup hook",
	[STAGE_EXEC] = "execute",
	[STAGE_PRIV_SETUP] = "set up the mount namespace",
};

const char *qemu_exit_status_format(const struct qemu_exit_status *st, char *buf, size_t size)
{
	const char *abbrev;

	switch (st->kind) {
	case QEMU_EXIT_EXITED:
		snprintf(buf, size, "exited with status %d", st->code);
		break;
	case QEMU_EXIT_KILLED:
		abbrev = sigabbrev_np(st->signal);
		snprintf(buf, size, "killed by signal %d (SIG%s)%s", st->signal,
			 abbrev ? abbrev : "?", st->core_dumped ? ", core dumped" : "");
		break;
	default:
		snprintf(buf, size, "exited while not our child; status unknown");
		break;
	}
	return buf;
}

/* Tokens after the ")" that ends the comm field: index 0 is field 3. */
static int read_stat_fields(pid_t pid, uint64_t *ret_ppid, uint64_t *ret_start_time)
{
	char path[64], buf[1024], *p;
	_cleanup_close_ int fd = -1;
	ssize_t n;
	uint64_t ppid = 0, start = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : negative_errno();
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? (errno == ESRCH ? -ESRCH : negative_errno()) : -EIO;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	for (int field = 3; field <= 22; field++) {
		char *end;
		uint64_t v;

		while (*p == ' ')
			p++;
		if (!*p)
			return -EIO;
		v = strtoull(p, &end, 10);
		if (field == 4)
			ppid = v;
		if (field == 22) {
			if (end == p)
				return -EIO;
			start = v;
		}
		p = strchr(p, ' ');
		if (!p && field < 22)
			return -EIO;
	}
	if (ret_ppid)
		*ret_ppid = ppid;
	*ret_start_time = start;
	return 0;
}

int qemu_proc_read_start_time(pid_t pid, uint64_t *ret_start_time)
{
	return read_stat_fields(pid, NULL, ret_start_time);
}

/* ---- parent side ---------------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* Once the child exec'd or died it no longer reads p->spawn: wait for that
 * (EOF on the report pipe, or the pidfd), SIGKILL it after a while. */
static void spawn_release(qemu_proc *p)
{
	struct spawn_mem *sm = TAKE_PTR(p->spawn);
	uint64_t deadline = qv_now_ms() + SPAWN_SETTLE_MS;
	bool killed = false;

	while (sm && sm->stack && p->exec_fd >= 0) {
		struct pollfd pfd[2] = { { .fd = p->exec_fd, .events = POLLIN },
					 { .fd = p->pidfd, .events = POLLIN } };
		uint64_t now = qv_now_ms();
		int n = 0;

		if (poll(pfd, 2, now < deadline ? (int)(deadline - now) : 0) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents || (pfd[0].revents && ioctl(p->exec_fd, FIONREAD, &n) == 0 && n == 0))
			break; /* exited, or exec'd (EOF, no report) */
		if (qv_now_ms() < deadline)
			continue;
		if (killed) {
			log_debug("child %d still not gone after SIGKILL: its spawn memory is leaked",
				  (int)p->pid);
			sm = NULL;
			break;
		}
		(void)pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
		killed = true;
		deadline = qv_now_ms() + SPAWN_SETTLE_MS;
	}
	if (p->exec_fd >= 0)
		close(p->exec_fd);
	p->exec_fd = -1;
	qemu_proc_spawn_mem_free(sm);
}

static int check_opts(const struct qemu_proc_opts *o, int **ret_sorted, struct qv_error *errp)
{
	_cleanup_free_ int *sorted = NULL;

	if (o->n_keep_fds > 0) {
		sorted = malloc(o->n_keep_fds * sizeof(int));
		if (!sorted)
			return -ENOMEM;
		memcpy(sorted, o->keep_fds, o->n_keep_fds * sizeof(int));
		qsort(sorted, o->n_keep_fds, sizeof(int), cmp_int);
		for (size_t i = 0; i < o->n_keep_fds; i++) {
			if (sorted[i] < 3 || fcntl(sorted[i], F_GETFD) < 0)
				return qv_error_set(errp, EBADF, QV_REASON_INVALID_ARGUMENT,
						    "Cannot pass fd %d to the child: not an open fd >= 3",
						    sorted[i]);
			if (i > 0 && sorted[i] == sorted[i - 1])
				return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
						    "fd %d listed twice", sorted[i]);
		}
	}
	*ret_sorted = TAKE_PTR(sorted);
	return 0;
}

static int open_log(const struct qemu_proc_opts *o, struct qv_error *errp)
{
	int fd;

	if (o->log_path) {
		fd = open(o->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR,
					    "Failed to open log file %s: %m", o->log_path);
		return fd;
	}
	if (o->log_fd > 0) {
		fd = fcntl(o->log_fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return qv_error_set(errp, errno, QV_REASON_INVALID_ARGUMENT,
					    "Bad log fd %d: %m", o->log_fd);
		return fd;
	}
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC | O_NOCTTY);
	return fd < 0 ? qv_error_set(errp, errno, QV_REASON_IO_ERROR, "/dev/null: %m") : fd;
}

static qemu_proc *proc_new(pid_t pid, int pidfd)
{
	qemu_proc *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pid = pid;
	p->pidfd = pidfd;
	p->exec_fd = -1;
	return p;
}

/* Read the child's report; 0 = exec happened (EOF). */
static int read_report(int fd, struct child_report *rep)
{
	ssize_t n;

	do
		n = read(fd, rep, sizeof(*rep));
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*rep)) {
		rep->stage = STAGE_EXEC;
		rep->error = n < 0 ? errno : EIO;
	}
	return -1;
}

int qemu_proc_spawn_nowait(char *const *argv, const struct qemu_proc_opts *opts,
			   qemu_proc **ret_proc, int *ret_report_fd, struct qv_error *errp)
{
	static const struct qemu_proc_opts no_opts;
	_cleanup_free_ int *keep = NULL;
	_cleanup_close_ int nullfd = -1, logfd = -1, err_r = -1, err_w = -1, pidfd = -1;
	struct spawn_mem *sm;
	int pipefd[2], r;
	pid_t pid;
	qemu_proc *p;

	if (!argv || !argv[0] || !argv[0][0])
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "Empty argv");
	if (!opts)
		opts = &no_opts;
	r = check_opts(opts, &keep, errp);
	if (r < 0)
		return r;
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (nullfd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "/dev/null: %m");
	logfd = open_log(opts, errp);
	if (logfd < 0)
		return logfd;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return qv_error_set(errp, errno, QV_REASON_INTERNAL, "pipe: %m");
	err_r = pipefd[0];
	err_w = pipefd[1];
	sm = qemu_proc_spawn_mem_new(argv, opts, &keep);
	if (!sm)
		return -ENOMEM;
	sm->ca = (struct child_args){
		.argv = sm->argv, .path = sm->path, .envp = opts->envp ? opts->envp : environ,
		.opts = &sm->opts, .keep = sm->keep, .n_keep = opts->n_keep_fds,
		.errfd = err_w, .nullfd = nullfd, .logfd = logfd,
	};

	pid = qemu_proc_clone_vm(sm, opts->cgroup_fd, &pidfd);
	if (pid == -ENOSYS)
		pid = qemu_proc_clone3(opts->cgroup_fd, &pidfd);
	if (pid == -ENOSYS) {
		log_debug("clone3 unavailable, falling back to fork + pidfd_open");
		sm->ca.cgroup_by_write = opts->cgroup_fd > 0;
		pid = fork();
		if (pid < 0)
			pid = negative_errno();
		else if (pid > 0) {
			pidfd = pidfd_open(pid, 0);
			if (pidfd < 0) {
				r = negative_errno();
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				qemu_proc_spawn_mem_free(sm);
				return qv_error_set(errp, -r, QV_REASON_INTERNAL, "pidfd_open: %m");
			}
		}
	}
	if (pid < 0) {
		qemu_proc_spawn_mem_free(sm);
		return qv_error_set(errp, -pid, QV_REASON_INTERNAL, "Failed to spawn %s%s: %s",
				    argv[0], opts->cgroup_fd > 0 ? " into its cgroup" : "",
				    strerror(-pid));
	}
	if (pid == 0)
		qemu_proc_child_main(&sm->ca);

	close(TAKE_FD(err_w));
	p = proc_new(pid, pidfd);
	if (p) {
		p->spawn = sm;
		p->exec_fd = fcntl(err_r, F_DUPFD_CLOEXEC, 3);
	}
	if (!p || p->exec_fd < 0) {
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		waitid(P_PIDFD, pidfd, &(siginfo_t){ 0 }, WEXITED);
		if (p)
			p->pidfd = -1, qemu_proc_free(p); /* the child is gone: frees sm */
		else
			qemu_proc_spawn_mem_free(sm);
		return -ENOMEM;
	}
	TAKE_FD(pidfd);
	p->is_child = true;
	r = read_stat_fields(pid, NULL, &p->start_time);
	if (r < 0)
		log_debug_errno(r, "Failed to read start time of %d: %m, ignoring", (int)pid);
	*ret_proc = p;
	*ret_report_fd = TAKE_FD(err_r);
	return 0;
}

int qemu_proc_spawn_finish(qemu_proc *p, int report_fd, const char *argv0, struct qv_error *errp)
{
	_cleanup_close_ int fd = report_fd;
	struct child_report rep;

	if (read_report(fd, &rep) == 0) {
		spawn_release(p); /* exec'd: EOF */
		log_debug("Spawned %s as pid %d", argv0, (int)p->pid);
		return 0;
	}
	/* The child _exits right after its report: reap it now. */
	(void)qemu_proc_wait(p, -1, NULL);
	spawn_release(p);
	if (rep.stage == STAGE_EXEC)
		return qv_error_set(errp, rep.error, QV_REASON_UNAVAILABLE,
				    "Failed to execute %s: %s", argv0, strerror(rep.error));
	return qv_error_set(errp, rep.error, QV_REASON_INTERNAL, "Failed to %s for %s: %s",
			    stage_text[rep.stage < (int)ARRAY_SIZE(stage_text) ? rep.stage : 0],
			    argv0, strerror(rep.error));
}

int qemu_proc_spawn(char *const *argv, const struct qemu_proc_opts *opts, qemu_proc **ret_proc,
		    struct qv_error *errp)
{
	qemu_proc *p = NULL;
	int report_fd = -1, r;

	r = qemu_proc_spawn_nowait(argv, opts, &p, &report_fd, errp);
	if (r < 0)
		return r;
	r = qemu_proc_spawn_finish(p, report_fd, argv[0], errp);
	if (r < 0) {
		qemu_proc_free(p);
		return r;
	}
	*ret_proc = p;
	return 0;
}

int qemu_proc_attach(pid_t pid, uint64_t start_time, qemu_proc **ret_proc, struct qv_error *errp)
{
	_cleanup_close_ int pidfd = -1;
	uint64_t st, ppid;
	qemu_proc *p;
	int r;

	if (pid <= 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "Invalid pid %d",
				    (int)pid);
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND, "Process %d: %m", (int)pid);
	/* The pidfd is pinned first: if the stat still matches now, the pidfd
	 * refers to the recorded process. */
	r = read_stat_fields(pid, &ppid, &st);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_NOT_FOUND, "Process %d: %m", (int)pid);
	if (st != start_time)
		return qv_error_set(errp, ESRCH, QV_REASON_NOT_FOUND,
				    "Process %d is not the recorded one (start time %llu, expected %llu): pid reused",
				    (int)pid, (unsigned long long)st, (unsigned long long)start_time);
	p = proc_new(pid, pidfd);
	if (!p)
		return -ENOMEM;
	TAKE_FD(pidfd);
	p->start_time = st;
	p->is_child = ppid == (uint64_t)getpid();
	*ret_proc = p;
	return 0;
}

/* Called once the pidfd is readable (the process has exited). */
static void proc_collect(qemu_proc *p)
{
	siginfo_t si = { 0 };

	if (p->exited)
		return;
	p->exited = true;
	p->status = (struct qemu_exit_status){ .kind = QEMU_EXIT_UNKNOWN };
	if (waitid(P_PIDFD, p->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return; /* not our child (ECHILD), or reaped elsewhere */
	if (si.si_code == CLD_EXITED) {
		p->status.kind = QEMU_EXIT_EXITED;
		p->status.code = si.si_status;
	} else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
		p->status.kind = QEMU_EXIT_KILLED;
		p->status.signal = si.si_status;
		p->status.core_dumped = si.si_code == CLD_DUMPED;
	}
}

static bool pidfd_ready(int pidfd, int timeout_ms)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
	uint64_t deadline = timeout_ms >= 0 ? qv_now_ms() + (uint64_t)timeout_ms : 0;

	for (;;) {
		int t = -1, r;

		if (timeout_ms >= 0) {
			uint64_t now = qv_now_ms();
			t = now >= deadline ? 0 : (int)(deadline - now);
		}
		r = poll(&pfd, 1, t);
		if (r > 0)
			return true;
		if (r == 0 || errno != EINTR)
			return false;
	}
}

bool qemu_proc_exited(qemu_proc *p)
{
	if (!p->exited && pidfd_ready(p->pidfd, 0))
		proc_collect(p);
	return p->exited;
}

const struct qemu_exit_status *qemu_proc_exit_status(const qemu_proc *p)
{
	return &p->status;
}

int qemu_proc_wait(qemu_proc *p, int timeout_ms, struct qemu_exit_status *ret_status)
{
	if (!p->exited) {
		if (!pidfd_ready(p->pidfd, timeout_ms))
			return -ETIMEDOUT;
		proc_collect(p);
	}
	if (ret_status)
		*ret_status = p->status;
	return 0;
}

int qemu_proc_signal(qemu_proc *p, int sig)
{
	if (p->exited)
		return -ESRCH;
	if (pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0)
		return negative_errno();
	return 0;
}

static void on_pidfd(qv_source *s, int fd, uint32_t revents, void *userdata)
{
	qemu_proc *p = userdata;
	qemu_proc_exit_fn fn = p->exit_fn;

	p->watch = qv_source_remove(p->watch);
	p->exit_fn = NULL;
	proc_collect(p);
	if (fn)
		fn(p, &p->status, p->exit_userdata); /* may free p */
}

int qemu_proc_watch(qemu_proc *p, qv_loop *loop, qemu_proc_exit_fn fn, void *userdata)
{
	int r;

	p->watch = qv_source_remove(p->watch);
	p->exit_fn = fn;
	p->exit_userdata = userdata;
	if (!fn)
		return 0;
	r = qv_loop_add_io(loop, p->pidfd, EPOLLIN, on_pidfd, p, &p->watch);
	if (r < 0)
		p->exit_fn = NULL;
	return r;
}

pid_t qemu_proc_pid(const qemu_proc *p)
{
	return p->pid;
}

uint64_t qemu_proc_start_time(const qemu_proc *p)
{
	return p->start_time;
}

int qemu_proc_pidfd(const qemu_proc *p)
{
	return p->pidfd;
}

bool qemu_proc_is_child(const qemu_proc *p)
{
	return p->is_child;
}

qemu_proc *qemu_proc_free(qemu_proc *p)
{
	if (!p)
		return NULL;
	p->watch = qv_source_remove(p->watch);
	spawn_release(p);
	if (p->is_child)
		(void)qemu_proc_exited(p); /* reap if it is a zombie */
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p);
	return NULL;
}

void qemu_proc_freep(qemu_proc **p)
{
	*p = qemu_proc_free(*p);
}
