/* SPDX-License-Identifier: MIT */
/* snapshot.create: external snapshots. The daemon creates one qcow2 overlay
 * per writable disk in the pool (backed by the disk's current image, which
 * is frozen from then on) and hands QEMU an fd; one QMP "transaction" of
 * blockdev-snapshot actions switches every disk at the same instant. With
 * memory, the guest is paused for the switch and the RAM/device state is
 * saved by migration to an fd of a file in the pool, then resumed.
 *
 * Store order (crash safety, docs/snapshots.md): the new entry ("creating")
 * and the spec naming the overlays are written before QEMU is touched. An
 * empty overlay reads exactly like its backing image, so the spec is right
 * whether or not the transaction ran. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/snapshot-internal.h"

enum { STEP_NONE, STEP_PERSISTED, STEP_SWITCHED };

static json_object *entry_of(struct snap_op *op)
{
	return qv_snap_find(op->tree, op->name);
}

/* Point spec.disks[] at the given paths (qcow2 when overlay). */
static int set_disk_path(struct qv_vm *vm, size_t i, const char *path, enum vm_disk_format f)
{
	char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	free(vm->spec->disks[i].path);
	vm->spec->disks[i].path = p;
	vm->spec->disks[i].format = f;
	return 0;
}

void snap_create_undo(struct snap_op *op)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	json_object *s = entry_of(op), *disks;
	struct qv_error err = {};

	if (!vm || !s)
		return;
	if (op->step >= STEP_SWITCHED) {
		/* QEMU writes the overlays now: keep them, drop the point. */
		qv_snap_remove(op->tree, op->name);
		if (op->mem_path[0])
			snap_add_unlink(op->tree, op->mem_path);
		if (snap_tree_save(vm, op->tree, false, &err) >= 0)
			snap_unlink_pending(vm, op->tree);
		return;
	}
	if (op->step >= STEP_PERSISTED && json_object_object_get_ex(s, "disks", &disks))
		for (size_t k = 0; k < json_object_array_length(disks); k++) {
			json_object *dk = json_object_array_get_idx(disks, k);
			size_t i = (size_t)qv_snap_int(dk, "index");
			if (i < vm->spec->n_disks)
				(void)set_disk_path(vm, i, qv_snap_str(dk, "path"),
						    streq(qv_snap_str(dk, "format"), "qcow2")
							    ? VM_DISK_QCOW2 : VM_DISK_RAW);
		}
	qv_snap_remove(op->tree, op->name);
	for (size_t k = 0; k < op->n_disks; k++)
		snap_add_unlink(op->tree, op->disks[k].path);
	if (op->mem_path[0])
		snap_add_unlink(op->tree, op->mem_path);
	if (snap_tree_save(vm, op->tree, op->step >= STEP_PERSISTED, &err) < 0) {
		log_warning("%s, ignoring", err.message);
		return;
	}
	/* Nodes QEMU may hold: deleting them is best effort (fds close with
	 * QEMU otherwise). */
	for (size_t k = 0; vm->inst && k < op->n_disks; k++) {
		char file[48];
		json_object *a = json_object_new_object();
		json_object_object_add(a, "node-name", json_object_new_string(op->disks[k].node));
		(void)qemu_instance_execute_async(vm->inst, "blockdev-del", a, SNAP_QMP_TIMEOUT_MS,
						  NULL, NULL, NULL);
		snprintf(file, sizeof(file), "%s-file", op->disks[k].node);
		json_object_object_add(a, "node-name", json_object_new_string(file));
		(void)qemu_instance_execute_async(vm->inst, "blockdev-del", a, SNAP_QMP_TIMEOUT_MS,
						  NULL, NULL, NULL);
		json_object_put(a);
	}
	snap_unlink_pending(vm, op->tree);
	(void)snap_tree_save(vm, op->tree, false, NULL);
}

static void finish(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	json_object *s = entry_of(op);
	struct qv_error err = {};
	struct stat st;

	qv_snap_set_str(s, "state", "ok");
	if (op->mem_fd >= 0 && fstat(op->mem_fd, &st) == 0)
		json_object_object_add(s, "memory_size", json_object_new_int64(st.st_size));
	qv_snap_set_str(op->tree, "current", op->name);
	if (snap_tree_save(vm, op->tree, false, &err) < 0)
		return snap_op_fail(op, &err);
	log_info("VM %s: snapshot %s created (%zu disk(s)%s) in %" PRIu64 " ms, guest paused %"
		 PRIu64 " ms", op->vm, op->name, op->n_disks, op->mem_path[0] ? ", memory" : "",
		 qv_now_ms() - op->started_ms, op->paused_ms);
	qv_daemon_emit(op->d, op->vm, "snapshot-created",
		       json_object_new_string(op->name));
	json_object *res = snap_entry_json(op->tree, s);
	/* How long the guest was paused (memory snapshots only). */
	json_object_object_add(res, "paused_ms", json_object_new_int64((int64_t)op->paused_ms));
	snap_op_reply(op, res);
}

static void resumed(struct snap_op *op, json_object *ret)
{
	op->paused_ms = qv_now_ms() - op->paused_at;
	finish(op, NULL);
}

static void resume(struct snap_op *op, json_object *ret)
{
	if (!op->paused_by_us || !op->was_running)
		return finish(op, NULL);
	op->paused_by_us = false;
	snap_qmp(op, "cont", NULL, NULL, 0, resumed);
}

static void save_memory(struct snap_op *op, json_object *ret)
{
	snap_migrate_fd(op, "migrate", "saving the memory state", resume);
}

static void switched(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);

	op->step = STEP_SWITCHED;
	for (size_t k = 0; k < op->n_disks; k++)
		if (snap_live_push(vm, op->tree, op->disks[k].index, op->disks[k].node,
				   op->disks[k].fdset) < 0)
			snap_live_invalidate(op->tree);
	if (!op->memory)
		return finish(op, NULL);
	json_object *a = json_object_new_object();
	json_object_object_add(a, "fdname", json_object_new_string(SNAP_MEM_FDNAME));
	snap_qmp(op, "getfd", a, &op->mem_fd, 1, save_memory);
	json_object_put(a);
}

static void transaction(struct snap_op *op, json_object *ret)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);
	json_object *actions = json_object_new_array(), *a;

	if (op->memory) {
		op->paused_by_us = true;
		op->paused_at = qv_now_ms();
	}
	for (size_t k = 0; k < op->n_disks; k++) {
		char top[40];
		int64_t fdset;
		if (snap_live_node(vm, op->tree, op->disks[k].index, 0, top, sizeof(top), &fdset) < 0) {
			json_object_put(actions);
			return snap_op_failf(op, ESTALE, QV_REASON_CONFLICT,
					     "VM %s: the daemon lost track of QEMU's disk nodes "
					     "(restart the VM to snapshot it live)", op->vm);
		}
		json_object *data = json_object_new_object(), *act = json_object_new_object();
		json_object_object_add(data, "node", json_object_new_string(top));
		json_object_object_add(data, "overlay", json_object_new_string(op->disks[k].node));
		json_object_object_add(act, "type", json_object_new_string("blockdev-snapshot"));
		json_object_object_add(act, "data", data);
		json_object_array_add(actions, act);
	}
	a = json_object_new_object();
	json_object_object_add(a, "actions", actions);
	snap_qmp(op, "transaction", a, NULL, 0, switched);
	json_object_put(a);
}

static void add_nodes(struct snap_op *op, json_object *ret);

static void added_format(struct snap_op *op, json_object *ret)
{
	op->cur++;
	add_nodes(op, NULL);
}

static void added_file(struct snap_op *op, json_object *ret)
{
	struct snap_disk *dk = &op->disks[op->cur];
	json_object *a = json_object_new_object();
	char file[48];

	snprintf(file, sizeof(file), "%s-file", dk->node);
	json_object_object_add(a, "driver", json_object_new_string("qcow2"));
	json_object_object_add(a, "node-name", json_object_new_string(dk->node));
	json_object_object_add(a, "file", json_object_new_string(file));
	json_object_object_add(a, "backing", NULL); /* never a name from the image */
	snap_qmp(op, "blockdev-add", a, NULL, 0, added_format);
	json_object_put(a);
}

static void added_fd(struct snap_op *op, json_object *ret)
{
	struct snap_disk *dk = &op->disks[op->cur];
	json_object *a = json_object_new_object();
	char file[48], path[40];

	dk->fdset = qv_snap_int(ret, "fdset-id");
	snprintf(file, sizeof(file), "%s-file", dk->node);
	snprintf(path, sizeof(path), "/dev/fdset/%" PRId64, dk->fdset);
	json_object_object_add(a, "driver", json_object_new_string("file"));
	json_object_object_add(a, "node-name", json_object_new_string(file));
	json_object_object_add(a, "filename", json_object_new_string(path));
	snap_qmp(op, "blockdev-add", a, NULL, 0, added_file);
	json_object_put(a);
}

static void add_nodes(struct snap_op *op, json_object *ret)
{
	if (op->cur == op->n_disks)
		return op->memory ? snap_qmp(op, "stop", NULL, NULL, 0, transaction)
				  : transaction(op, NULL);
	json_object *a = json_object_new_object();
	json_object_object_add(a, "opaque", json_object_new_string(op->disks[op->cur].node));
	snap_qmp(op, "add-fd", a, &op->disks[op->cur].fd, 1, added_fd);
	json_object_put(a);
}

/* The overlay of disk i: created, opened, entered in the snapshot entry. */
static int make_overlay(struct qv_vm *vm, struct snap_op *op, size_t i, const char *dir,
			int64_t seq, json_object *disks, struct qv_error *errp)
{
	const struct vm_disk *vd = &vm->spec->disks[i];
	struct snap_disk *dk = &op->disks[op->n_disks];
	bool qcow2 = vd->format == VM_DISK_QCOW2;
	_cleanup_close_ int fd = open(vd->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	uint64_t size;
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "VM %s: cannot open %s: %m",
				    vm->name, vd->path);
	if ((r = qv_snapshot_image_size(fd, qcow2, &size, errp)) < 0)
		return qv_error_prefix(errp, "VM %s: %s", vm->name, vd->path), r;
	dk->index = i;
	snprintf(dk->node, sizeof(dk->node), "s%" PRId64 "d%zu", seq, i);
	snprintf(dk->path, sizeof(dk->path), "%s/ov%" PRId64 "-d%zu.qcow2", dir, seq, i);
	r = qv_snapshot_overlay_create(dk->path, vd->path, qcow2 ? "qcow2" : "raw", size, errp);
	if (r < 0)
		return dk->path[0] = '\0', r;
	op->n_disks++;
	dk->fd = open(dk->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (dk->fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", dk->path);
	json_object *e = json_object_new_object();
	json_object_object_add(e, "index", json_object_new_int64((int64_t)i));
	json_object_object_add(e, "path", json_object_new_string(vd->path));
	json_object_object_add(e, "format", json_object_new_string(qcow2 ? "qcow2" : "raw"));
	json_object_array_add(disks, e);
	return 0;
}

static int check_create(struct qv_vm *vm, json_object *tree, const char *name, bool memory,
			struct qv_error *errp)
{
	const char *enc;
	size_t n = 0;

	if (qv_snap_find(tree, name))
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "VM %s already has a snapshot named %s", vm->name, name);
	if (qv_vm_is_active(vm) && vm->state != QV_VM_RUNNING && vm->state != QV_VM_PAUSED)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "Cannot snapshot VM %s: it is %s", vm->name,
				    qv_vm_state_to_string(vm->state));
	if (memory && !qv_vm_is_active(vm))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "VM %s is not running: a memory snapshot needs a running VM",
				    vm->name);
	if ((enc = qv_image_vm_encrypted_disk(vm)))
		return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "Cannot snapshot VM %s: disk %s is encrypted (LUKS) and its "
				    "snapshot overlay would hold new writes unencrypted", vm->name, enc);
	for (size_t i = 0; i < vm->spec->n_disks; i++)
		n += !vm->spec->disks[i].readonly;
	if (n == 0 || n > SNAP_MAX_DISKS)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "VM %s has %zu writable disks: snapshots need 1 to %d", vm->name,
				    n, SNAP_MAX_DISKS);
	/* Each snapshot on the path adds a backing file (qemu/argv.h). */
	if (qv_snap_depth(tree, qv_snap_current(tree)) + 1 >= QEMU_MAX_BACKING)
		return qv_error_set(errp, E2BIG, QV_REASON_CONFLICT,
				    "VM %s: %d snapshots deep already (QEMU_MAX_BACKING); delete "
				    "one first", vm->name, QEMU_MAX_BACKING - 1);
	return 0;
}

static int prepare(struct qv_vm *vm, struct snap_op *op, struct qv_error *errp)
{
	char dir[PATH_MAX];
	int64_t seq;
	json_object *s = json_object_new_object(), *disks = json_object_new_array();
	int r;

	qv_snap_set_str(s, "name", op->name);
	qv_snap_set_str(s, "parent", qv_snap_current(op->tree));
	qv_snap_set_str(s, "state", "creating");
	json_object_object_add(s, "created_at", json_object_new_int64(qv_unix_ms()));
	qv_snap_set_str(s, "vm_state", qv_vm_state_to_string(vm->state));
	json_object_object_add(s, "disks", disks);
	json_object_object_add(s, "memory", NULL);
	json_object_array_add(qv_snap_tree_list(op->tree), s);
	if ((r = snap_dir(vm, dir, sizeof(dir), true)) < 0)
		return qv_error_set(errp, r, QV_REASON_IO_ERROR, "cannot create %s: %s", dir,
				    strerror(-r));
	seq = snap_fresh_seq(op->tree, dir);
	for (size_t i = 0; i < vm->spec->n_disks; i++)
		if (!vm->spec->disks[i].readonly && (r = make_overlay(vm, op, i, dir, seq, disks,
								      errp)) < 0)
			return r;
	if (op->memory) {
		snprintf(op->mem_path, sizeof(op->mem_path), "%s/mem%" PRId64 ".state", dir, seq);
		op->mem_fd = open(op->mem_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				  0600);
		if (op->mem_fd < 0) {
			r = -errno;
			op->mem_path[0] = '\0';
			return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "%s: %s", op->mem_path,
					    strerror(-r));
		}
		qv_snap_set_str(s, "memory", op->mem_path);
	}
	for (size_t k = 0; k < op->n_disks; k++)
		if ((r = set_disk_path(vm, op->disks[k].index, op->disks[k].path, VM_DISK_QCOW2)) < 0)
			return r;
	op->step = STEP_PERSISTED; /* undo restores the spec from here on */
	return snap_tree_save(vm, op->tree, true, errp);
}

int qv_snapshot_create(struct qv_vm *vm, const char *name, bool memory, qv_rpc_call *call,
		       struct qv_error *errp)
{
	json_object *tree = snap_tree_load(vm, errp);
	struct snap_op *op;
	int r;

	if (!tree)
		return -EIO;
	if ((r = check_create(vm, tree, name, memory, errp)) < 0 ||
	    !(op = snap_op_new(vm, SNAP_CREATE, name, call, errp))) {
		json_object_put(tree);
		return r < 0 ? r : -EBUSY;
	}
	op->tree = tree;
	op->memory = memory;
	op->was_running = vm->state == QV_VM_RUNNING;
	r = prepare(vm, op, errp);
	if (r < 0) {
		snap_op_fail(op, errp);
		return 0; /* answered */
	}
	if (!qv_vm_is_active(vm)) {
		finish(op, NULL);
		return 0;
	}
	add_nodes(op, NULL);
	return 0;
}
