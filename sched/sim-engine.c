/* SPDX-License-Identifier: MIT */
/* The event loop of CloudSim's power experiment: the cloudlets start at
 * 0.1 s, the datacenter updates every 300 s after that (300.1, 600.1, ...)
 * and runs a decision round; each migration completes RAM / (link / 2)
 * later, with an update just before and just after (PowerDatacenter.
 * processVmMigrate). Events at or after the 24 h limit are not processed.
 * NPA is every host at full power for the whole day. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/policy-internal.h"
#include "sched/sim-internal.h"

static const struct qv_pol_power g4 = { { 86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117 } };
static const struct qv_pol_power g5 = { { 93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135 } };

void qv_sim_cfg_defaults(struct qv_sim_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	qv_pol_cfg_defaults(&cfg->pol);
	cfg->nhosts = 800;
	cfg->duration_s = 86400;
	qv_bal_cfg_defaults(&cfg->bal);
}

void qv_sim_host_init(struct qv_pol_host *h, int i)
{
	memset(h, 0, sizeof(*h));
	h->core_mips = i % 2 ? 2660 : 1860;
	h->cores = 2;
	h->ram_mb = 4096;
	h->bw_mbps = 1000;
	h->power = i % 2 ? g5 : g4;
}

void qv_sim_vm_init(struct qv_pol_vm *v, int i, int n)
{
	static const double mips[] = { 2500, 2000, 1000, 500 }, ram[] = { 870, 1740, 1740, 613 };
	int type = i / (int)ceil((double)n / 4);
	memset(v, 0, sizeof(*v));
	v->mips = mips[type];
	v->ram_mb = ram[type];
	v->host = -1;
	v->last_move = -1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Host.addMigratingInVm on the destination, then the source's update. */
static int start_migration(struct sim *s, const struct qv_pol_move *m, double t)
{
	struct qv_pol_vm *v = &s->dc.vms[m->vm];
	struct qv_pol_host *to = &s->dc.hosts[m->to];
	v->migrating = true;
	v->last_move = s->dc.round;
	if (!qv_pol_host_is_in(to, m->vm)) {
		if (qv_pol_host_add_in(to, m->vm) < 0 || qv_pol_host_add(to, m->vm) < 0)
			return -ENOMEM;
		sim_host_update(s, m->to, t);
		if (v->host >= 0)
			sim_host_update(s, v->host, t);
	}
	if (s->nmig == s->capmig) {
		int nc = s->capmig ? s->capmig * 2 : 256;
		struct sim_mig *nm = realloc(s->mig, sizeof(*nm) * nc);
		if (!nm)
			return -ENOMEM;
		s->mig = nm;
		s->capmig = nc;
	}
	double delay = qv_pol_migration_time(v, to, s->cfg->cost_model || s->cfg->pol.cost_model);
	s->mig[s->nmig++] = (struct sim_mig){ m->vm, m->to, t + delay, s->seq++ };
	s->res->migrations++;
	return 0;
}

/* Datacenter.processVmMigrate: off the old host, onto the new one. */
static int complete_migration(struct sim *s, const struct sim_mig *m)
{
	struct qv_pol_vm *v = &s->dc.vms[m->vm];
	struct qv_pol_host *to = &s->dc.hosts[m->to];
	if (v->host >= 0)
		qv_pol_host_remove(&s->dc.hosts[v->host], m->vm);
	qv_pol_host_remove_in(to, m->vm);
	qv_pol_host_remove(to, m->vm);
	v->migrating = false;
	v->host = m->to;
	return qv_pol_host_add(to, m->vm);
}

static int next_migration(const struct sim *s)
{
	int best = -1;
	for (int i = 0; i < s->nmig; i++)
		if (best < 0 || s->mig[i].done < s->mig[best].done ||
		    (s->mig[i].done == s->mig[best].done && s->mig[i].seq < s->mig[best].seq))
			best = i;
	return best;
}

static int process_migrations(struct sim *s, double t)
{
	if (t > s->last_t)
		sim_update_all(s, t);
	int i, r = 0;
	while (r == 0 && (i = next_migration(s)) >= 0 && s->mig[i].done == t) {
		struct sim_mig m = s->mig[i];
		s->mig[i] = s->mig[--s->nmig];
		r = complete_migration(s, &m);
	}
	sim_update_all(s, t);
	return r;
}

static int record_point(struct sim *s, double t, int started)
{
	if (!s->cfg->series)
		return 0;
	struct qv_sim_result *res = s->res;
	struct qv_sim_point *p = realloc(res->series, sizeof(*p) * (res->nseries + 1));
	if (!p)
		return -ENOMEM;
	res->series = p;
	p = &p[res->nseries++];
	*p = (struct qv_sim_point){ .t = t, .migrations = started };
	int viol = 0;
	for (int i = 0; i < s->dc.nhosts; i++) {
		const struct qv_pol_host *h = &s->dc.hosts[i];
		if (h->util_mips <= 0)
			continue;
		p->active_hosts++;
		p->power_w += qv_pol_power_at(&h->power, h->util_mips / qv_pol_host_total_mips(h));
		viol += s->h[i].last.alloc < s->h[i].last.req;
	}
	p->sla_hosts = p->active_hosts ? (double)viol / p->active_hosts : 0;
	return 0;
}

static int keep_move(struct qv_sim_result *res, const struct qv_pol_move *m, double t)
{
	struct qv_sim_move *nm = realloc(res->moves, sizeof(*nm) * (res->nmoves + 1));
	if (!nm)
		return -ENOMEM;
	res->moves = nm;
	nm[res->nmoves++] = (struct qv_sim_move){ t, *m };
	return 0;
}

static int decision(struct sim *s, double t, struct qv_pol_plan *plan, double *ms_sum)
{
	sim_update_all(s, t);
	double t0 = now_s();
	int r = s->cfg->balance ? sim_balance_round(s, t, plan) : qv_pol_round(&s->dc, &s->cfg->pol, plan);
	double ms = (now_s() - t0) * 1000;
	if (r < 0)
		return r;
	*ms_sum += ms;
	if (ms > s->res->decision_ms_max)
		s->res->decision_ms_max = ms;
	s->res->rounds++;
	s->dc.round++;
	for (int i = 0; i < plan->n && r == 0; i++) {
		r = start_migration(s, &plan->moves[i], t);
		if (r == 0 && s->res->nmoves < s->cfg->explain)
			r = keep_move(s->res, &plan->moves[i], t);
	}
	return r < 0 ? r : record_point(s, t, plan->n);
}

int sim_run_loop(struct sim *s)
{
	struct qv_pol_plan plan = {};
	double next = 0.1, ms_sum = 0;
	int r = 0;
	next += s->cfg->pol.interval_s;
	while (r == 0) {
		int mi = next_migration(s);
		double tm = mi >= 0 ? s->mig[mi].done : INFINITY;
		if ((tm < next ? tm : next) >= s->cfg->duration_s)
			break;
		if (tm <= next) {
			r = process_migrations(s, tm);
			continue;
		}
		r = decision(s, next, &plan, &ms_sum);
		next += s->cfg->pol.interval_s;
	}
	qv_pol_plan_free(&plan);
	if (s->res->rounds)
		s->res->decision_ms_mean = ms_sum / s->res->rounds;
	return r;
}
