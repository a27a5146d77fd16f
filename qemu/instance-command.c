/* SPDX-License-Identifier: MIT */
/* QMP commands on an instance: the asynchronous entry point the daemon uses
 * and the synchronous helpers for tests and tools. */
#include "common/json.h"
#include "common/log.h"
#include "qemu/instance-internal.h"

int qemu_instance_execute_async(qemu_instance *vm, const char *command, json_object *args,
				int timeout_ms, qmp_reply_fn fn, void *userdata,
				struct qv_error *errp)
{
	int r;

	if (vm->start)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "%s: QEMU %d is still starting", command,
				    (int)qemu_proc_pid(vm->proc));
	if (!qmp_client_is_open(vm->qmp))
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE,
				    "%s: QMP connection of QEMU %d is closed", command,
				    (int)qemu_proc_pid(vm->proc));
	r = qmp_client_execute_async(vm->qmp, command, args, NULL, 0, timeout_ms, fn, userdata);
	if (r < 0)
		return qv_error_set(errp, -r, NULL, "%s: cannot send QMP command: %s", command,
				    strerror(-r));
	return 0;
}

/* ---- simple QMP helpers --------------------------------------------------- */

static int simple_command(qemu_instance *vm, const char *cmd, struct qv_error *errp)
{
	_cleanup_json_ json_object *ret = NULL;

	if (!qmp_client_is_open(vm->qmp))
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE,
				    "QMP connection of QEMU %d is closed", (int)qemu_proc_pid(vm->proc));
	return qmp_client_execute(vm->qmp, cmd, NULL, QMP_DEFAULT_TIMEOUT_MS, &ret, errp);
}

int qemu_instance_pause(qemu_instance *vm, struct qv_error *errp)
{
	return simple_command(vm, "stop", errp);
}

int qemu_instance_resume(qemu_instance *vm, struct qv_error *errp)
{
	return simple_command(vm, "cont", errp);
}

int qemu_instance_reset(qemu_instance *vm, struct qv_error *errp)
{
	return simple_command(vm, "system_reset", errp);
}

int qemu_instance_query_status(qemu_instance *vm, char **ret_status, struct qv_error *errp)
{
	_cleanup_json_ json_object *ret = NULL;
	json_object *status;
	char *s;
	int r;

	if (!qmp_client_is_open(vm->qmp))
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE, "QMP connection is closed");
	r = qmp_client_execute(vm->qmp, "query-status", NULL, QMP_DEFAULT_TIMEOUT_MS, &ret, errp);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(ret, "status", &status) ||
	    !json_object_is_type(status, json_type_string))
		return qv_error_set(errp, EPROTO, QV_REASON_QEMU_ERROR,
				    "query-status reply has no status");
	s = strdup(json_object_get_string(status));
	if (!s)
		return -ENOMEM;
	*ret_status = s;
	return 0;
}

