/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "common/error.h"
#include "qemu/spec.h"

/* Per-VM resource control. A cg_manager owns one delegated subtree
 * (<cgroup2 mount>/<slice>/, default "qvisor.slice") with one leaf per VM
 * ("vm-<name>") and, optionally, a leaf for the daemon itself ("daemon"), so
 * the no-internal-processes rule holds: controllers are enabled only in the
 * slice's cgroup.subtree_control, processes live only in leaves.
 *
 * How limits are written is a backend's business (struct cgroup_backend in
 * sched/cgroup-internal.h): "unified" writes cgroup-v2 interface files,
 * "none" (hybrid, legacy or missing cgroup2) refuses every limit with a
 * message that names the missing controllers and the host's layout. Callers
 * only see cg_limits in and cg_stats out. */

typedef struct cg_manager cg_manager;
typedef struct cg_group cg_group;

enum cg_controller {
	CG_CPU = 1u << 0,
	CG_CPUSET = 1u << 1,
	CG_IO = 1u << 2,
	CG_MEMORY = 1u << 3,
	CG_PIDS = 1u << 4,
};
#define CG_ALL (CG_CPU | CG_CPUSET | CG_IO | CG_MEMORY | CG_PIDS)

enum cg_layout {
	CG_LAYOUT_NONE,    /* no cgroup file system at all */
	CG_LAYOUT_LEGACY,  /* only v1 hierarchies */
	CG_LAYOUT_HYBRID,  /* v1 hierarchies plus a cgroup2 mount */
	CG_LAYOUT_UNIFIED, /* only cgroup2 */
};

#define CG_PATH_MAX 512

struct cg_host {
	enum cg_layout layout;
	char mount[CG_PATH_MAX];  /* the cgroup2 mount point, "" if none */
	char v2_names[256];       /* the root's cgroup.controllers, verbatim */
	unsigned v2_controllers;  /* ours among them */
	unsigned v1_bound;        /* ours bound to a v1 hierarchy */
	char self[CG_PATH_MAX];   /* our cgroup in the v2 tree ("/" ...), "" if unknown */
};

/* Parse mountinfo (NULL: /proc/self/mountinfo). `root_override` (tests)
 * replaces the cgroup2 mount found there. Never fails: a host without any
 * cgroup2 has layout NONE or LEGACY. */
void cg_host_detect(const char *mountinfo, const char *root_override, struct cg_host *ret);
/* "hybrid: cgroup v2 at /sys/fs/cgroup/unified has controllers: hugetlb;
 *  cpu, cpuset, io, memory, pids are bound to cgroup v1". Returns buf. */
const char *cg_host_describe(const struct cg_host *h, char *buf, size_t size);
const char *cg_layout_to_string(enum cg_layout l);
/* The subtree systemd delegated to us (Delegate=yes): the deepest component
 * of our cgroup `self` that names a unit (".service" or ".scope"), e.g.
 * "/qvisor.slice/qvisord.service/daemon" -> "/qvisor.slice/qvisord.service".
 * -ENOENT when none does (not started as a unit). */
int cg_delegated_root(const char *self, char *ret, size_t size);
/* Mask of our controllers named in a space/comma separated list ("cpu io"). */
unsigned cg_controllers_parse(const char *list);
/* "cpu, memory" (or "(none)"); returns buf. */
const char *cg_controllers_format(unsigned mask, char *buf, size_t size);

/* --- limits ----------------------------------------------------------------- */

struct cg_io_limit {
	unsigned major, minor;           /* a whole disk (not a partition) */
	uint64_t rbps, wbps, riops, wiops; /* 0 = unlimited */
	uint32_t weight;                 /* 0 = unset, 1..10000 */
};

struct cg_limits {
	struct vm_limits l;   /* borrowed strings: the caller keeps them alive */
	const struct cg_io_limit *io;
	size_t n_io;
};

/* Controllers needed to enforce lim. */
unsigned cg_limits_required(const struct cg_limits *lim);

/* The block device (whole disk) whose io limits govern an image file:
 * S_ISBLK -> st_rdev, else st_dev mapped through /sys/dev/block to its disk.
 * -ENODEV (errp says why) when the file system has no block device
 * (tmpfs, overlay, btrfs subvolume). */
int cg_blkdev_for_path(const char *path, unsigned *ret_major, unsigned *ret_minor,
		       struct qv_error *errp);

/* --- stats ------------------------------------------------------------------- */

struct cg_psi {
	bool present, has_full;
	double some_avg10, some_avg60, some_avg300, full_avg10, full_avg60, full_avg300;
	uint64_t some_total, full_total; /* usec */
};

#define CG_STATS_MAX_IO 16

struct cg_io_stat {
	unsigned major, minor;
	uint64_t rbytes, wbytes, rios, wios;
};

struct cg_stats {
	unsigned controllers; /* sections that were read */
	uint64_t cpu_usage_usec, cpu_user_usec, cpu_system_usec;
	uint64_t cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec;
	uint64_t mem_current, mem_swap_current;
	uint64_t mem_anon, mem_file, mem_kernel_stack, mem_shmem, mem_sock, mem_slab;
	uint64_t mem_pgfault, mem_pgmajfault;
	uint64_t mem_ev_low, mem_ev_high, mem_ev_max, mem_ev_oom, mem_ev_oom_kill;
	uint64_t pids_current, pids_ev_max;
	struct cg_io_stat io[CG_STATS_MAX_IO];
	size_t n_io;
	struct cg_psi psi_cpu, psi_memory, psi_io;
};

/* Parsers (pure; fed file contents). */
void cg_parse_cpu_stat(const char *text, struct cg_stats *s);
void cg_parse_memory_stat(const char *text, struct cg_stats *s);
void cg_parse_memory_events(const char *text, struct cg_stats *s);
void cg_parse_io_stat(const char *text, struct cg_stats *s);
int cg_parse_psi(const char *text, struct cg_psi *ret);
/* {"cpu":{...},"memory":{...},"pids":{...},"io":[...],"pressure":{...}} */
json_object *cg_stats_to_json(const struct cg_stats *s);

/* --- manager and groups --------------------------------------------------------- */

struct cg_manager_opts {
	const char *mountinfo;     /* NULL: /proc/self/mountinfo */
	const char *root;          /* NULL: the detected cgroup2 mount */
	const char *slice;         /* NULL: "qvisor.slice" */
	bool move_self;            /* move the calling process into <slice>/daemon */
	const char *force_backend; /* NULL: choose; "none" or "unified" */
	/* Started by systemd with Delegate=yes: the slice goes below our
	 * delegated subtree (cg_delegated_root) instead of the mount's root, and
	 * move_self uses <subtree>/daemon, where systemd's DelegateSubgroup=daemon
	 * puts a restarted daemon. Controllers are enabled at the unit's top only
	 * when systemd started us below it (DelegateSubgroup=, systemd >= 254):
	 * else the next restart would fail while VMs run. Without a unit in our
	 * cgroup: as if false. */
	bool delegated;
	const char *self;          /* NULL: our cgroup from /proc/self/cgroup (tests) */
};

/* Detect, choose a backend, create the slice and enable what it can. */
int cg_manager_new(const struct cg_manager_opts *o, cg_manager **ret, struct qv_error *errp);
cg_manager *cg_manager_free(cg_manager *m);
void cg_manager_freep(cg_manager **m);
const struct cg_host *cg_manager_host(const cg_manager *m);
const char *cg_manager_backend_id(const cg_manager *m);
/* Controllers enabled for VM groups. */
unsigned cg_manager_controllers(const cg_manager *m);
/* Absolute slice directory, NULL for the "none" backend. */
const char *cg_manager_slice_path(const cg_manager *m);
/* 0 if lim can be enforced, else -EOPNOTSUPP with a message naming the missing
 * controllers and the host layout. */
int cg_manager_check(const cg_manager *m, const struct cg_limits *lim, struct qv_error *errp);
/* Remove empty groups of the slice (their VM is not running) except those
 * for which keep(name) is true. Returns the number removed. */
int cg_manager_reconcile(cg_manager *m, bool (*keep)(const char *group, void *ud), void *ud);
/* Tear the whole slice down (tests, benchmarks): kill what is left in VM
 * groups, move ourselves back to the parent, remove every group. */
int cg_manager_destroy(cg_manager *m);

/* Create (or adopt an existing) group "<name>" in the slice. */
int cg_group_create(cg_manager *m, const char *name, cg_group **ret, struct qv_error *errp);
/* Open an existing one; -ENOENT if absent. */
int cg_group_open(cg_manager *m, const char *name, cg_group **ret, struct qv_error *errp);
/* Directory fd for clone3(CLONE_INTO_CGROUP); -1 for the "none" backend. */
int cg_group_fd(const cg_group *g);
const char *cg_group_path(const cg_group *g);
/* Write lim. With old == NULL (fresh group) only set fields are written;
 * otherwise every field that differs is written (unset -> kernel default). */
int cg_group_apply(cg_group *g, const struct cg_limits *lim, const struct cg_limits *old,
		   struct qv_error *errp);
int cg_group_read_stats(cg_group *g, struct cg_stats *ret, struct qv_error *errp);
/* Move pid into the group. */
int cg_group_attach(cg_group *g, pid_t pid, struct qv_error *errp);
/* cgroup.kill (5.14+), else SIGKILL to each pid in cgroup.procs. */
int cg_group_kill(cg_group *g);
/* rmdir, retried every 10 ms for up to timeout_ms while the kernel drains
 * exiting tasks (-EBUSY). Frees g in every case. */
int cg_group_remove(cg_group *g, int timeout_ms);
cg_group *cg_group_free(cg_group *g);
void cg_group_freep(cg_group **g);

/* --- exclusive cores: the partition slice (sched/cgroup-part.c) -------------- */

/* Create (or adopt) group "<name>" in the partition slice beside the slice
 * ("qvisor.slice" -> "qvisor-latency.slice", created with its first group):
 * for a VM whose cores are to be its own. Its cores become exclusive with
 * cg_partition_slice_fit on the slice, then cpuset.cpus.partition = root on
 * the group; cg_group_remove of its last group removes the slice. The
 * "none" backend: as cg_group_create. cg_group_open finds groups in either
 * slice. */
int cg_group_create_exclusive(cg_manager *m, const char *name, cg_group **ret,
			      struct qv_error *errp);
bool cg_group_is_exclusive(const cg_group *g);
/* The partition slice's directory; NULL while it does not exist. */
const char *cg_manager_part_slice_path(const cg_manager *m);
/* Make slice_fd (a partition slice) a cpuset partition root of the cores of
 * its children that are partition roots plus `adding` (a cpu list, NULL:
 * none); with no cores left, a member again. 0, or -errno with why (may be
 * NULL) naming the kernel's reason ("root invalid (...)"); a refused slice
 * is left a member. */
int cg_partition_slice_fit(int slice_fd, const char *adding, char *why, size_t size);
/* "0-2,5" -> bit mask (CPUs 0..63; the other way: hl_cpuset_format);
 * -EINVAL, -ERANGE. */
int cg_cpulist_parse(const char *s, uint64_t *ret);
