/* SPDX-License-Identifier: MIT */
/* Convergence model and policy (pure; see model.h). */
#include <math.h>
#include <stdio.h>

#include "migrate/model.h"

#define DEFAULT_ALPHA 0.4
#define MIN_INTERVAL_MS 100 /* shorter sample gaps make B too noisy */

void mig_model_init(struct mig_model *m)
{
	*m = (struct mig_model){ .alpha = DEFAULT_ALPHA };
}

void mig_model_set_pre_dirty_rate(struct mig_model *m, double dirty_bps)
{
	m->pre_dirty_bps = dirty_bps > 0 ? dirty_bps : 0;
}

static double ewma(double old, double sample, double alpha)
{
	return old <= 0 ? sample : old + alpha * (sample - old);
}

void mig_model_observe(struct mig_model *m, const struct mig_sample *s)
{
	uint64_t page = s->page_size ? s->page_size : 4096;

	m->remaining = s->remaining;
	m->total = s->total;
	m->dirty_syncs = s->dirty_syncs;
	m->throttle_pct = s->throttle_pct;
	m->samples++;
	if (s->mbps > 0)
		m->qemu_bw_bps = s->mbps * 1e6 / 8.0;
	if (s->dirty_pages_rate > 0)
		m->dirty_bps = ewma(m->dirty_bps, s->dirty_pages_rate * (double)page, m->alpha);
	if (m->have_last && s->t_ms >= m->last_t_ms + MIN_INTERVAL_MS &&
	    s->transferred >= m->last_transferred) {
		double dt = (double)(s->t_ms - m->last_t_ms) / 1000.0;
		double bw = (double)(s->transferred - m->last_transferred) / dt;
		/* A zero delta while data remains is a stall, worth recording;
		 * a zero delta with nothing left is just idle. */
		if (bw > 0 || s->remaining > 0)
			m->bw_bps = ewma(m->bw_bps, bw, m->alpha);
	} else if (m->have_last && s->t_ms < m->last_t_ms + MIN_INTERVAL_MS) {
		return; /* keep the older reference point */
	}
	m->have_last = true;
	m->last_t_ms = s->t_ms;
	m->last_transferred = s->transferred;
}

double mig_model_dirty_bps(const struct mig_model *m)
{
	return m->dirty_bps > 0 ? m->dirty_bps : m->pre_dirty_bps;
}

double mig_model_downtime_ms(const struct mig_model *m)
{
	if (m->bw_bps <= 0)
		return -1;
	return (double)m->remaining / m->bw_bps * 1000.0;
}

double mig_model_converge_s(const struct mig_model *m, double limit_ms)
{
	double b = m->bw_bps, d = mig_model_dirty_bps(m), target;

	if (b <= 0)
		return -1;
	target = b * limit_ms / 1000.0;
	if ((double)m->remaining <= target)
		return 0;
	if (d >= b)
		return INFINITY;
	return ((double)m->remaining - target) / (b - d);
}

int mig_throttle_for(double dirty_bps, double bw_bps, double margin, int max_pct)
{
	double t;
	int pct;

	if (dirty_bps <= 0 || bw_bps <= 0 || dirty_bps <= bw_bps * margin)
		return 0;
	t = 1.0 - bw_bps * margin / dirty_bps; /* D (1 - t) = B margin */
	pct = (int)(t * 100.0 / 5.0);
	if (pct * 5.0 < t * 100.0)
		pct++; /* round up to a multiple of 5 */
	pct *= 5;
	if (pct > max_pct)
		pct = max_pct;
	return pct < 0 ? 0 : pct;
}

const char *mig_action_to_string(enum mig_action a)
{
	switch (a) {
	case MIG_ACT_SET_DOWNTIME: return "set-downtime-limit";
	case MIG_ACT_SET_THROTTLE: return "set-throttle";
	case MIG_ACT_CANCEL: return "cancel";
	case MIG_ACT_CONTINUE: return "continue";
	case MIG_ACT_XBZRLE: return "enable-xbzrle";
	case MIG_ACT_POSTCOPY: return "start-postcopy";
	case MIG_ACT_THROTTLE_EFFECT: return "throttle-effect";
	case MIG_ACT_PREDICT: return "predict-no-convergence";
	}
	return "unknown";
}

static double mb(double bps)
{
	return bps / 1e6;
}

static size_t push(struct mig_decision *out, size_t n, size_t max, enum mig_action a, int v,
		   int v2)
{
	if (n >= max)
		return n;
	out[n] = (struct mig_decision){ .action = a, .value = v, .value2 = v2 };
	return n + 1;
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

size_t mig_policy_initial(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			  double assumed_bw_bps, struct mig_policy_state *st,
			  struct mig_decision *out, size_t max)
{
	double b = cfg->bandwidth_bps > 0 ? cfg->bandwidth_bps : assumed_bw_bps;
	double d = mig_model_dirty_bps(m);
	int maxthr = cfg->max_throttle_pct > 0 ? cfg->max_throttle_pct : 99;
	double margin = cfg->margin > 0 ? cfg->margin : 0.5;
	size_t n = 0;
	int t;

	*st = (struct mig_policy_state){ 0 };
	/* Start at half the bound: a workload that converges easily gets a
	 * short pause; the limit is raised to the bound if rounds stall. */
	st->downtime_limit_ms = clampi(cfg->max_downtime_ms / 2, 20, cfg->max_downtime_ms);
	n = push(out, n, max, MIG_ACT_SET_DOWNTIME, st->downtime_limit_ms, 0);
	if (n)
		snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
			 "start at half the %d ms bound; raised if rounds stall",
			 cfg->max_downtime_ms);
	t = mig_throttle_for(d, b, margin, maxthr);
	st->throttle_initial = t > 0 ? clampi(t, 5, maxthr) : 20;
	/* XBZRLE: a page dirtied again is sent as a delta against its cached
	 * copy. Worth its CPU and cache memory only when pages come back, i.e.
	 * when D is large against B; the cache should hold what one round of
	 * ~4 s dirties. It cannot be switched on once the migration runs, so
	 * when B is only assumed (no operator cap: the real link may be far
	 * slower) any D above a tenth of the assumption arms it. */
	bool b_known = cfg->bandwidth_bps > 0;
	bool want_xbzrle = b_known ? t > 0 : d > 0.1 * b;
	if (want_xbzrle && !cfg->no_xbzrle && cfg->ram_bytes >= (128ULL << 20) && n < max) {
		uint64_t want = (uint64_t)(d * 4), cache = 64ULL << 20;
		while (cache < want && cache * 2 <= cfg->ram_bytes / 2)
			cache *= 2;
		st->xbzrle_cache = cache;
		out[n] = (struct mig_decision){ .action = MIG_ACT_XBZRLE,
						.value = (int)(cache >> 20) };
		if (b_known)
			snprintf(out[n].reason, sizeof(out[n].reason),
				 "pre-measured D %.1f MB/s > %.2f x B %.1f MB/s: XBZRLE with a "
				 "%llu MiB cache (~4 s of dirtying, <= RAM/2)", mb(d), margin,
				 mb(b), (unsigned long long)(cache >> 20));
		else
			snprintf(out[n].reason, sizeof(out[n].reason),
				 "pre-measured D %.1f MB/s > 0.1 x assumed B %.1f MB/s (link speed "
				 "unknown, no bandwidth cap): XBZRLE with a %llu MiB cache (~4 s of "
				 "dirtying, <= RAM/2)", mb(d), mb(b),
				 (unsigned long long)(cache >> 20));
		n++;
	}
	st->throttle_increment = 10;
	st->max_throttle = maxthr;
	n = push(out, n, max, MIG_ACT_SET_THROTTLE, st->max_throttle, st->throttle_increment);
	if (n && out[n - 1].action == MIG_ACT_SET_THROTTLE) {
		if (t > 0)
			snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
				 "pre-measured D %.1f MB/s > %.2f x B %.1f MB/s: auto-converge "
				 "initial throttle %d%% (D(1-t) <= B margin)",
				 mb(d), margin, mb(b), st->throttle_initial);
		else
			snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
				 "pre-measured D %.1f MB/s vs B %.1f MB/s: auto-converge armed "
				 "with the default initial throttle %d%% (triggers only if rounds "
				 "stall)", mb(d), mb(b), st->throttle_initial);
	}
	return n;
}

/* Switch to postcopy when pre-copy cannot converge in time (opt-in).
 * Returns the new n; sets *ret_done when it decided. */
static size_t step_postcopy(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			    uint64_t elapsed_ms, struct mig_policy_state *st,
			    struct mig_decision *out, size_t n, size_t max, bool *ret_done)
{
	double b = m->bw_bps, d = mig_model_dirty_bps(m);
	double conv = mig_model_converge_s(m, cfg->max_downtime_ms);
	double left_s = (double)(cfg->deadline_ms - elapsed_ms) / 1000.0;
	double post_s = (double)m->remaining / b;
	const char *why = NULL;
	char cbuf[32];

	*ret_done = false;
	if (isinf(conv))
		why = "pre-copy cannot converge (D >= B)";
	else if (conv > left_s)
		why = "pre-copy would not converge before the deadline";
	else if (conv > 2 * post_s + QV_MIG_POSTCOPY_SLACK_S)
		why = "pre-copy would converge much later than postcopy finishes";
	else if (st->throttle_ineffective && d > b * (cfg->margin > 0 ? cfg->margin : 0.5))
		why = "throttling was measured not to lower D";
	else if (cfg->postcopy_after_precopy)
		why = "requested: postcopy after the first pre-copy pass";
	if (!why)
		return n;
	*ret_done = true;
	st->postcopy = true;
	st->last_decision_syncs = m->dirty_syncs;
	if (isinf(conv))
		snprintf(cbuf, sizeof(cbuf), "never");
	else
		snprintf(cbuf, sizeof(cbuf), "%.1f s", conv);
	n = push(out, n, max, MIG_ACT_POSTCOPY, (int)ceil(post_s), 0);
	if (n)
		snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
			 "%s: R %.1f MB, D %.1f MB/s, B %.1f MB/s, pre-copy convergence %s, "
			 "%.1f s left; postcopy ~R/B = %.1f s", why, mb((double)m->remaining),
			 mb(d), mb(b), cbuf, left_s, post_s);
	return n;
}

/* Measure what the throttle does to D (once, at the judge level). */
static size_t step_throttle_effect(const struct mig_model *m, struct mig_policy_state *st,
				   struct mig_decision *out, size_t n, size_t max)
{
	double d = mig_model_dirty_bps(m), t = m->throttle_pct / 100.0, drop;

	if (m->throttle_pct == 0) {
		st->d_unthrottled = d;
		return n;
	}
	if (st->throttle_judged || st->d_unthrottled <= 0 ||
	    m->throttle_pct < QV_MIG_THROTTLE_JUDGE_PCT)
		return n;
	st->throttle_judged = true;
	drop = 1.0 - d / st->d_unthrottled;
	st->throttle_ineffective = drop < t / 2;
	n = push(out, n, max, MIG_ACT_THROTTLE_EFFECT, (int)(drop * 100 + (drop < 0 ? -0.5 : 0.5)), m->throttle_pct);
	if (n && out[n - 1].action == MIG_ACT_THROTTLE_EFFECT)
		snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
			 "throttle %d%% lowered D by %.0f%% (%.1f -> %.1f MB/s; a CPU-bound "
			 "dirtier would drop %d%%): %s", m->throttle_pct, drop * 100,
			 mb(st->d_unthrottled), mb(d), m->throttle_pct,
			 st->throttle_ineffective ? "ineffective so far" : "effective");
	return n;
}

/* D >= B, the throttle has not lowered D so far, and at its pace (one
 * increment per round) it cannot reach its ceiling before the deadline:
 * say so once, with the figures (a warning; the cancel waits for the
 * ceiling). */
static size_t step_climb_warning(const struct mig_policy_cfg *cfg, const struct mig_model *m,
				 uint64_t elapsed_ms, struct mig_policy_state *st,
				 struct mig_decision *out, size_t n, size_t max)
{
	double b = m->bw_bps, d = mig_model_dirty_bps(m);
	double left_s = (double)(cfg->deadline_ms - elapsed_ms) / 1000.0;
	int maxthr = cfg->max_throttle_pct > 0 ? cfg->max_throttle_pct : 99;
	int inc = st->throttle_increment > 0 ? st->throttle_increment : 10;
	double round_s = (double)elapsed_ms / 1000.0 / (double)(m->dirty_syncs - 1);
	double climb_s = ceil((double)(maxthr - m->throttle_pct) / inc) * round_s;

	if (st->climb_warned || !st->throttle_ineffective || d < b || climb_s <= left_s)
		return n;
	st->climb_warned = true;
	n = push(out, n, max, MIG_ACT_PREDICT, -1, 0);
	if (n && out[n - 1].action == MIG_ACT_PREDICT)
		snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
			 "pre-copy will very likely not converge before the deadline: D %.1f MB/s "
			 ">= B %.1f MB/s, throttle %d%% has not lowered D, and at +%d%% per round "
			 "of ~%.1f s it reaches %d%% in ~%.0f s, %.0f s left", mb(d), mb(b),
			 m->throttle_pct, inc, round_s, maxthr, climb_s, left_s);
	return n;
}

/* Say early when pre-copy cannot converge; cancel if it stays so. */
static size_t step_verdict(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			   uint64_t elapsed_ms, struct mig_policy_state *st,
			   struct mig_decision *out, size_t n, size_t max)
{
	double b = m->bw_bps, d = mig_model_dirty_bps(m);
	double conv = mig_model_converge_s(m, cfg->max_downtime_ms);
	double left_s = (double)(cfg->deadline_ms - elapsed_ms) / 1000.0;
	int maxthr = cfg->max_throttle_pct > 0 ? cfg->max_throttle_pct : 99;
	/* Only a throttle at its ceiling proves pre-copy stuck: a dirtier that
	 * needs a little CPU ignores 40% and starves at 90%. */
	bool stuck = m->throttle_pct >= maxthr;
	bool never = d >= b && stuck;

	if (cfg->allow_postcopy || m->dirty_syncs < 3)
		return n;
	if (st->hopeless_since) {
		if (!(d >= b) || m->dirty_syncs < st->hopeless_since + QV_MIG_HOPELESS_ROUNDS)
			return n;
		n = push(out, n, max, MIG_ACT_CANCEL, 0, 0);
		if (n && out[n - 1].action == MIG_ACT_CANCEL)
			snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
				 "pre-copy cannot converge, cancelled %.0f s before the deadline: "
				 "D %.1f MB/s >= B %.1f MB/s for %d more rounds (R %.1f MB, throttle "
				 "%d%%)", left_s, mb(d), mb(b), QV_MIG_HOPELESS_ROUNDS,
				 mb((double)m->remaining), m->throttle_pct);
		return n;
	}
	if (!never && !(conv > left_s && !isinf(conv) && stuck))
		return step_climb_warning(cfg, m, elapsed_ms, st, out, n, max);
	st->hopeless_since = m->dirty_syncs;
	n = push(out, n, max, MIG_ACT_PREDICT, isinf(conv) ? -1 : (int)ceil(conv), 0);
	if (n && out[n - 1].action == MIG_ACT_PREDICT)
		snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
			 "pre-copy will not converge before the deadline: D %.1f MB/s vs B %.1f "
			 "MB/s, R %.1f MB, throttle %d%% %s, %.0f s left, convergence %s",
			 mb(d), mb(b), mb((double)m->remaining), m->throttle_pct,
			 st->throttle_ineffective ? "(at its ceiling, measured ineffective)"
						  : "(at its ceiling)",
			 left_s, isinf(conv) ? "never" : "after the deadline");
	return n;
}

/* Downtime: raise to the bound when the rounds stall or when converging at
 * the current limit would take more than half the time left. A workload
 * that converges keeps the lower limit (shorter pause). */
static size_t step_downtime(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			    uint64_t elapsed_ms, struct mig_policy_state *st,
			    struct mig_decision *out, size_t n, size_t max)
{
	double now_ms = mig_model_downtime_ms(m);
	double conv = mig_model_converge_s(m, st->downtime_limit_ms);
	double left_s = (double)(cfg->deadline_ms - elapsed_ms) / 1000.0;
	const char *why = NULL;

	if (st->downtime_limit_ms >= cfg->max_downtime_ms)
		return n;
	if (st->stalled_rounds > 0)
		why = "remaining set stopped shrinking";
	else if (conv < 0 || conv > left_s / 2)
		why = "convergence at the current limit would exceed half the time left";
	if (!why)
		return n;
	n = push(out, n, max, MIG_ACT_SET_DOWNTIME, cfg->max_downtime_ms, 0);
	snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
		 "%s: R %.1f MB, B %.1f MB/s, predicted downtime %.0f ms -> limit %d ms", why,
		 mb((double)m->remaining), mb(m->bw_bps), now_ms, cfg->max_downtime_ms);
	st->downtime_limit_ms = cfg->max_downtime_ms;
	return n;
}

/* Throttle: D as measured is already throttled by the current t; undo that
 * to get the guest's raw rate, then size t for the margin. */
static size_t step_throttle(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			    struct mig_policy_state *st, struct mig_decision *out, size_t n,
			    size_t max)
{
	double b = m->bw_bps, d = mig_model_dirty_bps(m);
	double margin = cfg->margin > 0 ? cfg->margin : 0.5;
	int maxthr = cfg->max_throttle_pct > 0 ? cfg->max_throttle_pct : 99;

	if (d <= b * margin)
		return n;
	double cur = m->throttle_pct / 100.0;
	double raw = cur < 0.99 ? d / (1.0 - cur) : d;
	int need = mig_throttle_for(raw, b, margin, maxthr);
	int inc = clampi((need - m->throttle_pct) / 2, 5, 30);

	if (st->stalled_rounds >= 2 && m->throttle_pct >= need)
		need = maxthr, inc = clampi(inc * 2, 10, 30);
	int newmax = clampi(need + 10, st->throttle_initial, maxthr);
	if (need <= 0 || (inc == st->throttle_increment && newmax == st->max_throttle))
		return n;
	n = push(out, n, max, MIG_ACT_SET_THROTTLE, newmax, inc);
	if (n && out[n - 1].action == MIG_ACT_SET_THROTTLE)
		snprintf(out[n - 1].reason, sizeof(out[n - 1].reason),
			 "D %.1f MB/s (raw %.1f at throttle %d%%) > %.2f x B %.1f MB/s: need t "
			 "%d%%, max-cpu-throttle %d%%, increment %d", mb(d), mb(raw),
			 m->throttle_pct, margin, mb(b), need, newmax, inc);
	st->max_throttle = newmax;
	st->throttle_increment = inc;
	return n;
}

size_t mig_policy_step(const struct mig_policy_cfg *cfg, const struct mig_model *m,
		       uint64_t elapsed_ms, struct mig_policy_state *st,
		       struct mig_decision *out, size_t max)
{
	double b = m->bw_bps, d = mig_model_dirty_bps(m);
	size_t n = 0;
	bool done;

	if (elapsed_ms >= cfg->deadline_ms) {
		n = push(out, n, max, MIG_ACT_CANCEL, 0, 0);
		if (n)
			snprintf(out[0].reason, sizeof(out[0].reason),
				 "deadline %llu s reached without convergence "
				 "(R %.1f MB, D %.1f MB/s, B %.1f MB/s)",
				 (unsigned long long)(cfg->deadline_ms / 1000),
				 mb((double)m->remaining), mb(d), mb(b));
		return n;
	}
	/* Decide once per round (dirty sync), when both rates are known. */
	if (m->dirty_syncs <= st->last_decision_syncs || m->dirty_syncs < 2 || b <= 0 ||
	    st->postcopy)
		return 0;
	if (cfg->allow_postcopy) {
		n = step_postcopy(cfg, m, elapsed_ms, st, out, n, max, &done);
		if (done)
			return n;
	}
	if (st->last_remaining && m->remaining * 10 >= st->last_remaining * 9)
		st->stalled_rounds++;
	st->last_remaining = m->remaining;
	st->last_decision_syncs = m->dirty_syncs;
	n = step_throttle_effect(m, st, out, n, max);
	n = step_verdict(cfg, m, elapsed_ms, st, out, n, max);
	if (n && out[n - 1].action == MIG_ACT_CANCEL)
		return n;
	n = step_downtime(cfg, m, elapsed_ms, st, out, n, max);
	return step_throttle(cfg, m, st, out, n, max);
}

void mig_policy_switchover(const struct mig_policy_cfg *cfg, const struct mig_model *m,
			   struct mig_decision *out)
{
	/* The guest is stopped at this point and our delta-based B may already
	 * have seen the pause: take the better of it and QEMU's estimate. */
	double b = m->bw_bps > m->qemu_bw_bps ? m->bw_bps : m->qemu_bw_bps;
	double pred = b > 0 ? (double)m->remaining / b * 1000.0 : 0;
	double tol = cfg->max_downtime_ms * 1.25 + 10;

	*out = (struct mig_decision){ .action = pred <= tol ? MIG_ACT_CONTINUE : MIG_ACT_CANCEL,
				       .value = (int)pred };
	snprintf(out->reason, sizeof(out->reason),
		 "pre-switchover: R %.2f MB at B %.1f MB/s -> predicted downtime %.0f ms %s "
		 "bound %d ms", mb((double)m->remaining), mb(b), pred,
		 pred <= tol ? "within" : "exceeds", cfg->max_downtime_ms);
}
