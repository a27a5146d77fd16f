/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sched/cgroup.h"

/* The collector: one pass per interval over every registered VM cgroup
 * (cpu.stat, memory.current, memory.stat, memory.events, io.stat and the
 * cpu/memory/io.pressure files) and the host (/proc/stat, /proc/meminfo,
 * /proc/pressure/{cpu,memory,io}). Files are opened once and re-read with
 * pread, so a pass is a few syscalls per file: no fork, no exec, no
 * directory walk. Each pass turns the counters into per-interval rates
 * (col_point) kept in a bounded history per VM: a fine ring at the
 * interval and a coarse ring of averages over `coarse_every` points.
 * No daemon logic: the caller decides when to poll. */

typedef struct qv_collector qv_collector;

struct col_opts {
	unsigned fine_points;   /* default 3600 (1 h at 1 s) */
	unsigned coarse_points; /* default 1440 (24 h of 1 min averages) */
	unsigned coarse_every;  /* fine points per coarse point; default 60 */
	const char *proc_root;  /* NULL: "/proc" (tests point it at fixtures) */
};

/* Raw counters of one VM at one pass (cumulative, as the kernel gives them). */
struct col_vm_raw {
	uint64_t t_us; /* caller's monotonic clock */
	uint64_t cpu_usage_usec, cpu_throttled_usec, cpu_nr_periods, cpu_nr_throttled;
	uint64_t mem_current, mem_anon, mem_file;
	uint64_t mem_ev_low, mem_ev_high, mem_ev_max, mem_ev_oom_kill;
	uint64_t io_rbytes, io_wbytes, io_rios, io_wios; /* summed over devices */
	struct cg_psi psi_cpu, psi_memory, psi_io;
	unsigned present; /* CG_* controllers whose files were read */
};

/* One interval of one VM (or of the host), as rates. */
enum { COL_PSI_CPU_SOME, COL_PSI_CPU_FULL, COL_PSI_MEM_SOME, COL_PSI_MEM_FULL,
       COL_PSI_IO_SOME, COL_PSI_IO_FULL, COL_PSI_N };
struct col_point {
	uint32_t t_s;          /* seconds since the collector's first pass */
	float cpu;             /* CPU used, in cores (1.0 = one core busy) */
	float throttled;       /* fraction of the interval spent throttled */
	float mem_mib;         /* memory.current (host: used = total - available) */
	float io_rbps, io_wbps; /* bytes per second */
	float psi[COL_PSI_N];  /* avg10, percent */
	/* fed by the caller (col_vm_set_nics/_disks), 0 when unknown: the
	 * guest's NICs (its view: rx = received by the guest) and QEMU's
	 * block layer (query-blockstats), bytes per second, all NICs/disks */
	float net_rx_bps, net_tx_bps, disk_rd_bps, disk_wr_bps;
};

struct col_host {
	unsigned ncpus;
	uint64_t mem_total, mem_available;
	uint64_t cpu_busy_jiffies, cpu_total_jiffies;
	struct cg_psi psi_cpu, psi_memory, psi_io;
	struct col_point rate; /* valid after two passes */
	bool valid;
};

int col_new(const struct col_opts *o, qv_collector **ret);
qv_collector *col_free(qv_collector *c);
void col_freep(qv_collector **c);

/* Watch the cgroup directory `dir` as VM `name`. -EEXIST, -ENOENT, -ENOMEM. */
int col_add_vm(qv_collector *c, const char *name, const char *dir);
/* Watch VM `name` through its QEMU process instead (hosts without a usable
 * cgroup v2): CPU from /proc/PID/stat (utime + stime), memory from
 * /proc/PID/status VmRSS, io from /proc/PID/io; no PSI, no throttling.
 * The descriptors stay bound to that process: once it exits the VM is stale,
 * never another process that reuses the pid. */
int col_add_vm_pid(qv_collector *c, const char *name, pid_t pid);
bool col_vm_by_pid(const qv_collector *c, size_t i);
/* Forget a VM (its history too). -ENOENT. */
int col_remove_vm(qv_collector *c, const char *name);

/* One pass over every VM and the host. now_us: a monotonic clock. A VM
 * whose cgroup vanished keeps its history and is marked stale. Returns the
 * number of VMs read. */
int col_poll(qv_collector *c, uint64_t now_us);

size_t col_vm_count(const qv_collector *c);
/* Index of name, or -ENOENT. */
int col_vm_index(const qv_collector *c, const char *name);
const char *col_vm_name(const qv_collector *c, size_t i);
/* Last raw counters; NULL before the first pass. */
const struct col_vm_raw *col_vm_raw(const qv_collector *c, size_t i);
/* Last interval as rates; NULL before two passes or when stale. */
const struct col_point *col_vm_last(const qv_collector *c, size_t i);
/* Copy up to max points, oldest first, from the fine (coarse = false) or
 * coarse ring. Returns the number copied. */
size_t col_vm_history(const qv_collector *c, size_t i, bool coarse, struct col_point *ret,
		      size_t max);
const struct col_host *col_host(const qv_collector *c);

/* --- the guest's own view (sched/collect-guest.c) ----------------------------- */

/* A guest with a virtio balloon reports statistics that only QMP reaches
 * (qom-get guest-stats): the caller fetches them asynchronously and stores
 * them here; the collector keeps the last report and turns its counters
 * into rates. The guest is hostile: values are only what the caller
 * validated (non-negative) and rates never go negative. */
struct col_guest {
	bool valid;
	uint64_t t_us;          /* the caller's clock when stored */
	int64_t last_update;    /* the guest's report time (s); 0 = unknown */
	uint64_t available;     /* bytes (stat-available-memory, else free) */
	uint64_t free, total;   /* bytes */
	uint64_t swap_in, swap_out; /* bytes, cumulative */
	uint64_t major_faults, minor_faults; /* cumulative */
	/* over the last two distinct reports (0 before the second) */
	double major_faults_ps, swap_in_bps, swap_out_bps;
};

/* Store a report for VM name (rates computed here); g->valid false forgets
 * the last one (statistics unknown now). -ENOENT. */
int col_vm_set_guest(qv_collector *c, const char *name, const struct col_guest *g,
		     uint64_t now_us);
/* The last report; NULL if none. */
const struct col_guest *col_vm_guest(const qv_collector *c, size_t i);

/* --- NICs and disks (sched/collect-io.c) ------------------------------------ */

/* Counters that need the caller's sockets: the TAPs' counters (netlink) and
 * QEMU's per-disk statistics (QMP query-blockstats). The caller stores the
 * whole set of a VM at once; rates are summed over the NICs (disks) present
 * in both of the last two sets, so a hot-plugged or removed NIC or a
 * counter reset never gives a spike. */
#define COL_NICS_MAX 16
#define COL_DISKS_MAX 16
struct col_nic {
	char name[32]; /* the TAP */
	/* the guest's view: rx = what the guest received (the TAP's tx) */
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets, rx_drops, tx_drops;
};
struct col_disk {
	char name[64]; /* QEMU's device or node name */
	uint64_t rd_bytes, wr_bytes, rd_ops, wr_ops, flush_ops;
	uint64_t rd_time_ns, wr_time_ns;
};
/* At most COL_NICS_MAX / COL_DISKS_MAX are kept. -ENOENT. */
int col_vm_set_nics(qv_collector *c, const char *name, const struct col_nic *v, size_t n,
		    uint64_t now_us);
int col_vm_set_disks(qv_collector *c, const char *name, const struct col_disk *v, size_t n,
		     uint64_t now_us);
/* The last set stored; returns its length. */
size_t col_vm_nics(const qv_collector *c, size_t i, const struct col_nic **ret);
size_t col_vm_disks(const qv_collector *c, size_t i, const struct col_disk **ret);

/* --- the bounded history (sched/collect-ring.c) --------------------------- */

struct col_ring {
	struct col_point *fine, *coarse;
	unsigned n_fine, n_coarse;       /* capacities */
	unsigned fine_len, fine_head;     /* head: next write slot */
	unsigned coarse_len, coarse_head;
	unsigned every, acc_n;
	struct col_point acc;             /* sum of the points not yet folded */
};

int col_ring_init(struct col_ring *r, unsigned n_fine, unsigned n_coarse, unsigned every);
void col_ring_release(struct col_ring *r);
void col_ring_push(struct col_ring *r, const struct col_point *p);
size_t col_ring_copy(const struct col_ring *r, bool coarse, struct col_point *ret, size_t max);

/* Host file parsers (pure). */
int col_parse_proc_stat(const char *text, uint64_t *ret_busy, uint64_t *ret_total,
			unsigned *ret_ncpus);
int col_parse_meminfo(const char *text, uint64_t *ret_total, uint64_t *ret_available);
