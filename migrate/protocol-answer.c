/* SPDX-License-Identifier: MIT */
/* The protocol's reactions: one handler per step, deciding the next step,
 * a retry, an abort or the end (migrate/protocol.h has the rules). */
#include <errno.h>
#include <string.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "migrate/protocol-internal.h"

static bool reason_is(const struct qv_error *e, const char *reason)
{
	return e && e->set && streq(e->reason, reason);
}

/* A lost connection or a peer that has not answered yet (restarting). */
static bool transient(int error, const struct qv_error *e)
{
	return error != -EREMOTEIO || reason_is(e, QV_REASON_UNAVAILABLE) ||
	       reason_is(e, QV_REASON_TIMEOUT);
}

/* Re-send p->step after retry_ms while the window lasts; false when over. */
static bool retry(mig_proto *p, const char *what, const struct qv_error *e)
{
	if (qv_now_ms() >= p->retry_until)
		return false;
	if (p->ops->note)
		p->ops->note(p->ud, what, e && e->set ? e->message : "no answer");
	p->retry_pending = true;
	if (p->ops->later(p->ud, p->o.retry_ms) < 0)
		p->retry_pending = false;
	return p->retry_pending;
}

static void resend(mig_proto *p)
{
	switch (p->step) {
	case ST_PLAN: mp_send_plan(p); break;
	case ST_STATUS: mp_send_status(p); break;
	case ST_FINISH: mp_send_finish(p); break;
	case ST_CONFIRM: mp_send_confirm(p); break;
	case ST_CANCEL_DST: mp_send_cancel_dst(p); break;
	case ST_CANCEL_SRC: mp_send_cancel_src(p); break;
	default: break;
	}
}

static void on_info(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	json_object *spec;

	if (error < 0) {
		mp_remember_failure(p, error, e, "vm.info on the source");
		return mp_finish_fail(p);
	}
	if (!json_object_object_get_ex(res, "spec", &spec)) {
		qv_error_set(&p->fail, EPROTO, QV_REASON_INTERNAL, "vm.info without a spec");
		return mp_finish_fail(p);
	}
	p->spec = json_object_get(spec);
	if (p->cancel_requested)
		return mp_finish_fail(p);
	mp_send_plan(p);
}

static void on_plan(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	json_object *v;

	if (error < 0 && !p->o.copy_storage && reason_is(e, QV_REASON_NOT_FOUND) &&
	    !strstr(e->message, "VM")) {
		/* an older daemon without migrate.plan: plain migration */
	} else if (error < 0) {
		mp_remember_failure(p, error, e, "plan on the source");
		return mp_finish_fail(p);
	} else if (p->o.copy_storage && json_object_object_get_ex(res, "mirror_cleanup", &v) &&
		   json_object_get_boolean(v) && ++p->plan_tries < PLAN_WAIT_TRIES) {
		/* A cancelled storage mirror still drains. */
		p->retry_pending = true;
		p->ops->later(p->ud, 250);
		return;
	} else {
		p->plan = json_object_get(res);
	}
	if (p->cancel_requested)
		return mp_finish_fail(p);
	mp_send_prepare(p);
}

static void on_prepare(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	json_object *v;

	if (error == -EREMOTEIO && !transient(error, e)) {
		/* Refused: prepare removes whatever it made on failure. */
		mp_remember_failure(p, error, e, "prepare on the destination");
		return mp_finish_fail(p);
	}
	if (error < 0 && p->never_sent) {
		/* prepare never left: nothing exists on the destination. */
		mp_remember_failure(p, error, e, "prepare on the destination");
		return mp_finish_fail(p);
	}
	if (error < 0) {
		/* The destination may hold an incoming VM we never heard of. */
		mp_remember_failure(p, error, e, "prepare on the destination");
		return mp_start_abort(p);
	}
	p->prep = json_object_get(res);
	snprintf(p->token, sizeof(p->token), "%s",
		 json_object_object_get_ex(res, "token", &v) ? json_object_get_string(v) : "");
	if (p->cancel_requested)
		return mp_start_abort(p);
	mp_send_perform(p);
}

static bool stats_postcopy(json_object *stats)
{
	json_object *v;
	return stats && json_object_object_get_ex(stats, "postcopy", &v) &&
	       json_object_get_boolean(v);
}

static void on_perform(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	if (error == 0) {
		p->stats = json_object_get(res);
		p->completed = true;
		p->postcopy |= stats_postcopy(res);
		if (p->cancel_requested && !p->postcopy)
			return mp_start_abort(p); /* the destination never ran: undo */
		return mp_start_finish(p);
	}
	mp_remember_failure(p, error, e, "perform");
	if (p->postcopy) {
		/* Failed after the postcopy switch: neither side has the whole
		 * guest; cancelling would kill the destination half. */
		qv_error_prefix(&p->fail, "%s failed after the postcopy switch: the source stays "
				"paused and the destination keeps its half (postcopy recovery is "
				"not supported; see docs/migration.md)", p->name);
		return mp_finish_fail(p);
	}
	if (error != -EREMOTEIO) {
		/* We lost the source's answer, not the migration: ask. */
		p->retry_until = qv_now_ms() + (uint64_t)p->o.retry_s * 1000;
		return mp_send_status(p);
	}
	mp_start_abort(p); /* the source resumed itself; remove the incoming VM */
}

/* migrate.status on the source after a restart or a lost perform answer. */
static void on_status(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	json_object *v, *data;
	const char *state;

	if (error < 0 && transient(error, e) && retry(p, "asking the source", e))
		return;
	if (error < 0)
		return mp_start_abort(p); /* no record: recovery cancelled and resumed it */
	state = json_object_object_get_ex(res, "state", &v) ? json_object_get_string(v) : "";
	if (streq(state, "completed") || streq(state, "postcopy")) {
		if (json_object_object_get_ex(res, "data", &data) &&
		    json_object_object_get_ex(data, "stats", &v) && !p->stats)
			p->stats = json_object_get(v);
		p->completed = streq(state, "completed");
		p->postcopy |= streq(state, "postcopy") || stats_postcopy(p->stats);
		return mp_start_finish(p);
	}
	if (streq(state, "failed") && p->postcopy)
		return mp_finish_fail(p);
	if (json_object_object_get_ex(res, "active", &v) && json_object_get_boolean(v) &&
	    retry(p, "waiting for the source QEMU", NULL))
		return;
	mp_start_abort(p);
}

/* Honest downtime: the source's STOP to the destination's RESUME. */
static void blackout(mig_proto *p, json_object *fin)
{
	json_object *v;
	int64_t stop = 0, resume = 0, ms;

	if (!p->stats)
		p->stats = json_object_new_object();
	if (json_object_object_get_ex(p->stats, "downtime_ms", &v) &&
	    !json_object_object_get_ex(p->stats, "qemu_downtime_ms", NULL))
		json_object_object_add(p->stats, "qemu_downtime_ms", json_object_get(v));
	if (json_object_object_get_ex(p->stats, "stop_unix_us", &v))
		stop = json_object_get_int64(v);
	if (fin && json_object_object_get_ex(fin, "resume_unix_us", &v)) {
		resume = json_object_get_int64(v);
		json_object_object_add(p->stats, "resume_unix_us", json_object_new_int64(resume));
	}
	ms = mig_blackout_ms(stop, resume);
	json_object_object_add(p->stats, "downtime_ms", ms >= 0 ? json_object_new_int64(ms) : NULL);
	json_object_object_add(p->stats, "downtime_source",
			       json_object_new_string(ms >= 0 ? "stop-to-resume" : "unknown"));
}

static void on_finish(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	if (error == 0) {
		blackout(p, res);
		return mp_send_confirm(p);
	}
	if (error == -EREMOTEIO && !transient(error, e) && !reason_is(e, QV_REASON_CONFLICT)) {
		/* not-found, cancelled, wrong token: the destination holds no
		 * running copy. Make sure of it, then resume the source. */
		mp_remember_failure(p, error, e, "finish on the destination");
		return mp_start_abort(p);
	}
	if (retry(p, "retrying finish on the destination", e))
		return;
	mp_remember_failure(p, error, e, "finish on the destination");
	qv_error_prefix(&p->fail, "%s: the outcome on the destination is unknown, so the source "
			"stays paused (it resumes the protocol when the daemon restarts, or run "
			"migrate.recover)", p->name);
	mp_finish_fail(p);
}

static void on_confirm(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	(void)res;
	if (error == 0 || reason_is(e, QV_REASON_NOT_FOUND)) {
		/* not-found: an earlier confirm already retired the source. */
		if (!p->stats)
			blackout(p, NULL);
		return mp_finish_ok(p);
	}
	if (retry(p, "retrying confirm on the source", e))
		return;
	mp_remember_failure(p, error, e, "confirm on the source");
	qv_error_prefix(&p->fail, "%s runs on the destination, but confirming on the source "
			"failed (stop the source copy by hand)", p->name);
	mp_finish_fail(p);
}

static void on_cancel_dst(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	(void)res;
	if (error == 0 || reason_is(e, QV_REASON_NOT_FOUND))
		return mp_send_cancel_src(p);
	if (reason_is(e, QV_REASON_CONFLICT)) {
		/* The destination already runs the guest: go forward. */
		p->fail = (struct qv_error){};
		p->fail_errno = 0;
		p->retry_until = qv_now_ms() + (uint64_t)p->o.retry_s * 1000;
		return mp_send_confirm(p);
	}
	if (retry(p, "cancelling on the destination", e))
		return;
	if (!p->completed)
		return mp_send_cancel_src(p); /* the source never stopped for good */
	qv_error_prefix(&p->fail, "the destination did not confirm it never ran %s, so the "
			"source stays paused", p->name);
	mp_finish_fail(p);
}

static void dispatch(mig_proto *p, int error, const struct qv_error *e, json_object *res)
{
	switch (p->step) {
	case ST_INFO: return on_info(p, error, e, res);
	case ST_PLAN: return on_plan(p, error, e, res);
	case ST_PREPARE: return on_prepare(p, error, e, res);
	case ST_PERFORM: return on_perform(p, error, e, res);
	case ST_STATUS: return on_status(p, error, e, res);
	case ST_FINISH: return on_finish(p, error, e, res);
	case ST_CONFIRM: return on_confirm(p, error, e, res);
	case ST_CANCEL_DST: return on_cancel_dst(p, error, e, res);
	case ST_CANCEL_SRC: return mp_finish_fail(p); /* the source resumed (or had nothing) */
	case ST_NONE: return;
	}
}

void mig_proto_answer(mig_proto *p, uint64_t tag, int error, const struct qv_error *errp,
		      json_object *result)
{
	if (tag != p->tag || p->phase == MIG_PHASE_DONE || p->phase == MIG_PHASE_FAILED)
		return; /* stale */
	p->tag++;
	dispatch(p, error, errp, result);
}

void mig_proto_tick(mig_proto *p)
{
	struct qv_error e = {};

	if (p->unsent) {
		p->unsent = false;
		qv_error_set(&e, ENOTCONN, QV_REASON_UNAVAILABLE, "the peer is unreachable");
		p->never_sent = true;
		dispatch(p, -ENOTCONN, &e, NULL);
		p->never_sent = false;
		return;
	}
	if (p->retry_pending) {
		p->retry_pending = false;
		resend(p);
	}
}

void mig_proto_postcopy_switched(mig_proto *p)
{
	p->postcopy = true;
}

int mig_proto_cancel(mig_proto *p, struct qv_error *errp)
{
	switch (p->phase) {
	case MIG_PHASE_FINISHING:
	case MIG_PHASE_CONFIRMING:
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "the migration of %s is %s: the destination may already run "
				    "the guest, so it can no longer be cancelled", p->name,
				    mig_phase_to_string(p->phase));
	case MIG_PHASE_PERFORMING:
		if (p->postcopy)
			return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
					    "the migration of %s switched to postcopy: it can only "
					    "complete", p->name);
		break;
	default:
		break;
	}
	if (!p->fail.set) {
		qv_error_set(&p->fail, ECANCELED, QV_REASON_CANCELLED, "cancelled by the operator");
		p->fail_errno = -ECANCELED;
	}
	p->cancel_requested = true;
	return 0;
}
