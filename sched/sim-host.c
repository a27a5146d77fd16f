/* SPDX-License-Identifier: MIT */
/* What CloudSim does to a host at every event (HostDynamicWorkload.
 * updateVmsProcessing with VmSchedulerTimeSharedOverSubscription): VMs
 * read their utilisation, the scheduler hands out MIPS (a VM capped at one
 * core, a migrating VM 90 % on its source and 10 % on its destination,
 * everything scaled down when over-subscribed), and host and VM state
 * entries are recorded for the SLA metrics. Energy is integrated between
 * events as CloudSim does: trapezoid between the previous and the new
 * utilisation, nothing for an interval that starts switched off. */
#include <math.h>
#include <stdlib.h>

#include "sched/policy-internal.h"
#include "sched/sim-internal.h"

static void vm_process(struct sim *s, int i, double t)
{
	struct qv_pol_vm *v = &s->dc.vms[i];
	struct sim_vm *sv = &s->v[i];
	double u = qv_trace_util(s->tr, i, t);
	v->req_mips = u * v->mips;
	v->sched_req = v->req_mips;
	v->util_now = u;
	/* Assumed for --cost-model: a VM dirties memory in proportion to its
	 * CPU, 200 Mbit/s when fully busy (no trace records it). */
	if (s->cfg->cost_model)
		v->dirty_mbps = 200 * u;
	/* PowerVm keeps a sample only at (t - 0.1) % interval == 0. */
	if (t > sv->hist_time && fmod(t - 0.1, s->cfg->pol.interval_s) == 0) {
		if (t != 0 || u != 0) {
			int n = v->nhist < QV_POL_HIST ? v->nhist + 1 : QV_POL_HIST;
			for (int k = n - 1; k > 0; k--)
				v->hist[k] = v->hist[k - 1];
			v->hist[0] = u;
			v->nhist = n;
		}
		sv->hist_time = t;
	}
}

static void vm_entry(struct sim_vm *sv, double t, double alloc, double req, bool mig)
{
	struct sim_entry *e = &sv->last;
	if (e->valid && e->t != t) {
		double dt = t - e->t;
		sv->req_int += e->req * dt;
		sv->alloc_int += e->alloc * dt;
		if (e->alloc < e->req && e->flag)
			sv->mig_deg += (e->req - e->alloc) * dt;
	}
	*e = (struct sim_entry){ t, alloc, req, mig, true };
}

static void host_step(struct sim *s, struct sim_host *sh, const struct sim_entry *e)
{
	/* getTimesBeforeHostShutdown over the finished entry e. */
	if (sh->prev_active && !e->flag) {
		s->shutdowns++;
		s->shutdown_sum += e->t - sh->switched_on;
	}
	if (!sh->prev_active && e->flag)
		sh->switched_on = e->t;
	sh->prev_active = e->flag;
}

static void host_entry(struct sim *s, struct sim_host *sh, double t, double alloc, double req)
{
	struct sim_entry *e = &sh->last;
	if (e->valid && e->t != t) {
		double dt = t - e->t;
		if (e->flag) {
			sh->active_s += dt;
			if (e->alloc < e->req)
				sh->viol_s += dt;
		}
		host_step(s, sh, e);
	}
	*e = (struct sim_entry){ t, alloc, req, alloc > 0, true };
}

/* The time-shared scheduler's allocation of every VM on host h. */
static void allocate(struct sim *s, struct qv_pol_host *h, double *alloc)
{
	double total = qv_pol_host_total_mips(h), avail = total, sum = 0;
	bool over = false;
	for (int i = 0; i < h->nvm; i++) {
		const struct qv_pol_vm *v = &s->dc.vms[h->vm[i]];
		double c = v->req_mips > h->core_mips ? h->core_mips : v->req_mips;
		bool in = qv_pol_host_is_in(h, h->vm[i]), out = v->migrating && !in;
		double need = in ? c * 0.1 : c;
		sum += need;
		if (!over && avail >= need) {
			avail -= need;
			alloc[i] = out ? c * 0.9 : in ? c * 0.1 : c;
		} else if (need > 0) {
			over = true;
		}
	}
	if (!over)
		return;
	double scale = total / sum;
	for (int i = 0; i < h->nvm; i++) {
		const struct qv_pol_vm *v = &s->dc.vms[h->vm[i]];
		double c = v->req_mips > h->core_mips ? h->core_mips : v->req_mips;
		bool in = qv_pol_host_is_in(h, h->vm[i]), out = v->migrating && !in;
		alloc[i] = out ? floor(c * scale * 0.9) : in ? floor(c * 0.1 * scale) : floor(c * scale);
	}
}

void sim_host_update(struct sim *s, int hi, double t)
{
	struct qv_pol_host *h = &s->dc.hosts[hi];
	struct sim_host *sh = &s->h[hi];
	sh->prev_util_mips = h->util_mips;
	for (int i = 0; i < h->nvm; i++)
		vm_process(s, h->vm[i], t);
	double alloc[h->nvm + 1], util = 0, req = 0;
	allocate(s, h, alloc);
	for (int i = 0; i < h->nvm; i++) {
		const struct qv_pol_vm *v = &s->dc.vms[h->vm[i]];
		double a = alloc[i];
		if (!qv_pol_host_is_in(h, h->vm[i])) {
			vm_entry(&s->v[h->vm[i]], t, a, v->req_mips, v->migrating);
			if (v->migrating)
				a /= 0.9;
		}
		util += a;
		req += v->req_mips;
	}
	h->util_mips = util;
	h->hvalid = false;
	host_entry(s, sh, t, util, req);
}

static double clamp_util(double mips, double total)
{
	double u = mips / total;
	return u > 1 && u < 1.01 ? 1 : u;
}

/* Power of `demand` MIPS packed onto the most efficient hosts, full. */
static double bound_power(const struct sim *s, double demand)
{
	double p = 0;
	for (int pass = 0; pass < 2 && demand > 0; pass++)
		for (int i = 0; i < s->dc.nhosts && demand > 0; i++) {
			const struct qv_pol_host *h = &s->dc.hosts[i];
			/* odd hosts (G5) are the more efficient type */
			if ((i % 2) != (pass == 0))
				continue;
			double cap = qv_pol_host_total_mips(h), take = demand < cap ? demand : cap;
			p += qv_pol_power_at(&h->power, take / cap);
			demand -= take;
		}
	return p;
}

void sim_update_all(struct sim *s, double t)
{
	double dt = t - s->last_t, demand = 0;
	for (int i = 0; i < s->dc.nhosts; i++)
		sim_host_update(s, i, t);
	for (int i = 0; dt > 0 && i < s->dc.nhosts; i++) {
		const struct qv_pol_host *h = &s->dc.hosts[i];
		double total = qv_pol_host_total_mips(h);
		double from = clamp_util(s->h[i].prev_util_mips, total), to = clamp_util(h->util_mips, total);
		if (from == 0)
			continue;
		double pf = qv_pol_power_at(&h->power, from), pt = qv_pol_power_at(&h->power, to);
		s->energy_ws += (pf + (pt - pf) / 2) * dt;
	}
	if (dt > 0) {
		for (int i = 0; i < s->dc.nvms; i++)
			if (s->dc.vms[i].host >= 0)
				demand += s->dc.vms[i].req_mips;
		s->bound_ws += bound_power(s, demand) * dt;
	}
	/* CloudSim retires a VM whose request is exactly 0 (its "cloudlet
	 * finished"): it leaves its host for good. */
	for (int i = 0; i < s->dc.nhosts; i++) {
		struct qv_pol_host *h = &s->dc.hosts[i];
		for (int j = 0; j < h->nvm; j++) {
			int vm = h->vm[j];
			struct qv_pol_vm *v = &s->dc.vms[vm];
			if (v->migrating || v->req_mips != 0 || v->host != i)
				continue;
			qv_pol_host_remove(h, vm);
			v->host = -1;
			s->v[vm].gone = true;
			s->res->vms_finished++;
			j--;
		}
	}
	s->last_t = t;
}

void sim_finish(struct sim *s)
{
	for (int i = 0; i < s->dc.nhosts; i++)
		if (s->h[i].last.valid)
			host_step(s, &s->h[i], &s->h[i].last);
}
