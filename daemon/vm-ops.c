/* SPDX-License-Identifier: MIT */
/* Pause, resume and reboot: one QMP command each, sent on the loop with a
 * deadline; the reply (or the deadline) completes the operation. */
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/vm.h"

enum vm_op_kind { OP_PAUSE, OP_RESUME, OP_REBOOT };

static const struct {
	const char *verb, *command;
} op_info[] = {
	[OP_PAUSE] = { "pause", "stop" },
	[OP_RESUME] = { "resume", "cont" },
	[OP_REBOOT] = { "reboot", "system_reset" },
};

struct vm_op {
	struct qv_vm *vm;
	enum vm_op_kind kind;
	qv_vm_op_fn fn;
	void *userdata;
};

static void op_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *ud)
{
	struct vm_op *op = ud;
	struct qv_vm *vm = op->vm;
	struct qv_error err = {};

	if (error < 0) {
		/* The instance may be going away (this runs from its free): only
		 * report. */
		qv_error_set(&err, error, errp && errp->set ? errp->reason : NULL,
			     "Cannot %s VM %s: %s", op_info[op->kind].verb, vm->name,
			     errp && errp->set ? errp->message : strerror(-error));
		log_warning("%s", err.message);
	} else if (op->kind == OP_PAUSE && vm->state == QV_VM_RUNNING) {
		qv_vm_set_state(vm, QV_VM_PAUSED, NULL);
	} else if (op->kind == OP_RESUME && vm->state == QV_VM_PAUSED) {
		qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	} else if (op->kind == OP_REBOOT) {
		qv_daemon_emit(vm->d, vm->name, "rebooted", NULL);
	}
	if (op->fn)
		op->fn(vm, error < 0 ? error : 0, error < 0 ? &err : NULL, op->userdata);
	free(op);
}

static int vm_op(struct qv_vm *vm, enum vm_op_kind kind, enum qv_vm_state want, qv_vm_op_fn fn,
		 void *userdata, struct qv_error *errp)
{
	struct vm_op *op;
	int r;

	if (vm->state != want || !vm->inst)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "Cannot %s VM %s: it is %s",
				    op_info[kind].verb, vm->name,
				    qv_vm_state_to_string(vm->state));
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	*op = (struct vm_op){ .vm = vm, .kind = kind, .fn = fn, .userdata = userdata };
	r = qemu_instance_execute_async(vm->inst, op_info[kind].command, NULL,
					QV_VM_QMP_TIMEOUT_MS, op_reply, op, errp);
	if (r < 0) {
		free(op);
		qv_error_prefix(errp, "Cannot %s VM %s", op_info[kind].verb, vm->name);
	}
	return r;
}

int qv_vm_pause(struct qv_vm *vm, qv_vm_op_fn fn, void *userdata, struct qv_error *errp)
{
	return vm_op(vm, OP_PAUSE, QV_VM_RUNNING, fn, userdata, errp);
}

int qv_vm_resume(struct qv_vm *vm, qv_vm_op_fn fn, void *userdata, struct qv_error *errp)
{
	const char *busy;

	if (vm->state == QV_VM_PAUSED && vm->inst &&
	    (busy = qv_image_vm_disk_busy(vm->d, vm)))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "Cannot resume VM %s: image copy %s is reading its disk; "
				    "wait for it or cancel it", vm->name, busy);
	return vm_op(vm, OP_RESUME, QV_VM_PAUSED, fn, userdata, errp);
}

int qv_vm_reboot(struct qv_vm *vm, qv_vm_op_fn fn, void *userdata, struct qv_error *errp)
{
	return vm_op(vm, OP_REBOOT, QV_VM_RUNNING, fn, userdata, errp);
}
