/* SPDX-License-Identifier: MIT */
/* snapshot.revert: a running VM is stopped (QEMU quits: its state is being
 * thrown away), each disk gets a new empty overlay on the snapshot's frozen
 * image (the snapshot itself stays intact and can be reverted to again),
 * and the VM is started again. When the snapshot saved the memory state,
 * QEMU starts with -incoming and loads it from the file: the guest resumes
 * where it was, without booting. The images the VM wrote since are removed
 * unless a snapshot holds them. */
#include <fcntl.h>
#include <inttypes.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/snapshot-internal.h"

#define REVERT_STOP_TIMEOUT_MS 30000
enum { STEP_NONE, STEP_PERSISTED };

void snap_revert_undo(struct snap_op *op)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);

	if (!vm || op->step >= STEP_PERSISTED)
		return; /* the disks are restored; only the start failed */
	for (size_t k = 0; k < op->n_disks; k++)
		if (op->disks[k].path[0] && snap_is_ours(vm, op->disks[k].path))
			(void)unlink(op->disks[k].path);
}

static json_object *target(struct snap_op *op)
{
	return qv_snap_find(op->tree, op->name);
}

static void done(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	json_object *res = snap_entry_json(op->tree, target(op));

	json_object_object_add(res, "vm_state", json_object_new_string(
					qv_vm_state_to_string(vm->state)));
	json_object_object_add(res, "memory_restored", json_object_new_boolean(op->memory));
	log_info("VM %s: reverted to snapshot %s%s in %" PRIu64 " ms", op->vm, op->name,
		 op->memory ? " (memory state restored)" : "", qv_now_ms() - op->started_ms);
	qv_daemon_emit(op->d, op->vm, "snapshot-reverted", json_object_new_string(op->name));
	snap_op_reply(op, res);
}

static void loaded(struct snap_op *op, json_object *ret)
{
	if (streq_ptr(qv_snap_str(target(op), "vm_state"), "running"))
		return snap_qmp(op, "cont", NULL, NULL, 0, done);
	done(op, NULL);
}

static void load_memory(struct snap_op *op, json_object *ret)
{
	snap_migrate_fd(op, "migrate-incoming", "loading the memory state (the disks are "
			"reverted; stop and start the VM to boot them)", loaded);
}

static void on_started(struct qv_vm *vm, int error, const struct qv_error *errp, void *ud)
{
	struct snap_op *op = ud;

	if (error < 0)
		return snap_op_failf(op, -error, errp && errp->set ? errp->reason : NULL,
				     "VM %s: disks reverted to snapshot %s, but the start failed: %s",
				     op->vm, op->name, errp && errp->set ? errp->message
									 : strerror(-error));
	if (!op->memory)
		return done(op, NULL);
	json_object *a = json_object_new_object();
	json_object_object_add(a, "fdname", json_object_new_string(SNAP_MEM_FDNAME));
	snap_qmp(op, "getfd", a, &op->mem_fd, 1, load_memory);
	json_object_put(a);
}

static int new_overlays(struct qv_vm *vm, struct snap_op *op, json_object *s,
			struct qv_error *errp)
{
	json_object *disks;
	char dir[PATH_MAX];
	int64_t seq;
	int r;

	if ((r = snap_dir(vm, dir, sizeof(dir), true)) < 0)
		return qv_error_set(errp, r, QV_REASON_IO_ERROR, "cannot create %s", dir);
	seq = snap_fresh_seq(op->tree, dir);
	json_object_object_get_ex(s, "disks", &disks);
	for (size_t k = 0; k < json_object_array_length(disks) && k < SNAP_MAX_DISKS; k++) {
		json_object *e = json_object_array_get_idx(disks, k);
		const char *base = qv_snap_str(e, "path"), *fmt = qv_snap_str(e, "format");
		struct snap_disk *dk = &op->disks[op->n_disks];
		size_t i = (size_t)qv_snap_int(e, "index");
		_cleanup_close_ int fd = open(base, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		uint64_t size;

		if (i >= vm->spec->n_disks)
			return qv_error_set(errp, EINVAL, QV_REASON_CONFLICT,
					    "snapshot %s has disk %zu; VM %s has %zu disks now",
					    op->name, i, vm->name, vm->spec->n_disks);
		if (fd < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR,
					    "snapshot %s: cannot open %s: %m", op->name, base);
		if ((r = qv_snapshot_image_size(fd, streq(fmt, "qcow2"), &size, errp)) < 0)
			return qv_error_prefix(errp, "snapshot %s: %s", op->name, base), r;
		dk->index = i;
		snprintf(dk->path, sizeof(dk->path), "%s/ov%" PRId64 "-d%zu.qcow2", dir, seq, i);
		if ((r = qv_snapshot_overlay_create(dk->path, base, fmt, size, errp)) < 0)
			return dk->path[0] = '\0', r;
		op->n_disks++;
	}
	return 0;
}

static void restore(struct snap_op *op)
{
	struct qv_vm *vm = snap_op_vm(op);
	json_object *s = target(op);
	struct qv_error err = {};
	struct qv_vm_start_opts so = { .incoming = "defer", .paused = true };

	if (!vm)
		return;
	if (new_overlays(vm, op, s, &err) < 0)
		return snap_op_fail(op, &err);
	for (size_t k = 0; k < op->n_disks; k++) {
		struct vm_disk *vd = &vm->spec->disks[op->disks[k].index];
		char *p = strdup(op->disks[k].path);
		if (!p)
			return snap_op_failf(op, ENOMEM, NULL, "out of memory");
		snap_add_unlink(op->tree, vd->path); /* removed only if ours and unused */
		free(vd->path);
		vd->path = p;
		vd->format = VM_DISK_QCOW2;
	}
	qv_snap_set_str(op->tree, "current", op->name);
	if (snap_tree_save(vm, op->tree, true, &err) < 0)
		return snap_op_fail(op, &err);
	op->step = STEP_PERSISTED;
	snap_unlink_pending(vm, op->tree);
	(void)snap_tree_save(vm, op->tree, false, NULL);
	if (op->memory) {
		op->mem_fd = open(qv_snap_str(s, "memory"), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (op->mem_fd < 0)
			return snap_op_failf(op, errno, QV_REASON_IO_ERROR,
					     "VM %s: disks reverted, but the memory state %s cannot "
					     "be opened: %m", op->vm, qv_snap_str(s, "memory"));
	}
	if (!op->was_running && !op->memory)
		return done(op, NULL);
	if (qv_vm_start_async(vm, op->memory ? &so : NULL, on_started, op, &err) < 0)
		return snap_op_fail(op, &err);
}

static void on_stopped(struct qv_vm *vm, int error, enum qemu_stop_step step,
		       const char *exit_text, void *ud)
{
	struct snap_op *op = ud;

	if (error < 0)
		return snap_op_failf(op, -error, NULL, "VM %s: cannot stop it to revert: %s",
				     op->vm, strerror(-error));
	restore(op);
}

int qv_snapshot_revert(struct qv_vm *vm, const char *name, qv_rpc_call *call,
		       struct qv_error *errp)
{
	json_object *tree = snap_tree_load(vm, errp), *s;
	struct snap_op *op;
	int r;

	if (!tree)
		return -EIO;
	s = qv_snap_find(tree, name);
	if (!s)
		r = qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
				 "VM %s has no snapshot named %s", vm->name, name);
	else if (!streq(qv_snap_str(s, "state"), "ok"))
		r = qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "snapshot %s of VM %s is %s",
				 name, vm->name, qv_snap_str(s, "state"));
	else if (qv_vm_is_active(vm) && vm->state != QV_VM_RUNNING && vm->state != QV_VM_PAUSED)
		r = qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "Cannot revert VM %s: it is %s",
				 vm->name, qv_vm_state_to_string(vm->state));
	else
		r = 0;
	if (r < 0 || !(op = snap_op_new(vm, SNAP_REVERT, name, call, errp))) {
		json_object_put(tree);
		return r < 0 ? r : -EBUSY;
	}
	op->tree = tree;
	/* The memory state is loaded only into a VM that ran: a stopped VM
	 * stays stopped and boots from the reverted disks when started. */
	op->was_running = qv_vm_is_active(vm);
	op->memory = op->was_running && qv_snap_str(s, "memory");
	if (!op->was_running) {
		restore(op);
		return 0;
	}
	if (qv_vm_stop(vm, true, REVERT_STOP_TIMEOUT_MS, on_stopped, op, errp) < 0) {
		snap_op_fail(op, errp);
		return 0;
	}
	return 0;
}
