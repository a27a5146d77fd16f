/* SPDX-License-Identifier: MIT */
/* qvisor's consolidation policy (docs/policy.md, "qvisor's policy").
 *
 * Every VM's next-interval CPU is forecast as its request now plus an
 * uncertainty: the RMS of its last one-step changes (a random walk's
 * one-step error). A host's forecast is the sum of requests plus
 * z * sqrt(sum of variances) (independent VMs). With that:
 *  - overload: the forecast exceeds the host (a shortfall is what the SLA
 *    counts), or a VM's forecast exceeds one core (it would be capped);
 *  - selection: the cheapest migrations that clear the excess - one VM
 *    that covers it in the shortest migration, else the most CPU per
 *    second of migration (RAM over the link; with the cost model, the
 *    pre-copy rounds its dirty rate adds);
 *  - placement: the host whose power grows least, counting the idle power
 *    of a host that has to be switched on (PABFD counts it as free and so
 *    spreads VMs onto fresh hosts only to empty them again), never past
 *    the forecast bound;
 *  - underload: the least-used hosts are emptied only onto hosts already
 *    on, within the bound, and not with VMs moved in the last few rounds
 *    (cooldown: no ping-pong).
 * z follows from the costs, not from the traces: it is the one-sided
 * quantile at which a shortfall lasting a whole interval costs as much as
 * a migration (about 20 s of degradation per 300 s: P = 0.067, z ~ 1.5).
 * The cooldown (5 rounds) trades energy for migrations; it was chosen on
 * one day (20110303) only and checked on held-out days (docs/policy.md). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched/policy-internal.h"

struct qv_state {
	struct qv_pol_dc *dc;
	const struct qv_pol_cfg *cfg;
	struct qv_pol_plan *plan;
	double *m, *var;   /* per host: forecast mean (MIPS) and variance */
	double *ram;       /* per host: RAM in use (memory-aware mode) */
	double *pw;        /* per host: power at the forecast mean (cached) */
	double *vm_sd;     /* per VM: forecast standard deviation (MIPS) */
	bool *locked;      /* hosts not to empty or fill this round */
	bool *on;          /* hosts on (measured, or switched on this round) */
	double max_room;   /* upper bound of any open host's room (underload) */
	int *owner;
};

static double vm_sd(const struct qv_pol_vm *v)
{
	int n = v->nhist < 12 ? v->nhist : 12;
	if (n < 3)
		return 0.15 * v->mips; /* unknown yet: a wide prior */
	double s = 0;
	for (int i = 0; i + 1 < n; i++) {
		double d = v->hist[i] - v->hist[i + 1];
		s += d * d;
	}
	return sqrt(s / (n - 1)) * v->mips;
}

static double bound(const struct qv_state *s, double m, double var)
{
	return m + s->cfg->q_z * sqrt(var);
}

static bool host_over(const struct qv_state *s, int h)
{
	const struct qv_pol_host *ho = &s->dc->hosts[h];
	if (bound(s, s->m[h], s->var[h]) > qv_pol_host_total_mips(ho))
		return true;
	for (int i = 0; i < ho->nvm; i++) {
		const struct qv_pol_vm *v = &s->dc->vms[ho->vm[i]];
		if (v->req_mips + s->cfg->q_z * s->vm_sd[ho->vm[i]] > ho->core_mips && v->mips > ho->core_mips)
			return true;
	}
	return false;
}

static bool fits(const struct qv_state *s, int h, int vm)
{
	const struct qv_pol_host *ho = &s->dc->hosts[h];
	const struct qv_pol_vm *v = &s->dc->vms[vm];
	double sd = s->vm_sd[vm], cap = s->cfg->q_target * qv_pol_host_total_mips(ho);
	/* the bound is at least the sum of means: a cheap first test */
	if (s->cfg->q_z >= 0 && s->m[h] + v->req_mips > cap)
		return false;
	if (v->mips > ho->core_mips && v->req_mips + s->cfg->q_z * sd > ho->core_mips)
		return false;
	if (s->dc->memory_aware && s->ram[h] + v->ram_mb > ho->ram_mb)
		return false;
	return bound(s, s->m[h] + v->req_mips, s->var[h] + sd * sd) <= cap;
}

/* Marginal power of vm on h; a host that is off pays its idle power. */
static double marginal_w(const struct qv_state *s, int h, int vm)
{
	const struct qv_pol_host *ho = &s->dc->hosts[h];
	double t = qv_pol_host_total_mips(ho);
	double after = qv_pol_power_at(&ho->power, (s->m[h] + s->dc->vms[vm].req_mips) / t);
	return s->on[h] ? after - s->pw[h] : after;
}

static int best_host(struct qv_state *s, int vm, int from, bool allow_off)
{
	int best = -1;
	double min = INFINITY;
	for (int h = 0; h < s->dc->nhosts; h++) {
		if (h == from || s->locked[h] || (!s->on[h] && !allow_off) || !fits(s, h, vm))
			continue;
		double w = marginal_w(s, h, vm);
		if (w < min) {
			min = w;
			best = h;
		}
	}
	return best;
}

static void account(struct qv_state *s, int h, int vm, int sign)
{
	double sd = s->vm_sd[vm];
	s->m[h] += sign * s->dc->vms[vm].req_mips;
	s->var[h] += sign * sd * sd;
	s->ram[h] += sign * s->dc->vms[vm].ram_mb;
	if (s->var[h] < 0)
		s->var[h] = 0;
	s->pw[h] = qv_pol_power_at(&s->dc->hosts[h].power, s->m[h] / qv_pol_host_total_mips(&s->dc->hosts[h]));
}

static int move(struct qv_state *s, int vm, int from, int to, enum qv_pol_why why, const char *what)
{
	double tf = qv_pol_host_total_mips(&s->dc->hosts[from]);
	double tt = qv_pol_host_total_mips(&s->dc->hosts[to]);
	double before = bound(s, s->m[from], s->var[from]) / tf;
	account(s, from, vm, -1);
	account(s, to, vm, +1);
	s->on[to] = true;
	return qv_pol_plan_add(s->plan, vm, from, to, why, before,
			       "host %d %s (forecast %.1f%% at z=%.2g); to host %d (forecast %.1f%% with it)",
			       from, what, 100 * before, s->cfg->q_z, to,
			       100 * bound(s, s->m[to], s->var[to]) / tt);
}

/* The VM whose move clears host h's excess most cheaply. */
static int pick(const struct qv_state *s, int h, const bool *taken)
{
	const struct qv_pol_host *ho = &s->dc->hosts[h];
	double excess = bound(s, s->m[h], s->var[h]) - qv_pol_host_total_mips(ho);
	int cover = -1, ratio = -1;
	double cover_ram = INFINITY, best_ratio = -1;
	for (int i = 0; i < ho->nvm; i++) {
		int id = ho->vm[i];
		const struct qv_pol_vm *v = &s->dc->vms[id];
		if (v->migrating || taken[id])
			continue;
		if (v->mips > ho->core_mips && v->req_mips + s->cfg->q_z * s->vm_sd[id] > ho->core_mips)
			return id; /* it cannot get its CPU here at all */
		/* cost: the migration's duration (RAM, and with the cost
		 * model the pre-copy rounds its dirty rate adds) */
		double cost = qv_pol_migration_time(v, ho, s->cfg->cost_model);
		if (v->req_mips >= excess && cost < cover_ram) {
			cover_ram = cost;
			cover = id;
		}
		if (v->req_mips / cost > best_ratio) {
			best_ratio = v->req_mips / cost;
			ratio = id;
		}
	}
	return cover >= 0 ? cover : ratio;
}

static int overload_pass(struct qv_state *s, bool *taken)
{
	int r = 0;
	for (int h = 0; h < s->dc->nhosts && r == 0; h++) {
		if (!host_over(s, h))
			continue;
		s->plan->overloaded++;
		s->locked[h] = true;
		while (r == 0 && host_over(s, h)) {
			int vm = pick(s, h, taken);
			if (vm < 0)
				break;
			taken[vm] = true;
			int to = best_host(s, vm, h, false);
			if (to < 0)
				to = best_host(s, vm, h, true);
			if (to < 0)
				continue; /* nowhere to go: it stays */
			r = move(s, vm, h, to, QV_WHY_OVERLOAD, "overloaded");
		}
	}
	return r;
}

struct key {
	int id;
	double v;
};

static int cmp_key(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	return x->v != y->v ? (x->v < y->v ? -1 : 1) : x->id - y->id;
}

/* Empty host h onto hosts already on, or leave it as it is. */
static int try_empty(struct qv_state *s, int h)
{
	struct qv_pol_host *ho = &s->dc->hosts[h];
	int n = ho->nvm, to[n + 1], vms[n + 1], k = 0, r = 0;
	for (int i = 0; i < n; i++) {
		const struct qv_pol_vm *v = &s->dc->vms[ho->vm[i]];
		if (v->migrating || (v->last_move >= 0 && s->dc->round - v->last_move < s->cfg->q_cooldown))
			return 0;
		vms[i] = ho->vm[i];
	}
	for (int i = 0; i < n; i++)
		if (s->dc->vms[vms[i]].req_mips > s->max_room)
			return 0; /* fits on no host: skip the scans */
	s->locked[h] = true;
	for (k = 0; k < n; k++) {
		to[k] = best_host(s, vms[k], h, false);
		if (to[k] < 0)
			break;
		account(s, to[k], vms[k], +1);
	}
	for (int i = 0; i < k; i++)
		account(s, to[i], vms[i], -1);
	if (k < n) {
		s->locked[h] = false; /* stays as it is, and may take VMs */
		return 0;
	}
	for (int i = 0; i < n && r == 0; i++) {
		r = move(s, vms[i], h, to[i], QV_WHY_UNDERLOAD, "underloaded, emptied");
		s->locked[to[i]] = true;
	}
	s->on[h] = false;
	s->plan->underloaded++;
	return r;
}

static int underload_pass(struct qv_state *s)
{
	int nh = s->dc->nhosts, r = 0;
	struct key *k = malloc(sizeof(*k) * nh);
	if (!k)
		return -ENOMEM;
	for (int h = 0; h < nh; h++)
		k[h] = (struct key){ h, s->m[h] / qv_pol_host_total_mips(&s->dc->hosts[h]) };
	qsort(k, nh, sizeof(*k), cmp_key);
	/* Rooms only shrink for hosts that stay open (targets fill up, emptied
	 * hosts are locked), so this stays an upper bound: a VM bigger than
	 * it fits nowhere (adding r raises a bound by at least r). */
	s->max_room = 0;
	for (int h = 0; h < nh; h++) {
		double room = s->cfg->q_target * qv_pol_host_total_mips(&s->dc->hosts[h]) -
			      bound(s, s->m[h], s->var[h]);
		if (s->on[h] && !s->locked[h] && room > s->max_room)
			s->max_room = room;
	}
	for (int i = 0; i < nh && r == 0; i++) {
		int h = k[i].id;
		if (s->locked[h] || !s->on[h] || s->dc->hosts[h].nvm == 0 || k[i].v > s->cfg->q_consolidate)
			continue;
		r = try_empty(s, h);
	}
	free(k);
	return r;
}

int qv_pol_round_qvisor(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg, struct qv_pol_plan *plan)
{
	int nh = dc->nhosts, r = -ENOMEM;
	struct qv_state s = { .dc = dc, .cfg = cfg, .plan = plan };
	s.m = calloc(nh, sizeof(double));
	s.var = calloc(nh, sizeof(double));
	s.ram = calloc(nh, sizeof(double));
	s.pw = calloc(nh, sizeof(double));
	s.locked = calloc(nh, sizeof(bool));
	s.on = calloc(nh, sizeof(bool));
	s.vm_sd = calloc(dc->nvms + 1, sizeof(double));
	bool *taken = calloc(dc->nvms + 1, sizeof(bool));
	if (!s.m || !s.var || !s.ram || !s.pw || !s.locked || !s.on || !s.vm_sd || !taken)
		goto out;
	for (int i = 0; i < dc->nvms; i++)
		s.vm_sd[i] = vm_sd(&dc->vms[i]);
	for (int h = 0; h < nh; h++) {
		struct qv_pol_host *ho = &dc->hosts[h];
		qv_pol_host_refresh(dc, ho);
		s.on[h] = ho->util_mips > 0;
		s.pw[h] = qv_pol_power_at(&ho->power, 0);
		for (int i = 0; i < ho->nvm; i++)
			if (dc->vms[ho->vm[i]].host == h || qv_pol_host_is_in(ho, ho->vm[i]))
				account(&s, h, ho->vm[i], +1);
	}
	r = overload_pass(&s, taken);
	if (r == 0)
		r = underload_pass(&s);
out:
	free(s.m);
	free(s.var);
	free(s.ram);
	free(s.pw);
	free(s.locked);
	free(s.on);
	free(s.vm_sd);
	free(taken);
	return r;
}
