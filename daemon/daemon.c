/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/event-limit.h"

int64_t qv_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qv_daemon_emit(struct qv_daemon *d, const char *vm, const char *type, json_object *data)
{
	_cleanup_json_ json_object *params = json_object_new_object();
	int64_t id = 0, now = qv_unix_ms();
	int r;

	const char *text = data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : NULL;
	char cut[96];

	/* Stored data is bounded (event-limit.h); subscribers get it all. */
	if (text && strlen(text) > QV_EVENT_DATA_MAX) {
		snprintf(cut, sizeof(cut), "{\"truncated\":true,\"bytes\":%zu}", strlen(text));
		text = cut;
	}
	r = qv_state_event_append(d->state, vm, type, text, &id);
	if (r >= 0)
		qv_events_note_append(d);
	if (r < 0)
		log_warning_errno(r, "Failed to persist event %s of %s, ignoring: %m", type,
				  vm ? vm : "host");
	json_object_object_add(params, "id", json_object_new_int64(id));
	json_object_object_add(params, "time", json_object_new_int64(now));
	json_object_object_add(params, "type", json_object_new_string(type));
	json_object_object_add(params, "vm", vm ? json_object_new_string(vm) : NULL);
	json_object_object_add(params, "data", data);
	if (d->rpc)
		qv_rpc_server_broadcast(d->rpc, "event", params);
	if (d->rpc_ro)
		qv_rpc_server_broadcast(d->rpc_ro, "event", params);
}

int qv_call_fail(qv_rpc_call *call, int error, const char *reason, const char *fmt, ...)
{
	struct qv_error err = {};
	char msg[sizeof(err.message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	qv_error_set(&err, error, reason, "%s", msg);
	qv_rpc_call_error(call, &err);
	return 0;
}

int qv_param_string(qv_rpc_call *call, json_object *params, const char *key, const char **ret)
{
	struct qv_error err = {};
	char what[64];
	int r;

	snprintf(what, sizeof(what), "params.%s", key);
	if (!params || !json_object_is_type(params, json_type_object)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "params must be an object with \"%s\"", key);
		return -EINVAL;
	}
	r = json_get_string(params, key, what, ret, &err);
	if (r == -ENOENT)
		qv_error_set(&err, EINVAL, QV_REASON_INVALID_ARGUMENT, "%s is required", what);
	if (r < 0) {
		qv_rpc_call_error(call, &err);
		return -EINVAL;
	}
	return 0;
}

int qv_param_check_keys(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	struct qv_error err = {};

	if (params && json_check_keys(params, keys, "params", &err) < 0) {
		qv_rpc_call_error(call, &err);
		return -EINVAL;
	}
	return 0;
}
