/* SPDX-License-Identifier: MIT */
#pragma once
/* The synthetic datacenter of the decision-round benches (policy_round.c,
 * balance_round.c): H hosts (alternating G4/G5), V VMs of the four
 * CloudSim types dealt round-robin, each with a 30-sample history around a
 * random level (mean 15 %), so hosts are 70-95 % busy. Same seed, same
 * datacenter. */
#include <stdlib.h>

#include "sched/policy.h"
#include "sched/sim.h"

static uint64_t seed = 88172645463325252ULL;
static double rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (double)(seed >> 11) / (1ULL << 53);
}

static void build(struct qv_pol_dc *dc, int nh, int nv)
{
	seed = 88172645463325252ULL;
	dc->nhosts = nh;
	dc->nvms = nv;
	dc->hosts = calloc(nh, sizeof(*dc->hosts));
	dc->vms = calloc(nv, sizeof(*dc->vms));
	dc->rng = 1;
	for (int h = 0; h < nh; h++)
		qv_sim_host_init(&dc->hosts[h], h);
	for (int i = 0; i < nv; i++) {
		struct qv_pol_vm *v = &dc->vms[i];
		qv_sim_vm_init(v, i % 4 * (nv / 4), nv);
		double level = 0.3 * rnd();
		for (int k = 0; k < QV_POL_HIST; k++)
			v->hist[k] = level * (0.7 + 0.6 * rnd());
		v->nhist = QV_POL_HIST;
		v->util_now = v->hist[0];
		v->req_mips = v->sched_req = v->util_now * v->mips;
		/* hosts that cannot give a 2500-MIPS VM a core get a smaller one */
		int h = i % nh;
		if (v->mips > dc->hosts[h].core_mips)
			h = (h + 1) % nh;
		v->host = h;
		qv_pol_host_add(&dc->hosts[h], i);
		dc->hosts[h].util_mips += v->req_mips;
	}
	for (int h = 0; h < nh; h++)
		qv_pol_host_refresh(dc, &dc->hosts[h]);
}
