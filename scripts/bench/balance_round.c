/* SPDX-License-Identifier: MIT */
/* One cluster balancer round (sched/balance.h) against the simulator's
 * decision round (qv_pol_round, sched/policy.h) on the same synthetic
 * datacenter as policy_round.c: H hosts (alternating G4/G5), V VMs of
 * the four CloudSim types, 30-sample histories around a random level
 * (mean 15 %), so hosts are 70-95 % busy. The datacenter becomes a
 * cluster snapshot: a host's capacity is its MIPS (1 MIPS = 1 millicore),
 * 64 GiB of RAM (the simulator does not count RAM; 4 GiB could not hold
 * 20 VMs), its history the MIPS-weighted sum of its VMs'.
 *   balance_round H V POLICY...   e.g. balance_round 1000 20000 thr-mmt lr-mmt qvisor
 * Prints, per policy, the CPU time of qv_pol_round and of the balancer
 * with the default limits and without limits (every overloaded host
 * relieved in one round), and a digest of each plan (same digest = same
 * decisions, run to run). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sched/balance.h"
#include "scripts/bench/synth-dc.h"

struct cluster {
	struct qv_pl_snapshot snap;
	struct qv_pl_host *hosts;
	struct qv_pl_vm *vms;
	double *hhist, *vhist;
	char (*hname)[16], (*vname)[16];
};

static void to_snapshot(struct qv_pol_dc *dc, struct cluster *c)
{
	int nh = dc->nhosts, nv = dc->nvms;
	c->hosts = calloc(nh, sizeof(*c->hosts));
	c->vms = calloc(nv, sizeof(*c->vms));
	c->hhist = calloc((size_t)nh * QV_POL_HIST, sizeof(double));
	c->vhist = calloc((size_t)nv * QV_POL_HIST, sizeof(double));
	c->hname = calloc(nh, sizeof(*c->hname));
	c->vname = calloc(nv, sizeof(*c->vname));
	for (int h = 0; h < nh; h++) {
		struct qv_pol_host *ph = &dc->hosts[h];
		int n;
		const double *hs = qv_pol_host_history(dc, ph, &n);
		for (int k = 0; k < n; k++)
			c->hhist[(size_t)h * QV_POL_HIST + k] = hs[k];
		snprintf(c->hname[h], sizeof(c->hname[h]), "host%05d", h);
		c->hosts[h] = (struct qv_pl_host){
			.name = c->hname[h], .cpu_milli = (uint32_t)qv_pol_host_total_mips(ph),
			.mem_mib = 65536, .cpu_used_milli = ph->util_mips, .schedulable = true,
			.power = &ph->power, .bw_mbps = ph->bw_mbps,
			.cpu_hist = &c->hhist[(size_t)h * QV_POL_HIST], .ncpu_hist = n,
		};
	}
	for (int i = 0; i < nv; i++) {
		struct qv_pol_vm *v = &dc->vms[i];
		for (int k = 0; k < v->nhist; k++)
			c->vhist[(size_t)i * QV_POL_HIST + k] = v->hist[k];
		snprintf(c->vname[i], sizeof(c->vname[i]), "vm%06d", i);
		c->vms[i] = (struct qv_pl_vm){
			.name = c->vname[i], .host = v->host, .vcpus = 1, .mem_mib = (uint64_t)v->ram_mb,
			.cpu_used_milli = v->req_mips, .mem_used_mib = (uint64_t)v->ram_mb,
			.cpu_hist = &c->vhist[(size_t)i * QV_POL_HIST], .ncpu_hist = v->nhist,
			.dirty_mbps = 200 * v->util_now, .last_move_s = -1, .prev_host = -1,
		};
		c->hosts[v->host].mem_used_mib += (uint64_t)v->ram_mb;
	}
	c->snap = (struct qv_pl_snapshot){ c->hosts, nh, c->vms, nv };
}

static uint64_t digest(const struct qv_bal_plan *p)
{
	uint64_t d = 1469598103934665603ULL;
	for (int i = 0; i < p->n; i++) {
		char buf[480];
		int n = snprintf(buf, sizeof(buf), "%d %d %d %d %s\n", p->d[i].kind, p->d[i].vm, p->d[i].from,
				 p->d[i].to, p->d[i].reason);
		for (int k = 0; k < n && k < (int)sizeof(buf); k++)
			d = (d ^ (unsigned char)buf[k]) * 1099511628211ULL;
	}
	return d;
}

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void bal(const char *label, const struct qv_bal_cfg *cfg, struct cluster *c, double pol_s)
{
	qv_bal *b;
	struct qv_bal_plan p;
	struct qv_error e = { 0 };
	if (qv_bal_new(cfg, &b) < 0)
		exit(1);
	double a = cpu_now();
	int r = qv_bal_round(b, &c->snap, 0, &p, &e);
	double s = cpu_now() - a;
	printf("  balancer %-10s round=%.3f s CPU  ratio(policy round / balancer)=%.1fx  overloaded=%d moves=%d "
	       "deferred=%d skipped=%d digest=%016llx%s\n",
	       label, s, s > 0 ? pol_s / s : 0, p.overloaded, p.moves, p.deferred, p.skipped,
	       (unsigned long long)digest(&p), r < 0 ? " (failed)" : "");
	qv_bal_plan_free(&p);
	qv_bal_free(b);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOSTS VMS POLICY...\n", argv[0]);
		return 2;
	}
	int nh = atoi(argv[1]), nv = atoi(argv[2]);
	for (int i = 3; i < argc; i++) {
		struct qv_bal_cfg cfg;
		qv_bal_cfg_defaults(&cfg);
		cfg.mode = QV_BAL_ADVISE;
		if (qv_pol_cfg_parse(argv[i], 0, &cfg.pol) < 0) {
			fprintf(stderr, "unknown policy %s\n", argv[i]);
			return 2;
		}
		struct qv_pol_dc dc = { 0 };
		struct qv_pol_plan plan = { 0 };
		build(&dc, nh, nv);
		double a = cpu_now();
		qv_pol_round(&dc, &cfg.pol, &plan);
		double pol_s = cpu_now() - a;
		char name[32];
		printf("%-12s hosts=%d vms=%d policy round (qv_pol_round)=%.3f s CPU moves=%d\n",
		       qv_pol_cfg_name(&cfg.pol, name, sizeof(name)), nh, nv, pol_s, plan.n);
		struct cluster c;
		a = cpu_now();
		to_snapshot(&dc, &c);
		printf("  snapshot  %.3f s CPU (building it from the datacenter)\n", cpu_now() - a);
		bal("limits", &cfg, &c, pol_s);
		cfg.max_cluster = cfg.max_per_host = 0;
		bal("unlimited", &cfg, &c, pol_s);
		cfg.power_saving = true;
		bal("unl+power", &cfg, &c, pol_s);
		fflush(stdout);
		qv_pol_plan_free(&plan);
		for (int h = 0; h < nh; h++)
			qv_pol_host_free(&dc.hosts[h]);
		free(dc.hosts);
		free(dc.vms);
		free(c.hosts);
		free(c.vms);
		free(c.hhist);
		free(c.vhist);
		free(c.hname);
		free(c.vname);
	}
	return 0;
}
