/* SPDX-License-Identifier: MIT */
#pragma once

/* qvisord's host resource loop (docs/resource-loop.md): a timer that polls
 * the collector and ticks the engine (sched/resloop.h) every interval,
 * publishes each allocation change as an "allocation" event and overload
 * transitions as "host-overload"; admission control at vm.start; RPC
 * host.pressure, policy.show, policy.set-mode. */

#include "daemon/daemon.h"
#include "sched/resloop.h"

struct qv_vm;

/* After the cgroup and VM registries: create the collector and the engine,
 * adopt running VMs, arm the timer. Never fatal for the daemon. */
int qv_hostloop_load(struct qv_daemon *d);
void qv_hostloop_free(struct qv_daemon *d);

/* The RPC server exists: RPC latencies start feeding the metrics. */
void qv_hostloop_rpc_ready(struct qv_daemon *d);

/* vm.start, before QEMU is spawned: 0 if the VM's reservations fit next to
 * the running VMs' (loop mode off: always), else -ENOSPC and errp names the
 * short resource. */
int qv_hostloop_admit(struct qv_vm *vm, struct qv_error *errp);
/* The VM's cgroup exists (dir: its path) / is about to go away. */
void qv_hostloop_vm_added(struct qv_vm *vm, const char *dir);
void qv_hostloop_vm_removed(struct qv_vm *vm);
/* vm.start: the VM is of the latency class and the loop enforces its
 * allocation with the cpuset controller: its group goes in the partition
 * slice (cg_group_create_exclusive), where its cores can become a cpuset
 * partition. Decided at start; a mode changed later moves nothing. */
bool qv_hostloop_wants_partition(const struct qv_vm *vm);

/* For the metrics endpoint: the collector and the engine (NULL when the
 * loop has no cgroups to read). */
struct qv_hostloop_view {
	const qv_collector *col;
	const hl_loop *loop;
};
void qv_hostloop_view(struct qv_daemon *d, struct qv_hostloop_view *ret);

extern const struct qv_rpc_method qv_hostloop_methods[];
extern const size_t qv_hostloop_methods_count;
