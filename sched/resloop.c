/* SPDX-License-Identifier: MIT */
/* The host resource loop's engine: estimate, allocate, step, write. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/cgroup-internal.h"
#include "sched/resloop-internal.h"

int hl_loop_new(const struct hl_loop_opts *o, qv_collector *col, hl_loop **ret)
{
	hl_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->o = *o;
	hl_params_defaults(&l->o.p);
	hl_step_params_defaults(&l->o.sp);
	hl_balloon_params_defaults(&l->o.bp);
	if (!l->o.overload_after)
		l->o.overload_after = 5;
	if (l->o.mode == VM_LOOP_HOST)
		l->o.mode = VM_LOOP_ENFORCE;
	static const double cpu_t[3] = { 20, 5, 0 }, mem_t[3] = { 10, 5, 0 };
	for (int i = 0; i < 3; i++) {
		if (!l->o.cpu_psi_target[i])
			l->o.cpu_psi_target[i] = cpu_t[i];
		if (!l->o.mem_psi_target[i])
			l->o.mem_psi_target[i] = mem_t[i];
	}
	l->col = col;
	*ret = l;
	return 0;
}

hl_loop *hl_loop_free(hl_loop *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		hl_vm_free(l->vms[i]);
	free(l->vms);
	free(l);
	return NULL;
}

void hl_loop_freep(hl_loop **l)
{
	if (l)
		*l = hl_loop_free(*l);
}

void hl_loop_set_mode(hl_loop *l, enum vm_loop_mode m)
{
	l->o.mode = m == VM_LOOP_HOST ? VM_LOOP_ENFORCE : m;
}

enum vm_loop_mode hl_loop_mode(const hl_loop *l)
{
	return l->o.mode;
}

static int find(const hl_loop *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->vms[i]->name, name))
			return (int)i;
	return -ENOENT;
}

bool hl_loop_has_vm(const hl_loop *l, const char *name)
{
	return find(l, name) >= 0;
}

int hl_loop_add_vm(hl_loop *l, const char *name, const char *dir, const struct vm_resources *res,
		   uint32_t vcpus, uint64_t guest_mem)
{
	if (strlen(name) > VM_NAME_MAX)
		return -ENAMETOOLONG;
	if (find(l, name) >= 0)
		return -EEXIST;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct hl_vm **v = realloc(l->vms, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->vms = v, l->cap = cap;
	}
	struct hl_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->slice_fd = -1;
	vm->dirfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	int r = !dir ? 0 : vm->dirfd < 0 ? -errno : col_add_vm(l->col, name, dir);
	if (r < 0 && r != -EEXIST) {
		if (vm->dirfd >= 0)
			close(vm->dirfd);
		free(vm);
		return r;
	}
	/* the first group with the file tells: the kernel has cgroup SCHED_IDLE */
	if (vm->dirfd >= 0 && faccessat(vm->dirfd, "cpu.idle", F_OK, 0) == 0)
		l->o.caps.cpu_idle = true;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->res = *res;
	vm->vcpus = vcpus, vm->guest_mem = guest_mem;
	l->vms[l->n++] = vm;
	return 0;
}

int hl_loop_remove_vm(hl_loop *l, const char *name)
{
	int i = find(l, name);

	if (i < 0)
		return i;
	(void)col_remove_vm(l->col, name);
	hl_vm_free(l->vms[i]);
	memmove(&l->vms[i], &l->vms[i + 1], (l->n - (size_t)i - 1) * sizeof(*l->vms));
	l->n--;
	return 0;
}

void hl_vm_free(struct hl_vm *vm)
{
	if (vm->dirfd >= 0)
		close(vm->dirfd);
	if (vm->slice_fd >= 0)
		close(vm->slice_fd);
	free(vm);
}

int hl_loop_vm_set_partition_slice(hl_loop *l, const char *name, const char *dir)
{
	int i = find(l, name), fd;

	if (i < 0)
		return i;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (l->vms[i]->slice_fd >= 0)
		close(l->vms[i]->slice_fd);
	l->vms[i]->slice_fd = fd;
	return 0;
}

int hl_loop_vms_in(const hl_loop *l, struct hl_vm_in **ret, size_t *ret_n)
{
	struct hl_vm_in *in = calloc(l->n ? l->n : 1, sizeof(*in));

	if (!in)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++)
		in[i] = (struct hl_vm_in){ .name = l->vms[i]->name, .res = &l->vms[i]->res,
					   .vcpus = l->vms[i]->vcpus,
					   .guest_mem = l->vms[i]->guest_mem,
					   .demand = l->vms[i]->demand };
	*ret = in;
	*ret_n = l->n;
	return 0;
}

int hl_loop_vm_set_balloon(hl_loop *l, const char *name, bool active, uint64_t target,
			   uint64_t actual)
{
	int i = find(l, name);

	if (i < 0)
		return i;
	l->vms[i]->balloon = active;
	/* unknown (after a daemon restart or an incoming migration): what
	 * the guest has is the best guess, else the full memory */
	l->vms[i]->balloon_target = target ? target : actual ? actual : l->vms[i]->guest_mem;
	l->vms[i]->balloon_actual = actual;
	return 0;
}

unsigned long hl_loop_changes(const hl_loop *l)
{
	return l->n_changes;
}

const struct hl_demand *hl_loop_vm_demand(const hl_loop *l, const char *name)
{
	int i = find(l, name);
	return i >= 0 && l->vms[i]->demand.known ? &l->vms[i]->demand : NULL;
}

const struct hl_alloc *hl_loop_vm_alloc(const hl_loop *l, const char *name)
{
	int i = find(l, name);
	/* a VM without a cgroup has no cgroup knobs to show */
	return i >= 0 && l->vms[i]->have_cur && l->vms[i]->dirfd >= 0 ? &l->vms[i]->cur : NULL;
}

/* --- knobs -------------------------------------------------------------------------- */

void hl_knob_format(enum hl_knob k, const struct hl_alloc *a, char *buf, size_t size)
{
	switch (k) {
	case HL_K_WEIGHT:
		snprintf(buf, size, "%u", a->cpu_weight);
		break;
	case HL_K_CPU_MAX:
		if (a->cpu_max_quota_us)
			snprintf(buf, size, "%" PRIu64 " %u", a->cpu_max_quota_us,
				 a->cpu_max_period_us);
		else
			snprintf(buf, size, "max %u", a->cpu_max_period_us ?: 100000);
		break;
	case HL_K_CPUSET:
		hl_cpuset_format(a->cpuset, buf, size);
		break;
	case HL_K_MEM_LOW:
		snprintf(buf, size, "%" PRIu64, a->mem_low);
		break;
	case HL_K_BALLOON:
		snprintf(buf, size, "%" PRIu64, a->balloon);
		break;
	case HL_K_CPU_IDLE:
		snprintf(buf, size, "%d", a->cpu_idle ? 1 : 0);
		break;
	case HL_K_MEM_HIGH:
	case HL_K_MEM_MAX: {
		uint64_t v = k == HL_K_MEM_HIGH ? a->mem_high : a->mem_max;
		if (v)
			snprintf(buf, size, "%" PRIu64, v);
		else
			snprintf(buf, size, "max");
		break;
	}
	}
}

int hl_knob_write(int dirfd, enum hl_knob k, const struct hl_alloc *a)
{
	char v[64];

	if (k == HL_K_BALLOON || dirfd < 0)
		return -EOPNOTSUPP; /* QMP: the caller's job */
	hl_knob_format(k, a, v, sizeof(v));
	/* An empty cpuset.cpus means "inherit"; a bare write(0 bytes) is a no-op. */
	if (k == HL_K_CPUSET && !v[0]) {
		int r = cg_write_at(dirfd, hl_knob_name(k), "\n");
		if (r != -ENOSPC)
			return r;
		/* the kernel never empties a populated group's cpus (ENOSPC):
		 * all its parent has, which is what inheriting gives */
		_cleanup_close_ int up = openat(dirfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		char cpus[256];
		if (up < 0 || cg_read_at(up, "cpuset.cpus.effective", cpus, sizeof(cpus)) <= 0)
			return r;
		cpus[strcspn(cpus, "\n")] = '\0';
		return cg_write_at(dirfd, hl_knob_name(k), cpus);
	}
	return cg_write_at(dirfd, hl_knob_name(k), v);
}
