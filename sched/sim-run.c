/* SPDX-License-Identifier: MIT */
/* Set-up of a simulation run and its metrics (CloudSim's Helper.
 * printResults, plus the paper's per-entity forms). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/policy-internal.h"
#include "sched/sim-internal.h"

void qv_sim_result_free(struct qv_sim_result *r)
{
	free(r->series);
	free(r->moves);
	r->series = NULL;
	r->moves = NULL;
	r->nseries = r->nmoves = 0;
}

static void metrics(struct sim *s)
{
	struct qv_sim_result *r = s->res;
	double viol = 0, active = 0, ratio_sum = 0, req = 0, alloc = 0, deg = 0, vm_ratio = 0;
	int hosts = 0, vms = 0;
	for (int i = 0; i < s->dc.nhosts; i++) {
		viol += s->h[i].viol_s;
		active += s->h[i].active_s;
		if (s->h[i].active_s > 0) {
			ratio_sum += s->h[i].viol_s / s->h[i].active_s;
			hosts++;
		}
	}
	for (int i = 0; i < s->dc.nvms; i++) {
		req += s->v[i].req_int;
		alloc += s->v[i].alloc_int;
		deg += s->v[i].mig_deg;
		if (s->v[i].req_int > 0) {
			vm_ratio += s->v[i].mig_deg / s->v[i].req_int;
			vms++;
		}
	}
	r->energy_kwh = s->energy_ws / 3.6e6;
	r->lower_bound_kwh = s->bound_ws / 3.6e6;
	r->slatah = active > 0 ? viol / active : 0;
	r->pdm = req > 0 ? deg / req : 0;
	r->overall_sla = req > 0 ? (req - alloc) / req : 0;
	r->slav = r->slatah * r->pdm;
	r->esv = r->energy_kwh * r->slav;
	r->paper_slatah = hosts ? ratio_sum / hosts : 0;
	r->paper_pdm = vms ? vm_ratio / vms : 0;
	r->paper_slav = r->paper_slatah * r->paper_pdm;
	r->paper_esv = r->energy_kwh * r->paper_slav;
	r->shutdowns = s->shutdowns;
	r->mean_time_before_shutdown_s = s->shutdowns ? s->shutdown_sum / s->shutdowns : 0;
}

static int setup(struct sim *s, const struct qv_trace *tr, const struct qv_sim_cfg *cfg)
{
	s->tr = tr;
	s->cfg = cfg;
	s->dc.nhosts = cfg->nhosts;
	s->dc.nvms = tr->nvms;
	s->dc.memory_aware = cfg->pol.memory_aware;
	s->dc.rng = cfg->pol.seed;
	s->dc.hosts = calloc(cfg->nhosts, sizeof(*s->dc.hosts));
	s->dc.vms = calloc(tr->nvms, sizeof(*s->dc.vms));
	s->h = calloc(cfg->nhosts, sizeof(*s->h));
	s->v = calloc(tr->nvms, sizeof(*s->v));
	if (!s->dc.hosts || !s->dc.vms || !s->h || !s->v)
		return -ENOMEM;
	for (int i = 0; i < cfg->nhosts; i++) {
		qv_sim_host_init(&s->dc.hosts[i], i);
		s->h[i].prev_active = true;
	}
	for (int i = 0; i < tr->nvms; i++)
		qv_sim_vm_init(&s->dc.vms[i], i, tr->nvms);
	return qv_pol_place_all(&s->dc, &cfg->pol);
}

static void teardown(struct sim *s)
{
	for (int i = 0; s->dc.hosts && i < s->dc.nhosts; i++)
		qv_pol_host_free(&s->dc.hosts[i]);
	free(s->dc.hosts);
	free(s->dc.vms);
	free(s->h);
	free(s->v);
	free(s->mig);
	sim_balance_free(s);
}

int qv_sim_run(const struct qv_trace *tr, const struct qv_sim_cfg *cfg, struct qv_sim_result *ret,
	       struct qv_error *errp)
{
	struct qv_sim_result res = {};
	struct sim s = { .res = &res };
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	qv_pol_cfg_name(&cfg->pol, res.policy, sizeof(res.policy));
	if (cfg->balance)
		strncat(res.policy, "+balancer", sizeof(res.policy) - strlen(res.policy) - 1);
	res.nhosts = cfg->nhosts;
	res.nvms = tr->nvms;
	int r = setup(&s, tr, cfg);
	if (r == -ENOSPC)
		qv_error_set(errp, ENOSPC, QV_REASON_NO_SPACE, "%d VMs do not fit on %d hosts", tr->nvms,
			     cfg->nhosts);
	if (r == 0)
		r = sim_run_loop(&s);
	if (r == 0) {
		sim_finish(&s);
		metrics(&s);
		if (cfg->pol.kind == QV_POL_NPA) {
			double w = 0;
			for (int i = 0; i < cfg->nhosts; i++)
				w += qv_pol_power_at(&s.dc.hosts[i].power, 1);
			res.energy_kwh = w * cfg->duration_s / 3.6e6;
			res.esv = res.energy_kwh * res.slav;
			res.paper_esv = res.energy_kwh * res.paper_slav;
		}
	}
	teardown(&s);
	clock_gettime(CLOCK_MONOTONIC, &b);
	res.wall_s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	if (r < 0) {
		qv_sim_result_free(&res);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "simulation failed: %s", strerror(-r));
	}
	*ret = res;
	return 0;
}
