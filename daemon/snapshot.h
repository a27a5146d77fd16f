/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "daemon/daemon.h"

struct qv_vm;

/* snapshot.* RPC methods (daemon/methods-snapshot.c). */
extern const struct qv_rpc_method qv_snapshot_methods[];
extern const size_t qv_snapshot_methods_count;

/* daemon/vm-disks.c: may vm's disk chain name `real` (a resolved path) as a
 * backing file although it is outside the pool? True for the images of the
 * VM's own snapshot tree (its original disks among them). */
bool qv_snapshot_owns_file(struct qv_vm *vm, const char *real);

/* At daemon start, after the VM registry is loaded: finish what operations
 * cut by a restart left (docs/snapshots.md, "Crash recovery"). Never fatal. */
void qv_snapshot_recover(struct qv_daemon *d);
/* The same for one VM whose re-attach ended after daemon start (it was
 * skipped then: recovery needs its QMP). */
void qv_snapshot_recover_vm(struct qv_vm *vm);
