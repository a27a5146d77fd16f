/* SPDX-License-Identifier: MIT */
/* The pre-copy convergence engine (see converge.h). Nothing here waits for
 * QEMU: the polls are asynchronous commands, and the commands that change
 * the migration (start, decisions, migrate-continue) run as QMP sequences
 * (qemu/qmp-seq.h) whose end arms the next poll; the pacing is a loop
 * timer. A QEMU that stalls fails its own migration at a step's deadline. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "migrate/converge-internal.h"

static void engine_tick(qv_source *s, void *ud);
static uint64_t next_poll_ms(const mig_engine *e);

static void arm(mig_engine *e, uint64_t ms)
{
	e->timer = qv_source_remove(e->timer);
	if (qv_loop_add_timer(e->loop, ms, engine_tick, e, &e->timer) < 0)
		e->timer = NULL;
}

/* A final status (completed, failed, cancelled, broken postcopy): finish
 * and return true; false for a migration still under way. */
static bool finish_if_final(mig_engine *e, const char *status, json_object *q)
{
	struct qv_error err = {};
	json_object *v;

	if (streq(status, "completed"))
		return eng_finish(e, 0, NULL, "completed"), true;
	if (streq(status, "postcopy-paused") || streq(status, "postcopy-recover")) {
		/* The link broke during postcopy: QEMU 7.2 keeps both halves
		 * for migrate-recover, which we do not drive. */
		qv_error_set(&err, EIO, QV_REASON_QEMU_ERROR,
			     "migration %s during postcopy (the guest's memory is split between "
			     "both hosts; see docs/migration.md)", status);
		return eng_finish(e, -EIO, &err, status), true;
	}
	if (streq(status, "failed")) {
		const char *desc = json_object_object_get_ex(q, "error-desc", &v)
					   ? json_object_get_string(v) : "unknown error";
		if (e->cancel_error) {
			qv_error_set(&err, e->cancel_error, QV_REASON_CANCELLED, "%s", e->cancel_why);
			return eng_finish(e, -e->cancel_error, &err, "cancelled"), true;
		}
		qv_error_set(&err, EIO, QV_REASON_QEMU_ERROR, "migration failed: %s", desc);
		return eng_finish(e, -EIO, &err, "failed"), true;
	}
	if (streq(status, "cancelled")) {
		int er = e->cancel_error ? e->cancel_error : ECANCELED;
		qv_error_set(&err, er, er == ETIMEDOUT ? QV_REASON_TIMEOUT : QV_REASON_CANCELLED,
			     "%s", e->cancel_error ? e->cancel_why : "migration cancelled");
		return eng_finish(e, -er, &err, "cancelled"), true;
	}
	return false;
}

void eng_resume_polling(mig_engine *e)
{
	if (e->phase != PH_DONE && !e->seq && !e->hook_wait)
		arm(e, next_poll_ms(e));
}

/* One query-migrate answer (q borrowed). Returns true once eng_finish()
 * ran (e may be freed). */
static bool poll_once(mig_engine *e, int r, json_object *q, const struct qv_error *qerr)
{
	struct qv_error err = {};
	json_object *v;
	struct mig_sample s;
	const char *status = "unknown";

	if (r < 0) {
		if (qerr)
			err = *qerr;
		else
			qv_error_set(&err, -r, QV_REASON_UNAVAILABLE, "query-migrate failed");
		qv_error_prefix(&err, "source QEMU lost during migration");
		return eng_finish(e, r, &err, "failed"), true;
	}
	json_object_put(e->last_query);
	e->last_query = json_object_get(q);
	if (json_object_object_get_ex(q, "status", &v))
		status = json_object_get_string(v);
	mig_sample_from_query(q, qv_now_ms(), &s);
	if (s.total)
		mig_model_observe(&e->model, &s);
	if (finish_if_final(e, status, q))
		return true;
	eng_progress(e, status, q);
	if (e->phase == PH_CANCELLING)
		return false;
	if (streq(status, "postcopy-active"))
		e->postcopy_active = true;
	else if (streq(status, "pre-switchover") &&
		 (e->phase == PH_POSTCOPY || e->phase == PH_ACTIVE))
		eng_switchover(e);
	else if (streq(status, "active") && e->phase != PH_POSTCOPY)
		eng_steer(e);
	return false;
}

/* The multifd decision was taken by the coordinator (both sides need it);
 * record it like the others. */
static void record_multifd(mig_engine *e)
{
	json_object *o;

	if (!e->opts.multifd_reason && !e->opts.multifd_channels)
		return;
	o = json_object_new_object();
	json_object_object_add(o, "t_ms", json_object_new_int64(0));
	json_object_object_add(o, "round", json_object_new_int64(0));
	json_object_object_add(o, "action", json_object_new_string("multifd"));
	json_object_object_add(o, "value", json_object_new_int((int)e->opts.multifd_channels));
	json_object_object_add(o, "reason", json_object_new_string(
		e->opts.multifd_reason ? e->opts.multifd_reason : "requested by the client"));
	json_object_object_add(o, "applied", json_object_new_boolean(true));
	eng_emit(e, "decision", o);
	json_object_array_add(e->decisions, o);
}

unsigned mig_multifd_plan(uint64_t ram_bytes, double bandwidth_bps, double idle_cpus,
			  char *reason, size_t reason_size)
{
	double b = bandwidth_bps > 0 ? bandwidth_bps : ASSUMED_BW_BPS;
	double t = (double)ram_bytes / b;
	unsigned ch;

	if (t <= QV_MIG_MULTIFD_MIN_S) {
		snprintf(reason, reason_size, "off: RAM/B = %.1f s <= %.0f s, one stream suffices",
			 t, QV_MIG_MULTIFD_MIN_S);
		return 0;
	}
	if (idle_cpus < 2) {
		snprintf(reason, reason_size,
			 "off: RAM/B = %.1f s but only %.1f idle CPU(s) (< 2) to drive channels",
			 t, idle_cpus);
		return 0;
	}
	ch = idle_cpus >= 4 ? 4 : (unsigned)idle_cpus;
	snprintf(reason, reason_size, "%u channels: RAM/B = %.1f s > %.0f s and %.1f idle CPUs",
		 ch, t, QV_MIG_MULTIFD_MIN_S, idle_cpus);
	return ch;
}

double mig_host_idle_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	double load = 0;
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = 0;
		fclose(f);
	}
	return n - load > 0 ? n - load : 0;
}

static void on_begun(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	mig_engine *e = ud;
	struct qv_error err = {};

	e->seq = NULL;
	if (error < 0) {
		if (errp)
			err = *errp;
		if (e->cancel_asked)
			qv_error_prefix(&err, "%s", e->cancel_why);
		return eng_finish(e, error, &err, "failed");
	}
	e->t_start = qv_now_ms();
	record_multifd(e);
	for (size_t i = 0; i < e->steer_n; i++)
		eng_record(e, &e->steer_dc[i], true, NULL);
	e->steer_n = e->steer_i = 0;
	e->phase = PH_ACTIVE;
	if (e->cancel_asked) {
		e->cancel_asked = false;
		eng_cancel_now(e, e->cancel_error, e->cancel_why);
	}
	arm(e, QV_MIG_POLL_MS);
}

/* Capabilities, parameters, the policy's initial decisions, `migrate`: one
 * sequence, aborted by the first error (nothing migrates then). */
static int begin(mig_engine *e, struct qv_error *errp)
{
	json_object *a = json_object_new_object();
	qmp_seq *s = NULL;
	size_t n = 0;
	int r;

	e->phase = PH_STARTING;
	if (!e->opts.plain)
		n = mig_policy_initial(&e->cfg, &e->model, ASSUMED_BW_BPS, &e->pst, e->steer_dc, 4);
	e->steer_n = n; /* recorded once `migrate` was accepted */
	r = eng_seq(e, on_begun, &s, errp);
	if (r < 0) {
		json_object_put(a);
		return r;
	}
	r = qmp_seq_add_cmd(s, "migrate-set-capabilities", eng_caps_args(e));
	if (e->opts.multifd_channels > 0)
		json_object_object_add(a, "multifd-channels",
				       json_object_new_int((int)e->opts.multifd_channels));
	if (e->opts.bandwidth_bps > 0 || !e->opts.plain)
		json_object_object_add(a, "max-bandwidth", json_object_new_int64(
			e->opts.bandwidth_bps > 0 ? (int64_t)e->opts.bandwidth_bps : (int64_t)NO_CAP_BPS));
	if (json_object_object_length(a) > 0) {
		if (r >= 0)
			r = qmp_seq_add_cmd(s, "migrate-set-parameters", a);
		else
			json_object_put(a);
	} else {
		json_object_put(a);
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		json_object *args;
		const char *cmd = eng_decision_cmd(e, &e->steer_dc[i], true, &args);
		if (cmd)
			r = qmp_seq_add_cmd(s, cmd, args);
	}
	a = json_object_new_object();
	json_object_object_add(a, "uri", json_object_new_string(e->uri));
	if (r >= 0)
		r = qmp_seq_add_cmd(s, "migrate", a);
	else
		json_object_put(a);
	if (r < 0) {
		qmp_seq_cancel(s);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot build the migration start");
	}
	return eng_seq_start(e, s, errp);
}

/* calc-dirty-rate result (q borrowed): MiB/s -> bytes/s; -EAGAIN while
 * measuring. */
static int read_dirty_rate(json_object *q, double *ret_bps)
{
	json_object *v;

	if (!json_object_object_get_ex(q, "status", &v) ||
	    !streq(json_object_get_string(v), "measured"))
		return -EAGAIN;
	if (!json_object_object_get_ex(q, "dirty-rate", &v))
		return -ENODATA;
	*ret_bps = (double)json_object_get_int64(v) * 1024.0 * 1024.0;
	return 0;
}

/* QEMU stops the guest before it enters pre-switchover, so every poll
 * interval there is downtime: poll fast once R nears the switchover
 * threshold (B x downtime-limit), and after migrate-continue until
 * "completed" (the destination's cont waits for it: at 200 ms this poll
 * added up to 200 ms to the blackout). */
static uint64_t next_poll_ms(const mig_engine *e)
{
	if (e->phase == PH_SWITCHOVER)
		return QV_MIG_FAST_POLL_MS;
	double b = e->model.bw_bps > 0 ? e->model.bw_bps : e->model.qemu_bw_bps;
	double threshold = b * e->pst.downtime_limit_ms / 1000.0;
	int limit = e->opts.plain ? 0 : e->pst.downtime_limit_ms;

	if (e->phase == PH_ACTIVE && limit > 0 && b > 0 &&
	    (double)e->model.remaining <= 4 * threshold + 8e6)
		return QV_MIG_FAST_POLL_MS;
	return QV_MIG_POLL_MS;
}

static void on_dirty_rate(mig_engine *e, int r, json_object *q, const struct qv_error *qerr)
{
	struct qv_error err = {};
	double d = 0;

	if (r >= 0)
		r = read_dirty_rate(q, &d);
	if (r == -EAGAIN && qv_now_ms() < e->premeasure_deadline)
		return arm(e, 200);
	if (r == 0)
		mig_model_set_pre_dirty_rate(&e->model, d);
	else
		log_debug("migrate: no pre-measured dirty rate (%d), going on", r);
	r = begin(e, &err);
	if (r < 0)
		return eng_finish(e, r, &err, "failed");
	/* on_begun arms the first poll */
}

static void on_query_migrate(mig_engine *e, int r, json_object *q, const struct qv_error *qerr)
{
	if (poll_once(e, r, q, qerr))
		return; /* e may be gone */
	eng_resume_polling(e); /* unless a sequence or the hook runs: its end arms */
}

/* Each tick sends one query and returns; the answer's handler does the
 * work and arms the next tick. Nothing here waits for QEMU. */
static void engine_tick(qv_source *s, void *ud)
{
	mig_engine *e = ud;
	struct qv_error err = {};
	bool pre = e->phase == PH_PREMEASURE;
	int r;

	e->timer = NULL;
	if (e->inflight || e->seq || e->hook_wait)
		return; /* the answer, the sequence's or the hook's end re-arms */
	r = eng_qmp_async(e, pre ? "query-dirty-rate" : "query-migrate",
			  pre ? on_dirty_rate : on_query_migrate, &err);
	if (r < 0) {
		if (pre)
			return on_dirty_rate(e, r, NULL, &err);
		on_query_migrate(e, r, NULL, &err);
	}
	/* e may be gone: the handler may have run already */
}

/* calc-dirty-rate accepted (measuring for PREMEASURE_S) or refused (go on
 * without the measurement). */
static void on_premeasure_sent(qmp_seq *sq, int error, const struct qv_error *errp, void *ud)
{
	mig_engine *e = ud;
	struct qv_error err = {};
	int r;

	e->seq = NULL;
	if (e->cancel_asked) {
		qv_error_set(&err, e->cancel_error, QV_REASON_CANCELLED, "%s", e->cancel_why);
		return eng_finish(e, -e->cancel_error, &err, "cancelled");
	}
	if (error >= 0) {
		e->phase = PH_PREMEASURE;
		e->premeasure_deadline = qv_now_ms() + PREMEASURE_S * 1000 + 3000;
		arm(e, PREMEASURE_S * 1000 + 100);
		return;
	}
	log_debug("migrate: calc-dirty-rate failed (%s), starting without it",
		  errp ? errp->message : "?");
	r = begin(e, &err);
	if (r < 0)
		eng_finish(e, r, &err, "failed");
}

int mig_engine_start(qv_loop *loop, mig_engine_qmp_fn get_qmp, const struct mig_engine_opts *opts,
		     mig_engine_event_fn on_event, mig_engine_done_fn on_done, void *userdata,
		     mig_engine **ret_engine, struct qv_error *errp)
{
	mig_engine *e;
	int r;

	if (!opts->uri || !*opts->uri)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "migration URI missing");
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->loop = loop;
	e->get_qmp = get_qmp;
	e->opts = *opts;
	e->uri = strdup(opts->uri);
	e->opts.uri = e->uri;
	e->multifd_reason = opts->multifd_reason ? strdup(opts->multifd_reason) : NULL;
	e->opts.multifd_reason = e->multifd_reason;
	e->decisions = json_object_new_array();
	e->on_event = on_event;
	e->on_done = on_done;
	e->userdata = userdata;
	mig_model_init(&e->model);
	e->cfg = (struct mig_policy_cfg){
		.max_downtime_ms = opts->max_downtime_ms > 0 ? opts->max_downtime_ms
							       : QV_MIG_DEFAULT_DOWNTIME_MS,
		.bandwidth_bps = opts->bandwidth_bps,
		.deadline_ms = (uint64_t)(opts->deadline_s ? opts->deadline_s
							  : QV_MIG_DEFAULT_DEADLINE_S) * 1000,
		.margin = 0.5,
		.max_throttle_pct = 99,
		.ram_bytes = opts->ram_bytes,
		.no_xbzrle = opts->no_xbzrle || opts->multifd_channels > 0,
	};
	/* QEMU 7.2 refuses postcopy-ram together with multifd. */
	e->postcopy_on = opts->allow_postcopy && !opts->plain && opts->multifd_channels == 0;
	e->cfg.allow_postcopy = e->postcopy_on;
	e->cfg.postcopy_after_precopy = e->postcopy_on && opts->postcopy_after_precopy;
	if (!e->uri) {
		mig_engine_free(e);
		return -ENOMEM;
	}
	if (!opts->plain && opts->premeasure) {
		json_object *a = json_object_new_object();
		json_object_object_add(a, "calc-time", json_object_new_int(PREMEASURE_S));
		e->phase = PH_STARTING;
		r = eng_run_one(e, "calc-dirty-rate", a, on_premeasure_sent, errp);
		if (r < 0) {
			mig_engine_free(e);
			return r;
		}
		*ret_engine = e;
		return 0;
	}
	r = begin(e, errp);
	if (r < 0) {
		mig_engine_free(e);
		return r;
	}
	*ret_engine = e; /* on_begun arms the first poll */
	return 0;
}

int mig_engine_cancel(mig_engine *e, const char *why)
{
	if (!e || e->phase == PH_DONE)
		return -EALREADY;
	if (e->phase == PH_STARTING) {
		/* `migrate` may be on its way: the start's end cancels. */
		e->cancel_asked = true;
		e->cancel_error = ECANCELED;
		snprintf(e->cancel_why, sizeof(e->cancel_why), "%s", why);
		return 0;
	}
	if (e->phase == PH_PREMEASURE) {
		struct qv_error err = {};
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED, "%s", why);
		eng_finish(e, -ECANCELED, &err, "cancelled");
		return 0;
	}
	if (e->phase == PH_POSTCOPY)
		return -EBUSY; /* would lose the guest; see eng_cancel_now() */
	if (e->phase == PH_SWITCHOVER && e->sw_postcopy && e->seq)
		return -EBUSY; /* migrate-continue into postcopy is on its way */
	eng_cancel_now(e, ECANCELED, why);
	return 0;
}

bool mig_engine_finished(const mig_engine *e)
{
	return e->phase == PH_DONE;
}

mig_engine *mig_engine_free(mig_engine *e)
{
	if (!e)
		return NULL;
	qv_source_remove(e->timer);
	qmp_seq_cancel(e->seq);
	eng_forget_inflight(e);
	json_object_put(e->decisions);
	json_object_put(e->last_query);
	free(e->uri);
	free(e->multifd_reason);
	free(e);
	return NULL;
}
