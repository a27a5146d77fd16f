/* SPDX-License-Identifier: MIT */
#pragma once
/* Shared by sched/balance*.c only. */
#include "sched/balance.h"

/* A migration the balancer ordered: hosts by name (indexes change from
 * one snapshot to the next). */
struct bal_rec {
	char *vm, *from, *to;
	double t, cost_s;
	bool inflight;
};

struct qv_bal {
	struct qv_bal_cfg cfg;
	struct bal_rec *rec;
	int nrec, caprec;
};

/* What a round or an evacuation works with. */
struct bal_ctx {
	qv_bal *b;
	const struct qv_pl_snapshot *snap;
	double now;
	qv_pl *pl;
	struct qv_bal_plan *plan;
	int *busy;          /* per host: migrations in or out, in flight or planned */
	double *pending;    /* per host: CPU (millicores) arriving minus leaving in flight */
	double *mpending;   /* per host: memory (MiB), the same */
	int cluster_busy;
	int budget;         /* new migrations left this round */
	int *first, *next;  /* VMs per host: first[h], next[vm], -1 ends */
	bool record;
	const struct qv_pl_vm *fail[64]; /* overload pass: VMs that fit nowhere */
	char fail_why[64][200];          /* ": h1: ...; h2: ..." (their refusals) */
	int nfail;
};

int bal_ctx_init(struct bal_ctx *c, qv_bal *b, const struct qv_pl_snapshot *snap, double now,
		 struct qv_bal_plan *plan, const struct qv_pl_cfg *pcfg, struct qv_error *errp);
void bal_ctx_done(struct bal_ctx *c);
/* Append a decision; returns it (NULL on ENOMEM). */
struct qv_bal_decision *bal_add(struct qv_bal_plan *plan, enum qv_bal_kind kind, enum qv_bal_why why,
				int vm, int from, int to, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* Record an ordered move (enforce): in flight and for the cooldown. */
int bal_record(qv_bal *b, const struct qv_pl_snapshot *snap, int vm, int from, int to, double now,
	       double cost);
/* A move planned: counts against the limits, blocks hosts at their limit. */
void bal_take(struct bal_ctx *c, int from, int to);
/* Seconds of cooldown left for vm (0 = free). */
double bal_cooldown_left(const qv_bal *b, const struct qv_pl_vm *vm, double now);
double bal_cost(const qv_bal *b, const struct qv_pl_snapshot *snap, const struct qv_pl_vm *vm, int to);
/* qsort_r order of snapshot VM indexes (arg: the snapshot): largest
 * memory footprint first, then by name. */
int bal_foot_cmp(const void *a, const void *b, void *arg);
void bal_summary(struct qv_bal_plan *plan, const char *what);
