/* SPDX-License-Identifier: MIT */
/* Evacuation (maintenance): every VM off one host, placed as a batch
 * (largest first), started in waves that respect the per-host and the
 * cluster limits. An operator's order: cooldown and pinning do not hold
 * it back. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/balance-internal.h"

struct evac_move {
	int vm, to, wave, seq;
	struct qv_pl_choice ch;
};

/* Migrations already in wave w touching host x. */
static int wave_load(const struct evac_move *m, int n, int w, int x, int src)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		if (m[i].wave == w && (x == src || m[i].to == x))
			k++;
	return k;
}

static void assign_waves(const struct bal_ctx *c, struct evac_move *m, int n, int src)
{
	const struct qv_bal_cfg *cfg = &c->b->cfg;
	int lim = cfg->max_per_host, clim = cfg->max_cluster;
	for (int i = 0; i < n; i++) {
		for (int w = 0;; w++) {
			int busy_src = w == 0 ? c->busy[src] : 0, busy_dst = w == 0 ? c->busy[m[i].to] : 0;
			int busy_all = w == 0 ? c->cluster_busy : 0;
			int in_w = 0;
			for (int k = 0; k < i; k++)
				in_w += m[k].wave == w;
			bool fits = (lim <= 0 || (busy_src + wave_load(m, i, w, src, src) < lim &&
						  busy_dst + wave_load(m, i, w, m[i].to, src) < lim)) &&
				    (clim <= 0 || busy_all + in_w < clim);
			/* a limit below one move per wave would never fit: one at a time */
			if (fits || (w > 0 && in_w == 0)) {
				m[i].wave = w;
				break;
			}
		}
	}
	/* waves left empty by migrations in flight: renumber from 0 */
	int first = -1;
	for (int i = 0; i < n; i++)
		if (first < 0 || m[i].wave < first)
			first = m[i].wave;
	for (int i = 0; i < n; i++)
		m[i].wave -= first;
}

static int wave_cmp(const void *a, const void *b)
{
	const struct evac_move *x = a, *y = b;
	return x->wave != y->wave ? x->wave - y->wave : x->seq - y->seq;
}

int qv_bal_evacuate(qv_bal *b, const struct qv_pl_snapshot *snap, int host, double now_s,
		    struct qv_bal_plan *ret, struct qv_error *errp)
{
	if (host < 0 || host >= snap->nhosts)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "no host %d to evacuate", host);
	struct qv_bal_plan plan = { 0 };
	struct bal_ctx c;
	const char *hn = snap->hosts[host].name;
	int r = bal_ctx_init(&c, b, snap, now_s, &plan, &b->cfg.place, errp);
	int n = 0, nm = 0, failed = 0;
	char first_fail[256] = "";
	for (int v = r >= 0 ? c.first[host] : -1; v >= 0; v = c.next[v])
		n++;
	const struct qv_pl_vm **vms = malloc(sizeof(*vms) * (n ? n : 1));
	struct qv_pl_choice *ch = malloc(sizeof(*ch) * (n ? n : 1));
	struct evac_move *m = malloc(sizeof(*m) * (n ? n : 1));
	if (r >= 0 && (!vms || !ch || !m))
		r = -ENOMEM;
	c.record = b->cfg.mode != QV_BAL_ADVISE;
	for (int h = 0; r >= 0 && h < snap->nhosts; h++)
		qv_pl_block(c.pl, h, NULL); /* waves carry the limits */
	n = 0;
	for (int v = r >= 0 ? c.first[host] : -1; v >= 0; v = c.next[v]) {
		if (snap->vms[v].migrating) {
			if (!bal_add(&plan, QV_BAL_SKIP, QV_BAL_EVACUATE, v, host, -1,
				     "evacuating %s: %s is already migrating", hn, snap->vms[v].name))
				r = -ENOMEM;
			continue;
		}
		vms[n++] = &snap->vms[v];
	}
	if (r >= 0 && n) {
		int *idx = malloc(sizeof(int) * n);
		if (!idx) {
			r = -ENOMEM;
			goto out;
		}
		for (int i = 0; i < n; i++)
			idx[i] = (int)(vms[i] - snap->vms);
		qsort_r(idx, n, sizeof(int), bal_foot_cmp, (void *)snap);
		for (int i = 0; i < n; i++)
			vms[i] = &snap->vms[idx[i]];
		free(idx);
		int placed = qv_pl_choose_batch(c.pl, vms, n, host, ch, NULL);
		if (placed < 0)
			r = placed;
	}
	for (int i = 0; r >= 0 && i < n; i++) {
		int v = (int)(vms[i] - snap->vms);
		if (ch[i].host < 0) {
			if (!failed++)
				snprintf(first_fail, sizeof(first_fail), "%s", ch[i].reason);
			if (!bal_add(&plan, QV_BAL_SKIP, QV_BAL_EVACUATE, v, host, -1, "evacuating %s: %s", hn,
				     ch[i].reason))
				r = -ENOMEM;
			continue;
		}
		m[nm] = (struct evac_move){ .vm = v, .to = ch[i].host, .seq = nm, .ch = ch[i] };
		nm++;
	}
	if (r >= 0) {
		assign_waves(&c, m, nm, host);
		qsort(m, nm, sizeof(*m), wave_cmp);
	}
	for (int i = 0; i < nm; i++)
		if (m[i].wave + 1 > plan.waves)
			plan.waves = m[i].wave + 1;
	for (int i = 0; r >= 0 && i < nm; i++) {
		const struct qv_pl_vm *v = &snap->vms[m[i].vm];
		double cost = bal_cost(b, snap, v, m[i].to);
		struct qv_bal_decision *d = bal_add(
			&plan, QV_BAL_MOVE, QV_BAL_EVACUATE, m[i].vm, host, m[i].to,
			"evacuating %s (wave %d of %d): %s (predicted %.1f s%s%s) to %s", hn, m[i].wave + 1,
			plan.waves, v->name, cost, v->pinned ? ", pinned: moved by the operator's order" : "",
			bal_cooldown_left(b, v, now_s) > 0 ? ", in cooldown: moved by the operator's order" : "",
			m[i].ch.reason);
		if (!d) {
			r = -ENOMEM;
			break;
		}
		d->wave = m[i].wave;
		d->cost_s = cost;
		if (c.record)
			r = bal_record(b, snap, m[i].vm, host, m[i].to, now_s, cost);
	}
out:
	bal_ctx_done(&c);
	free(vms);
	free(ch);
	free(m);
	if (r < 0) {
		qv_bal_plan_free(&plan);
		return qv_error_set(errp, -r, NULL, "evacuation plan failed: %s", strerror(-r));
	}
	snprintf(plan.summary, sizeof(plan.summary), "evacuating %s: %d migrations in %d waves, %d skipped", hn,
		 plan.moves, plan.waves, plan.skipped);
	*ret = plan;
	if (failed)
		return qv_error_set(errp, ENOSPC, QV_REASON_NO_SPACE,
				    "cannot evacuate %s: %d of %d VMs fit on no other host (first: %s)", hn,
				    failed, n, first_fail);
	return 0;
}
