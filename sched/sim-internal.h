/* SPDX-License-Identifier: MIT */
#pragma once
/* Simulator state shared by sched/sim-*.c. */
#include "sched/sim.h"

/* Last state-history entry of a host or VM (CloudSim's
 * HostStateHistoryEntry / VmStateHistoryEntry), accumulated online: an
 * entry becomes final when one with a later time arrives. */
struct sim_entry {
	double t, alloc, req;
	bool flag; /* host: active; VM: in migration */
	bool valid;
};

struct sim_host {
	double prev_util_mips;
	struct sim_entry last;
	double active_s, viol_s;     /* SLATAH numerator/denominator */
	bool prev_active;            /* getTimesBeforeHostShutdown state */
	double switched_on;
};

struct sim_vm {
	double hist_time;            /* PowerVm.previousTime */
	struct sim_entry last;
	double req_int, alloc_int, mig_deg; /* MIPS x s */
	bool gone;                   /* retired by CloudSim at 0 % */
};

struct sim_mig {
	int vm, to;
	double done;
	long seq;
};

struct sim_bal; /* sched/sim-balance.c */

struct sim {
	const struct qv_trace *tr;
	const struct qv_sim_cfg *cfg;
	struct qv_pol_dc dc;
	struct sim_host *h;
	struct sim_vm *v;
	struct sim_mig *mig;
	int nmig, capmig;
	long seq;
	double last_t, energy_ws, bound_ws;
	long shutdowns;
	double shutdown_sum;
	struct qv_sim_result *res;
	struct sim_bal *bal;         /* cfg->balance: the cluster balancer's state */
};

/* sched/sim-host.c */
void sim_host_update(struct sim *s, int h, double t);
/* updateCloudetProcessingWithoutSchedulingFutureEventsForce at t. */
void sim_update_all(struct sim *s, double t);
void sim_finish(struct sim *s);
/* sched/sim-balance.c: a decision round by the cluster balancer. */
int sim_balance_round(struct sim *s, double t, struct qv_pol_plan *plan);
void sim_balance_free(struct sim *s);
/* sched/sim-engine.c: the event loop up to the time limit. */
int sim_run_loop(struct sim *s);
