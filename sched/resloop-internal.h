/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between sched/resloop*.c. */
#include "sched/resloop.h"

/* How a latency VM's exclusive cores are kept. */
enum hl_excl { HL_EXCL_NONE, HL_EXCL_CPUSET, HL_EXCL_PARTITION };

struct hl_vm {
	char name[VM_NAME_MAX + 1];
	int dirfd;
	struct vm_resources res;
	uint32_t vcpus;
	uint64_t guest_mem;
	struct hl_estimator est;
	struct hl_demand demand;
	struct hl_step_state st;
	struct hl_alloc cur, want;
	bool have_cur;
	unsigned mem_pressure_n; /* consecutive intervals over the memory PSI target */
	double cpu_psi, mem_psi; /* last some avg10 */
	/* the balloon (hl_loop_vm_set_balloon): what the caller last set, the
	 * inputs and the outcome of the last hl_balloon_step */
	bool balloon;
	uint64_t balloon_target, balloon_actual;
	struct hl_balloon_in bin;
	struct hl_balloon_state bst;
	enum hl_balloon_why bwhy;
	/* how its exclusive cores are kept (sched/resloop-part.c) */
	enum hl_excl excl;
	char part_why[200]; /* why not a partition (HL_EXCL_CPUSET) */
	int slice_fd; /* its partition slice (hl_loop_vm_set_partition_slice), else -1 */
};

struct hl_loop {
	struct hl_loop_opts o;
	qv_collector *col;
	struct hl_vm **vms;
	size_t n, cap;
	struct hl_verdict verdict;
	unsigned unmet_n;         /* consecutive intervals with targets unmet */
	char unmet_why[160];
	unsigned long n_changes;
	/* whether this tick wrote a cpuset.cpus: a partition root is made only
	 * in a tick without one (sched/resloop-tick.c) */
	bool cpuset_written;
};

void hl_partition_enter(struct hl_vm *vm, uint64_t cpuset);
void hl_partition_leave(struct hl_vm *vm);
void hl_vm_free(struct hl_vm *vm);
const char *hl_excl_to_string(enum hl_excl e);

void hl_knob_format(enum hl_knob k, const struct hl_alloc *a, char *buf, size_t size);
int hl_knob_write(int dirfd, enum hl_knob k, const struct hl_alloc *a);
