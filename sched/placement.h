/* SPDX-License-Identifier: MIT */
#pragma once
/* Cluster placement (docs/policy.md, "Cluster placement and balancing"):
 * given a snapshot of the cluster's hosts and VMs and a VM to place,
 * FILTER the hosts (schedulable, excluded host, required labels,
 * reservations against capacity, memory footprint, CPU in use,
 * anti-affinity and affinity groups) and SCORE those left (spread, pack,
 * power-aware best fit, or the caller's function). The answer is a host
 * and a reason, or an error that names why each host was refused.
 *
 * Pure C: no I/O, no daemon types, no allocation the caller must track
 * beyond the opaque qv_pl. Strings in the snapshot are the caller's and
 * must outlive the qv_pl built from it. Deterministic: the same snapshot
 * gives the same answers (ties go to the host whose name sorts first).
 *
 * Units: CPU in millicores (1000 = one core), memory in MiB. */
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "sched/policy.h"

#define QV_PL_HIST 30 /* utilisation samples the balancer reads, newest first */

struct qv_pl_host {
	const char *name;
	uint32_t cpu_milli;          /* capacity: CPUs x 1000 */
	uint64_t mem_mib;            /* capacity */
	uint32_t cpu_reserved_milli; /* kept back for the host itself */
	uint64_t mem_reserved_mib;
	double cpu_used_milli;       /* measured now (all VMs and the host) */
	uint64_t mem_used_mib;
	const char *const *labels;   /* "key=value" (or "key"), nlabels of them */
	int nlabels;
	bool schedulable;            /* false: cordoned / in maintenance */
	/* Optional: watts at 0..100 % CPU for the power-aware scorer; NULL
	 * means a generic server (idle 60 % of peak, linear). */
	const struct qv_pol_power *power;
	/* Balancer inputs (sched/balance.h); placement ignores them. */
	double bw_mbps;              /* migration link, Mbit/s; 0 = 1000 */
	const double *cpu_hist;      /* CPU in use / capacity, newest first */
	int ncpu_hist;               /* at most QV_PL_HIST are read */
};

struct qv_pl_vm {
	const char *name;
	int host;                    /* index in the snapshot's hosts, -1 = none */
	uint32_t vcpus;
	uint64_t mem_mib;            /* guest memory */
	uint32_t cpu_res_milli;      /* resources.cpu.reservation, 0 = none */
	uint32_t cpu_limit_milli;    /* 0 = none */
	uint64_t mem_res_mib;        /* resources.memory.reservation, 0 = none */
	uint64_t mem_limit_mib;      /* 0 = none */
	double cpu_used_milli;       /* measured now; 0 for a VM not running */
	uint64_t mem_used_mib;
	/* Host labels required: "key=value" (equal) or "key" (present). */
	const char *const *requires;
	int nrequires;
	/* Group names: no two members of an anti-affinity group share a
	 * host; all members of an affinity group share one. */
	const char *const *anti_affinity;
	int nanti_affinity;
	const char *const *affinity;
	int naffinity;
	/* Balancer inputs (sched/balance.h); placement ignores them. */
	const double *cpu_hist;      /* CPU in use / (vcpus x 1000), newest first */
	int ncpu_hist;
	double dirty_mbps;           /* page-dirtying rate, Mbit/s; 0 = unknown */
	double last_move_s;          /* when it last migrated (caller's clock), < 0 never */
	int prev_host;               /* where it came from then, -1 = none */
	bool migrating;              /* a migration is running: never chosen */
	bool pinned;                 /* the operator said: never move automatically */
};

struct qv_pl_snapshot {
	const struct qv_pl_host *hosts;
	int nhosts;
	const struct qv_pl_vm *vms;
	int nvms;
};

/* What a host carries, as the filters and scorers see it (VM being placed
 * not included). */
struct qv_pl_load {
	uint64_t cpu_res_milli;      /* VMs' CPU reservations */
	uint64_t mem_res_mib;        /* VMs' memory reservations */
	uint64_t mem_alloc_mib;      /* VMs' footprint: max(guest memory, reservation) */
	double cpu_used_milli;       /* measured (host) plus what was assigned since */
	uint64_t mem_used_mib;
	int nvms;
};

enum qv_pl_score {
	QV_PL_SPREAD,  /* least loaded after placement (default) */
	QV_PL_PACK,    /* most loaded that fits: fewest hosts in use */
	QV_PL_POWER,   /* power-aware best fit: least added power, hosts on first */
	QV_PL_CUSTOM,  /* cfg.score_fn */
};
/* Higher is better. before: the host's load without vm. */
typedef double (*qv_pl_score_fn)(const struct qv_pl_host *h, const struct qv_pl_load *before,
				 const struct qv_pl_vm *vm, void *opaque);

struct qv_pl_cfg {
	enum qv_pl_score score;
	qv_pl_score_fn score_fn;     /* QV_PL_CUSTOM */
	void *score_opaque;
	/* Footprint (sum of max(guest memory, reservation)) at most capacity
	 * minus the host reserve times this; 0 = not checked. Default 1.0. */
	double mem_overcommit;
	/* CPU in use plus the VM's (its use, else its reservation) at most
	 * this share of capacity minus reserve; 0 = not checked. Default 1.0. */
	double cpu_max_util;
};
void qv_pl_cfg_defaults(struct qv_pl_cfg *cfg);
/* "spread", "pack", "power" -> cfg->score; -EINVAL otherwise. */
int qv_pl_score_parse(const char *name, enum qv_pl_score *ret);
const char *qv_pl_score_name(enum qv_pl_score s);

typedef struct qv_pl qv_pl;

/* Index the snapshot (per-host loads, group members). snap and cfg are
 * copied by reference: keep them alive and unchanged while pl lives.
 * -EINVAL with errp for a VM whose host index is out of range. */
int qv_pl_new(const struct qv_pl_snapshot *snap, const struct qv_pl_cfg *cfg, qv_pl **ret,
	      struct qv_error *errp);
qv_pl *qv_pl_free(qv_pl *pl);

struct qv_pl_choice {
	int host;                    /* index in snap->hosts, -1 = refused */
	double score;
	int nfit;                    /* hosts that passed the filters */
	char reason[256];            /* why this host, or why none */
};

/* Best host for vm (a snapshot VM, by pointer into snap->vms, or one not
 * in the snapshot yet). exclude_host (-1 = none) is never chosen; a
 * snapshot VM's own load is not counted against its current host. On
 * success ret->reason reads e.g. "h2: least loaded after placement (cpu
 * 35%, memory 40%); 3 of 5 hosts fit". -ENOSPC when no host fits: errp
 * (reason "no-space") and ret->reason list each host's refusal, e.g.
 * "no host can take web1: h1: memory 900/1024 MiB reserved, needs 256
 * MiB; h2: unschedulable; ..." (cut with "(+N more)" when long). */
int qv_pl_choose(qv_pl *pl, const struct qv_pl_vm *vm, int exclude_host, struct qv_pl_choice *ret,
		 struct qv_error *errp);

/* Can host take vm? false with the one-line refusal in buf ("memory
 * 900/1024 MiB reserved, needs 256 MiB"); true with buf "". */
bool qv_pl_fits(qv_pl *pl, const struct qv_pl_vm *vm, int host, int exclude_host, char *buf,
		size_t len);

/* Record a decision so later choices see it: vm (snapshot VM or new)
 * now counts on host (and no longer on its snapshot host). The snapshot
 * itself is not modified. -EINVAL for a bad host index. */
int qv_pl_assign(qv_pl *pl, const struct qv_pl_vm *vm, int host);
/* Keep host out of later choices (why: a phrase for the refusal, e.g.
 * "2 migrations in flight (limit 2)", copied); why NULL lifts it. */
int qv_pl_block(qv_pl *pl, int host, const char *why);
/* Where pl counts vm now (its assignment, else its snapshot host). */
int qv_pl_host_of(const qv_pl *pl, const struct qv_pl_vm *vm);
/* The load pl counts on host now. */
const struct qv_pl_load *qv_pl_load_of(const qv_pl *pl, int host);

/* Batch (evacuation, several new VMs): place vms[0..n) (pointers, as for
 * qv_pl_choose) largest memory footprint first, each choice assigned
 * before the next; never onto exclude_host. ret[i] answers vms[i]. Returns
 * the number placed; when some VM fits nowhere its ret[i].host is -1 with
 * the refusal, the others are still placed, and errp says how many failed. */
int qv_pl_choose_batch(qv_pl *pl, const struct qv_pl_vm *const *vms, int n, int exclude_host,
		       struct qv_pl_choice *ret, struct qv_error *errp);

/* One-shot: index, choose, free. */
int qv_pl_place(const struct qv_pl_snapshot *snap, const struct qv_pl_cfg *cfg,
		const struct qv_pl_vm *vm, int exclude_host, struct qv_pl_choice *ret,
		struct qv_error *errp);

/* Index of the host named name, -1 if none. */
int qv_pl_host_index(const struct qv_pl_snapshot *snap, const char *name);
