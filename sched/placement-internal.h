/* SPDX-License-Identifier: MIT */
#pragma once
/* Shared by sched/placement*.c only: the index a qv_pl keeps over its
 * snapshot. */
#include "sched/placement.h"

enum { PL_ANTI = 0, PL_AFF = 1 };

/* Members of one group on one host. */
struct pl_at {
	int host;
	int count;
	const struct qv_pl_vm *example; /* one member there (may have left: check) */
};

struct pl_group {
	const char *name;
	int kind;
	int total;
	struct pl_at *at;
	int nat, capat;
};

/* A VM not in the snapshot that was assigned a host. */
struct pl_extra {
	const struct qv_pl_vm *vm;
	int host;
};

struct qv_pl {
	const struct qv_pl_snapshot *snap;
	struct qv_pl_cfg cfg;
	struct qv_pl_load *load;  /* per host */
	char (*blocked)[64];      /* per host: why it is kept out, "" = not */
	int *where;               /* per snapshot VM: the host it counts on, -1 none */
	int *by_name;             /* host indexes sorted by name */
	int *rank;                /* host index -> position in by_name */
	struct pl_extra *extra;
	int nextra, capextra;
	struct pl_group *groups;
	int ngroups, capgroups;
	int *slots;               /* open addressing: group index + 1, 0 = empty */
	int nslots;
};

/* Group index of (kind, name), -1 when unknown (create: add it). */
int pl_group_find(qv_pl *pl, int kind, const char *name, bool create);
/* Members of group g on host (minus vm itself when it counts there). */
int pl_group_count(const qv_pl *pl, int g, int host, const struct qv_pl_vm *self);
/* Add (delta +1) or remove (-1) vm's loads and memberships on host. */
int pl_account(qv_pl *pl, const struct qv_pl_vm *vm, int host, int delta);
bool pl_in_snapshot(const qv_pl *pl, const struct qv_pl_vm *vm);
/* CPU the VM is counted for: its use; a new VM's reservation at least. */
double pl_vm_cpu(const qv_pl *pl, const struct qv_pl_vm *vm);
/* Memory footprint: max(guest memory, reservation). */
uint64_t pl_vm_footprint(const struct qv_pl_vm *vm);
