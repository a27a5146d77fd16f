/* SPDX-License-Identifier: MIT */
/* The convergence engine's hands and voice: QMP calls, decisions applied to
 * the source QEMU, progress and decision events, the final stats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "migrate/converge-internal.h"

void eng_emit(mig_engine *e, const char *type, json_object *data)
{
	if (e->on_event)
		e->on_event(e, type, data, e->userdata);
}

uint64_t eng_elapsed(const mig_engine *e)
{
	return e->t_start ? qv_now_ms() - e->t_start : 0;
}

void eng_record(mig_engine *e, const struct mig_decision *dc, bool applied,
			    const struct qv_error *err)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "t_ms", json_object_new_int64((int64_t)eng_elapsed(e)));
	json_object_object_add(o, "round", json_object_new_int64((int64_t)e->model.dirty_syncs));
	json_object_object_add(o, "action", json_object_new_string(mig_action_to_string(dc->action)));
	json_object_object_add(o, "value", json_object_new_int(dc->value));
	if (dc->action == MIG_ACT_SET_THROTTLE)
		json_object_object_add(o, "increment", json_object_new_int(dc->value2));
	json_object_object_add(o, "reason", json_object_new_string(dc->reason));
	json_object_object_add(o, "applied", json_object_new_boolean(applied));
	if (!applied && err && err->set)
		json_object_object_add(o, "error", json_object_new_string(err->message));
	log_debug("migrate: decision %s %d: %s", mig_action_to_string(dc->action), dc->value,
		  dc->reason);
	eng_emit(e, "decision", o);
	json_object_array_add(e->decisions, o);
}

int eng_seq(mig_engine *e, qmp_seq_done_fn done, qmp_seq **ret, struct qv_error *errp)
{
	qmp_client *c = e->get_qmp(e->userdata);
	int r;

	if (!c || !qmp_client_is_open(c))
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE, "the source QEMU is gone");
	r = qmp_seq_new(c, QMP_TIMEOUT_MS, done, e, ret);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_UNAVAILABLE,
				    "cannot talk to the source QEMU: %s", strerror(-r));
	return 0;
}

int eng_seq_start(mig_engine *e, qmp_seq *s, struct qv_error *errp)
{
	int r = qmp_seq_start(s);

	if (r < 0) {
		qmp_seq_cancel(s);
		return qv_error_set(errp, -r, QV_REASON_UNAVAILABLE,
				    "cannot talk to the source QEMU: %s", strerror(-r));
	}
	e->seq = s;
	return 0;
}

int eng_run_one(mig_engine *e, const char *cmd, json_object *args, qmp_seq_done_fn done,
		struct qv_error *errp)
{
	qmp_seq *s = NULL;
	int r = eng_seq(e, done, &s, errp);

	if (r < 0) {
		json_object_put(args);
		return r;
	}
	r = qmp_seq_add_cmd(s, cmd, args);
	if (r < 0) {
		qmp_seq_cancel(s);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue %s", cmd);
	}
	return eng_seq_start(e, s, errp);
}

struct eng_call {
	mig_engine *e; /* NULL once the engine was freed */
	eng_reply_fn fn;
};

static void on_eng_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			 void *userdata)
{
	struct eng_call *k = userdata;
	mig_engine *e = k->e;
	eng_reply_fn fn = k->fn;

	free(k);
	if (!e)
		return;
	e->inflight = NULL;
	if (e->phase == PH_DONE)
		return; /* finished meanwhile (cancelled before `migrate`) */
	fn(e, error, ret, errp);
}

int eng_qmp_async(mig_engine *e, const char *cmd, eng_reply_fn fn, struct qv_error *errp)
{
	qmp_client *c = e->get_qmp(e->userdata);
	struct eng_call *k;
	int r;

	if (!c || !qmp_client_is_open(c))
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE,
				    "the source QEMU is gone (%s)", cmd);
	k = calloc(1, sizeof(*k));
	if (!k)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	*k = (struct eng_call){ .e = e, .fn = fn };
	e->inflight = k;
	r = qmp_client_execute_async(c, cmd, NULL, NULL, 0, QMP_TIMEOUT_MS, on_eng_reply, k);
	if (r < 0) {
		e->inflight = NULL;
		free(k);
		return qv_error_set(errp, -r, QV_REASON_UNAVAILABLE, "cannot send %s to the source "
				    "QEMU: %s", cmd, strerror(-r));
	}
	return 0;
}

void eng_forget_inflight(mig_engine *e)
{
	if (e->inflight)
		e->inflight->e = NULL;
	e->inflight = NULL;
}

json_object *eng_caps_args(mig_engine *e)
{
	static const char *const names[] = { "events", "pause-before-switchover",
					     "auto-converge", "postcopy-ram", "xbzrle", "multifd" };
	json_object *args = json_object_new_object(), *caps = json_object_new_array();

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		bool on = i == 0 || (!e->opts.plain && (i == 1 || i == 2)) ||
			  (i == 1 && e->opts.before_continue) ||
			  (i == 3 && e->postcopy_on) ||
			  (i == 4 && e->pst.xbzrle_cache > 0) ||
			  (i == 5 && e->opts.multifd_channels > 0);
		json_object *c = json_object_new_object();
		json_object_object_add(c, "capability", json_object_new_string(names[i]));
		json_object_object_add(c, "state", json_object_new_boolean(on));
		json_object_array_add(caps, c);
	}
	json_object_object_add(args, "capabilities", caps);
	return args;
}

const char *eng_decision_cmd(mig_engine *e, const struct mig_decision *dc, bool initial,
			     json_object **ret_args)
{
	json_object *a = json_object_new_object();

	*ret_args = NULL;
	switch (dc->action) {
	case MIG_ACT_SET_DOWNTIME:
		json_object_object_add(a, "downtime-limit", json_object_new_int(dc->value));
		return *ret_args = a, "migrate-set-parameters";
	case MIG_ACT_SET_THROTTLE:
		json_object_object_add(a, "max-cpu-throttle", json_object_new_int(dc->value));
		json_object_object_add(a, "cpu-throttle-increment", json_object_new_int(dc->value2));
		if (initial)
			json_object_object_add(a, "cpu-throttle-initial",
					       json_object_new_int(e->pst.throttle_initial));
		return *ret_args = a, "migrate-set-parameters";
	case MIG_ACT_XBZRLE:
		json_object_object_add(a, "xbzrle-cache-size",
				       json_object_new_int64((int64_t)dc->value << 20));
		return *ret_args = a, "migrate-set-parameters";
	case MIG_ACT_CANCEL:
		json_object_put(a);
		return "migrate_cancel";
	case MIG_ACT_POSTCOPY:
		json_object_put(a);
		return "migrate-start-postcopy";
	case MIG_ACT_CONTINUE:
		json_object_object_add(a, "state", json_object_new_string("pre-switchover"));
		return *ret_args = a, "migrate-continue";
	case MIG_ACT_THROTTLE_EFFECT:
	case MIG_ACT_PREDICT:
		break; /* findings: recorded and sent, nothing to tell QEMU */
	}
	json_object_put(a);
	return NULL;
}

static json_object *eng_stats_json(mig_engine *e, const char *status)
{
	json_object *o = json_object_new_object(), *q = e->last_query, *ram = NULL, *v;

	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "mode", json_object_new_string(e->opts.plain ? "plain" : "controller"));
	/* QEMU's total-time when it has one (it reads 0 in some completed
	 * states), else ours: `migrate` until we saw the final status. */
	if (q && json_object_object_get_ex(q, "total-time", &v) && json_object_get_int64(v) > 0)
		json_object_object_add(o, "total_time_ms", json_object_new_int64(json_object_get_int64(v)));
	else
		json_object_object_add(o, "total_time_ms", json_object_new_int64((int64_t)eng_elapsed(e)));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64((int64_t)eng_elapsed(e)));
	if (q && json_object_object_get_ex(q, "downtime", &v))
		json_object_object_add(o, "downtime_ms", json_object_new_int64(json_object_get_int64(v)));
	if (q)
		json_object_object_get_ex(q, "ram", &ram);
	if (ram && json_object_object_get_ex(ram, "transferred", &v))
		json_object_object_add(o, "ram_transferred", json_object_new_int64(json_object_get_int64(v)));
	if (ram && json_object_object_get_ex(ram, "total", &v))
		json_object_object_add(o, "ram_total", json_object_new_int64(json_object_get_int64(v)));
	json_object_object_add(o, "rounds", json_object_new_int64((int64_t)e->model.dirty_syncs));
	/* postcopy: the switch happened (the source can no longer take over) */
	json_object_object_add(o, "postcopy", json_object_new_boolean(e->postcopy_active));
	json_object_object_add(o, "postcopy_requested", json_object_new_boolean(e->postcopy_ms > 0));
	if (e->postcopy_ms)
		json_object_object_add(o, "postcopy_start_ms",
				       json_object_new_int64((int64_t)e->postcopy_ms));
	if (q && json_object_object_get_ex(q, "postcopy-requests", &v))
		json_object_object_add(o, "postcopy_requests", json_object_get(v));
	if (ram && json_object_object_get_ex(ram, "postcopy-requests", &v))
		json_object_object_add(o, "postcopy_requests", json_object_get(v));
	json_object_object_add(o, "bandwidth_bps", json_object_new_double(e->model.bw_bps));
	json_object_object_add(o, "dirty_rate_bps", json_object_new_double(mig_model_dirty_bps(&e->model)));
	json_object_object_add(o, "pre_dirty_rate_bps", json_object_new_double(e->model.pre_dirty_bps));
	json_object_object_add(o, "throttle_pct", json_object_new_int(e->model.throttle_pct));
	json_object_object_add(o, "decisions", json_object_get(e->decisions));
	return o;
}

void eng_finish(mig_engine *e, int error, const struct qv_error *err, const char *status)
{
	json_object *stats = eng_stats_json(e, status);

	e->phase = PH_DONE;
	e->timer = qv_source_remove(e->timer);
	e->seq = qmp_seq_cancel(e->seq);
	e->hook_wait = false;
	if (e->on_done)
		e->on_done(e, error, err, stats, e->userdata); /* may free e */
	json_object_put(stats);
}

void mig_sample_from_query(json_object *ret, uint64_t t_ms, struct mig_sample *s)
{
	json_object *ram = NULL, *v;

	*s = (struct mig_sample){ .t_ms = t_ms };
	if (json_object_object_get_ex(ret, "cpu-throttle-percentage", &v))
		s->throttle_pct = json_object_get_int(v);
	if (!json_object_object_get_ex(ret, "ram", &ram))
		return;
#define U64(key, field) \
	if (json_object_object_get_ex(ram, key, &v)) s->field = (uint64_t)json_object_get_int64(v)
	U64("transferred", transferred);
	U64("remaining", remaining);
	U64("total", total);
	U64("page-size", page_size);
	U64("dirty-sync-count", dirty_syncs);
#undef U64
	if (json_object_object_get_ex(ram, "dirty-pages-rate", &v))
		s->dirty_pages_rate = json_object_get_double(v);
	if (json_object_object_get_ex(ram, "mbps", &v))
		s->mbps = json_object_get_double(v);
}

void eng_progress(mig_engine *e, const char *status, json_object *q)
{
	json_object *o = json_object_new_object(), *v;
	double dt = mig_model_downtime_ms(&e->model);

	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64((int64_t)eng_elapsed(e)));
	json_object_object_add(o, "round", json_object_new_int64((int64_t)e->model.dirty_syncs));
	json_object_object_add(o, "remaining", json_object_new_int64((int64_t)e->model.remaining));
	json_object_object_add(o, "total", json_object_new_int64((int64_t)e->model.total));
	json_object_object_add(o, "transferred", json_object_new_int64((int64_t)e->model.last_transferred));
	json_object_object_add(o, "dirty_rate_bps", json_object_new_double(mig_model_dirty_bps(&e->model)));
	json_object_object_add(o, "bandwidth_bps", json_object_new_double(e->model.bw_bps));
	json_object_object_add(o, "expected_downtime_ms", json_object_new_double(dt));
	if (json_object_object_get_ex(q, "expected-downtime", &v))
		json_object_object_add(o, "qemu_expected_downtime_ms", json_object_get(v));
	json_object_object_add(o, "throttle_pct", json_object_new_int(e->model.throttle_pct));
	json_object_object_add(o, "downtime_limit_ms", json_object_new_int(e->pst.downtime_limit_ms));
	eng_emit(e, "progress", o);
	json_object_put(o);
}

static void on_cancel_sent(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			   void *userdata)
{
	if (error < 0)
		log_debug("migrate: migrate_cancel failed: %s", errp ? errp->message : "?");
}

void eng_cancel_now(mig_engine *e, int error, const char *why)
{
	qmp_client *c = e->get_qmp(e->userdata);
	int r;

	if (e->phase == PH_CANCELLING || e->phase == PH_DONE)
		return;
	if (e->phase == PH_STARTING) { /* no `migrate` yet: the start's end cancels */
		e->cancel_asked = true;
		e->cancel_error = error;
		snprintf(e->cancel_why, sizeof(e->cancel_why), "%s", why);
		return;
	}
	if (e->phase == PH_POSTCOPY) {
		/* The destination may already run the guest: cancelling now
		 * would fail the migration and lose it (docs/migration.md). */
		log_debug("migrate: not cancelling during postcopy (%s)", why);
		return;
	}
	e->cancel_error = error;
	snprintf(e->cancel_why, sizeof(e->cancel_why), "%s", why);
	e->phase = PH_CANCELLING;
	/* Not waited for: the next query-migrate sees "cancelled" (and a
	 * poll in flight is not answered inside this call). */
	r = c && qmp_client_is_open(c)
		    ? qmp_client_execute_async(c, "migrate_cancel", NULL, NULL, 0, QMP_TIMEOUT_MS,
					       on_cancel_sent, NULL)
		    : -ENOTCONN;
	if (r < 0)
		log_debug("migrate: migrate_cancel not sent: %s", strerror(-r));
	if (e->hook_wait) {
		/* The hook's end is ignored now; watch for "cancelled". */
		e->hook_wait = false;
		eng_resume_polling(e);
	}
}
