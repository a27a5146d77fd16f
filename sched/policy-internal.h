/* SPDX-License-Identifier: MIT */
#pragma once
/* Shared by the sched/policy-*.c files only. */
#include "sched/policy.h"

bool qv_pol_overloaded_after(const struct qv_pol_dc *dc, struct qv_pol_host *h, int vm,
			     const struct qv_pol_cfg *cfg);
/* CloudSim's Host.getUtilizationOfCpu(): share in use, 1..1.01 read as 1. */
double qv_pol_host_util(const struct qv_pol_host *h);
/* Host.vmCreate during a round: append and take its MIPS/RAM. */
int qv_pol_vm_create(struct qv_pol_dc *dc, int host, int vm);
/* Host.vmDestroy during a round: drop it and recompute the scheduler. */
void qv_pol_vm_destroy(struct qv_pol_dc *dc, int host, int vm);
int qv_pol_plan_add(struct qv_pol_plan *plan, int vm, int from, int to, enum qv_pol_why why,
		    double metric, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* Snapshot of every host's list, restored after a round. */
struct qv_pol_saved {
	int *vm;
	int *off; /* hosts + 1 offsets into vm */
};
int qv_pol_save(const struct qv_pol_dc *dc, struct qv_pol_saved *ret);
void qv_pol_restore(struct qv_pol_dc *dc, struct qv_pol_saved *s);
/* Decreasing CPU in use now, ties in the given order. */
int qv_pol_sort_by_cpu(const struct qv_pol_dc *dc, int *vms, int n);

/* --- per-round caches (sched/policy-fast.c) --------------------------
 * Each host's requested MIPS and history statistics, and each VM's, so
 * that "would host h be overloaded with vm" is mostly answered from
 * bounds; the exact detector runs only when the bounds cannot decide.
 * Same answer as qv_pol_overloaded_after, always. */
int qv_pol_fast_begin(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg);
void qv_pol_fast_end(struct qv_pol_dc *dc);
/* Host h's list changed: recompute its statistics. */
void qv_pol_fast_host_changed(struct qv_pol_dc *dc, int h);
/* Power at the host's last measurement (what PABFD subtracts). */
double qv_pol_fast_power_now(const struct qv_pol_dc *dc, const struct qv_pol_host *h);
/* PABFD's candidate search through the round's index of hosts by
 * headroom, in host order: qv_pol_find_host's choice. Within a round a
 * host once excluded stays excluded (the underload pass only adds). */
int qv_pol_fast_find_host(struct qv_pol_dc *dc, int vm, const bool *excluded, const struct qv_pol_cfg *cfg);
/* One host of the plain scan (sched/policy-round.c). */
void qv_pol_pabfd_visit(const struct qv_pol_dc *dc, int i, int vm, const struct qv_pol_cfg *cfg,
			double *min, int *best);
/* How many answers the bounds gave and how many the exact detector gave. */
void qv_pol_fast_counts(const struct qv_pol_dc *dc, long *ret_bounds, long *ret_exact);
bool qv_pol_fast_overloaded_after(const struct qv_pol_dc *dc, struct qv_pol_host *h, int vm,
				  const struct qv_pol_cfg *cfg);
