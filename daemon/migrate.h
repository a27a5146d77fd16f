/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>

#include "daemon/daemon.h"

/* migrate.* RPC methods (daemon/methods-migrate.c, daemon/migrate-*.c):
 *   migrate.plan     (source) {name, copy_storage?, bandwidth_mbps?}
 *                    -> {disks[{virtual_size,…}], multifd_channels, multifd_reason,
 *                        mirror_cleanup}: what both sides must agree on
 *   migrate.prepare  (destination) {spec, listen?, address?, port?, timeout_s?,
 *                    multifd_channels?, copy_storage?, disk_sizes?}
 *                    -> {name, uri, token, created, nbd?, disks?}
 *   migrate.perform  (source) {name, uri, max_downtime_ms?, bandwidth_mbps?,
 *                    deadline_s?, allow_postcopy?, plain?, premeasure?,
 *                    multifd_channels?, multifd_reason?, copy_storage?, nbd?}
 *                    -> stats, with "migrate.progress" notifications
 *   migrate.finish   (destination) {name, token} -> {name, state}
 *   migrate.confirm  (source) {name, keep_definition?} -> {name, state}
 *   migrate.cancel   (either) {name} -> {name, role, action}
 *   migrate.recover  (source) {name}: after a daemon restart, resolve a
 *                    migration left behind -> {name, status, state}
 *   migrate.status   (either) {name} -> the migration record, or not-found
 * See docs/migration.md. */
extern const struct qv_rpc_method qv_migrate_methods[];
extern const size_t qv_migrate_methods_count;

/* Daemon start, after qv_vm_registry_load(): resolve migration records left
 * by a previous daemon (source: cancel an unfinished outgoing migration and
 * resume the guest, leave a completed one for the coordinator; destination:
 * tear down an incoming QEMU that never finished). Never fatal. */
void qv_migrate_registry_load(struct qv_daemon *d);
/* Recoveries of source records started at daemon start still run (or the
 * vm.migrate drivers wait for them): migrate.* answer "unavailable". */
bool qv_mig_start_recovering(void);

/* Prometheus families of the migrations (daemon/migrate-metrics.c):
 * in flight by role, completed/failed outgoing totals, and each VM's last
 * outgoing migration (QEMU's downtime, RAM bytes, total time). */
void qv_migrate_metrics(FILE *f);
