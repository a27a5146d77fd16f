/* SPDX-License-Identifier: MIT */
/* The convergence model and policy with synthetic samples. */
#include <criterion/criterion.h>
#include <math.h>

#include "migrate/converge.h"
#include "migrate/model.h"

#define MB 1000000.0

/* A synthetic pre-copy: B bytes/s on the wire, D bytes/s dirtied, a round
 * resends what was dirtied during the previous one. */
struct sim {
	struct mig_model m;
	uint64_t t, transferred, remaining, syncs;
};

static void sim_step(struct sim *s, double b, double d, uint64_t dt_ms)
{
	struct mig_sample smp;
	uint64_t sent = (uint64_t)(b * dt_ms / 1000.0);

	s->t += dt_ms;
	s->transferred += sent;
	s->remaining = s->remaining > sent ? s->remaining - sent : 0;
	s->remaining += (uint64_t)(d * dt_ms / 1000.0);
	smp = (struct mig_sample){ .t_ms = s->t, .transferred = s->transferred,
				   .remaining = s->remaining, .total = 512 << 20,
				   .dirty_pages_rate = d / 4096.0, .page_size = 4096,
				   .dirty_syncs = ++s->syncs };
	mig_model_observe(&s->m, &smp);
}

Test(model, bandwidth_and_dirty_rate_from_deltas)
{
	struct sim s = { .remaining = 512 << 20 };

	mig_model_init(&s.m);
	for (int i = 0; i < 20; i++)
		sim_step(&s, 50 * MB, 10 * MB, 200);
	cr_assert_float_eq(s.m.bw_bps, 50 * MB, 0.5 * MB);
	cr_assert_float_eq(mig_model_dirty_bps(&s.m), 10 * MB, 0.1 * MB);
	/* R / B */
	cr_assert_float_eq(mig_model_downtime_ms(&s.m), s.remaining / (50 * MB) * 1000, 20);
}

Test(model, first_sample_gives_no_bandwidth)
{
	struct mig_model m;
	struct mig_sample smp = { .t_ms = 1000, .transferred = 1 << 20, .remaining = 100,
				  .total = 200 };

	mig_model_init(&m);
	mig_model_observe(&m, &smp);
	cr_assert_eq(m.bw_bps, 0);
	cr_assert_eq(mig_model_downtime_ms(&m), -1);
	cr_assert_eq(mig_model_converge_s(&m, 300), -1);
}

Test(model, too_close_samples_keep_reference)
{
	struct mig_model m;
	struct mig_sample a = { .t_ms = 1000, .transferred = 0, .remaining = 1, .total = 1 };
	struct mig_sample b = { .t_ms = 1050, .transferred = 1000000, .remaining = 1, .total = 1 };
	struct mig_sample c = { .t_ms = 2000, .transferred = 10000000, .remaining = 1, .total = 1 };

	mig_model_init(&m);
	mig_model_observe(&m, &a);
	mig_model_observe(&m, &b); /* 50 ms later: ignored for B */
	cr_assert_eq(m.bw_bps, 0);
	mig_model_observe(&m, &c);
	cr_assert_float_eq(m.bw_bps, 10000000.0, 1);
}

Test(model, converge_time)
{
	struct mig_model m;

	mig_model_init(&m);
	m.bw_bps = 100 * MB;
	m.dirty_bps = 50 * MB;
	m.remaining = (uint64_t)(100 * MB);
	/* (100 MB - 100 MB/s * 0.3 s) / (50 MB/s) = 1.4 s */
	cr_assert_float_eq(mig_model_converge_s(&m, 300), 1.4, 1e-6);
	m.remaining = (uint64_t)(10 * MB);
	cr_assert_eq(mig_model_converge_s(&m, 300), 0);
	m.remaining = (uint64_t)(100 * MB);
	m.dirty_bps = 150 * MB;
	cr_assert(isinf(mig_model_converge_s(&m, 300)));
}

Test(model, throttle_for)
{
	/* D (1 - t) <= B margin: 150 (1 - t) <= 50 -> t >= 0.667 -> 70 */
	cr_assert_eq(mig_throttle_for(150 * MB, 100 * MB, 0.5, 99), 70);
	cr_assert_eq(mig_throttle_for(40 * MB, 100 * MB, 0.5, 99), 0);
	cr_assert_eq(mig_throttle_for(1000 * MB, 10 * MB, 0.5, 80), 80);
	cr_assert_eq(mig_throttle_for(0, 10 * MB, 0.5, 99), 0);
	/* exact multiple stays */
	cr_assert_eq(mig_throttle_for(100 * MB, 100 * MB, 0.5, 99), 50);
}

Test(policy, initial_uses_premeasured_rate)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .bandwidth_bps = 50 * MB,
				      .deadline_ms = 60000, .margin = 0.5, .max_throttle_pct = 99 };
	struct mig_policy_state st;
	struct mig_decision d[4];
	struct mig_model m;
	size_t n;

	mig_model_init(&m);
	mig_model_set_pre_dirty_rate(&m, 125 * MB);
	n = mig_policy_initial(&cfg, &m, 0, &st, d, 4);
	cr_assert_eq(n, 2);
	cr_assert_eq(d[0].action, MIG_ACT_SET_DOWNTIME);
	cr_assert_eq(d[0].value, 150);
	cr_assert_eq(d[1].action, MIG_ACT_SET_THROTTLE);
	/* 125 (1 - t) <= 25 -> t = 0.8 */
	cr_assert_eq(st.throttle_initial, 80);
	cr_assert(strstr(d[1].reason, "125.0"));

	mig_model_set_pre_dirty_rate(&m, 5 * MB);
	mig_policy_initial(&cfg, &m, 0, &st, d, 4);
	cr_assert_eq(st.throttle_initial, 20); /* QEMU's default, armed only */
}

Test(policy, deadline_cancels)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .deadline_ms = 10000 };
	struct mig_policy_state st = { .downtime_limit_ms = 150 };
	struct mig_decision d[4];
	struct mig_model m;

	mig_model_init(&m);
	cr_assert_eq(mig_policy_step(&cfg, &m, 9999, &st, d, 4), 0);
	cr_assert_eq(mig_policy_step(&cfg, &m, 10000, &st, d, 4), 1);
	cr_assert_eq(d[0].action, MIG_ACT_CANCEL);
	cr_assert(strstr(d[0].reason, "deadline"));
}

Test(policy, stall_raises_downtime_and_throttle)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .deadline_ms = 600000,
				      .margin = 0.5, .max_throttle_pct = 99 };
	struct mig_policy_state st = { .downtime_limit_ms = 150, .throttle_increment = 10,
				       .max_throttle = 99 };
	struct sim s = { .remaining = 256 << 20 };
	struct mig_decision d[4];
	bool saw_downtime = false, saw_throttle = false;

	mig_model_init(&s.m);
	/* D = 1.5 B: R never shrinks. */
	for (int i = 0; i < 10; i++) {
		sim_step(&s, 50 * MB, 75 * MB, 500);
		size_t n = mig_policy_step(&cfg, &s.m, s.t, &st, d, 4);
		for (size_t k = 0; k < n; k++) {
			if (d[k].action == MIG_ACT_SET_DOWNTIME) {
				saw_downtime = true;
				cr_assert_eq(d[k].value, 300);
			}
			if (d[k].action == MIG_ACT_SET_THROTTLE) {
				saw_throttle = true;
				/* 75 (1 - t) <= 25: t >= 67 -> need 70, max 80 */
				cr_assert_geq(d[k].value, 80);
			}
			cr_assert_neq(d[k].action, MIG_ACT_CANCEL);
		}
	}
	cr_assert(saw_downtime);
	cr_assert(saw_throttle);
	cr_assert_eq(st.downtime_limit_ms, 300);
}

Test(policy, easy_workload_makes_no_throttle_decision)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .deadline_ms = 600000 };
	struct mig_policy_state st = { .downtime_limit_ms = 150, .throttle_increment = 10,
				       .max_throttle = 99 };
	struct sim s = { .remaining = 512 << 20 };
	struct mig_decision d[4];

	mig_model_init(&s.m);
	for (int i = 0; i < 10; i++) {
		sim_step(&s, 100 * MB, 5 * MB, 500);
		size_t n = mig_policy_step(&cfg, &s.m, s.t, &st, d, 4);
		for (size_t k = 0; k < n; k++)
			cr_assert_neq(d[k].action, MIG_ACT_SET_THROTTLE, "%s", d[k].reason);
	}
}

Test(policy, switchover_within_and_beyond_bound)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 100, .deadline_ms = 60000 };
	struct mig_decision d;
	struct mig_model m;

	mig_model_init(&m);
	m.bw_bps = 0; /* paused guest: our estimate decayed */
	m.qemu_bw_bps = 50 * MB;
	m.remaining = (uint64_t)(2 * MB); /* 40 ms */
	mig_policy_switchover(&cfg, &m, &d);
	cr_assert_eq(d.action, MIG_ACT_CONTINUE, "%s", d.reason);
	cr_assert_eq(d.value, 40);
	m.remaining = (uint64_t)(20 * MB); /* 400 ms */
	mig_policy_switchover(&cfg, &m, &d);
	cr_assert_eq(d.action, MIG_ACT_CANCEL);
	cr_assert(strstr(d.reason, "exceeds"));
}

Test(engine, sample_from_query_migrate)
{
	json_object *q = json_tokener_parse(
		"{\"status\":\"active\",\"cpu-throttle-percentage\":30,\"ram\":{"
		"\"transferred\":1000,\"remaining\":2000,\"total\":536870912,"
		"\"page-size\":4096,\"dirty-sync-count\":3,\"dirty-pages-rate\":250,"
		"\"mbps\":400.5}}");
	struct mig_sample s;

	mig_sample_from_query(q, 42, &s);
	cr_assert_eq(s.t_ms, 42);
	cr_assert_eq(s.transferred, 1000);
	cr_assert_eq(s.remaining, 2000);
	cr_assert_eq(s.total, 536870912);
	cr_assert_eq(s.dirty_syncs, 3);
	cr_assert_eq(s.throttle_pct, 30);
	cr_assert_float_eq(s.dirty_pages_rate, 250, 1e-9);
	cr_assert_float_eq(s.mbps, 400.5, 1e-9);
	json_object_put(q);
}

Test(policy, xbzrle_when_dirtying_outpaces_bandwidth)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .bandwidth_bps = 50 * MB,
				      .deadline_ms = 60000, .margin = 0.5,
				      .ram_bytes = 512ULL << 20 };
	struct mig_policy_state st;
	struct mig_decision d[4];
	struct mig_model m;
	size_t n;
	bool seen = false;

	mig_model_init(&m);
	mig_model_set_pre_dirty_rate(&m, 125 * MB); /* 4 s = 500 MB, capped at RAM/2 */
	n = mig_policy_initial(&cfg, &m, 0, &st, d, 4);
	for (size_t i = 0; i < n; i++)
		if (d[i].action == MIG_ACT_XBZRLE) {
			seen = true;
			cr_assert_eq(d[i].value, 256);
		}
	cr_assert(seen);
	cr_assert_eq(st.xbzrle_cache, 256ULL << 20);

	mig_model_set_pre_dirty_rate(&m, 30 * MB); /* 120 MB -> 128 MiB */
	mig_policy_initial(&cfg, &m, 0, &st, d, 4);
	cr_assert_eq(st.xbzrle_cache, 128ULL << 20);

	mig_model_set_pre_dirty_rate(&m, 10 * MB); /* converges: no XBZRLE */
	mig_policy_initial(&cfg, &m, 0, &st, d, 4);
	cr_assert_eq(st.xbzrle_cache, 0);

	cfg.no_xbzrle = true;
	mig_model_set_pre_dirty_rate(&m, 125 * MB);
	mig_policy_initial(&cfg, &m, 0, &st, d, 4);
	cr_assert_eq(st.xbzrle_cache, 0);
}

/* No bandwidth cap: B is only assumed, the link may be far slower, and
 * XBZRLE cannot be enabled later, so a moderate D already arms it. */
Test(policy, xbzrle_when_bandwidth_is_unknown)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .deadline_ms = 60000,
				      .margin = 0.5, .ram_bytes = 512ULL << 20 };
	struct mig_policy_state st;
	struct mig_decision d[4];
	struct mig_model m;

	mig_model_init(&m);
	mig_model_set_pre_dirty_rate(&m, 40 * MB); /* < B/2 of the assumed 100 MB/s */
	mig_policy_initial(&cfg, &m, 100 * MB, &st, d, 4);
	cr_assert_gt(st.xbzrle_cache, 0, "XBZRLE not armed with an unknown link");
	mig_model_set_pre_dirty_rate(&m, 5 * MB); /* barely dirtying */
	mig_policy_initial(&cfg, &m, 100 * MB, &st, d, 4);
	cr_assert_eq(st.xbzrle_cache, 0);
}

/* Postcopy: decided (once, alone) when allowed and pre-copy cannot
 * converge; never when not allowed; not when pre-copy converges soon. */
static int count_postcopy(struct mig_policy_cfg *cfg, double b, double d, uint64_t remaining,
			  struct mig_decision *last)
{
	struct mig_policy_state st = { .downtime_limit_ms = 25, .throttle_increment = 10,
				       .max_throttle = 99 };
	struct sim s = { .remaining = remaining };
	struct mig_decision dc[4];
	int seen = 0;

	mig_model_init(&s.m);
	for (int i = 0; i < 10; i++) {
		sim_step(&s, b, d, 500);
		size_t n = mig_policy_step(cfg, &s.m, s.t, &st, dc, 4);
		for (size_t k = 0; k < n; k++) {
			if (dc[k].action != MIG_ACT_POSTCOPY)
				continue;
			cr_assert_eq(n, 1, "postcopy is decided alone");
			cr_assert(st.postcopy);
			*last = dc[k];
			seen++;
		}
	}
	return seen;
}

Test(policy, postcopy_when_allowed_and_precopy_cannot_converge)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 50, .deadline_ms = 60000,
				      .allow_postcopy = true };
	struct mig_decision dc = { 0 };

	/* D = 1.5 B: never converges -> postcopy, exactly once, with a reason
	 * naming the cause and the predicted postcopy time R/B. */
	cr_assert_eq(count_postcopy(&cfg, 8 * MB, 12 * MB, 200 << 20, &dc), 1);
	cr_assert_str_eq(mig_action_to_string(dc.action), "start-postcopy");
	cr_assert(strstr(dc.reason, "cannot converge"), "%s", dc.reason);
	cr_assert(strstr(dc.reason, "postcopy ~R/B"), "%s", dc.reason);
	cr_assert_gt(dc.value, 0);

	/* Not allowed: the same workload never gets postcopy. */
	cfg.allow_postcopy = false;
	cr_assert_eq(count_postcopy(&cfg, 8 * MB, 12 * MB, 200 << 20, &dc), 0);

	/* Allowed, D = 0.9 B: converges, but far beyond the 60 s deadline
	 * (R 200 MB shrinking at 0.8 MB/s) -> postcopy for the deadline. */
	cfg.allow_postcopy = true;
	cr_assert_eq(count_postcopy(&cfg, 8 * MB, 7.2 * MB, 200 << 20, &dc), 1);
	cr_assert(strstr(dc.reason, "deadline"), "%s", dc.reason);

	/* Allowed, easy workload (D = 0.05 B): pre-copy converges about as fast
	 * as postcopy would -> no postcopy. */
	cr_assert_eq(count_postcopy(&cfg, 100 * MB, 5 * MB, 200 << 20, &dc), 0);
	/* ... unless the operator asked for postcopy after the first pass. */
	cfg.postcopy_after_precopy = true;
	cr_assert_eq(count_postcopy(&cfg, 100 * MB, 5 * MB, 200 << 20, &dc), 1);
	cr_assert(strstr(dc.reason, "requested"), "%s", dc.reason);
	cfg.postcopy_after_precopy = false;

	/* Allowed, converges before the deadline but much later than postcopy
	 * (D = 0.7 B: (R - BL) / 0.3 B > 2 R/B + 2 s) -> postcopy. */
	cfg.deadline_ms = 600000;
	cr_assert_eq(count_postcopy(&cfg, 50 * MB, 35 * MB, 400 << 20, &dc), 1);
	cr_assert(strstr(dc.reason, "much later"), "%s", dc.reason);
}

/* A round at throttle t: D either follows the throttle (CPU-bound) or not
 * (TCG: a dirtier that needs little CPU). */
static size_t throttled_round(struct sim *s, const struct mig_policy_cfg *cfg,
			      struct mig_policy_state *st, int t, double d0, bool cpu_bound,
			      struct mig_decision *d)
{
	double dr = cpu_bound ? d0 * (1 - t / 100.0) : d0 * 0.97;
	struct mig_sample smp;

	s->t += 1000;
	s->transferred += (uint64_t)(40 * MB);
	smp = (struct mig_sample){ .t_ms = s->t, .transferred = s->transferred,
				   .remaining = 200 << 20, .total = 512 << 20,
				   .dirty_pages_rate = dr / 4096.0, .page_size = 4096,
				   .dirty_syncs = ++s->syncs, .throttle_pct = t };
	mig_model_observe(&s->m, &smp);
	return mig_policy_step(cfg, &s->m, s->t, st, d, 4);
}

static const struct mig_decision *find_action(const struct mig_decision *d, size_t n,
					      enum mig_action a)
{
	for (size_t k = 0; k < n; k++)
		if (d[k].action == a)
			return &d[k];
	return NULL;
}

Test(policy, throttle_that_does_not_lower_d_is_measured_then_verdict_at_ceiling_and_early_cancel)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .deadline_ms = 600000,
				      .margin = 0.5, .max_throttle_pct = 99 };
	struct mig_policy_state st = { .downtime_limit_ms = 300, .max_throttle = 99 };
	struct sim s = {};
	struct mig_decision d[4];
	const struct mig_decision *x;
	int t = 0, round_effect = 0, round_predict = 0, round_cancel = 0;

	mig_model_init(&s.m);
	s.m.alpha = 1.0; /* no smoothing: one round, one rate */
	for (int i = 1; i <= 20 && !round_cancel; i++) {
		size_t n = throttled_round(&s, &cfg, &st, t, 60 * MB, false, d);
		if ((x = find_action(d, n, MIG_ACT_THROTTLE_EFFECT))) {
			round_effect = i;
			cr_assert_lt(x->value, 10, "D drop %d%%", x->value);
			cr_assert(strstr(x->reason, "ineffective"), "%s", x->reason);
		}
		if ((x = find_action(d, n, MIG_ACT_PREDICT))) {
			round_predict = i;
			cr_assert(strstr(x->reason, "D 58.2 MB/s vs B 40.0 MB/s"), "%s", x->reason);
		}
		if ((x = find_action(d, n, MIG_ACT_CANCEL))) {
			round_cancel = i;
			cr_assert(strstr(x->reason, "before the deadline"), "%s", x->reason);
		}
		/* no verdict before the throttle reached its ceiling */
		if (t < 99)
			cr_assert_null(find_action(d, n, MIG_ACT_PREDICT), "at throttle %d%%", t);
		if (i >= 2 && t < 99)
			t = t + 20 > 99 ? 99 : t + 20;
	}
	cr_assert_gt(round_effect, 0);
	cr_assert_gt(round_predict, round_effect);
	cr_assert_eq(round_cancel, round_predict + QV_MIG_HOPELESS_ROUNDS);
	cr_assert_lt(s.t, 30000, "decided long before the 600 s deadline");
}

Test(policy, effective_throttle_is_kept_and_nothing_is_predicted)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .deadline_ms = 600000,
				      .margin = 0.5, .max_throttle_pct = 99 };
	struct mig_policy_state st = { .downtime_limit_ms = 300, .max_throttle = 99 };
	struct sim s = {};
	struct mig_decision d[4];
	const struct mig_decision *x;
	bool judged = false;
	int t = 0;

	mig_model_init(&s.m);
	s.m.alpha = 1.0;
	for (int i = 1; i <= 10; i++) {
		size_t n = throttled_round(&s, &cfg, &st, t, 60 * MB, true, d);
		if ((x = find_action(d, n, MIG_ACT_THROTTLE_EFFECT))) {
			judged = true;
			cr_assert_geq(x->value, 30, "D drop %d%%", x->value);
			cr_assert(strstr(x->reason, ": effective"), "%s", x->reason);
		}
		cr_assert_null(find_action(d, n, MIG_ACT_PREDICT));
		cr_assert_null(find_action(d, n, MIG_ACT_CANCEL));
		if (i >= 2 && t < 60)
			t += 20;
	}
	cr_assert(judged);
	cr_assert_not(st.throttle_ineffective);
}

Test(policy, slow_throttle_climb_is_predicted_early_without_a_cancel)
{
	struct mig_policy_cfg cfg = { .max_downtime_ms = 300, .deadline_ms = 20000,
				      .margin = 0.5, .max_throttle_pct = 99 };
	struct mig_policy_state st = { .downtime_limit_ms = 300, .max_throttle = 99,
				       .throttle_increment = 10 };
	struct sim s = {};
	struct mig_decision d[4];
	const struct mig_decision *x;
	int t = 0, warned = 0;

	mig_model_init(&s.m);
	s.m.alpha = 1.0;
	/* 3-second rounds, +10% each: at 40% the ceiling is 6 rounds (18 s)
	 * away with well under 18 s left before the 20 s deadline. */
	for (int i = 1; i <= 6; i++) {
		s.t += 2000; /* + throttled_round's 1 s */
		size_t n = throttled_round(&s, &cfg, &st, t, 60 * MB, false, d);
		if ((x = find_action(d, n, MIG_ACT_PREDICT))) {
			warned = i;
			cr_assert(strstr(x->reason, "very likely not converge"), "%s", x->reason);
		}
		cr_assert_null(find_action(d, n, MIG_ACT_CANCEL), "no cancel below the ceiling");
		if (i >= 2 && t < 40)
			t += 20;
	}
	cr_assert_gt(warned, 0, "the slow climb should have been predicted");
}
