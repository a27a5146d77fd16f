/* SPDX-License-Identifier: MIT */
/* The simulator with the cluster balancer (sched/balance.h) in place of
 * the policy's own round (`qvisor sim --balancer`): every 300 s the
 * datacenter becomes a cluster snapshot, the balancer decides with its
 * limits, cooldown and reasons, and its moves run as the simulator's
 * migrations. The same trace then shows what the limits cost and save. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/balance.h"
#include "sched/policy-internal.h"
#include "sched/sim-internal.h"

struct sim_bal {
	qv_bal *b;
	struct qv_pl_host *hosts;
	struct qv_pl_vm *vms;
	double *hhist;
	char (*hname)[16], (*vname)[16];
	struct qv_pl_snapshot snap;
};

/* The simulator's own migration time, so decisions and events agree. */
static double sim_cost(const struct qv_pl_vm *vm, const struct qv_pl_host *from, const struct qv_pl_host *to,
		       void *opaque)
{
	struct sim *s = opaque;
	int i = (int)(vm - s->bal->vms);
	int h = to ? (int)(to - s->bal->hosts) : from ? (int)(from - s->bal->hosts) : 0;
	return qv_pol_migration_time(&s->dc.vms[i], &s->dc.hosts[h], s->cfg->cost_model || s->cfg->pol.cost_model);
}

static int bal_init(struct sim *s)
{
	int nh = s->dc.nhosts, nv = s->dc.nvms;
	struct sim_bal *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	s->bal = sb;
	sb->hosts = calloc(nh, sizeof(*sb->hosts));
	sb->vms = calloc(nv ? nv : 1, sizeof(*sb->vms));
	sb->hhist = calloc((size_t)nh * QV_POL_HIST, sizeof(double));
	sb->hname = calloc(nh, sizeof(*sb->hname));
	sb->vname = calloc(nv ? nv : 1, sizeof(*sb->vname));
	if (!sb->hosts || !sb->vms || !sb->hhist || !sb->hname || !sb->vname)
		return -ENOMEM;
	for (int h = 0; h < nh; h++)
		snprintf(sb->hname[h], sizeof(sb->hname[h]), "host%d", h);
	for (int i = 0; i < nv; i++)
		snprintf(sb->vname[i], sizeof(sb->vname[i]), "vm%d", i);
	struct qv_bal_cfg cfg = s->cfg->bal;
	cfg.mode = QV_BAL_ENFORCE;
	cfg.pol = s->cfg->pol;
	cfg.cost_fn = sim_cost;
	cfg.cost_opaque = s;
	if (!s->cfg->pol.memory_aware)
		cfg.place.mem_overcommit = 0; /* paper mode: RAM does not constrain */
	sb->snap = (struct qv_pl_snapshot){ sb->hosts, nh, sb->vms, nv };
	return qv_bal_new(&cfg, &sb->b);
}

void sim_balance_free(struct sim *s)
{
	struct sim_bal *sb = s->bal;
	if (!sb)
		return;
	qv_bal_free(sb->b);
	free(sb->hosts);
	free(sb->vms);
	free(sb->hhist);
	free(sb->hname);
	free(sb->vname);
	free(sb);
	s->bal = NULL;
}

static void snapshot(struct sim *s)
{
	struct sim_bal *sb = s->bal;
	for (int h = 0; h < s->dc.nhosts; h++) {
		struct qv_pol_host *ph = &s->dc.hosts[h];
		int n;
		const double *hs = qv_pol_host_history(&s->dc, ph, &n);
		memcpy(&sb->hhist[(size_t)h * QV_POL_HIST], hs, sizeof(double) * n);
		sb->hosts[h] = (struct qv_pl_host){
			.name = sb->hname[h], .cpu_milli = (uint32_t)qv_pol_host_total_mips(ph),
			.mem_mib = (uint64_t)ph->ram_mb, .schedulable = true, .power = &ph->power,
			.bw_mbps = ph->bw_mbps, .cpu_hist = &sb->hhist[(size_t)h * QV_POL_HIST], .ncpu_hist = n,
		};
	}
	for (int i = 0; i < s->dc.nvms; i++) {
		const struct qv_pol_vm *v = &s->dc.vms[i];
		int h = s->v[i].gone ? -1 : v->host;
		double req = v->instantiating ? v->mips : v->req_mips;
		sb->vms[i] = (struct qv_pl_vm){
			.name = sb->vname[i], .host = h, .vcpus = 1, .mem_mib = (uint64_t)v->ram_mb,
			.cpu_used_milli = req, .mem_used_mib = (uint64_t)v->ram_mb, .cpu_hist = v->hist,
			.ncpu_hist = v->nhist, .dirty_mbps = v->dirty_mbps, .last_move_s = -1,
			.prev_host = -1, .migrating = v->migrating,
		};
		if (h >= 0) {
			sb->hosts[h].cpu_used_milli += req;
			/* paper mode: RAM is no pressure either */
			if (s->cfg->pol.memory_aware)
				sb->hosts[h].mem_used_mib += (uint64_t)v->ram_mb;
		}
	}
}

int sim_balance_round(struct sim *s, double t, struct qv_pol_plan *plan)
{
	if (!s->bal) {
		int r = bal_init(s);
		if (r < 0)
			return r;
	}
	snapshot(s);
	struct qv_bal_plan bp;
	int r = qv_bal_round(s->bal->b, &s->bal->snap, t, &bp, NULL);
	if (r < 0)
		return r;
	qv_pol_plan_clear(plan);
	plan->overloaded = bp.overloaded;
	plan->underloaded = bp.underloaded;
	for (int i = 0; i < bp.n && r >= 0; i++) {
		struct qv_bal_decision *d = &bp.d[i];
		if (d->kind != QV_BAL_MOVE)
			continue;
		/* a move's reason is kept in 112 bytes: drop the migration's
		 * figures (the simulator reports its own) */
		char *a = strstr(d->reason, " moves (predicted "), *b = a ? strstr(a, ") to ") : NULL;
		if (a && b)
			memmove(a + 6, b + 1, strlen(b + 1) + 1);
		r = qv_pol_plan_add(plan, d->vm, d->from, d->to,
				    d->why == QV_BAL_UNDERLOAD ? QV_WHY_UNDERLOAD : QV_WHY_OVERLOAD, d->metric, "%s",
				    d->reason);
	}
	qv_bal_plan_free(&bp);
	return r;
}
