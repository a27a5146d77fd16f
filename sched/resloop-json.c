/* SPDX-License-Identifier: MIT */
/* JSON views of the resource loop: policy show, host.pressure, changes. */
#include <stdio.h>

#include "common/macro.h"
#include "sched/resloop-internal.h"

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_dbl(json_object *o, const char *k, double v)
{
	json_object_object_add(o, k, json_object_new_double((double)(int64_t)(v * 1000) / 1000));
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static json_object *demand_json(const struct hl_vm *vm)
{
	json_object *d = json_object_new_object();

	json_object_object_add(d, "known", json_object_new_boolean(vm->demand.known));
	add_dbl(d, "cpu_cores", vm->demand.cpu);
	add_dbl(d, "cpu_ewma", vm->demand.cpu_ewma);
	add_dbl(d, "cpu_percentile", vm->demand.cpu_pct);
	add_u64(d, "memory_bytes", vm->demand.mem);
	add_dbl(d, "cpu_pressure", vm->cpu_psi);
	add_dbl(d, "memory_pressure", vm->mem_psi);
	return d;
}

static json_object *alloc_json(const hl_loop *l, const struct hl_vm *vm, const struct hl_alloc *a)
{
	json_object *o = json_object_new_object();
	char buf[64];

	if (vm->balloon)
		add_u64(o, "balloon", a->balloon);
	if (vm->dirfd < 0) /* no cgroup: only the balloon */
		return o;
	for (unsigned bit = 1; bit <= HL_K_MEM_MAX; bit <<= 1) {
		hl_knob_format((enum hl_knob)bit, a, buf, sizeof(buf));
		add_str(o, hl_knob_name((enum hl_knob)bit), buf);
	}
	/* null where the kernel has no cgroup SCHED_IDLE */
	json_object_object_add(o, "cpu.idle", l->o.caps.cpu_idle ?
			       json_object_new_int(a->cpu_idle) : NULL);
	json_object_object_add(o, "exclusive", json_object_new_boolean(a->exclusive));
	if (vm->excl != HL_EXCL_NONE) /* partition, or cpuset with the kernel's reason */
		add_str(o, "exclusive_by", hl_excl_to_string(vm->excl));
	if (vm->excl == HL_EXCL_CPUSET)
		add_str(o, "partition_refused", vm->part_why);
	return o;
}

/* What the balloon rule saw and concluded at the last tick. */
static json_object *balloon_json(const struct hl_vm *vm)
{
	json_object *b = json_object_new_object();

	add_u64(b, "target", vm->cur.balloon);
	add_u64(b, "actual", vm->balloon_actual);
	add_u64(b, "floor", vm->bst.floor);
	add_u64(b, "ceiling", vm->bst.ceil);
	json_object_object_add(b, "guest_available", vm->bin.stats ?
			       json_object_new_int64((int64_t)vm->bin.available) : NULL);
	add_dbl(b, "guest_major_faults_per_s", vm->bin.major_faults_ps);
	add_dbl(b, "guest_swap_in_bytes_per_s", vm->bin.swap_in_bps);
	add_u64(b, "demand", vm->bst.want);
	add_u64(b, "calm_intervals", vm->bst.calm);
	return b;
}

json_object *hl_loop_vm_json(const hl_loop *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct hl_vm *vm = l->vms[i];
		if (!streq(vm->name, name))
			continue;
		json_object *o = json_object_new_object(), *res = json_object_new_object();
		add_str(o, "name", vm->name);
		enum vm_loop_mode m = l->o.mode == VM_LOOP_OFF ? VM_LOOP_OFF
				      : vm->res.mode == VM_LOOP_HOST ? l->o.mode : vm->res.mode;
		add_str(o, "mode", vm_loop_mode_to_string(m));
		vm_resources_to_json(&vm->res, res);
		json_object_object_add(o, "resources", res);
		json_object_object_add(o, "demand", demand_json(vm));
		json_object_object_add(o, "allocation",
				       vm->have_cur ? alloc_json(l, vm, &vm->cur) : NULL);
		json_object_object_add(o, "target", alloc_json(l, vm, &vm->want));
		if (vm->balloon)
			json_object_object_add(o, "balloon", balloon_json(vm));
		return o;
	}
	return NULL;
}

json_object *hl_loop_pressure_json(const hl_loop *l)
{
	json_object *o = json_object_new_object(), *h = json_object_new_object();
	json_object *vms = json_object_new_array();
	const struct col_host *ch = col_host(l->col);
	const struct hl_verdict *v = &l->verdict;
	char why[160];

	json_object_object_add(o, "overloaded",
			       json_object_new_boolean(hl_loop_overloaded(l, why, sizeof(why))));
	add_str(o, "reason", why);
	add_str(o, "mode", vm_loop_mode_to_string(l->o.mode));
	add_u64(h, "ncpus", ch->ncpus);
	add_dbl(h, "cpu_busy_cores", ch->valid ? ch->rate.cpu : 0);
	add_u64(h, "memory_total", ch->mem_total);
	add_u64(h, "memory_available", ch->mem_available);
	add_dbl(h, "cpu_pressure", ch->rate.psi[COL_PSI_CPU_SOME]);
	add_dbl(h, "memory_pressure", ch->rate.psi[COL_PSI_MEM_SOME]);
	add_dbl(h, "io_pressure", ch->rate.psi[COL_PSI_IO_SOME]);
	add_dbl(h, "cpu_reserved_cores", v->cpu_reserved / 1000.0);
	add_dbl(h, "cpu_capacity_cores", v->cpu_capacity / 1000.0);
	add_dbl(h, "cpu_demand_cores", v->cpu_demand);
	add_u64(h, "memory_reserved", v->mem_reserved);
	add_u64(h, "memory_demand", v->mem_demand);
	json_object_object_add(o, "host", h);
	for (size_t i = 0; i < l->n; i++) {
		json_object *x = json_object_new_object();
		add_str(x, "name", l->vms[i]->name);
		add_str(x, "class", vm_class_to_string(l->vms[i]->res.klass));
		json_object_object_add(x, "demand", demand_json(l->vms[i]));
		json_object_array_add(vms, x);
	}
	json_object_object_add(o, "vms", vms);
	return o;
}

json_object *hl_change_to_json(const struct hl_change *c)
{
	json_object *o = json_object_new_object();

	add_str(o, "vm", c->vm);
	add_str(o, "knob", hl_knob_name(c->knob));
	add_str(o, "from", c->from);
	add_str(o, "to", c->to);
	add_str(o, "reason", c->reason);
	json_object_object_add(o, "applied", json_object_new_boolean(c->applied));
	if (c->error)
		json_object_object_add(o, "error", json_object_new_int(c->error));
	return o;
}
