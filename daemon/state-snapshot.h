/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/state.h"

/* A VM's snapshot tree (storage/snapshot.h), one JSON text per VM in table
 * snapshot_trees; the row goes with the VM (cascade). */

/* -ENOENT if the VM has no tree yet. *ret_json is caller-owned. */
int qv_state_snap_tree_get(qv_state *st, const char *vm, char **ret_json);
/* Insert or replace. -ENOENT if the VM is not defined. */
int qv_state_snap_tree_put(qv_state *st, const char *vm, const char *tree_json);
