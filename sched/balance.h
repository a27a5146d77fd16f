/* SPDX-License-Identifier: MIT */
#pragma once
/* The cluster balancer (docs/policy.md, "Cluster placement and
 * balancing"): one leader round on live data. Each host's CPU history
 * goes through the policy library's detector (THR/MAD/IQR/LR/LRR, or
 * qvisor's forecast); an overloaded host (CPU, or memory above its
 * threshold) gives up the VMs whose migration is cheapest for the relief
 * they bring; they are placed with sched/placement.h, never onto a host
 * that would become overloaded. Limits: concurrent migrations per host
 * and per cluster, a per-VM cooldown (a VM moved is not moved again,
 * hence never back, within it), VMs pinned or already migrating stay.
 * Power saving empties underloaded hosts onto hosts already in use, all
 * their VMs or none. Modes: off (nothing), advise (decisions, nothing
 * recorded), enforce (decisions recorded as in flight and for the
 * cooldown). Every decision, including a deferral or a skip, carries its
 * reason.
 *
 * Pure C: the caller (the daemon's leader, `qvisor cluster plan`, the
 * bench) gives a snapshot (sched/placement.h) and a clock, and starts the
 * migrations itself. Deterministic: same snapshot, state and clock, same
 * plan. */
#include <json-c/json.h>
#include <stdbool.h>

#include "common/error.h"
#include "sched/placement.h"
#include "sched/policy.h"

enum qv_bal_mode { QV_BAL_OFF, QV_BAL_ADVISE, QV_BAL_ENFORCE };
/* "off", "advise", "enforce"; -EINVAL otherwise. */
int qv_bal_mode_parse(const char *s, enum qv_bal_mode *ret);
const char *qv_bal_mode_name(enum qv_bal_mode m);

/* Predicted migration time in seconds (INFINITY: will not converge). The
 * daemon passes one built on migrate/model.h; NULL uses qv_bal_cost_precopy. */
typedef double (*qv_bal_cost_fn)(const struct qv_pl_vm *vm, const struct qv_pl_host *from,
				 const struct qv_pl_host *to, void *opaque);
/* Pre-copy rounds over the link (migrate/model.c's model): memory in use
 * (else guest memory) over the bandwidth, each round resending what was
 * dirtied during the previous one; INFINITY when dirty >= bandwidth. */
double qv_bal_cost_precopy(const struct qv_pl_vm *vm, const struct qv_pl_host *from,
			   const struct qv_pl_host *to, void *opaque);

struct qv_bal_cfg {
	enum qv_bal_mode mode;       /* default advise */
	struct qv_pol_cfg pol;       /* detector (default THR 0.8) or qvisor's forecast */
	struct qv_pl_cfg place;      /* scorer for destinations (default spread) */
	double target_util;          /* destination CPU after a move at most (0.8) */
	double mem_threshold;        /* memory in use above this share: overloaded (0.9) */
	int max_per_host;            /* concurrent migrations in or out of a host (2) */
	int max_cluster;             /* concurrent migrations in the cluster (4); 0 = no limit */
	int max_moves_per_round;     /* new migrations per round (0 = the cluster limit) */
	double cooldown_s;           /* per VM (1800) */
	double max_migration_s;      /* predicted longer: not chosen (600) */
	double inflight_timeout_s;   /* a migration not seen to finish is forgotten (3600) */
	bool power_saving;           /* empty underloaded hosts (false) */
	double underload_util;       /* CPU share below which a host may be emptied (0.2) */
	int max_empty_per_round;     /* hosts emptied per round (1) */
	qv_bal_cost_fn cost_fn;      /* NULL: qv_bal_cost_precopy */
	void *cost_opaque;
};
void qv_bal_cfg_defaults(struct qv_bal_cfg *cfg);

enum qv_bal_kind {
	QV_BAL_MOVE,   /* start this migration (advise: would start) */
	QV_BAL_DEFER,  /* wanted, held back by a limit; asked again next round */
	QV_BAL_SKIP,   /* not possible (no host fits, cooldown, pinned, cost) */
};
enum qv_bal_why { QV_BAL_OVERLOAD, QV_BAL_UNDERLOAD, QV_BAL_EVACUATE };

struct qv_bal_decision {
	enum qv_bal_kind kind;
	enum qv_bal_why why;
	int vm;                      /* index in the snapshot's vms */
	int from, to;                /* host indexes; to = -1 when none */
	int wave;                    /* evacuation wave (0, 1, ...); 0 in a round */
	double cost_s;               /* predicted migration time */
	double metric;               /* detector value that decided (or share) */
	char reason[384];
};

struct qv_bal_plan {
	struct qv_bal_decision *d;
	int n, cap;
	int moves, deferred, skipped;
	int overloaded, underloaded; /* hosts found */
	int waves;                   /* evacuation */
	bool advise;                 /* mode was advise: nothing recorded */
	char summary[256];
};
void qv_bal_plan_free(struct qv_bal_plan *plan);

typedef struct qv_bal qv_bal;
/* cfg is copied. */
int qv_bal_new(const struct qv_bal_cfg *cfg, qv_bal **ret);
qv_bal *qv_bal_free(qv_bal *b);
const struct qv_bal_cfg *qv_bal_cfg_of(const qv_bal *b);
/* Change the mode between rounds (the state is kept). */
void qv_bal_set_mode(qv_bal *b, enum qv_bal_mode mode);

/* One round at time now_s (the caller's clock, seconds). Migrations the
 * balancer ordered earlier count as in flight until the snapshot shows
 * the VM on its destination and not migrating (or back on its source,
 * or qv_bal_finished, or the timeout); snapshot VMs migrating that it did
 * not order count on their host. In enforce mode the plan's moves are
 * recorded (in flight, cooldown); the caller must start them or call
 * qv_bal_finished(ok = false). Returns 0 (an empty plan is normal). */
int qv_bal_round(qv_bal *b, const struct qv_pl_snapshot *snap, double now_s, struct qv_bal_plan *ret,
		 struct qv_error *errp);

/* All VMs off host (maintenance), in waves: each wave within the
 * per-host limit on every host (the evacuated one included) and the
 * cluster limit; cooldown and pinning do not hold an evacuation back,
 * VMs already migrating are skipped, and a VM no host can take is a
 * SKIP with the placement's refusal. -ENOSPC (errp) when some VM fits
 * nowhere; the plan lists the others. Recorded like a round's moves in
 * enforce mode (every wave: the caller starts wave k+1 when wave k ends). */
int qv_bal_evacuate(qv_bal *b, const struct qv_pl_snapshot *snap, int host, double now_s,
		    struct qv_bal_plan *ret, struct qv_error *errp);

/* --- JSON views (sched/balance-json.c) ---------------------------------- */
const char *qv_bal_kind_name(enum qv_bal_kind k); /* "move", "defer", "skip" */
const char *qv_bal_why_name(enum qv_bal_why w);   /* "overload", "underload", "evacuate" */
/* {"decisions": [{"kind", "why", "vm", "from", "to", "wave" (evacuation
 * moves), "predicted_s" (moves), "reason"}], "moves", "deferred",
 * "skipped", "overloaded", "underloaded", "waves" (evacuation), "advise",
 * "summary"}; names from snap (null where there is none). */
json_object *qv_bal_plan_json(const struct qv_pl_snapshot *snap, const struct qv_bal_plan *p);
/* {"host": name or null, "fit": hosts that passed, "reason"}. */
json_object *qv_pl_choice_json(const struct qv_pl_snapshot *snap, const struct qv_pl_choice *c);

/* The migration of the VM named name ended (ok or not); it stops counting
 * against the limits. Its cooldown holds either way. */
void qv_bal_finished(qv_bal *b, const char *name, bool ok, double now_s);
/* Migrations the balancer counts in flight now. */
int qv_bal_inflight(const qv_bal *b);
