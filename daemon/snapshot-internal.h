/* SPDX-License-Identifier: MIT */
#pragma once

/* VM snapshots (docs/snapshots.md), shared by daemon/vm-snapshot*.c and
 * daemon/methods-snapshot.c. One operation per VM at a time; every step is
 * an asynchronous QMP command or a loop timer, so the daemon's loop never
 * waits for QEMU. Operations find their VM again by name after each step (it
 * may have been undefined meanwhile). */

#include <limits.h>

#include "daemon/vm.h"
#include "qemu/qmp.h"
#include "storage/snapshot.h"

#define SNAP_QMP_TIMEOUT_MS 30000
#define SNAP_POLL_MS 200
#define SNAP_MAX_DISKS 16

enum snap_kind { SNAP_CREATE, SNAP_REVERT, SNAP_DELETE };

struct snap_op;
typedef void (*snap_step_fn)(struct snap_op *op, json_object *ret);

struct snap_disk {
	size_t index;      /* spec.disks[] */
	int fd;            /* new overlay (create/revert) or base opened rw (delete) */
	char path[PATH_MAX];
	char node[40];
	int64_t fdset;
};

struct snap_op {
	struct qv_daemon *d;
	struct snap_op *next;
	enum snap_kind kind;
	char vm[64];
	char name[64];
	char op_id[48];
	qv_rpc_call *call;
	qv_rpc_client *client; /* ref, for progress notifications */
	json_object *tree;     /* working copy of the VM's tree */
	bool memory;           /* create: save RAM; revert: restore it */
	bool was_running;      /* the guest ran when the operation began */
	bool paused_by_us;     /* we sent "stop" and owe a "cont" */
	struct snap_disk disks[SNAP_MAX_DISKS];
	size_t n_disks, cur;   /* cur: the disk a per-disk step is at */
	int mem_fd;
	char mem_path[PATH_MAX];
	snap_step_fn next_step; /* after the current QMP command / poll */
	qv_source *timer;
	uint64_t started_ms;
	int step;               /* operation-private sub-step */
	char merged_node[40];   /* delete: the node a merge removed from the chain */
	int64_t merged_fdset;
	int64_t reopen_fdset, reopen_fd; /* delete: the read-write fd just added */
	uint64_t paused_at, paused_ms;   /* when we paused the guest, for how long */
	snap_step_fn mig_done;           /* snap_migrate_fd() */
	const char *mig_what;
};

/* --- daemon/vm-snapshot-store.c ------------------------------------------ */
/* The VM's tree (a new empty one if it has none); NULL with errp on a
 * damaged store. */
json_object *snap_tree_load(struct qv_vm *vm, struct qv_error *errp);
/* Persist tree, and the VM's spec when with_spec, in one transaction. */
int snap_tree_save(struct qv_vm *vm, json_object *tree, bool with_spec, struct qv_error *errp);
/* "<state_dir>/images/.snapshots/<vm>" (created on demand with mkdir_p). */
int snap_dir(struct qv_vm *vm, char *buf, size_t size, bool create);
/* The next sequence number no file in dir uses (ov<N>-d<i>, mem<N>). */
int64_t snap_fresh_seq(json_object *tree, const char *dir);
/* Is path inside the VM's snapshot directory? */
bool snap_is_ours(struct qv_vm *vm, const char *path);
/* Remove the files of tree's "unlink" list that are ours, then clear it. */
void snap_unlink_pending(struct qv_vm *vm, json_object *tree);
void snap_add_unlink(json_object *tree, const char *path);
/* Node name and fdset of the image at depth k (0 = active) of disk i in the
 * running QEMU; -ESTALE if the daemon lost track (restart the VM). */
int snap_live_node(struct qv_vm *vm, json_object *tree, size_t i, size_t k, char *node,
		   size_t node_size, int64_t *ret_fdset);
/* Record the live chain after a change: drop depth k of disk i (a merged
 * image) or push a new top. */
int snap_live_drop(struct qv_vm *vm, json_object *tree, size_t i, size_t k);
int snap_live_push(struct qv_vm *vm, json_object *tree, size_t i, const char *node,
		   int64_t fdset);
void snap_live_invalidate(json_object *tree);
/* daemon/vm-snapshot-recover.c: resolve snapshot snap's "merge" marker
 * (asynchronously when vm's QEMU runs). */
void snap_recover_merge(struct qv_vm *vm, const char *snap);

/* --- daemon/vm-snapshot-op.c --------------------------------------------- */
/* A new operation on vm (refused with conflict when one runs). */
struct snap_op *snap_op_new(struct qv_vm *vm, enum snap_kind kind, const char *name,
			    qv_rpc_call *call, struct qv_error *errp);
/* The op's VM, or NULL (the op is then failed and freed). */
struct qv_vm *snap_op_vm(struct snap_op *op);
/* Run command on the VM's QMP (fds may be NULL); next(op, ret) on success,
 * on failure the op fails with the QEMU error. */
void snap_qmp(struct snap_op *op, const char *command, json_object *args, const int *fds,
	      size_t n_fds, snap_step_fn next);
/* Call next after ms on the loop. */
void snap_later(struct snap_op *op, uint64_t ms, snap_step_fn next);
void snap_progress(struct snap_op *op, int64_t done, int64_t total);
/* QEMU's name for the memory state file's fd (getfd). */
#define SNAP_MEM_FDNAME "qvsnapmem"
/* "migrate" or "migrate-incoming" with the fd named SNAP_MEM_FDNAME, then
 * poll query-migrate (progress notifications) until it completes: done(op),
 * or the op fails with "<what> failed: <QEMU's reason>". */
void snap_migrate_fd(struct snap_op *op, const char *command, const char *what,
		     snap_step_fn done);
/* Answer and free. fail: undo is the kind's cleanup (may be NULL). */
void snap_op_reply(struct snap_op *op, json_object *result);
void snap_op_fail(struct snap_op *op, const struct qv_error *err);
void snap_op_failf(struct snap_op *op, int error, const char *reason, const char *fmt, ...)
	_printf_(4, 5);
/* Undo hook per kind (set by the kind's file before the first step). */
extern void (*const snap_undo[3])(struct snap_op *op);
bool snap_vm_busy(struct qv_daemon *d, const char *vm);
/* One snapshot entry as shown by snapshot.list (size: bytes on disk). */
json_object *snap_entry_json(json_object *tree, json_object *s);

/* --- the operations (answer call later; < 0: refused, errp set) --------- */
int qv_snapshot_create(struct qv_vm *vm, const char *name, bool memory, qv_rpc_call *call,
		       struct qv_error *errp);
int qv_snapshot_revert(struct qv_vm *vm, const char *name, qv_rpc_call *call,
		       struct qv_error *errp);
int qv_snapshot_delete(struct qv_vm *vm, const char *name, qv_rpc_call *call,
		       struct qv_error *errp);
/* daemon/vm-snapshot-delete.c, shared with the offline merge */
json_object *snap_delete_child(struct snap_op *op);  /* NULL: the active image */
const char *snap_delete_child_path(struct snap_op *op, struct qv_vm *vm, size_t i);
int snap_delete_record(struct snap_op *op, struct qv_vm *vm, struct snap_disk *dk);
void snap_delete_finish(struct snap_op *op);
/* daemon/vm-snapshot-offline.c: merge with qemu-img on a worker thread. */
void snap_delete_offline(struct snap_op *op);
void snap_create_undo(struct snap_op *op);
void snap_revert_undo(struct snap_op *op);
void snap_delete_undo(struct snap_op *op);
