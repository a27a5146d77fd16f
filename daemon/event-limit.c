/* SPDX-License-Identifier: MIT */
#include "common/json.h"
#include "common/log.h"
#include "daemon/event-limit.h"

static const char *const lifecycle[] = {
	"SHUTDOWN", "POWERDOWN", "RESET", "STOP", "RESUME", "SUSPEND", "SUSPEND_DISK", "WAKEUP",
	"GUEST_PANICKED", "GUEST_CRASHLOADED", "MIGRATION", "MIGRATION_PASS",
	"BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR", "BLOCK_JOB_READY",
	"BLOCK_JOB_PENDING", "JOB_STATUS_CHANGE", "DEVICE_DELETED",
};

bool qv_event_is_lifecycle(const char *qmp_event)
{
	for (size_t i = 0; i < ARRAY_SIZE(lifecycle); i++)
		if (streq(qmp_event, lifecycle[i]))
			return true;
	return false;
}

static void maybe_report(struct qv_vm *vm, struct qv_event_limit *l, int64_t now)
{
	json_object *data;

	if (!l->unreported || now - l->reported_ms < QV_EVENT_SUMMARY_MS)
		return;
	data = json_object_new_object();
	json_object_object_add(data, "dropped", json_object_new_int64((int64_t)l->unreported));
	json_object_object_add(data, "total", json_object_new_int64((int64_t)l->dropped));
	json_object_object_add(data, "rate_per_s", json_object_new_int(QV_EVENT_RATE));
	log_warning("VM %s: dropped %" PRIu64 " QMP events over the rate limit (%d/s)", vm->name,
		    l->unreported, QV_EVENT_RATE);
	l->unreported = 0;
	l->reported_ms = now;
	qv_daemon_emit(vm->d, vm->name, "qemu-events-dropped", data);
}

static void refill(struct qv_event_limit *l, int64_t now)
{
	if (l->refilled_ms == 0 || now < l->refilled_ms) {
		l->tokens = QV_EVENT_BURST;
		l->refilled_ms = now;
	}
	l->tokens += (double)(now - l->refilled_ms) * QV_EVENT_RATE / 1000.0;
	if (l->tokens > QV_EVENT_BURST)
		l->tokens = QV_EVENT_BURST;
	l->refilled_ms = now;
}

static bool drop(struct qv_vm *vm, struct qv_event_limit *l, int64_t now)
{
	l->dropped++;
	l->unreported++;
	maybe_report(vm, l, now);
	return false;
}

bool qv_event_limit_admit(struct qv_vm *vm, const char *qmp_event)
{
	struct qv_event_limit *l = &vm->event_limit;
	int64_t now = qv_unix_ms();

	if (qv_event_is_lifecycle(qmp_event))
		return true;
	refill(l, now);
	if (l->tokens >= 1.0) {
		l->tokens -= 1.0;
		maybe_report(vm, l, now);
		return true;
	}
	return drop(vm, l, now);
}

bool qv_event_limit_peek(struct qv_vm *vm, const char *qmp_event)
{
	struct qv_event_limit *l = &vm->event_limit;
	int64_t now = qv_unix_ms();

	if (qv_event_is_lifecycle(qmp_event) || streq(qmp_event, "BALLOON_CHANGE"))
		return true;
	refill(l, now);
	return l->tokens >= 1.0 ? true : drop(vm, l, now);
}

void qv_events_note_append(struct qv_daemon *d)
{
	static unsigned appends;
	unsigned deleted = 0;
	int r;

	if (appends++ % QV_EVENTS_TRIM_EVERY != 0)
		return;
	r = qv_state_events_trim(d->state, qv_unix_ms() - QV_EVENTS_MAX_AGE_MS,
				 QV_EVENTS_MAX_ROWS, &deleted);
	if (r < 0)
		log_warning_errno(r, "Failed to trim the events table, ignoring: %m");
	else if (deleted)
		log_debug("Trimmed %u old events", deleted);
}
