/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/loop.h"

/* A supervised process (QEMU), tracked by pidfd. Spawned from an argv array
 * with execve (never a shell) in its own session, so it outlives the daemon.
 * Identity is (pid, start time): the start time is field 22 of
 * /proc/PID/stat, recorded so a restarted daemon can re-attach and detect
 * pid reuse. Exit is detected by pidfd readiness, never by polling. */

typedef struct qemu_proc qemu_proc;

enum qemu_exit_kind {
	QEMU_EXIT_UNKNOWN, /* exited while not our child: status unknown */
	QEMU_EXIT_EXITED,  /* code is valid */
	QEMU_EXIT_KILLED,  /* signal is valid */
};

struct qemu_exit_status {
	enum qemu_exit_kind kind;
	int code;
	int signal;
	bool core_dumped;
};

/* "exited with status 1", "killed by signal 9 (SIGKILL)",
 * "exited while not our child; status unknown". Returns buf. */
const char *qemu_exit_status_format(const struct qemu_exit_status *st, char *buf, size_t size);
#define QEMU_EXIT_STATUS_MAX 96

struct qemu_proc_opts {
	/* stdout+stderr appended to this file (created 0600); if NULL, log_fd
	 * is used when > 0, else /dev/null. stdin is always /dev/null. */
	const char *log_path;
	int log_fd;
	/* Kept fds: they arrive in the child under the same number (the argv
	 * refers to them as fd=N). Every other fd >= 3 is closed. Each must be
	 * >= 3 and open in the caller. */
	const int *keep_fds;
	size_t n_keep_fds;
	/* cgroup-v2 directory fd (> 0): the child starts inside it
	 * (clone3 CLONE_INTO_CGROUP). <= 0: stay in the caller's cgroup. */
	int cgroup_fd;
	/* Drop to uid/gid (supplementary groups cleared) before exec. */
	bool drop_ids;
	uid_t uid;
	gid_t gid;
	bool no_new_privs;
	/* Run in the child while still root, right before the ids are dropped
	 * (e.g. to enter a mount namespace). Same rules as child_setup. */
	int (*child_setup_privileged)(void *userdata);
	void *child_setup_privileged_userdata;
	/* Run in the child right before exec, after the ids were dropped (e.g. to
	 * load a prepared seccomp filter). The child may share the caller's
	 * memory and TLS until exec (CLONE_VM): raw syscalls only
	 * (qemu/rawsys.h), no libc call, no errno, no write outside its own
	 * stack; the userdata must stay valid until qemu_proc_spawn_finish
	 * returned or the qemu_proc was freed. Return 0 or -errno; an error
	 * aborts the spawn and is reported. */
	int (*child_setup)(void *userdata);
	void *child_setup_userdata;
	/* Environment; NULL = inherit. */
	char *const *envp;
};

/* Spawn argv[0] (absolute path, or searched in $PATH) with argv. Fails with a
 * message such as "Failed to execute /usr/bin/qemu-system-x86_64: No such
 * file or directory" if the child cannot exec. */
int qemu_proc_spawn(char *const *argv, const struct qemu_proc_opts *opts, qemu_proc **ret_proc,
		    struct qv_error *errp);

/* The same in two steps, so an event loop need not wait for the child's
 * exec: spawn returns right after the clone with *ret_report_fd, which turns
 * readable once the child exec'd (EOF) or failed (a report). finish reads it
 * (blocking until then if it is not readable yet) and closes it: 0 once
 * exec'd, else the error qemu_proc_spawn would give, the child reaped; the
 * caller still frees p. */
int qemu_proc_spawn_nowait(char *const *argv, const struct qemu_proc_opts *opts,
			   qemu_proc **ret_proc, int *ret_report_fd, struct qv_error *errp);
int qemu_proc_spawn_finish(qemu_proc *p, int report_fd, const char *argv0,
			   struct qv_error *errp);

/* Re-attach to a running process (e.g. after a daemon restart). -ESRCH if it
 * is gone or its start time differs (pid reused). */
int qemu_proc_attach(pid_t pid, uint64_t start_time, qemu_proc **ret_proc, struct qv_error *errp);

/* Does not kill the process; reaps it if it is our exited child. */
qemu_proc *qemu_proc_free(qemu_proc *p);
void qemu_proc_freep(qemu_proc **p);

pid_t qemu_proc_pid(const qemu_proc *p);
uint64_t qemu_proc_start_time(const qemu_proc *p);
int qemu_proc_pidfd(const qemu_proc *p);
/* Spawned by us (exit status can be collected). */
bool qemu_proc_is_child(const qemu_proc *p);

/* pidfd_send_signal. -ESRCH once the process is gone. */
int qemu_proc_signal(qemu_proc *p, int sig);

/* Exit detection. Non-blocking check: true if the process has exited (status
 * then collected). */
bool qemu_proc_exited(qemu_proc *p);
/* Only valid once qemu_proc_exited() is true. */
const struct qemu_exit_status *qemu_proc_exit_status(const qemu_proc *p);

/* Blocking: wait at most timeout_ms (-1 = forever) for exit.
 * 0 and *ret_status filled, or -ETIMEDOUT. */
int qemu_proc_wait(qemu_proc *p, int timeout_ms, struct qemu_exit_status *ret_status);

/* Watch the pidfd on a loop; fn fires once when the process exits. The
 * callback may free the proc. Calling again replaces the callback;
 * fn == NULL stops watching. */
typedef void (*qemu_proc_exit_fn)(qemu_proc *p, const struct qemu_exit_status *st,
				  void *userdata);
int qemu_proc_watch(qemu_proc *p, qv_loop *loop, qemu_proc_exit_fn fn, void *userdata);

/* Field 22 of /proc/PID/stat (clock ticks since boot). */
int qemu_proc_read_start_time(pid_t pid, uint64_t *ret_start_time);
