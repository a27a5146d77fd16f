/* SPDX-License-Identifier: MIT */
#pragma once
/* Trace-driven simulator for the consolidation policies (docs/policy.md):
 * CloudSim 3.0.3's power experiment (800 hosts, four VM types, 300 s
 * rounds over 24 h) replayed through sched/policy.h, with the metrics the
 * paper reports in both their pooled (CloudSim) and per-entity (paper)
 * forms. Deterministic: the same trace, policy and seed give the same
 * result. */
#include "common/error.h"
#include "sched/balance.h"
#include "sched/policy.h"

/* CPU utilisation traces: one row per VM, fractions in [0, 1]. */
struct qv_trace {
	int nvms;
	int nsamples;      /* per VM; util has nsamples + 1 (last repeated) */
	double interval_s; /* between samples (300) */
	double *util;      /* nvms x (nsamples + 1) */
	char **names;      /* file names / VM ids, sorted */
};
/* A PlanetLab day: a directory, one file per VM, one integer percent per
 * line; files read in sorted name order (names may contain spaces). */
int qv_trace_read_planetlab(const char *dir, struct qv_trace *ret, struct qv_error *errp);
/* Azure public VM trace CPU readings: "timestamp,vmid,min,max,avg" rows,
 * 5-minute samples; avg is used. VMs sorted by id; missing samples are 0. */
int qv_trace_read_azure(const char *csv, struct qv_trace *ret, struct qv_error *errp);
/* A directory is PlanetLab, a file is Azure CSV. */
int qv_trace_read(const char *path, struct qv_trace *ret, struct qv_error *errp);
void qv_trace_free(struct qv_trace *t);
/* Utilisation of VM i at time t, interpolated as CloudSim's
 * UtilizationModelPlanetLabInMemory does. */
double qv_trace_util(const struct qv_trace *t, int i, double time);

struct qv_sim_cfg {
	struct qv_pol_cfg pol;
	int nhosts;         /* 800 */
	double duration_s;  /* 86400 */
	bool cost_model;    /* migration time from qvisor's pre-copy model */
	bool series;        /* keep the per-round time series */
	int explain;        /* keep the first N planned moves with their reasons */
	/* The cluster balancer (sched/balance.h, enforce mode, pol as its
	 * detector) decides instead of the policy's round: its limits,
	 * cooldown and power saving from bal (qv_bal_cfg_defaults). */
	bool balance;
	struct qv_bal_cfg bal;
};
void qv_sim_cfg_defaults(struct qv_sim_cfg *cfg);

struct qv_sim_point {
	double t;
	int active_hosts;
	double power_w;
	double sla_hosts;  /* share of active hosts short of requested CPU */
	int migrations;    /* started this round */
};

struct qv_sim_result {
	char policy[32];
	int nhosts, nvms, rounds;
	double energy_kwh;
	double slatah, pdm, slav, esv;       /* CloudSim's pooled forms, fractions */
	double paper_slatah, paper_pdm, paper_slav, paper_esv; /* means of ratios */
	double overall_sla;                  /* CloudSim's "overall SLA violation" */
	long migrations;
	long shutdowns;
	double mean_time_before_shutdown_s;
	double decision_ms_mean, decision_ms_max;
	double lower_bound_kwh;              /* demand packed on the best hosts */
	double wall_s;
	long vms_finished;                   /* VMs CloudSim retires at 0 % */
	struct qv_sim_point *series;
	int nseries;
	struct qv_sim_move {
		double t;
		struct qv_pol_move m;
	} *moves;                            /* the first cfg.explain moves */
	int nmoves;
};
int qv_sim_run(const struct qv_trace *tr, const struct qv_sim_cfg *cfg, struct qv_sim_result *ret,
	       struct qv_error *errp);
void qv_sim_result_free(struct qv_sim_result *r);
/* The experiment's host types: G4 (2 x 1860 MIPS) for even i, G5 odd. */
void qv_sim_host_init(struct qv_pol_host *h, int i);
/* VM type of VM i of n: MIPS 2500/2000/1000/500, RAM 870/1740/1740/613. */
void qv_sim_vm_init(struct qv_pol_vm *v, int i, int n);
