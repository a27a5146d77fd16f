/* SPDX-License-Identifier: MIT */
#pragma once
/* VM consolidation policies (docs/policy.md): the hosts and VMs a decision
 * round sees, the overload detectors (THR, MAD, IQR, LR, LRR), the VM
 * selections (MMT, RS, MC, MU), power-aware best-fit-decreasing placement
 * with the underload pass, and qvisor's own cost-aware policy.
 *
 * Pure C: no I/O, no daemon types. The simulator (sched/sim.h), the
 * daemon's host loop and the cluster balancer drive the same code. The
 * CloudSim-compatible paths reproduce CloudSim 3.0.3's semantics exactly
 * (including its quirks, listed in docs/policy.md); qvisor's policy is free
 * of them. Every planned move carries its reason. */
#include <stdbool.h>
#include <stdint.h>

#define QV_POL_HIST 30 /* utilisation samples kept per VM (newest first) */

/* Watts at 0, 10, ..., 100 % CPU, linear in between (SPECpower style). */
struct qv_pol_power {
	double w[11];
};
/* Power at utilisation u in [0, 1] (clamped), CloudSim's interpolation. */
double qv_pol_power_at(const struct qv_pol_power *p, double u);

/* --- statistics (sched/policy-stats.c) ------------------------------- */
/* Median as Apache commons-math's legacy 50th percentile (= usual median). */
double qv_pol_median(const double *x, int n);
/* Median absolute deviation from the median. */
double qv_pol_mad(const double *x, int n);
/* CloudSim's interquartile range: sorted[round(.75(n+1))-1] - sorted[round(.25(n+1))-1]. */
double qv_pol_iqr(const double *x, int n);
/* Least squares line through (1, y[0]) ... (n, y[n-1]); -EINVAL if n < 2. */
int qv_pol_ols(const double *y, int n, double *ret_intercept, double *ret_slope);
/* Robust local regression: tricube weights (newest point heaviest), then
 * bisquare reweighting of the residuals, iterated; differs from OLS as
 * soon as a point is an outlier. -EINVAL if n < 3. */
int qv_pol_lrr(const double *y, int n, double *ret_intercept, double *ret_slope);
/* Multiple correlation (R^2) of row i of m series of length n with the others. */
double qv_pol_r2(const double *rows, int m, int n, int i);

/* --- model ------------------------------------------------------------ */
struct qv_pol_vm {
	double mips;       /* requested capacity (single core) */
	double ram_mb;
	double req_mips;   /* CPU it asks for now (utilisation x mips) */
	double util_now;   /* utilisation at the decision time, for sorting */
	double sched_req;  /* request the host scheduler last allocated for */
	double ram_alloc;  /* RAM its host's provisioner holds for it */
	double hist[QV_POL_HIST]; /* utilisation history, newest first */
	int nhist;
	double dirty_mbps; /* page-dirtying rate, for qvisor's cost model */
	int host;          /* owner host, -1 when none */
	bool migrating;
	bool instantiating; /* initial placement: asks for full mips and RAM */
	int last_move;     /* round of its last migration, -1 never */
};

struct qv_pol_host {
	double core_mips;
	int cores;
	double ram_mb;
	double bw_mbps;    /* link, Mbit/s; migrations get half */
	struct qv_pol_power power;
	double util_mips;  /* CPU in use at the last measurement */
	int *vm, nvm, capvm; /* VM list, in CloudSim's order */
	int *in, nin, capin; /* VMs migrating in (also in vm[]) */
	/* decision-round scratch */
	double avail;      /* MIPS not yet handed out by the time-shared scheduler */
	double alloc_mips; /* MIPS handed out, VMs migrating in counted in full */
	double ram_used;
	double hsum[QV_POL_HIST];
	int hlen;
	bool hvalid;
};

enum qv_pol_detector { QV_DET_THR, QV_DET_MAD, QV_DET_IQR, QV_DET_LR, QV_DET_LRR };
enum qv_pol_selection { QV_SEL_MMT, QV_SEL_RS, QV_SEL_MC, QV_SEL_MU };
enum qv_pol_kind {
	QV_POL_NPA,     /* no power awareness: every host at full power */
	QV_POL_DVFS,    /* power follows load, first-fit, no migrations */
	QV_POL_DYNAMIC, /* detector + selection + PABFD (the paper's family) */
	QV_POL_QVISOR,  /* qvisor's own (sched/policy-qvisor.c) */
};

struct qv_pol_cfg {
	enum qv_pol_kind kind;
	enum qv_pol_detector det;
	enum qv_pol_selection sel;
	double param;        /* THR: threshold; MAD/IQR: s; LR/LRR: safety */
	double fallback_thr; /* THR used while history is short (0.7) */
	double interval_s;   /* decision interval (300) */
	bool memory_aware;   /* RAM constrains every placement */
	bool cost_model;     /* migration time from the pre-copy model (dirty rate) */
	uint64_t seed;       /* RS and any tie-breaking randomness */
	/* qvisor policy knobs (defaults from qv_pol_cfg_defaults) */
	double q_target;     /* utilisation a placement may forecast up to */
	double q_z;          /* forecast quantile, in standard deviations */
	double q_consolidate;/* hosts below this share are candidates to empty */
	int q_cooldown;      /* rounds before a moved VM may move again */
};
void qv_pol_cfg_defaults(struct qv_pol_cfg *cfg);
/* "thr-mmt", "iqr-mc", "lr-rs", "npa", "dvfs", "qvisor", ... with the
 * paper's default parameter when param <= 0. -EINVAL if unknown. */
int qv_pol_cfg_parse(const char *name, double param, struct qv_pol_cfg *ret_cfg);
/* Canonical name, e.g. "IQR-MMT-1.5" (buf of at least 32 bytes). */
const char *qv_pol_cfg_name(const struct qv_pol_cfg *cfg, char *buf, int len);

struct qv_pol_fast; /* per-round caches (sched/policy-fast.c) */
struct qv_pol_dc {
	struct qv_pol_host *hosts;
	int nhosts;
	struct qv_pol_vm *vms;
	int nvms;
	int round;
	uint64_t rng;
	bool memory_aware; /* RAM always counts (else only while instantiating) */
	/* Plain scans, no per-round caches: the reference the cached paths
	 * must match decision for decision (tests/sched/test_policy_fast.c). */
	bool reference;
	struct qv_pol_fast *fast; /* set by qv_pol_round while it runs */
};

enum qv_pol_why { QV_WHY_OVERLOAD, QV_WHY_UNDERLOAD, QV_WHY_INITIAL };
struct qv_pol_move {
	int vm, from, to;
	enum qv_pol_why why;
	double metric;     /* detector value or forecast that decided it */
	char reason[112];  /* human-readable, e.g. "host 12 overloaded: LR ..." */
};
struct qv_pol_plan {
	struct qv_pol_move *moves;
	int n, cap;
	int overloaded, underloaded; /* hosts found this round */
};
void qv_pol_plan_clear(struct qv_pol_plan *plan);
void qv_pol_plan_free(struct qv_pol_plan *plan);

/* --- host list operations (sched/policy-host.c) ---------------------- */
int qv_pol_host_add(struct qv_pol_host *h, int vm);
void qv_pol_host_remove(struct qv_pol_host *h, int vm);
bool qv_pol_host_has(const struct qv_pol_host *h, int vm);
bool qv_pol_host_is_in(const struct qv_pol_host *h, int vm);
int qv_pol_host_add_in(struct qv_pol_host *h, int vm);
void qv_pol_host_remove_in(struct qv_pol_host *h, int vm);
double qv_pol_host_total_mips(const struct qv_pol_host *h);
void qv_pol_host_free(struct qv_pol_host *h);
/* Recompute the scheduler's free MIPS (and RAM) from the VM list. */
void qv_pol_host_refresh(const struct qv_pol_dc *dc, struct qv_pol_host *h);
/* Host utilisation history: sum of its VMs' histories weighted by mips,
 * zero tail trimmed (CloudSim's PowerHostUtilizationHistory). */
const double *qv_pol_host_history(const struct qv_pol_dc *dc, struct qv_pol_host *h, int *ret_n);

/* --- decisions -------------------------------------------------------- */
/* Is host h overloaded under cfg's detector? *ret_metric gets the value
 * compared (threshold or prediction). */
bool qv_pol_overloaded(const struct qv_pol_dc *dc, struct qv_pol_host *h,
		       const struct qv_pol_cfg *cfg, double *ret_metric);
/* The detector on a raw history (newest first, shares of capacity), as
 * qv_pol_overloaded runs it: util is the share requested now (THR and
 * the short-history fallback), ahead the intervals LR/LRR predict ahead.
 * The cluster balancer calls it with measured host histories. */
bool qv_pol_detect(const double *hist, int n, double util, double ahead, const struct qv_pol_cfg *cfg,
		   double *ret_metric);
/* Next VM to take off an overloaded host, -1 when none may move. */
int qv_pol_select(struct qv_pol_dc *dc, const struct qv_pol_host *h, const struct qv_pol_cfg *cfg);
/* PABFD's choice of host for vm, skipping excluded[] hosts (may be NULL);
 * -1 when none fits. Never picks a host the detector would call
 * overloaded after the allocation. */
int qv_pol_find_host(struct qv_pol_dc *dc, int vm, const bool *excluded, const struct qv_pol_cfg *cfg);
/* Initial placement of every VM (PABFD, or first-fit for DVFS/NPA);
 * -ENOSPC if a VM fits nowhere. */
int qv_pol_place_all(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg);
/* One decision round: overload pass then underload pass. The host lists
 * are left as they were; the plan lists the migrations to start. */
int qv_pol_round(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg, struct qv_pol_plan *plan);
/* qvisor's policy round (sched/policy-qvisor.c). */
int qv_pol_round_qvisor(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg, struct qv_pol_plan *plan);

/* Migration time of vm in seconds: RAM over half the link (CloudSim), or,
 * for qvisor's cost model, pre-copy rounds with the VM's dirty rate. */
double qv_pol_migration_time(const struct qv_pol_vm *v, const struct qv_pol_host *dst, bool cost_model);
