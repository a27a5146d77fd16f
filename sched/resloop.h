/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "sched/alloc.h"
#include "sched/collect.h"

/* The host resource loop's engine: one tick per interval turns the
 * collector's latest points into demand estimates, allocates (alloc.h),
 * steps toward the allocation with hysteresis, and, in enforce mode,
 * writes the knobs into each VM's cgroup. Every change comes back as an
 * hl_change with its reason, for the caller to publish. The caller owns the
 * timer and polls the collector before each tick; no daemon logic here.
 *
 * Modes (host-wide, overridable per VM by vm_resources.mode): off (nothing
 * decided), advise (decided and reported, nothing written), enforce. */

typedef struct hl_loop hl_loop;

struct hl_loop_opts {
	struct hl_params p;
	struct hl_step_params sp;
	struct hl_host_caps caps;   /* caps.cpu_idle is also set by the loop once a VM's
				     * group has the file cpu.idle */
	enum vm_loop_mode mode;     /* host mode: OFF, ADVISE or ENFORCE */
	unsigned overload_after;    /* intervals of unmet targets; default 5 */
	/* PSI some avg10 targets (percent) per class: cpu and memory. 0 = none. */
	double cpu_psi_target[3], mem_psi_target[3];
	struct hl_balloon_params bp; /* zero fields: defaults */
};

struct hl_change {
	char vm[VM_NAME_MAX + 1];
	enum hl_knob knob;
	char from[40], to[40];
	char reason[160];
	bool applied;   /* written (enforce) rather than only advised */
	bool caller_applies; /* enforce, HL_K_BALLOON: the caller must set it (QMP)
			      * and then sets applied */
	uint64_t value; /* HL_K_BALLOON: the new target in bytes */
	int error;      /* -errno of a failed write */
};

int hl_loop_new(const struct hl_loop_opts *o, qv_collector *col, hl_loop **ret);
hl_loop *hl_loop_free(hl_loop *l);
void hl_loop_freep(hl_loop **l);
void hl_loop_set_mode(hl_loop *l, enum vm_loop_mode host_mode);
enum vm_loop_mode hl_loop_mode(const hl_loop *l);

/* Manage VM `name` whose cgroup directory is `dir` (also registered with
 * the collector). vcpus and guest_mem (bytes) come from the spec. dir NULL:
 * a VM without a cgroup (the caller registers it with the collector by
 * pid): only its balloon is managed. */
int hl_loop_add_vm(hl_loop *l, const char *name, const char *dir, const struct vm_resources *res,
		   uint32_t vcpus, uint64_t guest_mem);
int hl_loop_remove_vm(hl_loop *l, const char *name);
/* VM name's group lives in a partition slice (dir; sched/cgroup.h
 * cg_group_create_exclusive): before the group becomes a partition root of
 * its exclusive cores, the slice is made one of them (with the cores of its
 * other partition roots); when the group leaves its partition, the slice
 * shrinks. -ENOENT, -errno opening dir. */
int hl_loop_vm_set_partition_slice(hl_loop *l, const char *name, const char *dir);
/* VM name has a balloon (active: the loop may steer it now, e.g. the VM
 * runs): target is what the caller last set (0: unknown, i.e. the full
 * memory), actual what the guest has (0: unknown). Call it before each tick; the guest's statistics come from the collector
 * (col_vm_set_guest). In enforce mode the loop steers from target; in
 * advise mode from its own last advice. -ENOENT. */
int hl_loop_vm_set_balloon(hl_loop *l, const char *name, bool active, uint64_t target,
			   uint64_t actual);
bool hl_loop_has_vm(const hl_loop *l, const char *name);
/* The entitlements of every managed VM, for admission control. ret is
 * allocated (free it); its res pointers stay valid until the next
 * add/remove. */
int hl_loop_vms_in(const hl_loop *l, struct hl_vm_in **ret, size_t *ret_n);

/* One interval. Writes up to max changes into ret; returns their number. */
size_t hl_loop_tick(hl_loop *l, struct hl_change *ret, size_t max);

/* The overload signal: reservations or pressure targets unmet for
 * overload_after intervals. why (may be NULL) says which. */
bool hl_loop_overloaded(const hl_loop *l, char *why, size_t size);
/* host.pressure: {overloaded, reason, host{...}, vms:[{name, demand...}]} */
json_object *hl_loop_pressure_json(const hl_loop *l);
/* One VM's entitlements, demand, allocation and mode; NULL if unknown. */
json_object *hl_loop_vm_json(const hl_loop *l, const char *name);
json_object *hl_change_to_json(const struct hl_change *c);
/* Total changes so far (for tests and metrics). */
unsigned long hl_loop_changes(const hl_loop *l);
/* name's demand estimate; NULL if unknown. */
const struct hl_demand *hl_loop_vm_demand(const hl_loop *l, const char *name);
/* The allocation currently written (or advised) for name; NULL if none. */
const struct hl_alloc *hl_loop_vm_alloc(const hl_loop *l, const char *name);
