/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/daemon.h"

/* Cold migration of a stopped VM (docs/cluster.md "Cold migration"):
 * vm.move on the owner streams the VM's disks to the destination daemon
 * over the mutual-TLS RPC channel (move.* steps), the destination verifies
 * each disk's content checksum, the inventory owner changes in one
 * revision-compared etcd transaction, then the destination defines the VM
 * and the source removes its copy. */

extern const struct qv_rpc_method qv_move_methods[];
extern const size_t qv_move_methods_count;

/* At start, after the VM registry and the image pool: clean up moves cut
 * by a restart (both roles). Never fatal. */
void qv_move_load(struct qv_daemon *d);
/* At exit: stop the copy threads (a copy in flight fails: its VM stays on
 * the source). */
void qv_move_free(struct qv_daemon *d);
