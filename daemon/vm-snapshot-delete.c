/* SPDX-License-Identifier: MIT */
/* snapshot.delete: drop one point of the tree and merge its image away.
 *
 * A snapshot S froze image F; exactly one image C sits on F (the VM's active
 * image, or the image of S's only child snapshot X). C is committed into F
 * (block-commit) while the guest runs, then F takes C's place (it reads the
 * same) and C is removed. A snapshot with two or more children (a branch
 * point after a revert) is refused; a leaf that nothing sits on (an
 * abandoned branch) just loses its files.
 *
 * Crash safety: S is marked "deleting" before anything is merged; a commit
 * copies C's data into F without changing what C reads, so the chain stays
 * complete at every instant. An active commit switches QEMU's writes to F
 * at job-finalize: the guest is paused from just before the switch until
 * the store names F, so no write ever lands where the store does not look.
 * Offline merges (VM stopped, or S off the running chain) run qemu-img on a
 * worker thread (daemon/vm-snapshot-offline.c). */
#include <fcntl.h>
#include <inttypes.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/snapshot-internal.h"

void snap_delete_undo(struct snap_op *op)
{
	/* Nothing to roll back: a merge is idempotent and S stays "deleting"
	 * so that `snapshot delete` can run it again. */
}

static json_object *target(struct snap_op *op)
{
	return qv_snap_find(op->tree, op->name);
}

/* S's only child snapshot, or NULL when the child is the active image. */
json_object *snap_delete_child(struct snap_op *op)
{
	json_object *child = NULL;
	bool active;

	qv_snap_children(op->tree, op->name, &child, &active);
	return active ? NULL : child;
}

void snap_delete_finish(struct snap_op *op)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	json_object *s = target(op), *x = NULL;
	const char *parent = qv_snap_str(s, "parent");
	struct qv_error err = {};
	bool active;

	qv_snap_children(op->tree, op->name, &x, &active);
	if (active)
		qv_snap_set_str(op->tree, "current", parent);
	else if (x)
		qv_snap_set_str(x, "parent", parent);
	if (qv_snap_str(s, "memory"))
		snap_add_unlink(op->tree, qv_snap_str(s, "memory"));
	qv_snap_remove(op->tree, op->name);
	if (snap_tree_save(vm, op->tree, false, &err) < 0)
		return snap_op_fail(op, &err);
	snap_unlink_pending(vm, op->tree);
	(void)snap_tree_save(vm, op->tree, false, NULL);
	log_info("VM %s: snapshot %s deleted in %" PRIu64 " ms, guest paused %" PRIu64 " ms",
		 op->vm, op->name, qv_now_ms() - op->started_ms, op->paused_ms);
	qv_daemon_emit(op->d, op->vm, "snapshot-deleted", json_object_new_string(op->name));
	json_object *res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(op->name));
	json_object_object_add(res, "vm", json_object_new_string(op->vm));
	json_object_object_add(res, "merged", json_object_new_boolean(op->n_disks > 0));
	/* The guest pauses only around each active commit's switch. */
	json_object_object_add(res, "paused_ms", json_object_new_int64((int64_t)op->paused_ms));
	snap_op_reply(op, res);
}

/* --- the per-disk live merge --------------------------------------------- */

static void next_disk(struct snap_op *op);

static size_t depth(struct snap_op *op)
{
	return qv_snap_depth(op->tree, op->name);
}

const char *snap_delete_child_path(struct snap_op *op, struct qv_vm *vm, size_t i)
{
	json_object *x = snap_delete_child(op);

	return x ? qv_snap_disk_path(x, i) : vm->spec->disks[i].path;
}

/* Disk merged: F takes C's place in the store. */
int snap_delete_record(struct snap_op *op, struct qv_vm *vm, struct snap_disk *dk)
{
	json_object *x = snap_delete_child(op), *disks;
	const char *c = snap_delete_child_path(op, vm, dk->index);
	struct qv_error err = {};

	json_object_object_del(target(op), "merge");
	snap_add_unlink(op->tree, c);
	if (x && json_object_object_get_ex(x, "disks", &disks)) {
		for (size_t k = 0; k < json_object_array_length(disks); k++) {
			json_object *e = json_object_array_get_idx(disks, k);
			if (qv_snap_int(e, "index") == (int64_t)dk->index) {
				qv_snap_set_str(e, "path", dk->path);
				qv_snap_set_str(e, "format", dk->node); /* F's format */
			}
		}
	} else {
		struct vm_disk *vd = &vm->spec->disks[dk->index];
		char *p = strdup(dk->path);
		if (!p)
			return -ENOMEM;
		free(vd->path);
		vd->path = p;
		vd->format = streq(dk->node, "qcow2") ? VM_DISK_QCOW2 : VM_DISK_RAW;
	}
	if (qv_vm_is_active(vm) && depth(op) > 0 &&
	    snap_live_drop(vm, op->tree, dk->index, depth(op) - 1) < 0)
		snap_live_invalidate(op->tree);
	if (snap_tree_save(vm, op->tree, !x, &err) < 0) {
		snap_op_fail(op, &err);
		return -EIO;
	}
	return 0;
}

static void poll_job(struct snap_op *op, json_object *ret);

static void fire(struct qv_vm *vm, const char *cmd, const char *key, json_object *val)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, key, val);
	(void)qemu_instance_execute_async(vm->inst, cmd, a, SNAP_QMP_TIMEOUT_MS, NULL, NULL, NULL);
	json_object_put(a);
}

/* The merged node still has the monitor's reference (-blockdev and
 * blockdev-add nodes do): drop it, its file node and its fds, or the next
 * merge finds its base with two parents. Best effort. */
static void dismissed(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	char file[48];

	if (vm && vm->inst && op->merged_node[0]) {
		snprintf(file, sizeof(file), "%s-file", op->merged_node);
		fire(vm, "blockdev-del", "node-name", json_object_new_string(op->merged_node));
		fire(vm, "blockdev-del", "node-name", json_object_new_string(file));
		fire(vm, "remove-fd", "fdset-id", json_object_new_int64(op->merged_fdset));
	}
	op->merged_node[0] = '\0';
	op->cur++;
	next_disk(op);
}

static void resumed(struct snap_op *op, json_object *ret)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "id", json_object_new_string(op->op_id));
	snap_qmp(op, "job-dismiss", a, NULL, 0, dismissed);
	json_object_put(a);
}

static void concluded(struct snap_op *op, json_object *job)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	const char *error = qv_snap_str(job, "error");

	if (error)
		return snap_op_failf(op, EIO, QV_REASON_QEMU_ERROR,
				     "VM %s: merging snapshot %s failed: %s (it stays \"deleting\"; "
				     "run the delete again)", op->vm, op->name, error);
	if (snap_delete_record(op, vm, &op->disks[op->cur]) < 0)
		return;
	if (op->paused_by_us) {
		op->paused_by_us = false;
		op->paused_ms += qv_now_ms() - op->paused_at;
		return op->was_running ? snap_qmp(op, "cont", NULL, NULL, 0, resumed)
				       : resumed(op, NULL);
	}
	resumed(op, NULL);
}

static void job_cmd(struct snap_op *op, const char *cmd)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "id", json_object_new_string(op->op_id));
	snap_qmp(op, cmd, a, NULL, 0, poll_job);
	json_object_put(a);
}

static void paused(struct snap_op *op, json_object *ret)
{
	job_cmd(op, "job-complete");
}

static void on_jobs(struct snap_op *op, json_object *ret)
{
	json_object *job = NULL;
	const char *status;

	for (size_t k = 0; ret && k < json_object_array_length(ret); k++)
		if (streq_ptr(qv_snap_str(json_object_array_get_idx(ret, k), "id"), op->op_id))
			job = json_object_array_get_idx(ret, k);
	if (!job)
		return snap_op_failf(op, EIO, QV_REASON_QEMU_ERROR,
				     "VM %s: the merge job of snapshot %s vanished", op->vm,
				     op->name);
	status = qv_snap_str(job, "status");
	snap_progress(op, qv_snap_int(job, "current-progress"), qv_snap_int(job, "total-progress"));
	if (streq_ptr(status, "ready") && !op->paused_by_us) {
		/* Active commit caught up: pause, switch, record, resume. The
		 * marker tells a restarted daemon which node the switch
		 * removes (daemon/vm-snapshot-recover.c). */
		struct qv_vm *vm = qv_vm_find(op->d, op->vm);
		json_object *m = json_object_new_object();
		struct qv_error err = {};
		json_object_object_add(m, "disk", json_object_new_int64((int64_t)op->disks[op->cur].index));
		json_object_object_add(m, "node", json_object_new_string(op->merged_node));
		json_object_object_add(m, "path", json_object_new_string(op->disks[op->cur].path));
		json_object_object_add(m, "format", json_object_new_string(op->disks[op->cur].node));
		json_object_object_add(m, "paused", json_object_new_boolean(op->was_running));
		json_object_object_add(target(op), "merge", m);
		if (snap_tree_save(vm, op->tree, false, &err) < 0)
			return snap_op_fail(op, &err);
		op->paused_by_us = true;
		op->paused_at = qv_now_ms();
		return snap_qmp(op, "stop", NULL, NULL, 0, paused);
	}
	if (streq_ptr(status, "pending"))
		return job_cmd(op, "job-finalize");
	if (streq_ptr(status, "concluded"))
		return concluded(op, job);
	snap_later(op, SNAP_POLL_MS, poll_job);
}

static void poll_job(struct snap_op *op, json_object *ret)
{
	snap_qmp(op, "query-jobs", NULL, NULL, 0, on_jobs);
}

static void commit(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	struct snap_disk *dk = &op->disks[op->cur];
	size_t d = depth(op);
	char root[40], top[40], base[40];
	int64_t fs;
	json_object *a = json_object_new_object();
	const struct vm_disk *vd = &vm->spec->disks[dk->index];

	if (snap_live_node(vm, op->tree, dk->index, 0, root, sizeof(root), &fs) < 0 ||
	    snap_live_node(vm, op->tree, dk->index, d - 1, top, sizeof(top),
			   &op->merged_fdset) < 0 ||
	    snap_live_node(vm, op->tree, dk->index, d, base, sizeof(base), &fs) < 0) {
		json_object_put(a);
		return snap_op_failf(op, ESTALE, QV_REASON_CONFLICT,
				     "VM %s: the daemon lost track of QEMU's disk nodes; stop and "
				     "start the VM, then delete again", op->vm);
	}
	snprintf(op->merged_node, sizeof(op->merged_node), "%s", top);
	/* The device's root: the throttle filter when there is one (qemu/argv.c). */
	if (vd->io_rbps || vd->io_wbps || vd->io_riops || vd->io_wiops)
		snprintf(root, sizeof(root), "disk%zu-throttle", dk->index);
	json_object_object_add(a, "job-id", json_object_new_string(op->op_id));
	json_object_object_add(a, "device", json_object_new_string(root));
	json_object_object_add(a, "base-node", json_object_new_string(base));
	if (d > 1) {
		json_object_object_add(a, "top-node", json_object_new_string(top));
		/* The name written into the image above: a real path, never
		 * QEMU's /dev/fdset. */
		json_object_object_add(a, "backing-file", json_object_new_string(dk->path));
	}
	json_object_object_add(a, "auto-finalize", json_object_new_boolean(false));
	json_object_object_add(a, "auto-dismiss", json_object_new_boolean(false));
	snap_qmp(op, "block-commit", a, NULL, 0, poll_job);
	json_object_put(a);
}

/* Images QEMU opened read-only get a read-write fd in their fdset and are
 * reopened read-write: F (written by the commit) and, for an inner commit,
 * the image above C (its header gets F's name). */
static void make_writable(struct snap_op *op, json_object *ret);

/* The read-only fds of the reopened image must go: QEMU's image locks live
 * on their open file description, which the fdset keeps open, and would
 * refuse the commit its "write" lock. */
static void on_fdsets(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);

	for (size_t k = 0; ret && k < json_object_array_length(ret); k++) {
		json_object *set = json_object_array_get_idx(ret, k), *fds;
		if (qv_snap_int(set, "fdset-id") != op->reopen_fdset ||
		    !json_object_object_get_ex(set, "fds", &fds))
			continue;
		for (size_t j = 0; j < json_object_array_length(fds); j++) {
			int64_t fd = qv_snap_int(json_object_array_get_idx(fds, j), "fd");
			json_object *a;
			if (fd == op->reopen_fd)
				continue;
			a = json_object_new_object();
			json_object_object_add(a, "fdset-id", json_object_new_int64(op->reopen_fdset));
			json_object_object_add(a, "fd", json_object_new_int64(fd));
			(void)qemu_instance_execute_async(vm->inst, "remove-fd", a, SNAP_QMP_TIMEOUT_MS,
							  NULL, NULL, NULL);
			json_object_put(a);
		}
	}
	op->step++;
	make_writable(op, NULL);
}

static void reopened(struct snap_op *op, json_object *ret)
{
	snap_qmp(op, "query-fdsets", NULL, NULL, 0, on_fdsets);
}

static void fd_added(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	struct snap_disk *dk = &op->disks[op->cur];
	size_t k = op->step == 0 ? depth(op) : depth(op) - 2;
	char node[40], file[48], path[40];
	int64_t fs;
	json_object *o = json_object_new_object(), *a = json_object_new_object(), *l;

	(void)snap_live_node(vm, op->tree, dk->index, k, node, sizeof(node), &fs);
	op->reopen_fdset = fs;
	op->reopen_fd = qv_snap_int(ret, "fd");
	snprintf(file, sizeof(file), "%s-file", node);
	snprintf(path, sizeof(path), "/dev/fdset/%" PRId64, fs);
	json_object_object_add(o, "driver", json_object_new_string("file"));
	json_object_object_add(o, "node-name", json_object_new_string(file));
	json_object_object_add(o, "filename", json_object_new_string(path));
	json_object_object_add(o, "read-only", json_object_new_boolean(false));
	l = json_object_new_array();
	json_object_array_add(l, o);
	json_object_object_add(a, "options", l);
	snap_qmp(op, "blockdev-reopen", a, NULL, 0, reopened);
	json_object_put(a);
}

static void make_writable(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	struct snap_disk *dk = &op->disks[op->cur];
	size_t d = depth(op);
	/* step 0: F at depth d; step 1: the image above C (depth d - 2), when
	 * it is a frozen one (depth >= 1). */
	if (op->step == 1 && d < 3)
		op->step = 2;
	if (op->step >= 2)
		return commit(op, NULL);
	size_t k = op->step == 0 ? d : d - 2;
	const char *path = op->step == 0 ? dk->path : NULL;
	char node[40];
	int64_t fs;
	json_object *a;

	if (op->step == 1) {
		/* The image of the snapshot at depth d - 2 on the current path. */
		const char *p = qv_snap_current(op->tree);
		for (size_t j = 1; j < k && p; j++)
			p = qv_snap_str(qv_snap_find(op->tree, p), "parent");
		path = p ? qv_snap_disk_path(qv_snap_find(op->tree, p), dk->index) : NULL;
	}
	if (!path || snap_live_node(vm, op->tree, dk->index, k, node, sizeof(node), &fs) < 0)
		return snap_op_failf(op, ESTALE, QV_REASON_CONFLICT,
				     "VM %s: the daemon lost track of QEMU's disk nodes; stop and "
				     "start the VM, then delete again", op->vm);
	if (dk->fd >= 0)
		close(dk->fd);
	dk->fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (dk->fd < 0)
		return snap_op_failf(op, errno, QV_REASON_IO_ERROR, "VM %s: cannot open %s: %m",
				     op->vm, path);
	a = json_object_new_object();
	json_object_object_add(a, "fdset-id", json_object_new_int64(fs));
	snap_qmp(op, "add-fd", a, &dk->fd, 1, fd_added);
	json_object_put(a);
}

static void next_disk(struct snap_op *op)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);

	for (; op->cur < op->n_disks; op->cur++) {
		struct snap_disk *dk = &op->disks[op->cur];
		/* Already merged by an earlier, interrupted run. */
		if (!streq_ptr(snap_delete_child_path(op, vm, dk->index), dk->path))
			break;
	}
	if (op->cur == op->n_disks)
		return snap_delete_finish(op);
	op->step = 0;
	make_writable(op, NULL);
}

/* --- entry ---------------------------------------------------------------- */

static int check_delete(struct qv_vm *vm, json_object *tree, const char *name,
			struct qv_error *errp)
{
	json_object *s = qv_snap_find(tree, name);
	size_t n;

	if (!s)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
				    "VM %s has no snapshot named %s", vm->name, name);
	if (streq(qv_snap_str(s, "state"), "creating"))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "snapshot %s of VM %s is still being created", name, vm->name);
	json_object *x = NULL;
	bool active;
	n = qv_snap_children(tree, name, &x, &active);
	if (n == 1 && !active && qv_snap_children(tree, qv_snap_str(x, "name"), NULL, NULL) > 1)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "snapshot %s of VM %s: its child %s is a branch point; merging "
				    "would rewrite the images of every branch (delete branches "
				    "first)", name, vm->name, qv_snap_str(x, "name"));
	if (n > 1)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "snapshot %s of VM %s is a branch point (%zu images sit on it); "
				    "delete all but one of its branches first", name, vm->name, n);
	if (qv_vm_is_active(vm) && vm->state != QV_VM_RUNNING && vm->state != QV_VM_PAUSED)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "Cannot merge a snapshot of VM %s: it is %s", vm->name,
				    qv_vm_state_to_string(vm->state));
	return 0;
}

int qv_snapshot_delete(struct qv_vm *vm, const char *name, qv_rpc_call *call,
		       struct qv_error *errp)
{
	json_object *tree = snap_tree_load(vm, errp), *s, *disks;
	struct snap_op *op;
	int r;

	if (!tree)
		return -EIO;
	if ((r = check_delete(vm, tree, name, errp)) < 0 ||
	    !(op = snap_op_new(vm, SNAP_DELETE, name, call, errp))) {
		json_object_put(tree);
		return r < 0 ? r : -EBUSY;
	}
	op->tree = tree;
	op->was_running = vm->state == QV_VM_RUNNING;
	s = target(op);
	if (qv_snap_children(tree, name, NULL, NULL) == 0) {
		/* A leaf nothing sits on: its images go with it. */
		json_object_object_get_ex(s, "disks", &disks);
		for (size_t k = 0; k < json_object_array_length(disks); k++)
			snap_add_unlink(tree, qv_snap_str(json_object_array_get_idx(disks, k), "path"));
		snap_delete_finish(op);
		return 0;
	}
	json_object_object_get_ex(s, "disks", &disks);
	for (size_t k = 0; k < json_object_array_length(disks) && k < SNAP_MAX_DISKS; k++) {
		json_object *e = json_object_array_get_idx(disks, k);
		struct snap_disk *dk = &op->disks[op->n_disks++];
		dk->index = (size_t)qv_snap_int(e, "index");
		snprintf(dk->path, sizeof(dk->path), "%s", qv_snap_str(e, "path"));
		snprintf(dk->node, sizeof(dk->node), "%s", qv_snap_str(e, "format"));
		if (dk->index >= vm->spec->n_disks) {
			snap_op_failf(op, EINVAL, QV_REASON_CONFLICT,
				      "snapshot %s has disk %zu; VM %s has %zu disks now", name,
				      dk->index, vm->name, vm->spec->n_disks);
			return 0;
		}
	}
	qv_snap_set_str(s, "state", "deleting");
	if (snap_tree_save(vm, tree, false, errp) < 0) {
		snap_op_fail(op, errp);
		return 0;
	}
	if (qv_vm_is_active(vm) && qv_snap_on_current_path(tree, name))
		next_disk(op);
	else
		snap_delete_offline(op);
	return 0;
}
