/* SPDX-License-Identifier: MIT */
/* sched/policy*: statistics, detectors, selections and placement on small
 * hand-computed cases, and the placement properties on random ones. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched/policy.h"
#include "sched/sim.h"

#define EPS 1e-9

Test(policy_stats, power_interpolates_the_table)
{
	struct qv_pol_host h;
	qv_sim_host_init(&h, 0); /* G4 */
	cr_assert_float_eq(qv_pol_power_at(&h.power, 0), 86, EPS);
	cr_assert_float_eq(qv_pol_power_at(&h.power, 1), 117, EPS);
	cr_assert_float_eq(qv_pol_power_at(&h.power, 0.25), 94.3, 1e-9);
	cr_assert_float_eq(qv_pol_power_at(&h.power, 0.5), 102, EPS);
	cr_assert_float_eq(qv_pol_power_at(&h.power, 1.5), 117, EPS); /* clamped */
}

Test(policy_stats, median_mad_iqr)
{
	double a[] = { 3, 1, 2 }, b[] = { 4, 1, 3, 2 }, c[] = { 1, 2, 3, 4, 100 };
	double d[] = { 7, 1, 6, 2, 5, 3, 4 };
	cr_assert_float_eq(qv_pol_median(a, 3), 2, EPS);
	cr_assert_float_eq(qv_pol_median(b, 4), 2.5, EPS);
	/* deviations from 3: 2 1 0 1 97 -> median 1 */
	cr_assert_float_eq(qv_pol_mad(c, 5), 1, EPS);
	/* n = 7: q1 = sorted[round(2) - 1] = 2, q3 = sorted[round(6) - 1] = 6 */
	cr_assert_float_eq(qv_pol_iqr(d, 7), 4, EPS);
}

Test(policy_stats, ols_and_robust_regression)
{
	double y[] = { 3, 5, 7, 9, 11 }, a, b;
	cr_assert_eq(qv_pol_ols(y, 5, &a, &b), 0);
	cr_assert_float_eq(a, 1, 1e-12);
	cr_assert_float_eq(b, 2, 1e-12);
	cr_assert_eq(qv_pol_ols(y, 1, &a, &b), -EINVAL);
	/* One outlier drags least squares; the bisquare pass ignores it. */
	double z[] = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 3.0, 1.0 }, la, lb, ra, rb;
	cr_assert_eq(qv_pol_ols(z, 10, &la, &lb), 0);
	cr_assert_eq(qv_pol_lrr(z, 10, &ra, &rb), 0);
	cr_assert_gt(fabs(lb - 0.1), 0.02, "OLS slope %g should be pulled off 0.1", lb);
	cr_assert_float_eq(rb, 0.1, 0.01, "robust slope %g", rb);
	cr_assert_float_eq(ra, 0.0, 0.05, "robust intercept %g", ra);
}

Test(policy_stats, multiple_correlation)
{
	/* row 1 = 2 * row 0: R^2 = 1; row 2 is independent noise. */
	double rows[3 * 8] = { 1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 6, 8, 10, 12, 14, 16,
			       5, 1, 4, 2, 8, 3, 7, 1 };
	cr_assert_float_eq(qv_pol_r2(rows, 3, 8, 1), 1, 1e-9);
	cr_assert_lt(qv_pol_r2(rows, 3, 8, 2), 0.9);
}

/* --- a tiny datacenter -------------------------------------------------- */
struct dc {
	struct qv_pol_dc dc;
	struct qv_pol_host h[8];
	struct qv_pol_vm v[32];
};

static void dc_init(struct dc *d, int nhosts, int nvms)
{
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < nhosts; i++)
		qv_sim_host_init(&d->h[i], i);
	for (int i = 0; i < nvms; i++) {
		d->v[i].mips = 1000;
		d->v[i].ram_mb = 1000;
		d->v[i].host = -1;
		d->v[i].last_move = -1;
	}
	d->dc = (struct qv_pol_dc){ .hosts = d->h, .nhosts = nhosts, .vms = d->v, .nvms = nvms, .rng = 1 };
	for (int i = 0; i < nhosts; i++)
		qv_pol_host_refresh(&d->dc, &d->h[i]);
}

static void put(struct dc *d, int vm, int host, double req)
{
	d->v[vm].req_mips = d->v[vm].sched_req = req;
	d->v[vm].util_now = req / d->v[vm].mips;
	d->v[vm].host = host;
	qv_pol_host_add(&d->h[host], vm);
	d->h[host].util_mips += req;
	qv_pol_host_refresh(&d->dc, &d->h[host]);
}

static void dc_free(struct dc *d)
{
	for (int i = 0; i < d->dc.nhosts; i++)
		qv_pol_host_free(&d->h[i]);
}

static void history(struct qv_pol_vm *v, const double *newest_first, int n)
{
	memcpy(v->hist, newest_first, sizeof(double) * n);
	v->nhist = n;
}

Test(policy_detect, thr_compares_requested_share)
{
	struct dc d;
	dc_init(&d, 1, 2);
	put(&d, 0, 0, 1000);
	put(&d, 1, 0, 2000); /* 3000 / 3720 = 0.806 */
	struct qv_pol_cfg cfg;
	cr_assert_eq(qv_pol_cfg_parse("thr-mmt", 0.8, &cfg), 0);
	cr_assert(qv_pol_overloaded(&d.dc, &d.h[0], &cfg, NULL));
	cfg.param = 0.9;
	cr_assert_not(qv_pol_overloaded(&d.dc, &d.h[0], &cfg, NULL));
	dc_free(&d);
}

Test(policy_detect, iqr_falls_back_then_uses_history)
{
	struct dc d;
	dc_init(&d, 1, 1);
	d.v[0].mips = 3720; /* the VM's share equals the host's */
	put(&d, 0, 0, 0.75 * 3720);
	struct qv_pol_cfg cfg;
	cr_assert_eq(qv_pol_cfg_parse("iqr-mmt", 1.5, &cfg), 0);
	double m;
	/* no history: THR 0.7 fallback -> 0.75 is overloaded */
	cr_assert(qv_pol_overloaded(&d.dc, &d.h[0], &cfg, &m));
	cr_assert_float_eq(m, 0.7, EPS);
	/* 12 samples 0.1..0.45 (newest 0.75 dropped): IQR of them */
	double hist[12];
	for (int i = 0; i < 12; i++)
		hist[i] = 0.1 + 0.05 * (i % 8);
	history(&d.v[0], hist, 12);
	d.h[0].hvalid = false;
	double sorted[12];
	memcpy(sorted, hist, sizeof(sorted));
	double iqr = qv_pol_iqr(sorted, 12);
	bool over = qv_pol_overloaded(&d.dc, &d.h[0], &cfg, &m);
	cr_assert_float_eq(m, 1 - 1.5 * iqr, 1e-9);
	cr_assert_eq(over, 0.75 > 1 - 1.5 * iqr);
	dc_free(&d);
}

Test(policy_detect, mad_threshold_from_history)
{
	struct dc d;
	dc_init(&d, 1, 1);
	d.v[0].mips = 3720;
	put(&d, 0, 0, 0.8 * 3720);
	/* 12 samples alternating 0.5 / 0.7: median 0.6, MAD 0.1 */
	double hist[12];
	for (int i = 0; i < 12; i++)
		hist[i] = i % 2 ? 0.5 : 0.7;
	history(&d.v[0], hist, 12);
	struct qv_pol_cfg cfg;
	cr_assert_eq(qv_pol_cfg_parse("mad-mmt", 2.5, &cfg), 0);
	double m;
	/* threshold 1 - 2.5 x 0.1 = 0.75 < 0.8 requested */
	cr_assert(qv_pol_overloaded(&d.dc, &d.h[0], &cfg, &m));
	cr_assert_float_eq(m, 0.75, 1e-9);
	cfg.param = 1.5; /* 0.85 */
	cr_assert_not(qv_pol_overloaded(&d.dc, &d.h[0], &cfg, &m));
	dc_free(&d);
}

Test(policy_detect, lr_predicts_one_migration_ahead)
{
	struct dc d;
	dc_init(&d, 1, 1);
	d.v[0].mips = 3720;
	put(&d, 0, 0, 0.5 * 3720);
	double hist[10];
	for (int i = 0; i < 10; i++)
		hist[i] = 0.9 - 0.05 * i; /* rising by 0.05 per interval, newest 0.9 */
	history(&d.v[0], hist, 10);
	struct qv_pol_cfg cfg;
	cr_assert_eq(qv_pol_cfg_parse("lr-mmt", 1.0, &cfg), 0);
	double m;
	/* next interval (x = 11): 0.95 -> not >= 1 */
	cr_assert_not(qv_pol_overloaded(&d.dc, &d.h[0], &cfg, &m));
	cr_assert_float_eq(m, 0.95, 1e-9);
	cfg.param = 1.2; /* 1.14 >= 1 */
	cr_assert(qv_pol_overloaded(&d.dc, &d.h[0], &cfg, &m));
	/* LRR: the same line, no outlier: the same prediction */
	cfg.det = QV_DET_LRR;
	cfg.param = 1.0;
	qv_pol_overloaded(&d.dc, &d.h[0], &cfg, &m);
	cr_assert_float_eq(m, 0.95, 1e-6);
	dc_free(&d);
}

Test(policy_select, mmt_mu_rs_mc)
{
	struct dc d;
	dc_init(&d, 1, 4);
	d.v[0].ram_mb = 1740;
	d.v[1].ram_mb = 613;
	d.v[2].ram_mb = 613;
	d.v[3].ram_mb = 870;
	put(&d, 0, 0, 900);
	put(&d, 1, 0, 800);
	put(&d, 2, 0, 100);
	put(&d, 3, 0, 50);
	struct qv_pol_cfg cfg;
	cr_assert_eq(qv_pol_cfg_parse("thr-mmt", 0, &cfg), 0);
	cr_assert_eq(qv_pol_select(&d.dc, &d.h[0], &cfg), 1, "least RAM, first in list");
	d.v[1].migrating = true;
	cr_assert_eq(qv_pol_select(&d.dc, &d.h[0], &cfg), 2, "a migrating VM is not picked");
	d.v[1].migrating = false;
	cfg.sel = QV_SEL_MU;
	cr_assert_eq(qv_pol_select(&d.dc, &d.h[0], &cfg), 3);
	cfg.sel = QV_SEL_RS;
	int a = qv_pol_select(&d.dc, &d.h[0], &cfg);
	cr_assert(a >= 0 && a < 4);
	d.dc.rng = 1;
	cr_assert_eq(qv_pol_select(&d.dc, &d.h[0], &cfg), a, "same seed, same pick");
	/* MC: VM 2 follows VM 0 exactly; 1 and 3 are noise. */
	double base[12] = { .1, .5, .2, .7, .3, .9, .4, .6, .2, .8, .3, .5 };
	for (int i = 0; i < 4; i++) {
		double h[12];
		for (int k = 0; k < 12; k++)
			h[k] = i == 0 ? base[k] : i == 2 ? 0.5 * base[k] : fmod(0.37 * (k + 1) * (i + 2), 1);
		history(&d.v[i], h, 12);
	}
	cfg.sel = QV_SEL_MC;
	int mc = qv_pol_select(&d.dc, &d.h[0], &cfg);
	cr_assert(mc == 0 || mc == 2, "MC picked %d", mc);
	dc_free(&d);
}

Test(policy_place, pabfd_least_power_increase_and_no_overload)
{
	struct dc d;
	dc_init(&d, 4, 4);
	/* host 0 (G4) at 50 %, host 1 (G5) at 30 %, host 2, 3 empty */
	put(&d, 0, 0, 1860);
	put(&d, 1, 1, 1596);
	d.v[2].mips = 500;
	d.v[2].req_mips = d.v[2].sched_req = 500;
	struct qv_pol_cfg cfg;
	cr_assert_eq(qv_pol_cfg_parse("thr-mmt", 0.8, &cfg), 0);
	/* G4 50 -> 63.4 %: +4.688 W; G5 30 -> 39.4 %: +4.699 W; an empty G4 /
	 * G5 looks cheaper still (+4.5 / +3.1 W: CloudSim counts switching a
	 * host on as free). */
	cr_assert_eq(qv_pol_find_host(&d.dc, 2, NULL, &cfg), 3);
	bool excl[4] = { false, false, true, true };
	cr_assert_eq(qv_pol_find_host(&d.dc, 2, excl, &cfg), 0);
	/* 2660 MIPS: host 0 lacks the core, host 1 would reach 80 % */
	d.v[3].mips = 2660;
	d.v[3].req_mips = d.v[3].sched_req = 2660;
	cfg.param = 0.75;
	cr_assert_eq(qv_pol_find_host(&d.dc, 3, excl, &cfg), -1);
	cfg.param = 0.9;
	cr_assert_eq(qv_pol_find_host(&d.dc, 3, excl, &cfg), 1);
	dc_free(&d);
}

Test(policy_place, initial_placement_respects_ram_and_cores)
{
	struct dc d;
	dc_init(&d, 2, 5);
	for (int i = 0; i < 5; i++) {
		d.v[i].mips = 2500; /* more than a G4 core: only host 1 (G5) */
		d.v[i].ram_mb = 870;
	}
	struct qv_pol_cfg cfg;
	cr_assert_eq(qv_pol_cfg_parse("dvfs", 0, &cfg), 0);
	/* G5 fits two by MIPS (5000 <= 5320); the third fits nowhere */
	cr_assert_eq(qv_pol_place_all(&d.dc, &cfg), -ENOSPC);
	dc_free(&d);
	dc_init(&d, 2, 4);
	for (int i = 0; i < 4; i++)
		d.v[i].ram_mb = 1740; /* two per host by RAM (4096 MB) */
	cr_assert_eq(qv_pol_place_all(&d.dc, &cfg), 0);
	cr_assert_eq(d.h[0].nvm, 2);
	cr_assert_eq(d.h[1].nvm, 2);
	dc_free(&d);
}

/* Random datacenters: every VM on exactly one host after placement; the
 * round leaves the lists alone; THR targets stay under the threshold. */
Test(policy_property, placement_never_overcommits_and_places_once)
{
	uint64_t seed = 12345;
	for (int trial = 0; trial < 40; trial++) {
		struct dc d;
		int nh = 8, nv = 20 + trial % 12;
		dc_init(&d, nh, nv);
		for (int i = 0; i < nv; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			d.v[i].mips = (double[]){ 2500, 2000, 1000, 500 }[(seed >> 33) % 4];
			d.v[i].ram_mb = 613;
		}
		struct qv_pol_cfg cfg;
		cr_assert_eq(qv_pol_cfg_parse(trial % 2 ? "thr-mmt" : "qvisor", 0.8, &cfg), 0);
		if (trial % 2 == 0)
			cfg.q_target = 0.8;
		if (qv_pol_place_all(&d.dc, &cfg) < 0) {
			dc_free(&d);
			continue;
		}
		int seen[32] = { 0 };
		for (int h = 0; h < nh; h++)
			for (int k = 0; k < d.h[h].nvm; k++) {
				seen[d.h[h].vm[k]]++;
				cr_assert_eq(d.v[d.h[h].vm[k]].host, h);
			}
		for (int i = 0; i < nv; i++)
			cr_assert_eq(seen[i], 1, "VM %d placed %d times", i, seen[i]);
		/* measured load: random share of each VM */
		for (int h = 0; h < nh; h++)
			d.h[h].util_mips = 0;
		for (int i = 0; i < nv; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			double u = (double)((seed >> 33) % 1000) / 1000;
			d.v[i].req_mips = d.v[i].sched_req = u * d.v[i].mips;
			d.v[i].util_now = u;
			d.h[d.v[i].host].util_mips += u * d.v[i].mips;
		}
		int before[8];
		for (int h = 0; h < nh; h++)
			before[h] = d.h[h].nvm;
		struct qv_pol_plan plan = {};
		cr_assert_eq(qv_pol_round(&d.dc, &cfg, &plan), 0);
		for (int h = 0; h < nh; h++)
			cr_assert_eq(d.h[h].nvm, before[h], "round must restore host lists");
		/* apply the plan to the requested shares */
		double req[8] = { 0 };
		int got[8] = { 0 }, moved[32] = { 0 };
		int where[32];
		for (int i = 0; i < nv; i++)
			where[i] = d.v[i].host;
		for (int k = 0; k < plan.n; k++) {
			where[plan.moves[k].vm] = plan.moves[k].to;
			got[plan.moves[k].to]++;
			moved[plan.moves[k].vm]++;
			cr_assert_neq(plan.moves[k].reason[0], 0, "every move says why");
		}
		for (int i = 0; i < nv; i++) {
			req[where[i]] += d.v[i].req_mips;
			if (cfg.kind == QV_POL_QVISOR)
				cr_assert_leq(moved[i], 1);
		}
		for (int h = 0; h < nh; h++) {
			double share = req[h] / qv_pol_host_total_mips(&d.h[h]);
			/* a lone VM on an empty host is not checked (CloudSim) */
			if (got[h] > 0 && !(got[h] == 1 && before[h] == 0))
				cr_assert_leq(share, 0.8 + 1e-9, "trial %d host %d at %.3f", trial, h, share);
		}
		qv_pol_plan_free(&plan);
		dc_free(&d);
	}
}

Test(policy_cfg, names_parse_and_print)
{
	struct qv_pol_cfg cfg;
	char buf[32];
	cr_assert_eq(qv_pol_cfg_parse("iqr-mmt", 0, &cfg), 0);
	cr_assert_str_eq(qv_pol_cfg_name(&cfg, buf, sizeof(buf)), "IQR-MMT-1.5");
	cr_assert_eq(qv_pol_cfg_parse("LR-MC", 1.1, &cfg), 0);
	cr_assert_str_eq(qv_pol_cfg_name(&cfg, buf, sizeof(buf)), "LR-MC-1.1");
	cr_assert_eq(qv_pol_cfg_parse("npa", 0, &cfg), 0);
	cr_assert_eq(cfg.kind, QV_POL_NPA);
	cr_assert_eq(qv_pol_cfg_parse("foo-mmt", 0, &cfg), -EINVAL);
	cr_assert_eq(qv_pol_cfg_parse("thr-xx", 0, &cfg), -EINVAL);
	cr_assert_eq(qv_pol_cfg_parse("thr", 0, &cfg), -EINVAL);
}
