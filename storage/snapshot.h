/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"

/* External snapshots: the pure parts. The image helpers create the qcow2
 * overlay a snapshot adds on top of a disk; the tree model is the JSON
 * document the daemon keeps per VM in its state store (docs/snapshots.md):
 *
 *   {"seq": N, "current": NAME|null,
 *    "snapshots": [{"name", "parent": NAME|null, "state": "creating"|"ok"|
 *                   "deleting", "created_at": ms, "vm_state": "running"|..,
 *                   "disks": [{"index": i, "path": FILE, "format": F}],
 *                   "memory": FILE|null, "memory_size": bytes}],
 *    "live": {"started_at": ms, "disks": [[{"node", "fdset"}...]...]},
 *    "unlink": [FILE...]}
 *
 * A snapshot's disks[].path is the image frozen at that point (read-only
 * from then on); its backing file is the parent's image of the same disk,
 * and the VM's active image (spec.disks[i].path) is backed by the current
 * snapshot's. "live" names the QEMU nodes of the active chain (top first)
 * of the QEMU started at started_at; "unlink" lists files a finished
 * operation still has to remove (crash-safe order: the store first). */

#define QV_SNAPSHOT_NAME_MAX 63
/* [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62} */
bool qv_snapshot_name_valid(const char *name);

/* Virtual size of an open image: qcow2 header field, else the file or block
 * device size. */
int qv_snapshot_image_size(int fd, bool qcow2, uint64_t *ret_size, struct qv_error *errp);
/* New qcow2 overlay at path (-EEXIST if it exists) of `size` bytes on an
 * absolute backing path of format backing_fmt ("raw"/"qcow2"). The backing
 * file is NOT opened (qemu-img -u): root reads no image QEMU could have
 * written. */
int qv_snapshot_overlay_create(const char *path, const char *backing, const char *backing_fmt,
			       uint64_t size, struct qv_error *errp);

/* --- the tree (borrowed pointers into the document) ---------------------- */

json_object *qv_snap_tree_new(void);
/* Shape check of a document read back from the store: 0 or -EINVAL. */
int qv_snap_tree_validate(json_object *tree, struct qv_error *errp);
json_object *qv_snap_tree_list(json_object *tree); /* the "snapshots" array */
json_object *qv_snap_find(json_object *tree, const char *name);
const char *qv_snap_str(json_object *o, const char *key); /* NULL if absent/null */
int64_t qv_snap_int(json_object *o, const char *key);     /* 0 if absent */
const char *qv_snap_current(json_object *tree);
void qv_snap_set_str(json_object *o, const char *key, const char *val); /* NULL: null */
/* The image of disk `index` frozen by snapshot s, or NULL. */
const char *qv_snap_disk_path(json_object *s, size_t index);
/* The next sequence number (stored). */
int64_t qv_snap_next_seq(json_object *tree);
/* Children of snapshot `name`: snapshots whose parent it is, plus the VM's
 * active state when it is the current one (*ret_active). Returns the count;
 * *ret_child (may be NULL) gets the last child snapshot. */
size_t qv_snap_children(json_object *tree, const char *name, json_object **ret_child,
			bool *ret_active);
/* Is `name` the current snapshot or one of its ancestors? */
bool qv_snap_on_current_path(json_object *tree, const char *name);
/* Depth of `name` below the active image in the current chain: 1 for the
 * current snapshot, 2 for its parent...; 0 if not on the path. */
size_t qv_snap_depth(json_object *tree, const char *name);
/* Remove snapshot `name` from the list (no re-parenting). */
void qv_snap_remove(json_object *tree, const char *name);
/* Is path one of the images or memory files the tree references? */
bool qv_snap_references(json_object *tree, const char *path);
