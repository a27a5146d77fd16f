/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between sched/cgroup*.c: the backend vtable and the object bodies. */

#include "sched/cgroup.h"

struct cgroup_backend {
	const char *id;
	/* Prepare the slice; fill m->controllers. */
	int (*setup)(cg_manager *m, const struct cg_manager_opts *o, struct qv_error *errp);
	int (*group_open)(cg_manager *m, cg_group *g, bool create, struct qv_error *errp);
	int (*apply)(cg_group *g, const struct cg_limits *lim, const struct cg_limits *old,
		     struct qv_error *errp);
	int (*read_stats)(cg_group *g, struct cg_stats *ret, struct qv_error *errp);
	int (*attach)(cg_group *g, pid_t pid, struct qv_error *errp);
	int (*kill)(cg_group *g);
	int (*remove)(cg_group *g, int timeout_ms);
	int (*reconcile)(cg_manager *m, bool (*keep)(const char *, void *), void *ud);
	int (*destroy)(cg_manager *m);
	void (*teardown)(cg_manager *m);
};

extern const struct cgroup_backend cg_backend_unified;
extern const struct cgroup_backend cg_backend_none;

struct cg_manager {
	const struct cgroup_backend *be;
	struct cg_host host;
	char *slice_name;
	char *slice_path;   /* <base>/<slice> */
	char *base_path;    /* <mount>, or <mount><delegated root> under systemd */
	char *parent_path;  /* where we lived before move_self */
	int slice_fd;
	unsigned controllers;
	bool moved_self;
	bool delegated;      /* base_path is a systemd-delegated subtree */
	bool unit_controllers; /* and we may enable controllers at its top */
	/* the partition slice beside the slice (sched/cgroup-part.c): -1 while absent */
	int part_fd;
	char *part_path;
};

struct cg_group {
	cg_manager *m;
	char *name;
	char *path;
	int fd;
	bool excl; /* in the partition slice */
};

/* Read a whole small file relative to dirfd into buf (NUL terminated).
 * Returns the length or -errno. */
ssize_t cg_read_at(int dirfd, const char *file, char *buf, size_t size);
/* Write value to dirfd/file; -errno. */
int cg_write_at(int dirfd, const char *file, const char *value);

/* The unified backend's interface-file writers and readers
 * (sched/cgroup-v2-files.c). */
int cg_v2_apply(cg_group *g, const struct cg_limits *lim, const struct cg_limits *old,
		struct qv_error *errp);
int cg_v2_read_stats(cg_group *g, struct cg_stats *ret, struct qv_error *errp);

/* fn(slice_fd, group_fd (-1 if it cannot be opened), name, ud) for each
 * group (child directory) of slice_fd, until fn returns non-zero: that, 0,
 * or -errno. */
int cg_each_group(int slice_fd, int (*fn)(int slice_fd, int group_fd, const char *name, void *ud),
		  void *ud);
/* base_path/name (made when create) into *ret_path (replaced) and an fd. */
int cg_v2_slice_open(int base_fd, const char *base_path, const char *name, bool create,
		     char **ret_path, int *ret_fd, struct qv_error *errp);
/* Enable our controllers available in dirfd's cgroup.subtree_control. */
void cg_v2_enable_controllers(int dirfd, const char *where);
/* The partition slice (sched/cgroup-part.c): open it (create: make it,
 * with the controllers); settle: fit its partition to the groups left in
 * it, and remove it when there are none. */
int cg_part_slice_open(cg_manager *m, bool create, struct qv_error *errp);
void cg_part_slice_settle(cg_manager *m);
