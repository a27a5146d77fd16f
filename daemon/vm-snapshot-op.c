/* SPDX-License-Identifier: MIT */
/* Snapshot operations: one per VM, driven step by step on the loop by
 * asynchronous QMP commands and timers. */
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/rpc.h"
#include "daemon/snapshot-internal.h"

static struct snap_op *ops; /* operations in flight, all VMs */

void (*const snap_undo[3])(struct snap_op *op) = {
	[SNAP_CREATE] = snap_create_undo,
	[SNAP_REVERT] = snap_revert_undo,
	[SNAP_DELETE] = snap_delete_undo,
};

bool snap_vm_busy(struct qv_daemon *d, const char *vm)
{
	for (struct snap_op *o = ops; o; o = o->next)
		if (o->d == d && streq(o->vm, vm))
			return true;
	return false;
}

struct snap_op *snap_op_new(struct qv_vm *vm, enum snap_kind kind, const char *name,
			    qv_rpc_call *call, struct qv_error *errp)
{
	static const char *const kinds[] = { "create", "revert", "delete" };
	static unsigned seq;
	struct snap_op *op;

	if (snap_vm_busy(vm->d, vm->name)) {
		qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
			     "VM %s: another snapshot operation is running", vm->name);
		return NULL;
	}
	if (!(op = calloc(1, sizeof(*op))))
		return NULL;
	op->d = vm->d;
	op->kind = kind;
	op->call = call;
	op->mem_fd = -1;
	for (size_t i = 0; i < SNAP_MAX_DISKS; i++)
		op->disks[i].fd = -1;
	snprintf(op->vm, sizeof(op->vm), "%s", vm->name);
	snprintf(op->name, sizeof(op->name), "%s", name);
	snprintf(op->op_id, sizeof(op->op_id), "snapshot-%s-%u", kinds[kind], ++seq);
	op->client = qv_rpc_call_client(call);
	if (op->client)
		qv_rpc_client_ref(op->client);
	op->started_ms = qv_now_ms();
	op->next = ops;
	ops = op;
	return op;
}

static void op_free(struct snap_op *op)
{
	for (struct snap_op **p = &ops; *p; p = &(*p)->next)
		if (*p == op) {
			*p = op->next;
			break;
		}
	qv_source_remove(op->timer);
	for (size_t i = 0; i < SNAP_MAX_DISKS; i++)
		if (op->disks[i].fd >= 0)
			close(op->disks[i].fd);
	if (op->mem_fd >= 0)
		close(op->mem_fd);
	json_object_put(op->tree);
	if (op->client)
		qv_rpc_client_unref(op->client);
	free(op);
}

struct qv_vm *snap_op_vm(struct snap_op *op)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);

	if (!vm)
		snap_op_failf(op, ENOENT, QV_REASON_NOT_FOUND,
			      "VM %s was undefined during the snapshot operation", op->vm);
	return vm;
}

void snap_op_reply(struct snap_op *op, json_object *result)
{
	qv_rpc_call_reply(op->call, result);
	op_free(op);
}

/* A "cont" we owe the guest, fire and forget: the operation has failed. */
static void on_cont(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		    void *ud)
{
	if (error < 0)
		log_warning("VM %s: cannot resume the guest after a failed snapshot operation: %s",
			    (char *)ud, errp && errp->set ? errp->message : strerror(-error));
	free(ud);
}

void snap_op_fail(struct snap_op *op, const struct qv_error *err)
{
	struct qv_vm *vm = qv_vm_find(op->d, op->vm);

	log_warning("VM %s: snapshot %s failed: %s", op->vm, op->name, err->message);
	if (vm && snap_undo[op->kind])
		snap_undo[op->kind](op);
	if (vm && op->paused_by_us && vm->inst) {
		char *name = strdup(vm->name);
		if (name && qemu_instance_execute_async(vm->inst, "cont", NULL, SNAP_QMP_TIMEOUT_MS,
							on_cont, name, NULL) < 0)
			free(name);
	}
	qv_rpc_call_error(op->call, err);
	op_free(op);
}

void snap_op_failf(struct snap_op *op, int error, const char *reason, const char *fmt, ...)
{
	struct qv_error err = {};
	char msg[sizeof(err.message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	qv_error_set(&err, error, reason, "%s", msg);
	snap_op_fail(op, &err);
}

struct qmp_step {
	struct snap_op *op;
	snap_step_fn next;
	char command[32];
};

static void on_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *ud)
{
	struct qmp_step *s = ud;
	struct snap_op *op = s->op;
	snap_step_fn next = s->next;

	if (error < 0) {
		struct qv_error err = {};
		qv_error_set(&err, error, errp && errp->set ? errp->reason : NULL,
			     "VM %s: snapshot %s: %s", op->vm, op->name,
			     errp && errp->set ? errp->message : strerror(-error));
		free(s);
		snap_op_fail(op, &err);
		return;
	}
	free(s);
	if (!snap_op_vm(op))
		return;
	next(op, ret);
}

void snap_qmp(struct snap_op *op, const char *command, json_object *args, const int *fds,
	      size_t n_fds, snap_step_fn next)
{
	struct qv_vm *vm = snap_op_vm(op);
	struct qmp_step *s;
	qmp_client *c;
	int r;

	if (!vm)
		return;
	c = vm->inst ? qemu_instance_qmp(vm->inst) : NULL;
	if (!c)
		return snap_op_failf(op, EBUSY, QV_REASON_CONFLICT,
				     "VM %s stopped during the snapshot operation", op->vm);
	if (!(s = calloc(1, sizeof(*s))))
		return snap_op_failf(op, ENOMEM, NULL, "out of memory");
	*s = (struct qmp_step){ .op = op, .next = next };
	snprintf(s->command, sizeof(s->command), "%s", command);
	r = qmp_client_execute_async(c, command, args, fds, n_fds, SNAP_QMP_TIMEOUT_MS, on_reply, s);
	if (r < 0) {
		free(s);
		snap_op_failf(op, r, QV_REASON_UNAVAILABLE, "VM %s: cannot send %s to QEMU: %s",
			      op->vm, command, strerror(-r));
	}
}

static void on_timer(qv_source *src, void *ud)
{
	struct snap_op *op = ud;
	snap_step_fn next = op->next_step;

	qv_source_remove(op->timer);
	op->timer = NULL;
	if (snap_op_vm(op))
		next(op, NULL);
}

void snap_later(struct snap_op *op, uint64_t ms, snap_step_fn next)
{
	op->next_step = next;
	if (qv_loop_add_timer(op->d->loop, ms, on_timer, op, &op->timer) < 0)
		snap_op_failf(op, ENOMEM, NULL, "cannot arm a timer");
}

void snap_progress(struct snap_op *op, int64_t done, int64_t total)
{
	uint64_t secs = (qv_now_ms() - op->started_ms) / 1000;

	if (!op->client || !qv_rpc_client_is_connected(op->client) || total <= 0)
		return;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "op_id", json_object_new_string(op->op_id));
	json_object_object_add(p, "done", json_object_new_int64(done));
	json_object_object_add(p, "total", json_object_new_int64(total));
	json_object_object_add(p, "rate", json_object_new_int64(secs ? done / (int64_t)secs : done));
	(void)qv_rpc_client_notify(op->client, "progress", p);
	json_object_put(p);
}

json_object *snap_entry_json(json_object *tree, json_object *s)
{
	json_object *o = json_object_new_object(), *disks, *out = json_object_new_array();
	const char *name = qv_snap_str(s, "name"), *mem = qv_snap_str(s, "memory");
	int64_t total = 0;
	struct stat st;

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "parent", qv_snap_str(s, "parent") ?
				   json_object_new_string(qv_snap_str(s, "parent")) : NULL);
	json_object_object_add(o, "created_at", json_object_new_int64(qv_snap_int(s, "created_at")));
	json_object_object_add(o, "state", json_object_new_string(qv_snap_str(s, "state")));
	json_object_object_add(o, "current", json_object_new_boolean(
				   streq_ptr(qv_snap_current(tree), name)));
	json_object_object_add(o, "vm_state", qv_snap_str(s, "vm_state") ?
				   json_object_new_string(qv_snap_str(s, "vm_state")) : NULL);
	json_object_object_add(o, "memory", json_object_new_boolean(mem != NULL));
	if (json_object_object_get_ex(s, "disks", &disks))
		for (size_t i = 0; i < json_object_array_length(disks); i++) {
			json_object *dk = json_object_array_get_idx(disks, i), *e;
			const char *p = qv_snap_str(dk, "path");
			int64_t sz = p && stat(p, &st) == 0 ? (int64_t)st.st_blocks * 512 : 0;
			e = json_object_new_object();
			json_object_object_add(e, "index", json_object_new_int64(qv_snap_int(dk, "index")));
			json_object_object_add(e, "path", json_object_new_string(p ? p : ""));
			json_object_object_add(e, "format", json_object_new_string(
						       qv_snap_str(dk, "format")));
			json_object_object_add(e, "size", json_object_new_int64(sz));
			json_object_array_add(out, e);
			total += sz;
		}
	json_object_object_add(o, "disks", out);
	if (mem && stat(mem, &st) == 0)
		total += (int64_t)st.st_blocks * 512;
	json_object_object_add(o, "memory_size", json_object_new_int64(qv_snap_int(s, "memory_size")));
	json_object_object_add(o, "size", json_object_new_int64(total));
	return o;
}

/* --- a migration to or from the memory state file ------------------------ */

static void poll_migration(struct snap_op *op, json_object *ret);

static void on_query_migrate(struct snap_op *op, json_object *ret)
{
	const char *status = qv_snap_str(ret, "status"), *desc = qv_snap_str(ret, "error-desc");
	json_object *ram;

	if (json_object_object_get_ex(ret, "ram", &ram))
		snap_progress(op, qv_snap_int(ram, "transferred"), qv_snap_int(ram, "total"));
	if (streq_ptr(status, "completed"))
		return op->mig_done(op, NULL);
	if (streq_ptr(status, "failed") || streq_ptr(status, "cancelled"))
		return snap_op_failf(op, EIO, QV_REASON_QEMU_ERROR, "VM %s: %s failed: %s", op->vm,
				     op->mig_what, desc ? desc : status);
	snap_later(op, SNAP_POLL_MS, poll_migration);
}

static void poll_migration(struct snap_op *op, json_object *ret)
{
	snap_qmp(op, "query-migrate", NULL, NULL, 0, on_query_migrate);
}

void snap_migrate_fd(struct snap_op *op, const char *command, const char *what,
		     snap_step_fn done)
{
	json_object *a = json_object_new_object();

	op->mig_done = done;
	op->mig_what = what;
	json_object_object_add(a, "uri", json_object_new_string("fd:" SNAP_MEM_FDNAME));
	snap_qmp(op, command, a, NULL, 0, poll_migration);
	json_object_put(a);
}
