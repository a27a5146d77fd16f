/* SPDX-License-Identifier: MIT */
/* A latency VM's exclusive cores as a cgroup-v2 cpuset partition root
 * (cpuset.cpus.partition = root): the cores leave the parent's effective
 * set, so no task outside the partition can run there, and the scheduler
 * stops balancing load across its border. The kernel accepts it only where
 * every ancestor is a partition root (6.1: no cpuset.cpus.exclusive, so no
 * remote partitions): a VM whose group is in a partition slice
 * (hl_loop_vm_set_partition_slice) has the slice made one first; elsewhere the cpuset assignment alone keeps the other
 * VMs off (the fallback), with the kernel's reason kept for policy.show. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "sched/cgroup-internal.h"
#include "sched/resloop-internal.h"

#define PART_FILE "cpuset.cpus.partition"

static void set_why(struct hl_vm *vm, const char *fmt, const char *arg)
{
	snprintf(vm->part_why, sizeof(vm->part_why), fmt, arg);
}

/* Back to an ordinary member (before its cpuset changes or when it loses
 * its exclusive cores); its partition slice shrinks to the others'. */
void hl_partition_leave(struct hl_vm *vm)
{
	char why[160];

	if (vm->excl == HL_EXCL_PARTITION && vm->dirfd >= 0) {
		if (cg_write_at(vm->dirfd, PART_FILE, "member") < 0)
			log_warning("VM %s: cannot end its cpuset partition", vm->name);
		if (vm->slice_fd >= 0 && cg_partition_slice_fit(vm->slice_fd, NULL, why, sizeof(why)) < 0)
			log_warning("VM %s: its partition slice: %s", vm->name, why);
	}
	vm->excl = HL_EXCL_NONE;
	vm->part_why[0] = '\0';
}

/* A VM in a partition slice: the slice first becomes a partition root of
 * its cores (and those of the slice's other partitions). */
static bool slice_ready(struct hl_vm *vm, uint64_t cpuset)
{
	char cpus[256], why[160];

	if (vm->slice_fd < 0)
		return true; /* the parent is what it is: the kernel says */
	hl_cpuset_format(cpuset, cpus, sizeof(cpus));
	if (cg_partition_slice_fit(vm->slice_fd, cpus, why, sizeof(why)) == 0)
		return true;
	snprintf(vm->part_why, sizeof(vm->part_why),
		 "the kernel refused the latency slice a partition root of %s: %s", cpus, why);
	return false;
}

/* Try once per cpuset: root, read back, else member again. */
void hl_partition_enter(struct hl_vm *vm, uint64_t cpuset)
{
	char got[128];
	int r;

	if (vm->excl != HL_EXCL_NONE || vm->dirfd < 0)
		return;
	if (cg_read_at(vm->dirfd, PART_FILE, got, sizeof(got)) < 0) {
		vm->excl = HL_EXCL_CPUSET;
		set_why(vm, "%s", "the kernel has no cpuset partitions (cpuset.cpus.partition)");
		return;
	}
	if (!slice_ready(vm, cpuset)) {
		vm->excl = HL_EXCL_CPUSET;
		log_info("VM %s: exclusive cores kept by cpuset.cpus only (%s)", vm->name, vm->part_why);
		return;
	}
	r = cg_write_at(vm->dirfd, PART_FILE, "root");
	if (r == 0 && cg_read_at(vm->dirfd, PART_FILE, got, sizeof(got)) >= 0) {
		got[strcspn(got, "\n")] = '\0';
		if (streq(got, "root")) {
			vm->excl = HL_EXCL_PARTITION;
			log_info("VM %s: exclusive cores are a cpuset partition root", vm->name);
			return;
		}
		set_why(vm, "the kernel refused a partition root: %s", got);
	} else {
		set_why(vm, "writing cpuset.cpus.partition failed: %s", strerror(r < 0 ? -r : EIO));
	}
	(void)cg_write_at(vm->dirfd, PART_FILE, "member");
	if (vm->slice_fd >= 0) /* the slice gives the cores back */
		(void)cg_partition_slice_fit(vm->slice_fd, NULL, NULL, 0);
	vm->excl = HL_EXCL_CPUSET;
	log_info("VM %s: exclusive cores kept by cpuset.cpus only (%s)", vm->name, vm->part_why);
}

const char *hl_excl_to_string(enum hl_excl e)
{
	return e == HL_EXCL_PARTITION ? "partition" : e == HL_EXCL_CPUSET ? "cpuset" : "none";
}
