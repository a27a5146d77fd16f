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
