/* SPDX-License-Identifier: MIT */
/* One tick of the host resource loop, and the overload signal. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "sched/resloop-internal.h"

#define MIB (1024 * 1024)

/* The host's off is a master switch; otherwise the VM's own mode wins. */
static enum vm_loop_mode vm_mode(const hl_loop *l, const struct hl_vm *vm)
{
	if (l->o.mode == VM_LOOP_OFF)
		return VM_LOOP_OFF;
	return vm->res.mode == VM_LOOP_HOST ? l->o.mode : vm->res.mode;
}

/* Feed the estimator; memory pressure over the class target for two
 * intervals raises the memory demand above what is written. */
static void observe(hl_loop *l, struct hl_vm *vm)
{
	int ci = col_vm_index(l->col, vm->name);
	const struct col_point *pt = ci >= 0 ? col_vm_last(l->col, (size_t)ci) : NULL;

	if (!pt)
		return;
	hl_est_push(&vm->est, &l->o.p, pt->cpu, (uint64_t)(pt->mem_mib * MIB));
	hl_est_demand(&vm->est, &l->o.p, vm->vcpus, &vm->demand);
	vm->cpu_psi = pt->psi[COL_PSI_CPU_SOME];
	vm->mem_psi = pt->psi[COL_PSI_MEM_SOME];
	double target = l->o.mem_psi_target[vm->res.klass];
	vm->mem_pressure_n = target > 0 && vm->mem_psi > target ? vm->mem_pressure_n + 1 : 0;
	if (vm->mem_pressure_n >= 2 && vm->have_cur && vm->cur.mem_high) {
		uint64_t more = vm->cur.mem_high + vm->cur.mem_high / 4;
		vm->demand.mem = vm->demand.mem > more ? vm->demand.mem : more;
	}
}

/* The balloon target from the guest's statistics (sched/alloc-balloon.c). */
static void balloon_want(hl_loop *l, struct hl_vm *vm, enum vm_loop_mode mode)
{
	int ci = col_vm_index(l->col, vm->name);
	const struct col_guest *g = ci >= 0 ? col_vm_guest(l->col, (size_t)ci) : NULL;

	/* enforce: steer from what the caller set; advise: from the last advice */
	if (mode == VM_LOOP_ENFORCE || !vm->cur.balloon)
		vm->cur.balloon = vm->balloon_target;
	vm->bin = (struct hl_balloon_in){
		.memory = vm->guest_mem, .reservation = vm->res.mem_reservation,
		.limit = vm->res.mem_limit, .target = vm->cur.balloon,
		.actual = vm->balloon_actual, .stats = g != NULL,
		.available = g ? g->available : 0,
		.major_faults_ps = g ? g->major_faults_ps : 0,
		.swap_in_bps = g ? g->swap_in_bps : 0,
	};
	vm->want.balloon = hl_balloon_step(&vm->bin, &l->o.bp, &vm->bst, &vm->bwhy);
}

static void balloon_reason(const hl_loop *l, const struct hl_vm *vm, char *buf, size_t size)
{
	const struct hl_balloon_in *in = &vm->bin;
	const struct hl_balloon_state *st = &vm->bst;
	uint64_t size_now = in->actual ? in->actual : in->target;
	uint64_t used = in->available < size_now ? size_now - in->available : 0;

	switch (vm->bwhy) {
	case HL_BW_IDLE:
		snprintf(buf, size, "guest idle: uses %" PRIu64 " MiB, %" PRIu64 " MiB available; "
			 "toward %" PRIu64 " MiB (use + headroom, floor %" PRIu64 " MiB)",
			 used / MIB, in->available / MIB, st->want / MIB, st->floor / MIB);
		break;
	case HL_BW_LOW:
		snprintf(buf, size, "guest memory low: %" PRIu64 " MiB available, under half the "
			 "headroom; all %" PRIu64 " MiB back", in->available / MIB, st->ceil / MIB);
		break;
	case HL_BW_FAULTS:
		snprintf(buf, size, "guest major faults %.0f/s over %.0f/s; all %" PRIu64
			 " MiB back", in->major_faults_ps, l->o.bp.major_faults_ps, st->ceil / MIB);
		break;
	case HL_BW_SWAP:
		snprintf(buf, size, "guest swapping in %.1f MiB/s; all %" PRIu64 " MiB back",
			 in->swap_in_bps / MIB, st->ceil / MIB);
		break;
	default:
		snprintf(buf, size, "balloon kept within %" PRIu64 "..%" PRIu64 " MiB (memory "
			 "reservation, limit and guest memory)", st->floor / MIB, st->ceil / MIB);
	}
}

static void reason_for(const hl_loop *l, const struct hl_vm *vm, enum hl_knob k, bool first,
		       char *buf, size_t size)
{
	const struct vm_resources *r = &vm->res;
	char cpus[64];

	if (k == HL_K_BALLOON)
		return balloon_reason(l, vm, buf, size);
	if (k == HL_K_CPU_IDLE) {
		if (vm->want.cpu_idle)
			snprintf(buf, size, "best-effort class: an idle group (SCHED_IDLE): any "
				 "other VM's waking task preempts it at once; it runs on what "
				 "nobody else wants");
		else
			snprintf(buf, size, "class %s%s: a normal group, cpu.weight divides the CPU",
				 vm_class_to_string(r->klass),
				 r->klass == VM_CLASS_BEST_EFFORT ? " with a cpu reservation" : "");
		return;
	}
	if (first) {
		snprintf(buf, size, "initial allocation (class %s)", vm_class_to_string(r->klass));
		return;
	}
	switch (k) {
	case HL_K_WEIGHT:
		if (vm->want.cpu_idle)
			snprintf(buf, size, "best-effort class: an idle group (its weight is unused)");
		else
			snprintf(buf, size, "shares %u, reservation %.3g cores, among %zu VMs",
				 r->cpu_shares, r->cpu_reservation / 1000.0, l->n);
		break;
	case HL_K_CPUSET:
		hl_cpuset_format(vm->want.cpuset, cpus, sizeof(cpus));
		if (!vm->want.exclusive && !cpus[0] && r->klass == VM_CLASS_LATENCY &&
		    !hl_exclusive_allowed(&l->o.caps))
			snprintf(buf, size, "latency class on a host of %u CPUs (< %u): shares the "
				 "cores, no exclusive one", l->o.caps.ncpus,
				 l->o.caps.exclusive_min_cpus ?: HL_EXCLUSIVE_MIN_CPUS);
		else
			snprintf(buf, size, vm->want.exclusive ? "latency class: exclusive cores %s"
				 : "kept off the latency VMs' exclusive cores (runs on %s)",
				 cpus[0] ? cpus : "all");
		break;
	case HL_K_MEM_HIGH:
		if (vm->mem_pressure_n >= 2)
			snprintf(buf, size, "memory pressure %.1f%% over the %s target %.0f%%",
				 vm->mem_psi, vm_class_to_string(r->klass),
				 l->o.mem_psi_target[r->klass]);
		else
			snprintf(buf, size, "memory demand %" PRIu64 " MiB (estimate with headroom)",
				 vm->demand.mem / MIB);
		break;
	default:
		snprintf(buf, size, "entitlements changed");
	}
}

static size_t step_vm(hl_loop *l, struct hl_vm *vm, struct hl_change *ret, size_t max)
{
	enum vm_loop_mode mode = vm_mode(l, vm);
	struct hl_alloc next;
	size_t n = 0;

	if (mode == VM_LOOP_OFF)
		return 0;
	bool first = !vm->have_cur;
	if (vm->balloon)
		balloon_want(l, vm, mode);
	unsigned mask = hl_step(&vm->cur, vm->have_cur, &vm->want, &l->o.sp, &vm->st, &next);
	if (first && l->o.caps.cpu_idle) /* a group adopted from before may be idle */
		mask |= HL_K_CPU_IDLE;
	if (vm->dirfd < 0) /* no cgroup: only the balloon */
		mask &= HL_K_BALLOON;
	/* the kernel refuses cpu.weight while a group is idle: cpu.idle = 0
	 * goes first, cpu.idle = 1 last (after its weight) */
	unsigned order[16], nk = 0;
	if ((mask & HL_K_CPU_IDLE) && !next.cpu_idle)
		order[nk++] = HL_K_CPU_IDLE;
	for (unsigned bit = 1; bit <= HL_K_LAST; bit <<= 1)
		if ((mask & bit) && !(bit == HL_K_CPU_IDLE && nk && order[0] == bit))
			order[nk++] = bit;
	/* a partition root's cpus change as a member, then it is tried again */
	if (mode == VM_LOOP_ENFORCE && (mask & HL_K_CPUSET))
		hl_partition_leave(vm);
	for (unsigned k = 0; k < nk; k++) {
		struct hl_change c = { .knob = (enum hl_knob)order[k] };
		snprintf(c.vm, sizeof(c.vm), "%s", vm->name);
		if (first)
			snprintf(c.from, sizeof(c.from), "-");
		else
			hl_knob_format(c.knob, &vm->cur, c.from, sizeof(c.from));
		hl_knob_format(c.knob, &next, c.to, sizeof(c.to));
		reason_for(l, vm, c.knob, first, c.reason, sizeof(c.reason));
		if (c.knob == HL_K_BALLOON) {
			c.value = next.balloon;
			c.caller_applies = mode == VM_LOOP_ENFORCE;
		} else if (mode == VM_LOOP_ENFORCE) {
			c.error = hl_knob_write(vm->dirfd, c.knob, &next);
			c.applied = c.error == 0;
			if (c.knob == HL_K_CPUSET)
				l->cpuset_written = true;
		}
		if (n < max)
			ret[n++] = c;
		l->n_changes++;
	}
	if (!next.exclusive)
		hl_partition_leave(vm);
	/* advise: remember what was advised, so the same advice is not repeated */
	vm->cur = next;
	vm->have_cur = true;
	return n;
}

/* Exclusive cores become partition roots one interval after the last
 * cpuset.cpus write, never in the same tick. A partition of one CPU has no
 * scheduler domain, so that CPU no longer updates its blocked load: a
 * group whose threads left it as the partition took it (or slept there)
 * keeps that load in its task group's sum for good, and its cpu.weight
 * then buys less on the cores it runs on (shares 2:1 read 1.51-1.66 in
 * 3 of 6 lab VM runs with the partition in the same tick, 2.00 since).
 * Written first, the other VMs' cpusets move their threads off while the
 * CPU still balances, and their load there decays within the interval. */
static void enter_partitions(hl_loop *l)
{
	if (l->cpuset_written)
		return;
	for (size_t i = 0; i < l->n; i++) {
		struct hl_vm *vm = l->vms[i];
		if (vm->have_cur && vm->cur.exclusive && vm_mode(l, vm) == VM_LOOP_ENFORCE)
			hl_partition_enter(vm, vm->cur.cpuset);
	}
}

/* Reservations that do not fit, or a VM above its class's CPU pressure
 * target while the host's CPUs are nearly all busy. */
static void check_overload(hl_loop *l)
{
	const struct col_host *h = col_host(l->col);
	const struct hl_verdict *v = &l->verdict;
	char why[160] = "";

	if (v->cpu_short)
		snprintf(why, sizeof(why), "cpu reservations %.3g cores > %.3g available%s",
			 v->cpu_reserved / 1000.0, v->cpu_capacity / 1000.0,
			 v->latency_unplaced ? " (latency VMs without exclusive cores)" : "");
	else if (v->mem_short)
		snprintf(why, sizeof(why), "memory reservations %" PRIu64 " MiB > %" PRIu64 " MiB",
			 v->mem_reserved / MIB, v->mem_capacity / MIB);
	for (size_t i = 0; !why[0] && i < l->n; i++) {
		const struct hl_vm *vm = l->vms[i];
		double t = l->o.cpu_psi_target[vm->res.klass];
		if (t > 0 && vm->cpu_psi > t && h->valid && h->rate.cpu >= 0.9 * h->ncpus)
			snprintf(why, sizeof(why), "VM %s: cpu pressure %.1f%% over the %s target "
				 "%.0f%% with the host's CPUs busy", vm->name, vm->cpu_psi,
				 vm_class_to_string(vm->res.klass), t);
	}
	l->unmet_n = why[0] ? l->unmet_n + 1 : 0;
	snprintf(l->unmet_why, sizeof(l->unmet_why), "%s", why);
}

size_t hl_loop_tick(hl_loop *l, struct hl_change *ret, size_t max)
{
	size_t n = 0;

	struct hl_vm_in *in = calloc(l->n ? l->n : 1, sizeof(*in));
	struct hl_alloc *want = calloc(l->n ? l->n : 1, sizeof(*want));
	if (!in || !want)
		goto out;
	for (size_t i = 0; i < l->n; i++) {
		observe(l, l->vms[i]);
		in[i] = (struct hl_vm_in){ .name = l->vms[i]->name, .res = &l->vms[i]->res,
					   .vcpus = l->vms[i]->vcpus,
					   .guest_mem = l->vms[i]->guest_mem,
					   .demand = l->vms[i]->demand };
	}
	hl_allocate(&l->o.caps, &l->o.p, in, l->n, want, &l->verdict);
	l->cpuset_written = false;
	for (size_t i = 0; i < l->n; i++) {
		l->vms[i]->want = want[i];
		n += step_vm(l, l->vms[i], ret + n, max - n);
	}
	enter_partitions(l);
	check_overload(l);
out:
	free(in);
	free(want);
	return n;
}

bool hl_loop_overloaded(const hl_loop *l, char *why, size_t size)
{
	bool over = l->unmet_n >= l->o.overload_after;

	if (why && size)
		snprintf(why, size, "%s", over ? l->unmet_why : "");
	return over;
}
