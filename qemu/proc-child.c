/* SPDX-License-Identifier: MIT */
/* The spawned child until exec, and how it is cloned (qemu/proc-internal.h). */
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "common/macro.h"
#include "qemu/proc-internal.h"
#include "qemu/rawsys.h"

/* ---- child side ------------------------------------------------------------
 * The child may share the daemon's memory and TLS until exec (CLONE_VM, see
 * qemu_proc_clone_vm): raw syscalls only (qemu/rawsys.h), no libc call, no
 * errno, no write to anything but its own stack. */

/* The kernel's struct sigaction (rt_sigaction), for SIG_DFL. */
struct child_ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	unsigned long mask;
};

_Noreturn static void child_fail(int errfd, int stage, int error)
{
	struct child_report rep = { .stage = stage, .error = error };

	(void)qv_sys(SYS_write, errfd, &rep, sizeof(rep));
	for (;;)
		(void)qv_sys(SYS_exit_group, 127);
}

static int move_above_stdio(int fd)
{
	if (fd < 0 || fd > 2)
		return fd;
	return (int)qv_sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
}

static long child_dup(int from, int to)
{
	if (from == to)
		return qv_sys(SYS_fcntl, to, F_SETFD, 0);
	return qv_sys(SYS_dup3, from, to, 0);
}

static int child_fds(const int *keep, size_t n_keep)
{
	unsigned lo = 3;
	long r;

	/* Mark everything but the kept fds CLOEXEC: they close at exec, while
	 * the error pipe stays usable until then. */
	for (size_t i = 0; i < n_keep; i++) {
		if ((unsigned)keep[i] > lo &&
		    (r = qv_sys(SYS_close_range, lo, keep[i] - 1, CLOSE_RANGE_CLOEXEC)) < 0)
			return (int)r;
		lo = keep[i] + 1;
	}
	if ((r = qv_sys(SYS_close_range, lo, ~0U, CLOSE_RANGE_CLOEXEC)) < 0)
		return (int)r;
	for (size_t i = 0; i < n_keep; i++)
		if ((r = qv_sys(SYS_fcntl, keep[i], F_SETFD, 0)) < 0)
			return (int)r;
	return 0;
}

/* Default dispositions first, then unblock: the parent cloned with every
 * signal blocked, so no daemon handler ever runs in the child. */
static int child_signals(void)
{
	struct child_ksigaction dfl = { .handler = SIG_DFL };
	unsigned long none = 0;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)qv_sys(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
	return (int)qv_sys(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
}

static void child_ids(const struct child_args *a)
{
	const struct qemu_proc_opts *o = a->opts;
	long r;

	r = qv_sys(SYS_setgroups, 0, NULL);
	if (r < 0 && r != -EPERM)
		child_fail(a->errfd, STAGE_IDS, (int)-r);
	if ((r = qv_sys(SYS_setresgid, o->gid, o->gid, o->gid)) < 0 ||
	    (r = qv_sys(SYS_setresuid, o->uid, o->uid, o->uid)) < 0)
		child_fail(a->errfd, STAGE_IDS, (int)-r);
	/* The id change set the dumpable flag of the mm, which may be the
	 * daemon's (CLONE_VM), to fs.suid_dumpable: back to 0 for both. */
	(void)qv_sys(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
}

_Noreturn void qemu_proc_child_main(const struct child_args *a)
{
	const struct qemu_proc_opts *o = a->opts;
	int nullfd, logfd, r;

	if ((r = child_signals()) < 0)
		child_fail(a->errfd, STAGE_SIGNALS, -r);
	if ((r = (int)qv_sys(SYS_setsid)) < 0)
		child_fail(a->errfd, STAGE_SETSID, -r);

	if (a->cgroup_by_write) {
		int cfd = (int)qv_sys(SYS_openat, o->cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
		if (cfd < 0)
			child_fail(a->errfd, STAGE_CGROUP, -cfd);
		if ((r = (int)qv_sys(SYS_write, cfd, "0", 1)) != 1)
			child_fail(a->errfd, STAGE_CGROUP, r < 0 ? -r : EIO);
		(void)qv_sys(SYS_close, cfd);
	}

	nullfd = move_above_stdio(a->nullfd);
	logfd = move_above_stdio(a->logfd);
	if (nullfd < 0 || logfd < 0)
		child_fail(a->errfd, STAGE_STDIO, nullfd < 0 ? -nullfd : -logfd);
	if ((r = (int)child_dup(nullfd, 0)) < 0 || (r = (int)child_dup(logfd, 1)) < 0 ||
	    (r = (int)child_dup(logfd, 2)) < 0)
		child_fail(a->errfd, STAGE_STDIO, -r);

	r = child_fds(a->keep, a->n_keep);
	if (r < 0)
		child_fail(a->errfd, STAGE_FDS, -r);

	if (o->child_setup_privileged) {
		r = o->child_setup_privileged(o->child_setup_privileged_userdata);
		if (r < 0)
			child_fail(a->errfd, STAGE_PRIV_SETUP, -r);
	}
	if (o->drop_ids)
		child_ids(a);
	if (o->no_new_privs && (r = (int)qv_sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0)
		child_fail(a->errfd, STAGE_NNP, -r);
	if (o->child_setup) {
		r = o->child_setup(o->child_setup_userdata);
		if (r < 0)
			child_fail(a->errfd, STAGE_SETUP, -r);
	}

	r = a->path ? (int)qv_sys(SYS_execve, a->path, a->argv, a->envp) : -ENOENT;
	child_fail(a->errfd, STAGE_EXEC, -r);
}


struct spawn_mem *qemu_proc_spawn_mem_free(struct spawn_mem *sm)
{
	if (sm) {
		if (sm->stack)
			(void)munmap(sm->stack, CHILD_STACK_SIZE + (size_t)sysconf(_SC_PAGESIZE));
		strv_free(sm->argv);
		free(sm->path);
		free(sm->keep);
		free(sm);
	}
	return NULL;
}

/* argv[0] as execvpe would find it, looked up here so the child need not:
 * a name with a slash as is, else the first executable in $PATH. */
static char *resolve_exec(const char *name)
{
	const char *path = getenv("PATH");
	char *found = NULL;

	if (strchr(name, '/'))
		return strdup(name);
	if (!path || !*path)
		path = "/bin:/usr/bin";
	for (const char *p = path, *end; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		if (asprintf(&found, "%.*s/%s", (int)(end - p), end == p ? "." : p, name) < 0)
			return NULL;
		if (access(found, X_OK) == 0)
			return found;
		free(TAKE_PTR(found));
	}
	return NULL;
}

struct spawn_mem *qemu_proc_spawn_mem_new(char *const *argv, const struct qemu_proc_opts *opts,
					  int **keep)
{
	struct spawn_mem *sm = calloc(1, sizeof(*sm));
	size_t n = 0;

	if (!sm)
		return NULL;
	while (argv[n])
		n++;
	sm->argv = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; sm->argv && i < n; i++)
		if (!(sm->argv[i] = strdup(argv[i]))) {
			strv_free(TAKE_PTR(sm->argv));
			break;
		}
	if (!sm->argv)
		return qemu_proc_spawn_mem_free(sm);
	sm->path = resolve_exec(argv[0]); /* NULL: the child reports ENOENT */
	sm->opts = *opts;
	sm->keep = TAKE_PTR(*keep);
	return sm;
}

/* clone3 with CLONE_PIDFD (+ CLONE_INTO_CGROUP); -ENOSYS when unavailable. */
pid_t qemu_proc_clone3(int cgroup_fd, int *ret_pidfd)
{
	struct clone_args ca = {
		.flags = CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)ret_pidfd,
		.exit_signal = SIGCHLD,
	};
	long r;

	if (cgroup_fd > 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)cgroup_fd;
	}
	r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r < 0)
		return -errno;
	return (pid_t)r;
}

#if QV_RAW_SYSCALLS
/* clone3 onto ca->stack: the child calls fn(arg) there and never comes back
 * into this frame (fn does not return). The parent gets the pid or -errno. */
typedef void child_fn(const struct child_args *);

static long clone3_run(struct clone_args *ca, child_fn *fn, const struct child_args *arg)
{
	register long rax __asm__("rax") = SYS_clone3;
	register struct clone_args *rdi __asm__("rdi") = ca;
	register long rsi __asm__("rsi") = sizeof(*ca);
	register void *rdx __asm__("rdx") = (void *)fn;
	register const void *r8 __asm__("r8") = arg;

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "mov %%r8, %%rdi\n\t"
			 "call *%%rdx\n\t"
			 "ud2\n"
			 "1:"
			 : "+r"(rax)
			 : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r8)
			 : "rcx", "r11", "memory");
	return rax;
}

/* The child shares our memory until exec (like posix_spawn, but without
 * CLONE_VFORK: we do not wait for its mount namespace set-up). That spares
 * the daemon the copy of its page tables and the copy-on-write faults of
 * every page it touches while children set up, and the child the
 * tear-down of that copy at exec. -ENOSYS: fork instead. */
/* fs.suid_dumpable 1 would make the shared mm (the daemon's) dumpable and
 * traceable by the VM's uid between the child's setresuid and its next
 * prctl: fork there instead. */
static bool suid_dumpable_is_off(void)
{
	_cleanup_close_ int fd = open("/proc/sys/fs/suid_dumpable", O_RDONLY | O_CLOEXEC);
	char c = '1';

	return fd >= 0 && read(fd, &c, 1) == 1 && c != '1';
}

pid_t qemu_proc_clone_vm(struct spawn_mem *sm, int cgroup_fd, int *ret_pidfd)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct clone_args ca = {
		.flags = CLONE_VM | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)ret_pidfd,
		.exit_signal = SIGCHLD,
		.stack_size = CHILD_STACK_SIZE,
	};
	sigset_t all, old;
	long r;

#if defined(__SANITIZE_ADDRESS__)
	/* ASan's shadow would be shared too, and the child's frames (it never
	 * returns) stay poisoned in it: fork under the sanitizers. */
	return -ENOSYS;
#endif
	if (!suid_dumpable_is_off())
		return -ENOSYS;
	sm->stack = mmap(NULL, CHILD_STACK_SIZE + page, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sm->stack == MAP_FAILED) {
		sm->stack = NULL;
		return -ENOMEM;
	}
	if (mprotect((char *)sm->stack + page, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE) < 0)
		return negative_errno();
	ca.stack = (uint64_t)(uintptr_t)sm->stack + page;
	if (cgroup_fd > 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)cgroup_fd;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = clone3_run(&ca, qemu_proc_child_main, &sm->ca);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		(void)munmap(sm->stack, CHILD_STACK_SIZE + page);
		sm->stack = NULL;
	}
	return (pid_t)r;
}
#else
pid_t qemu_proc_clone_vm(struct spawn_mem *sm, int cgroup_fd, int *ret_pidfd)
{
	return -ENOSYS;
}
#endif
