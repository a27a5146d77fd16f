/* SPDX-License-Identifier: MIT */
/* The per-round caches of sched/policy-fast.c against the plain scans:
 * on random datacenters (loads from idle to oversubscribed, histories
 * from 1 to 30 samples, zero tails, migrating VMs, both RAM modes) every
 * detector's "overloaded with this VM?" answer and every round's plan
 * (each move and its reason) must be exactly the reference's. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/policy-internal.h"
#include "sched/sim.h"

struct rnd {
	uint64_t s;
};

static double rnd(struct rnd *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return (double)(r->s >> 11) / (1ULL << 53);
}

/* A random datacenter; the same seed builds the same one. */
static void build(struct qv_pol_dc *dc, uint64_t seed)
{
	struct rnd r = { seed * 2654435761ULL + 88172645463325252ULL };
	int nh = 2 + (int)(rnd(&r) * 40), nv = (int)(rnd(&r) * nh * 12);
	double level = 0.05 + 0.5 * rnd(&r);
	int nhist = rnd(&r) < 0.3 ? 1 + (int)(rnd(&r) * QV_POL_HIST) : QV_POL_HIST;
	memset(dc, 0, sizeof(*dc));
	dc->nhosts = nh;
	dc->nvms = nv;
	dc->hosts = calloc(nh, sizeof(*dc->hosts));
	dc->vms = calloc(nv + 1, sizeof(*dc->vms));
	dc->rng = seed;
	dc->memory_aware = rnd(&r) < 0.3;
	cr_assert(dc->hosts && dc->vms);
	for (int h = 0; h < nh; h++)
		qv_sim_host_init(&dc->hosts[h], h);
	for (int i = 0; i < nv; i++) {
		struct qv_pol_vm *v = &dc->vms[i];
		qv_sim_vm_init(v, (int)(rnd(&r) * nv), nv);
		double l = level * 2 * rnd(&r);
		v->nhist = rnd(&r) < 0.1 ? (int)(rnd(&r) * nhist) : nhist;
		for (int k = 0; k < v->nhist; k++)
			v->hist[k] = rnd(&r) < 0.05 ? 0 : fmin(1, l * (0.5 + rnd(&r)));
		if (rnd(&r) < 0.1) /* an idle tail: the host history gets shorter */
			for (int k = v->nhist / 2; k < v->nhist; k++)
				v->hist[k] = 0;
		v->util_now = v->nhist ? v->hist[0] : 0;
		v->req_mips = v->sched_req = v->util_now * v->mips;
		v->ram_alloc = dc->memory_aware ? v->ram_mb : 0;
		v->last_move = -1;
		int h = (int)(rnd(&r) * nh);
		if (v->mips > dc->hosts[h].core_mips)
			h = (h + 1) % nh;
		if (rnd(&r) < 0.03) { /* migrating in from elsewhere */
			v->migrating = true;
			qv_pol_host_add_in(&dc->hosts[h], i);
		}
		v->host = h;
		qv_pol_host_add(&dc->hosts[h], i);
		dc->hosts[h].util_mips += v->req_mips;
	}
	for (int h = 0; h < nh; h++)
		qv_pol_host_refresh(dc, &dc->hosts[h]);
}

static void destroy(struct qv_pol_dc *dc)
{
	for (int h = 0; h < dc->nhosts; h++)
		qv_pol_host_free(&dc->hosts[h]);
	free(dc->hosts);
	free(dc->vms);
}

static const char *const policies[] = { "thr-mmt", "iqr-mmt", "mad-mmt", "lr-mmt", "lrr-mmt",
					"iqr-mc",  "mad-rs",  "lr-mu",   "thr-mc" };
#define NPOL (int)(sizeof(policies) / sizeof(policies[0]))

Test(policy_fast, verdicts_equal_the_exact_detector)
{
	long checked = 0, over = 0, by_bounds = 0, by_exact = 0;
	for (uint64_t seed = 1; seed <= 150; seed++)
		for (int p = 0; p < NPOL; p++) {
			struct qv_pol_cfg cfg;
			struct qv_pol_dc dc;
			/* parameters spread around the defaults, so that many
			 * answers sit near the detectors' thresholds */
			cr_assert_eq(qv_pol_cfg_parse(policies[p], 0, &cfg), 0);
			cfg.param *= 0.6 + 0.8 * (double)(seed % 7) / 6;
			build(&dc, seed);
			cr_assert_eq(qv_pol_fast_begin(&dc, &cfg), 0);
			for (int h = 0; h < dc.nhosts; h++)
				for (int v = 0; v < dc.nvms; v += 1 + dc.nvms / 40) {
					bool exact = qv_pol_overloaded_after(&dc, &dc.hosts[h], v, &cfg);
					bool fast = qv_pol_fast_overloaded_after(&dc, &dc.hosts[h], v, &cfg);
					cr_assert_eq(fast, exact, "%s param %g seed %lu host %d vm %d: fast %d exact %d",
						     policies[p], cfg.param, (unsigned long)seed, h, v, fast, exact);
					checked++;
					over += exact;
				}
			long b, e;
			qv_pol_fast_counts(&dc, &b, &e);
			by_bounds += b;
			by_exact += e;
			qv_pol_fast_end(&dc);
			destroy(&dc);
		}
	/* both answers must have been exercised */
	cr_assert_gt(over, checked / 20, "%ld of %ld overloaded", over, checked);
	cr_assert_lt(over, checked - checked / 20, "%ld of %ld overloaded", over, checked);
	/* and both ways of answering (THR, answered from its cached sum, is
	 * counted in neither) */
	cr_assert_gt(by_bounds, checked / 4, "%ld by bounds, %ld exact of %ld", by_bounds, by_exact, checked);
	cr_assert_gt(by_exact, checked / 50, "%ld by bounds, %ld exact of %ld", by_bounds, by_exact, checked);
}

static void assert_same_plan(const struct qv_pol_plan *a, const struct qv_pol_plan *b, const char *what)
{
	cr_assert_eq(a->n, b->n, "%s: %d moves, reference %d", what, a->n, b->n);
	cr_assert_eq(a->overloaded, b->overloaded, "%s", what);
	cr_assert_eq(a->underloaded, b->underloaded, "%s", what);
	for (int i = 0; i < a->n; i++) {
		const struct qv_pol_move *x = &a->moves[i], *y = &b->moves[i];
		cr_assert(x->vm == y->vm && x->from == y->from && x->to == y->to && x->why == y->why,
			  "%s move %d: vm %d %d->%d, reference vm %d %d->%d", what, i, x->vm, x->from, x->to,
			  y->vm, y->from, y->to);
		cr_assert_str_eq(x->reason, y->reason, "%s move %d", what, i);
	}
}

Test(policy_fast, rounds_choose_what_the_reference_scan_chooses)
{
	int moves = 0, emptied = 0;
	for (uint64_t seed = 1; seed <= 120; seed++)
		for (int p = 0; p < NPOL; p++) {
			struct qv_pol_cfg cfg;
			cr_assert_eq(qv_pol_cfg_parse(policies[p], 0, &cfg), 0);
			cfg.param *= 0.6 + 0.8 * (double)(seed % 5) / 4;
			struct qv_pol_dc ref, fast;
			build(&ref, seed);
			build(&fast, seed);
			ref.reference = true;
			struct qv_pol_plan pr = {}, pf = {};
			cr_assert_eq(qv_pol_round(&ref, &cfg, &pr), 0);
			cr_assert_eq(qv_pol_round(&fast, &cfg, &pf), 0);
			cr_assert_null(fast.fast, "caches are dropped after the round");
			char what[64];
			snprintf(what, sizeof(what), "%s param %g seed %lu", policies[p], cfg.param,
				 (unsigned long)seed);
			assert_same_plan(&pf, &pr, what);
			/* and the hosts' lists are left as they were */
			for (int h = 0; h < ref.nhosts; h++) {
				cr_assert_eq(fast.hosts[h].nvm, ref.hosts[h].nvm, "%s host %d", what, h);
				cr_assert_arr_eq(fast.hosts[h].vm, ref.hosts[h].vm, sizeof(int) * ref.hosts[h].nvm);
			}
			moves += pr.n;
			emptied += pr.underloaded;
			qv_pol_plan_free(&pr);
			qv_pol_plan_free(&pf);
			destroy(&ref);
			destroy(&fast);
		}
	/* the comparison must have covered both passes */
	cr_assert_gt(moves, 1000, "%d moves", moves);
	cr_assert_gt(emptied, 50, "%d hosts emptied", emptied);
}
