/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by daemon/vm-cgroup.c (hooks) and daemon/methods-cgroup.c (RPC). */

#include "daemon/vm.h"
#include "qemu/mountns.h"
#include "qemu/sandbox.h"
#include "sched/cgroup.h"

struct cg_daemon {
	cg_manager *mgr;
	qemu_sandbox *sb;
	uid_t uid;
	gid_t gid;
	bool have_user;
	struct qv_error user_err;
};

struct cg_vm {
	cg_group *g;
	qemu_mountns *mountns;  /* QEMU's mount namespace plan, until spawned */
	struct cg_io_limit *io; /* resolved per-disk io limits */
	size_t n_io;
};

struct cg_daemon *qv_cgroup_state(struct qv_daemon *d);
/* "vm-<name>" */
void qv_cgroup_group_name(const char *vm, char *buf, size_t size);
/* Per-disk io limits of spec -> whole-disk entries (malloc'ed). */
int qv_cgroup_resolve_io(const struct vm_spec *spec, struct cg_io_limit **ret, size_t *ret_n,
			 struct qv_error *errp);
