/* SPDX-License-Identifier: MIT */
/* The overload and underload passes of the paper's round (see
 * sched/policy-round.c for the semantics kept from CloudSim). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched/policy-internal.h"

static const char *const det_names[] = { "THR", "MAD", "IQR", "LR", "LRR" };

struct round_ctx {
	struct qv_pol_dc *dc;
	const struct qv_pol_cfg *cfg;
	struct qv_pol_plan *plan;
	bool *over;    /* overloaded this round */
	bool *excl_u;  /* not a candidate to empty */
	bool *excl_p;  /* not a target for an emptied host's VMs */
	double *metric;
	int *owner;    /* each VM's host before the round */
};

static int overload_pass(struct round_ctx *c)
{
	struct qv_pol_dc *dc = c->dc;
	int *vms = malloc(sizeof(int) * (dc->nvms + 1)), n = 0, r = 0;
	if (!vms)
		return -ENOMEM;
	for (int i = 0; i < dc->nhosts; i++)
		if (c->over[i]) {
			struct qv_pol_host *h = &dc->hosts[i];
			for (;;) {
				int v = qv_pol_select(dc, h, c->cfg);
				if (v < 0)
					break;
				vms[n++] = v;
				qv_pol_vm_destroy(dc, i, v);
				if (!qv_pol_overloaded(dc, h, c->cfg, NULL))
					break;
			}
		}
	qv_pol_sort_by_cpu(dc, vms, n);
	for (int i = 0; i < n && r == 0; i++) {
		int v = vms[i], from = c->owner[v];
		int to = qv_pol_find_host(dc, v, c->over, c->cfg);
		if (to < 0)
			continue; /* stays where it is */
		r = qv_pol_vm_create(dc, to, v);
		if (r == 0)
			r = qv_pol_plan_add(c->plan, v, from, to, QV_WHY_OVERLOAD, c->metric[from],
					    "host %d overloaded (%s %.3f, %.1f%% used); to host %d",
					    from, det_names[c->cfg->det], c->metric[from],
					    100 * qv_pol_host_util(&dc->hosts[from]), to);
	}
	free(vms);
	return r;
}

/* Try to move every VM of host u; all or nothing. */
static int empty_host(struct round_ctx *c, int u)
{
	struct qv_pol_dc *dc = c->dc;
	struct qv_pol_host *h = &dc->hosts[u];
	int n = 0, placed = 0, r = 0;
	int *vms = malloc(sizeof(int) * (h->nvm + 1)), *to = malloc(sizeof(int) * (h->nvm + 1));
	if (!vms || !to) {
		free(vms);
		free(to);
		return -ENOMEM;
	}
	for (int i = 0; i < h->nvm; i++)
		if (!dc->vms[h->vm[i]].migrating)
			vms[n++] = h->vm[i];
	qv_pol_sort_by_cpu(dc, vms, n);
	for (; placed < n; placed++) {
		int t = qv_pol_find_host(dc, vms[placed], c->excl_p, c->cfg);
		if (t < 0)
			break;
		if ((r = qv_pol_vm_create(dc, t, vms[placed])) < 0)
			break;
		to[placed] = t;
	}
	if (placed < n || r < 0) {
		for (int i = 0; i < placed; i++)
			qv_pol_vm_destroy(dc, to[i], vms[i]);
	} else {
		double util = qv_pol_host_util(h);
		for (int i = 0; i < n && r == 0; i++) {
			c->excl_u[to[i]] = true;
			r = qv_pol_plan_add(c->plan, vms[i], c->owner[vms[i]], to[i], QV_WHY_UNDERLOAD, util,
					    "host %d underloaded (%.1f%% used, least of the active hosts); "
					    "emptied to host %d", u, 100 * util, to[i]);
		}
		c->plan->underloaded++;
	}
	free(vms);
	free(to);
	return r;
}

struct host_key {
	int id;
	double util;
};

static int cmp_util(const void *a, const void *b)
{
	const struct host_key *x = a, *y = b;
	if (x->util != y->util)
		return x->util < y->util ? -1 : 1;
	return x->id - y->id;
}

/* getUnderUtilizedHost() picks the least-used host each time; the
 * utilisations do not change during a round, so one sorted pass visits
 * the same hosts in the same order. */
static int underload_pass(struct round_ctx *c)
{
	struct qv_pol_dc *dc = c->dc;
	struct host_key *k = malloc(sizeof(*k) * dc->nhosts);
	if (!k)
		return -ENOMEM;
	for (int i = 0; i < dc->nhosts; i++) {
		double u = qv_pol_host_util(&dc->hosts[i]);
		c->excl_u[i] = c->excl_p[i] = c->over[i] || u == 0;
		k[i] = (struct host_key){ i, u };
	}
	qsort(k, dc->nhosts, sizeof(*k), cmp_util);
	int r = 0;
	for (int j = 0; j < dc->nhosts && r == 0; j++) {
		int u = k[j].id;
		if (c->excl_u[u] || !(k[j].util > 0) || !(k[j].util < 1))
			continue;
		const struct qv_pol_host *h = &dc->hosts[u];
		bool any = false;
		for (int i = 0; i < h->nvm && !any; i++)
			any = !dc->vms[h->vm[i]].migrating;
		if (!any)
			continue; /* all its VMs are already on the move */
		c->excl_u[u] = c->excl_p[u] = true;
		r = empty_host(c, u);
	}
	free(k);
	return r;
}

int qv_pol_round(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg, struct qv_pol_plan *plan)
{
	qv_pol_plan_clear(plan);
	if (cfg->kind == QV_POL_NPA || cfg->kind == QV_POL_DVFS)
		return 0;
	if (cfg->kind == QV_POL_QVISOR)
		return qv_pol_round_qvisor(dc, cfg, plan);
	struct round_ctx c = { .dc = dc, .cfg = cfg, .plan = plan };
	c.over = calloc(dc->nhosts, sizeof(bool));
	c.excl_u = calloc(dc->nhosts, sizeof(bool));
	c.excl_p = calloc(dc->nhosts, sizeof(bool));
	c.metric = calloc(dc->nhosts, sizeof(double));
	c.owner = malloc(sizeof(int) * (dc->nvms + 1));
	struct qv_pol_saved saved = {};
	int r = -ENOMEM;
	if (!c.over || !c.excl_u || !c.excl_p || !c.metric || !c.owner)
		goto out;
	for (int i = 0; i < dc->nvms; i++)
		c.owner[i] = dc->vms[i].host;
	for (int i = 0; i < dc->nhosts; i++) {
		qv_pol_host_refresh(dc, &dc->hosts[i]);
		c.over[i] = qv_pol_overloaded(dc, &dc->hosts[i], cfg, &c.metric[i]);
		plan->overloaded += c.over[i];
	}
	if ((r = qv_pol_save(dc, &saved)) < 0)
		goto out;
	if ((r = qv_pol_fast_begin(dc, cfg)) == 0) {
		r = overload_pass(&c);
		if (r == 0)
			r = underload_pass(&c);
	}
	qv_pol_fast_end(dc);
	qv_pol_restore(dc, &saved);
out:
	free(c.over);
	free(c.excl_u);
	free(c.excl_p);
	free(c.metric);
	free(c.owner);
	return r;
}
