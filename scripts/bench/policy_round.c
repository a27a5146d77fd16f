/* SPDX-License-Identifier: MIT */
/* One decision round on a synthetic datacenter: H hosts (alternating
 * G4/G5), V VMs of the four CloudSim types dealt round-robin, each with a
 * 30-sample history around a random level (mean 15 %). Prints the round's
 * CPU time for each policy named on the command line, and a digest of the
 * plan (every move and its reason) so that two builds can be shown to
 * decide exactly the same.
 *   policy_round H V POLICY...   e.g. policy_round 1000 20000 iqr-mmt qvisor */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "scripts/bench/synth-dc.h"

/* FNV-1a over every move: VM, hosts, why and the reason text. */
static uint64_t plan_digest(const struct qv_pol_plan *plan)
{
	uint64_t d = 1469598103934665603ULL;
	for (int i = 0; i < plan->n; i++) {
		const struct qv_pol_move *m = &plan->moves[i];
		char buf[200];
		int n = snprintf(buf, sizeof(buf), "%d %d %d %d %s\n", m->vm, m->from, m->to, (int)m->why, m->reason);
		for (int k = 0; k < n && k < (int)sizeof(buf); k++)
			d = (d ^ (unsigned char)buf[k]) * 1099511628211ULL;
	}
	return d;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOSTS VMS POLICY...\n", argv[0]);
		return 2;
	}
	int nh = atoi(argv[1]), nv = atoi(argv[2]);
	for (int p = 3; p < argc; p++) {
		struct qv_pol_cfg cfg;
		if (qv_pol_cfg_parse(argv[p], 0, &cfg) < 0) {
			fprintf(stderr, "unknown policy %s\n", argv[p]);
			return 2;
		}
		struct qv_pol_dc dc = {};
		build(&dc, nh, nv);
		struct qv_pol_plan plan = {};
		struct timespec a, b;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		int r = qv_pol_round(&dc, &cfg, &plan);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
		char name[32];
		printf("%-12s hosts=%d vms=%d round=%.3f s CPU overloaded=%d emptied=%d moves=%d digest=%016llx%s\n",
		       qv_pol_cfg_name(&cfg, name, sizeof(name)), nh, nv, s, plan.overloaded, plan.underloaded,
		       plan.n, (unsigned long long)plan_digest(&plan), r < 0 ? " (failed)" : "");
		fflush(stdout);
		qv_pol_plan_free(&plan);
		for (int h = 0; h < nh; h++)
			qv_pol_host_free(&dc.hosts[h]);
		free(dc.hosts);
		free(dc.vms);
	}
	return 0;
}
