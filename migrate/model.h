/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The convergence model of a pre-copy migration, and the policy that turns
 * it into decisions. Pure code (no QMP, no clock): the engine
 * (migrate/converge.c) feeds samples from query-migrate, tests feed synthetic
 * ones.
 *
 *   B  transfer bandwidth, bytes/s: EWMA of ram.transferred deltas
 *   D  dirty rate, bytes/s: ram.dirty-pages-rate * page size (EWMA), or the
 *      pre-measurement (calc-dirty-rate) until QEMU reports one
 *   R  remaining bytes (ram.remaining)
 *
 * Predictions: downtime if we switched now = R / B; the remaining set
 * shrinks at B - D per second, so the time until R fits a downtime limit L
 * is (R - B*L) / (B - D), infinite when D >= B. Throttling the vCPUs by t
 * (0..1) scales D to D * (1 - t) (a CPU-bound dirtier). */

struct mig_sample {
	uint64_t t_ms;          /* monotonic */
	uint64_t transferred;   /* ram.transferred, bytes */
	uint64_t remaining;     /* ram.remaining, bytes */
	uint64_t total;         /* ram.total, bytes */
	double dirty_pages_rate; /* ram.dirty-pages-rate, pages/s (0 = not known yet) */
	uint64_t page_size;     /* ram.page-size (0 -> 4096) */
	uint64_t dirty_syncs;   /* ram.dirty-sync-count: completed rounds + 1 */
	double mbps;            /* ram.mbps (QEMU's own bandwidth estimate, Mbit/s) */
	int throttle_pct;       /* cpu-throttle-percentage */
};

struct mig_model {
	double alpha;           /* EWMA weight of a new sample, default 0.4 */
	double bw_bps;          /* B, 0 = unknown */
	double dirty_bps;       /* D, 0 = unknown */
	double pre_dirty_bps;   /* pre-measured D (calc-dirty-rate), 0 = none */
	double qemu_bw_bps;     /* QEMU's own estimate (ram.mbps), bytes/s */
	uint64_t remaining;
	uint64_t total;
	uint64_t dirty_syncs;
	int throttle_pct;
	uint64_t samples;
	/* previous sample for deltas */
	bool have_last;
	uint64_t last_t_ms;
	uint64_t last_transferred;
};

void mig_model_init(struct mig_model *m);
void mig_model_set_pre_dirty_rate(struct mig_model *m, double dirty_bps);
void mig_model_observe(struct mig_model *m, const struct mig_sample *s);
/* D in effect: measured, else pre-measured, else 0. */
double mig_model_dirty_bps(const struct mig_model *m);
/* Predicted downtime (ms) if the switchover happened now: R / B. -1 if B unknown. */
double mig_model_downtime_ms(const struct mig_model *m);
/* Seconds until R <= B * limit_ms; 0 if already; INFINITY if D >= B;
 * -1 if B unknown. */
double mig_model_converge_s(const struct mig_model *m, double limit_ms);
/* Smallest throttle t (percent, multiple of 5, within [0, max_pct]) with
 * D * (1 - t) <= B * margin. Returns max_pct when even that is not enough. */
int mig_throttle_for(double dirty_bps, double bw_bps, double margin, int max_pct);

/* --- policy --------------------------------------------------------------- */

#define QV_MIG_POSTCOPY_SLACK_S 2.0

struct mig_policy_cfg {
	int max_downtime_ms;    /* operator bound (> 0) */
	double bandwidth_bps;   /* cap set on QEMU, 0 = none */
	uint64_t deadline_ms;   /* give up after this long (> 0) */
	double margin;          /* target D/B after throttling, default 0.5 */
	int max_throttle_pct;   /* ceiling, default 99 */
	uint64_t ram_bytes;     /* guest RAM (sizes the XBZRLE cache), 0 = unknown */
	bool no_xbzrle;         /* never enable XBZRLE */
	bool allow_postcopy;    /* postcopy-ram is on: MIG_ACT_POSTCOPY may be decided */
	/* with allow_postcopy: switch after the first full pass even when
	 * pre-copy could converge (libvirt's --postcopy-after-precopy) */
	bool postcopy_after_precopy;
};

/* What the policy has already applied (the engine updates it after each
 * successful action). */
struct mig_policy_state {
	int downtime_limit_ms;
	int throttle_initial;   /* applied before start */
	int throttle_increment;
	int max_throttle;
	uint64_t xbzrle_cache;  /* bytes, 0 = XBZRLE off (decided before start) */
	uint64_t last_decision_syncs; /* round of the last throttle/downtime decision */
	uint64_t stalled_rounds;      /* rounds in which R did not shrink */
	uint64_t last_remaining;
	bool postcopy;                /* MIG_ACT_POSTCOPY decided (once) */
	/* Does throttling lower D? D before any throttle, judged once the
	 * throttle reaches QV_MIG_THROTTLE_JUDGE_PCT. */
	double d_unthrottled;
	bool throttle_judged;
	bool throttle_ineffective;
	uint64_t hopeless_since;      /* round of the no-convergence prediction, 0 = none */
	bool climb_warned;            /* the throttle cannot reach its ceiling in time (said once) */
};

/* Throttle judged at this level: ineffective when D fell by less than half
 * of what a CPU-bound dirtier would (D0 x t). */
#define QV_MIG_THROTTLE_JUDGE_PCT 40
/* Rounds between the no-convergence prediction and the early cancel. */
#define QV_MIG_HOPELESS_ROUNDS 2

enum mig_action {
	MIG_ACT_SET_DOWNTIME,   /* value: downtime-limit ms */
	MIG_ACT_SET_THROTTLE,   /* value: max-cpu-throttle, value2: increment */
	MIG_ACT_CANCEL,         /* deadline reached */
	MIG_ACT_CONTINUE,       /* at pre-switchover: go */
	MIG_ACT_XBZRLE,         /* before start: value = cache MiB */
	MIG_ACT_POSTCOPY,       /* migrate-start-postcopy; value: predicted postcopy s */
	MIG_ACT_THROTTLE_EFFECT, /* a finding, no command: value = D drop %, value2 = throttle % */
	MIG_ACT_PREDICT,        /* a finding, no command: pre-copy will not converge in time */
};

struct mig_decision {
	enum mig_action action;
	int value;
	int value2;
	char reason[200];
};

const char *mig_action_to_string(enum mig_action a);

/* Parameters to apply before `migrate`: downtime-limit, cpu-throttle-initial,
 * -increment and max-cpu-throttle from the pre-measured D and the
 * bandwidth cap (or an assumed B when there is no cap); XBZRLE with a cache
 * covering ~4 s of dirtying (power of two, <= RAM/2) when D > margin x B.
 * Fills st and writes up to max decisions (their reasons) into out. Returns
 * the count. */
size_t mig_policy_initial(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			  double assumed_bw_bps, struct mig_policy_state *st,
			  struct mig_decision *out, size_t max);
/* One step while the migration is active. elapsed_ms since `migrate`.
 * Returns the number of decisions written (0 = nothing to change).
 *
 * Postcopy (cfg->allow_postcopy): once one full round is done (dirty-sync
 * count >= 2) and B is known, the step decides MIG_ACT_POSTCOPY alone when
 * pre-copy is predicted not to converge (D >= B), not to converge within
 * the time left before the deadline, or to converge much later than
 * postcopy would finish: conv > 2 x R/B + QV_MIG_POSTCOPY_SLACK_S, R/B being
 * the postcopy time (every remaining page sent once, nothing dirtied on
 * the stopped source), or when throttling was measured not to lower D.
 * Decided once (st->postcopy).
 *
 * Throttle effect: D at throttle 0 is remembered; when the throttle
 * reaches QV_MIG_THROTTLE_JUDGE_PCT the step records MIG_ACT_THROTTLE_EFFECT
 * (how much D fell against what a CPU-bound dirtier would give); an
 * ineffective throttle lets postcopy (when allowed) start at once.
 * Early verdict (no postcopy): once D >= B with the throttle at its
 * ceiling, or convergence predicted past the deadline at that ceiling, the step
 * records MIG_ACT_PREDICT with the figures; if D >= B still holds
 * QV_MIG_HOPELESS_ROUNDS rounds later it decides MIG_ACT_CANCEL instead of
 * waiting for the deadline. */
size_t mig_policy_step(const struct mig_policy_cfg *cfg, const struct mig_model *m,
		       uint64_t elapsed_ms, struct mig_policy_state *st,
		       struct mig_decision *out, size_t max);
/* At pre-switchover: MIG_ACT_CONTINUE when R / B (QEMU's own mbps if B is
 * unknown) is within the bound (with a tolerance of 25% + 10 ms), else
 * MIG_ACT_CANCEL. */
void mig_policy_switchover(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			   struct mig_decision *out);
