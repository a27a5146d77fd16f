/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "qemu/spec.h"

/* The allocator: pure functions from entitlements (struct vm_resources)
 * and demand estimates to cgroup knobs, plus admission control. No I/O.
 *
 * CPU. Latency-class VMs get exclusive cores (the highest-numbered ones,
 * ceil(reservation) of them, at least one), and every other VM's cpuset
 * leaves them out; at least one core always stays shared. On the shared
 * cores, cpu.weight divides contended CPU in proportion to shares, except
 * that a VM whose share would fall below its reservation gets exactly its
 * reservation's fraction and the rest is divided among the others
 * (best-effort VMs count 1/20 of their shares). cpu.max is the limit.
 *
 * Exclusive cores only on hosts with at least exclusive_min_cpus CPUs;
 * below that a latency VM shares the cores like the others. A best-effort
 * VM without a CPU reservation gets cpu.idle = 1 where the kernel has it
 * (cgroup SCHED_IDLE, >= 5.15): a waking task of any non-idle VM preempts
 * it at once (check_preempt_wakeup), and it runs on every cycle nobody
 * else wants; its cpu.weight is then 1 (the kernel refuses weight writes
 * to an idle group, so it never moves while idle).
 * CFS is work-conserving, so an idle VM's share goes to the busy ones at
 * once; demand does not change weights.
 *
 * Memory. memory.low = reservation; memory.max = limit; memory.high =
 * estimated demand plus headroom, clamped to [reservation, limit] ("max"
 * while the demand is unknown). */

struct hl_params {
	double cpu_headroom;      /* demand estimate x (1 + this); default 0.2 */
	double mem_headroom;      /* default 0.25 */
	uint64_t mem_headroom_min; /* bytes added at least; default 128 MiB */
	double ewma_alpha;        /* default 0.3 */
	unsigned percentile;      /* of the window; default 95 */
	unsigned window;          /* points in the estimator, <= HL_EST_WINDOW; default 30 */
	uint32_t period_us;       /* cpu.max period; default 100000 */
	uint32_t weight_scale;    /* the largest weight written; default 1000 */
};
/* Fill zero fields with the defaults above. */
void hl_params_defaults(struct hl_params *p);

/* --- demand estimation -------------------------------------------------------- */

#define HL_EST_WINDOW 120
struct hl_estimator {
	double ewma_cpu, ewma_mem;
	float cpu[HL_EST_WINDOW], mem[HL_EST_WINDOW]; /* cores, MiB */
	unsigned n, head;
};

struct hl_demand {
	bool known;   /* at least one sample */
	double cpu;   /* cores, with headroom, at most vcpus */
	uint64_t mem; /* bytes, with headroom */
	double cpu_ewma, cpu_pct; /* the two inputs, without headroom */
};

void hl_est_push(struct hl_estimator *e, const struct hl_params *p, double cpu_cores,
		 uint64_t mem_bytes);
/* max(EWMA, percentile of the window) plus headroom. */
void hl_est_demand(const struct hl_estimator *e, const struct hl_params *p, uint32_t vcpus,
		   struct hl_demand *ret);

/* --- allocation --------------------------------------------------------------- */

struct hl_host_caps {
	unsigned ncpus;            /* online CPUs (at most 64 for cpusets) */
	uint64_t mem_total;        /* bytes */
	uint32_t cpu_host_reserve; /* millicores kept for the host; default 0 */
	uint64_t mem_host_reserve; /* bytes kept for the host */
	/* latency VMs get exclusive cores only with at least this many CPUs;
	 * 0 = HL_EXCLUSIVE_MIN_CPUS */
	unsigned exclusive_min_cpus;
	bool cpu_idle;             /* the kernel has cgroup cpu.idle */
};
#define HL_EXCLUSIVE_MIN_CPUS 2
/* Do latency VMs get exclusive cores on this host? */
bool hl_exclusive_allowed(const struct hl_host_caps *h);
/* Does a VM of r ask for exclusive cores (allowed: hl_exclusive_allowed)?
 * Latency class on a host that allows them, or with cpu.exclusive. */
bool hl_gets_exclusive(const struct hl_host_caps *h, bool allowed, const struct vm_resources *r);

struct hl_vm_in {
	const char *name;
	const struct vm_resources *res;
	uint32_t vcpus;
	uint64_t guest_mem;        /* bytes */
	struct hl_demand demand;
};

struct hl_alloc {
	uint32_t cpu_weight;       /* 1..10000 */
	uint64_t cpu_max_quota_us; /* 0 = "max" */
	uint32_t cpu_max_period_us;
	uint64_t cpuset;           /* bit i = CPU i; 0 = all (inherit) */
	bool exclusive;            /* cpuset is this VM's alone */
	bool cpu_idle;             /* cpu.idle = 1 (best-effort, where supported) */
	uint64_t mem_low;          /* 0 = none */
	uint64_t mem_high;         /* 0 = "max" */
	uint64_t mem_max;          /* 0 = "max" */
	uint64_t balloon;          /* balloon target, bytes; 0 = no balloon */
};

struct hl_verdict {
	uint32_t cpu_reserved;   /* millicores reserved (latency cores count whole) */
	uint32_t cpu_capacity;   /* millicores available to VMs */
	double cpu_demand;       /* sum of the estimates, cores */
	uint64_t mem_reserved, mem_demand, mem_capacity;
	unsigned latency_unplaced; /* latency VMs left without exclusive cores */
	bool cpu_short, mem_short; /* reservations do not fit */
};

/* ret[i] for vms[i]. Never fails: what does not fit is reported in
 * ret_verdict (and admission control keeps it from happening). */
void hl_allocate(const struct hl_host_caps *h, const struct hl_params *p,
		 const struct hl_vm_in *vms, size_t n, struct hl_alloc *ret,
		 struct hl_verdict *ret_verdict);

/* Exclusive cores a latency VM needs: ceil(reservation), at least 1. */
unsigned hl_latency_cores(const struct vm_resources *res, uint32_t vcpus);

/* Admission control: 0 if cand's reservations fit next to running's, else
 * -ENOSPC and errp names the short resource ("cpu", "memory" or
 * "exclusive cores") with the figures. */
int hl_admit(const struct hl_host_caps *h, const struct hl_vm_in *running, size_t n,
	     const struct hl_vm_in *cand, struct qv_error *errp);

/* "0-1,3" for a mask (empty mask: ""). Returns buf. */
const char *hl_cpuset_format(uint64_t mask, char *buf, size_t size);

/* --- stepping toward the allocation (sched/alloc-step.c) ----------------------- */

enum hl_knob {
	HL_K_WEIGHT = 1u << 0,
	HL_K_CPU_MAX = 1u << 1,
	HL_K_CPUSET = 1u << 2,
	HL_K_MEM_LOW = 1u << 3,
	HL_K_MEM_HIGH = 1u << 4,
	HL_K_MEM_MAX = 1u << 5,
	HL_K_BALLOON = 1u << 6, /* applied by the caller (QMP), not a cgroup file */
	HL_K_CPU_IDLE = 1u << 7, /* write it before cpu.weight when it goes to 0 */
	HL_K_LAST = HL_K_CPU_IDLE,
};
const char *hl_knob_name(enum hl_knob k); /* "cpu.weight", ... */

struct hl_step_params {
	double weight_tolerance;  /* relative change ignored; default 0.10 */
	double mem_tolerance;     /* default 0.10 */
	uint64_t mem_tolerance_min; /* bytes; default 32 MiB */
	double mem_down_step;     /* at most this fraction lower per interval; default 0.25 */
	unsigned hold;            /* intervals after a memory.high change before it may
				   * move down; default 10 */
};
void hl_step_params_defaults(struct hl_step_params *sp);

struct hl_step_state {
	int last_dir;         /* memory.high: +1, -1, 0 */
	unsigned since;       /* intervals since its last change */
};

/* From the current knobs (have_cur false: nothing written yet) toward
 * want: returns the mask of knobs to change and writes the values in
 * ret_next (unchanged knobs copied from cur). Entitlement knobs move at
 * once; memory.high moves only past the tolerance; it grows at once but
 * shrinks by at most mem_down_step per interval and only `hold` intervals
 * after its last change, so a steady workload settles and stays. */
unsigned hl_step(const struct hl_alloc *cur, bool have_cur, const struct hl_alloc *want,
		 const struct hl_step_params *sp, struct hl_step_state *st,
		 struct hl_alloc *ret_next);

/* --- the balloon target (sched/alloc-balloon.c) --------------------------------- */

/* Memory taken back from a guest through its virtio balloon, judged from the
 * guest's own statistics (QEMU's RSS does not shrink until the balloon
 * inflates). The target lies in [floor, ceil]: ceil = the guest memory (or
 * resources.memory.limit if lower), floor = max(reservation, floor_min).
 *
 * used = size - available (size: what the guest has now, from the balloon
 * driver). An idle guest (no trigger below for `hold` intervals) is shrunk
 * toward used + headroom, by at most down_step of its size every `every`
 * intervals, once the guest has reached the previous target. It gets its
 * full memory (ceil) back at once when its available memory falls under
 * half the headroom, or its major faults or swap-ins exceed their limits.
 * The gap between the two thresholds (available > headroom + tolerance to
 * shrink, < headroom / 2 to grow) is the hysteresis: a steady guest settles. */

struct hl_balloon_params {
	double headroom;           /* fraction of used kept free; default 0.25 */
	uint64_t headroom_min;     /* bytes; default 64 MiB */
	uint64_t floor_min;        /* bytes; default 64 MiB */
	double down_step;          /* at most this fraction smaller per shrink; default 0.25 */
	uint64_t tolerance_min;    /* smaller moves are skipped; default 16 MiB */
	double tolerance;          /* ... or this fraction of the target; default 0.05 */
	unsigned hold;             /* calm intervals before a shrink; default 10 */
	unsigned every;            /* intervals between two shrinks; default 3 */
	double major_faults_ps;    /* grow above this many major faults/s; default 50 */
	double swap_in_bps;        /* grow above this many bytes/s swapped in; default 1 MiB */
};
void hl_balloon_params_defaults(struct hl_balloon_params *bp);

struct hl_balloon_in {
	uint64_t memory;        /* the guest memory (spec), bytes */
	uint64_t reservation;   /* resources.memory.reservation; 0 = none */
	uint64_t limit;         /* resources.memory.limit; 0 = none */
	uint64_t target;        /* the current target; 0 = unknown (the full memory) */
	uint64_t actual;        /* what the guest has now; 0 = unknown */
	bool stats;             /* the statistics below are known */
	uint64_t available;     /* the guest's available memory, bytes */
	double major_faults_ps; /* rates over the last statistics period */
	double swap_in_bps;
};

enum hl_balloon_why {
	HL_BW_NONE,      /* unchanged */
	HL_BW_BOUNDS,    /* outside [floor, ceil]: clamped */
	HL_BW_IDLE,      /* shrunk toward used + headroom */
	HL_BW_LOW,       /* available under half the headroom: back to ceil */
	HL_BW_FAULTS,    /* major faults: back to ceil */
	HL_BW_SWAP,      /* swap-ins: back to ceil */
};

struct hl_balloon_state {
	unsigned calm;     /* consecutive intervals without a grow trigger */
	unsigned since;    /* intervals since the last change */
	uint64_t want;     /* last computed used + headroom (for reasons) */
	uint64_t floor, ceil;
};

/* The next target (== the current one when nothing moves); *ret_why says
 * why it moved. Never below the floor, never above ceil. */
uint64_t hl_balloon_step(const struct hl_balloon_in *in, const struct hl_balloon_params *bp,
			 struct hl_balloon_state *st, enum hl_balloon_why *ret_why);
