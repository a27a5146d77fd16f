/* SPDX-License-Identifier: MIT */
#pragma once
/* Shared by qemu/proc.c (the qemu_proc object) and qemu/proc-child.c (the
 * spawned child until exec, and how it is cloned). */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "qemu/proc.h"

#define CHILD_STACK_SIZE (256 * 1024)

/* What the child reports through the error pipe before _exit(). */
enum child_stage {
	STAGE_SIGNALS, STAGE_SETSID, STAGE_CGROUP, STAGE_STDIO, STAGE_FDS,
	STAGE_IDS, STAGE_NNP, STAGE_SETUP, STAGE_EXEC, STAGE_PRIV_SETUP,
};
struct child_report {
	int stage;
	int error;
};

struct child_args {
	char *const *argv;
	const char *path; /* argv[0] resolved in the parent; NULL: not found */
	char *const *envp;
	const struct qemu_proc_opts *opts;
	const int *keep; /* sorted */
	size_t n_keep;
	int errfd, nullfd, logfd;
	bool cgroup_by_write; /* fork fallback: join the cgroup by hand */
};

/* Everything the child reads until it exec'd: with CLONE_VM it reads it in
 * our memory, so it lives (in the qemu_proc) until the child exec'd or died,
 * whatever the caller frees meanwhile. */
struct spawn_mem {
	struct child_args ca;
	struct qemu_proc_opts opts;
	char **argv;
	char *path;
	int *keep;
	void *stack; /* CHILD_STACK_SIZE plus a guard page below; NULL: forked */
};

/* Copies argv and opts, takes *keep (sorted), resolves argv[0] in $PATH. */
struct spawn_mem *qemu_proc_spawn_mem_new(char *const *argv, const struct qemu_proc_opts *opts,
					  int **keep);
struct spawn_mem *qemu_proc_spawn_mem_free(struct spawn_mem *sm);

/* The child: never returns (exec or _exit with a report on ca->errfd). */
_Noreturn void qemu_proc_child_main(const struct child_args *a);

/* The child runs qemu_proc_child_main(&sm->ca) on sm->stack sharing our
 * memory. pid (0 never: the child does not return here), or -errno;
 * -ENOSYS: not available here, clone without CLONE_VM instead. */
pid_t qemu_proc_clone_vm(struct spawn_mem *sm, int cgroup_fd, int *ret_pidfd);
/* clone3 without CLONE_VM (a copy, like fork): returns twice. */
pid_t qemu_proc_clone3(int cgroup_fd, int *ret_pidfd);
