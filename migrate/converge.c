/* SPDX-License-Identifier: MIT */
/* The pre-copy convergence engine (see converge.h). QMP calls are short and
 * blocking (query-migrate answers from QEMU's main loop in milliseconds);
 * the pacing is a loop timer. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "migrate/converge.h"

#define QMP_TIMEOUT_MS 5000
#define PREMEASURE_S 1
#define NO_CAP_BPS (8ULL << 30) /* "unlimited": lifts QEMU's 32 MiB/s default */
#define ASSUMED_BW_BPS (100.0 * 1024 * 1024)

/* PH_POSTCOPY: migrate-start-postcopy issued; from then on the migration
 * cannot be cancelled without losing the guest. */
enum engine_phase { PH_PREMEASURE, PH_ACTIVE, PH_SWITCHOVER, PH_POSTCOPY, PH_CANCELLING,
		    PH_DONE };

struct mig_engine {
	qv_loop *loop;
	mig_engine_qmp_fn get_qmp;
	char *uri;
	char *multifd_reason;
	struct mig_engine_opts opts;
	struct mig_policy_cfg cfg;
	struct mig_policy_state pst;
	struct mig_model model;
	enum engine_phase phase;
	qv_source *timer;
	uint64_t t_start;      /* `migrate` issued, monotonic ms */
	uint64_t premeasure_deadline;
	bool postcopy_on;      /* postcopy-ram capability set */
	uint64_t postcopy_ms;  /* migrate-start-postcopy issued (elapsed), 0 = never */
	bool postcopy_active;  /* switched: continued at pre-switchover, or postcopy-active */
	int cancel_error;      /* errno to report once QEMU says cancelled */
	char cancel_why[200];
	json_object *decisions;
	json_object *last_query;
	mig_engine_event_fn on_event;
	mig_engine_done_fn on_done;
	void *userdata;
};

static void engine_tick(qv_source *s, void *ud);

static void arm(mig_engine *e, uint64_t ms)
{
	e->timer = qv_source_remove(e->timer);
	if (qv_loop_add_timer(e->loop, ms, engine_tick, e, &e->timer) < 0)
		e->timer = NULL;
}

static void emit(mig_engine *e, const char *type, json_object *data)
{
	if (e->on_event)
		e->on_event(e, type, data, e->userdata);
}

static uint64_t elapsed(const mig_engine *e)
{
	return e->t_start ? qv_now_ms() - e->t_start : 0;
}

static void record_decision(mig_engine *e, const struct mig_decision *dc, bool applied,
			    const struct qv_error *err)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "t_ms", json_object_new_int64((int64_t)elapsed(e)));
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
	emit(e, "decision", o);
	json_object_array_add(e->decisions, o);
}

static int qmp(mig_engine *e, const char *cmd, json_object *args, json_object **ret,
	       struct qv_error *errp)
{
	qmp_client *c = e->get_qmp(e->userdata);

	if (!c || !qmp_client_is_open(c))
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE,
				    "the source QEMU is gone (%s)", cmd);
	return qmp_client_execute(c, cmd, args, QMP_TIMEOUT_MS, ret, errp);
}

static int set_params(mig_engine *e, json_object *args, struct qv_error *errp)
{
	int r = qmp(e, "migrate-set-parameters", args, NULL, errp);
	json_object_put(args);
	return r;
}

static int set_caps(mig_engine *e, struct qv_error *errp)
{
	static const char *const names[] = { "events", "pause-before-switchover",
					     "auto-converge", "postcopy-ram", "xbzrle", "multifd" };
	json_object *args = json_object_new_object(), *caps = json_object_new_array();
	int r;

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
	r = qmp(e, "migrate-set-capabilities", args, NULL, errp);
	json_object_put(args);
	return r;
}

static int apply(mig_engine *e, const struct mig_decision *dc, struct qv_error *errp)
{
	json_object *a = json_object_new_object();

	switch (dc->action) {
	case MIG_ACT_SET_DOWNTIME:
		json_object_object_add(a, "downtime-limit", json_object_new_int(dc->value));
		return set_params(e, a, errp);
	case MIG_ACT_SET_THROTTLE:
		json_object_object_add(a, "max-cpu-throttle", json_object_new_int(dc->value));
		json_object_object_add(a, "cpu-throttle-increment", json_object_new_int(dc->value2));
		if (e->phase == PH_PREMEASURE)
			json_object_object_add(a, "cpu-throttle-initial",
					       json_object_new_int(e->pst.throttle_initial));
		return set_params(e, a, errp);
	case MIG_ACT_XBZRLE:
		json_object_object_add(a, "xbzrle-cache-size",
				       json_object_new_int64((int64_t)dc->value << 20));
		return set_params(e, a, errp);
	case MIG_ACT_CANCEL:
		json_object_put(a);
		return qmp(e, "migrate_cancel", NULL, NULL, errp);
	case MIG_ACT_POSTCOPY:
		json_object_put(a);
		return qmp(e, "migrate-start-postcopy", NULL, NULL, errp);
	case MIG_ACT_CONTINUE:
		json_object_object_add(a, "state", json_object_new_string("pre-switchover"));
		{
			int r = qmp(e, "migrate-continue", a, NULL, errp);
			json_object_put(a);
			return r;
		}
	}
	json_object_put(a);
	return -EINVAL;
}

static json_object *stats_json(mig_engine *e, const char *status)
{
	json_object *o = json_object_new_object(), *q = e->last_query, *ram = NULL, *v;

	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "mode", json_object_new_string(e->opts.plain ? "plain" : "controller"));
	/* QEMU's total-time when it has one (it reads 0 in some completed
	 * states), else ours: `migrate` until we saw the final status. */
	if (q && json_object_object_get_ex(q, "total-time", &v) && json_object_get_int64(v) > 0)
		json_object_object_add(o, "total_time_ms", json_object_new_int64(json_object_get_int64(v)));
	else
		json_object_object_add(o, "total_time_ms", json_object_new_int64((int64_t)elapsed(e)));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64((int64_t)elapsed(e)));
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

static void finish(mig_engine *e, int error, const struct qv_error *err, const char *status)
{
	json_object *stats = stats_json(e, status);

	e->phase = PH_DONE;
	e->timer = qv_source_remove(e->timer);
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

static void progress(mig_engine *e, const char *status, json_object *q)
{
	json_object *o = json_object_new_object(), *v;
	double dt = mig_model_downtime_ms(&e->model);

	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64((int64_t)elapsed(e)));
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
	emit(e, "progress", o);
	json_object_put(o);
}

static void cancel_now(mig_engine *e, int error, const char *why)
{
	struct qv_error err = {};

	if (e->phase == PH_CANCELLING || e->phase == PH_DONE)
		return;
	if (e->phase == PH_POSTCOPY) {
		/* The destination may already run the guest: cancelling now
		 * would fail the migration and lose it (docs/migration.md). */
		log_debug("migrate: not cancelling during postcopy (%s)", why);
		return;
	}
	e->cancel_error = error;
	snprintf(e->cancel_why, sizeof(e->cancel_why), "%s", why);
	e->phase = PH_CANCELLING;
	if (qmp(e, "migrate_cancel", NULL, NULL, &err) < 0)
		log_debug("migrate: migrate_cancel failed: %s", err.message);
}

/* Returns true once finish() ran (e may be freed). */
static bool poll_once(mig_engine *e)
{
	struct qv_error err = {};
	json_object *q = NULL, *v;
	struct mig_sample s;
	const char *status = "unknown";
	struct mig_decision dc[4];
	size_t n;
	int r;

	r = qmp(e, "query-migrate", NULL, &q, &err);
	if (r < 0) {
		qv_error_prefix(&err, "source QEMU lost during migration");
		return finish(e, r, &err, "failed"), true;
	}
	json_object_put(e->last_query);
	e->last_query = q;
	if (json_object_object_get_ex(q, "status", &v))
		status = json_object_get_string(v);
	mig_sample_from_query(q, qv_now_ms(), &s);
	if (s.total)
		mig_model_observe(&e->model, &s);

	if (streq(status, "completed"))
		return finish(e, 0, NULL, "completed"), true;
	if (streq(status, "postcopy-paused") || streq(status, "postcopy-recover")) {
		/* The link broke during postcopy: QEMU 7.2 keeps both halves
		 * for migrate-recover, which we do not drive. */
		qv_error_set(&err, EIO, QV_REASON_QEMU_ERROR,
			     "migration %s during postcopy (the guest's memory is split between "
			     "both hosts; see docs/migration.md)", status);
		return finish(e, -EIO, &err, status), true;
	}
	if (streq(status, "failed")) {
		const char *desc = json_object_object_get_ex(q, "error-desc", &v)
					   ? json_object_get_string(v) : "unknown error";
		if (e->cancel_error) {
			qv_error_set(&err, e->cancel_error, QV_REASON_CANCELLED, "%s", e->cancel_why);
			return finish(e, -e->cancel_error, &err, "cancelled"), true;
		}
		qv_error_set(&err, EIO, QV_REASON_QEMU_ERROR, "migration failed: %s", desc);
		return finish(e, -EIO, &err, "failed"), true;
	}
	if (streq(status, "cancelled")) {
		int er = e->cancel_error ? e->cancel_error : ECANCELED;
		qv_error_set(&err, er, er == ETIMEDOUT ? QV_REASON_TIMEOUT : QV_REASON_CANCELLED,
			     "%s", e->cancel_error ? e->cancel_why : "migration cancelled");
		return finish(e, -er, &err, "cancelled"), true;
	}
	progress(e, status, q);
	if (e->phase == PH_CANCELLING)
		return false;
	if (streq(status, "postcopy-active")) {
		e->postcopy_active = true;
		return false;
	}
	if (streq(status, "pre-switchover") && e->phase == PH_POSTCOPY) {
		/* pause-before-switchover also stops at the postcopy switch: the
		 * decision was taken, go (no downtime check: only the device
		 * state moves while paused, RAM follows on demand). */
		dc[0] = (struct mig_decision){ .action = MIG_ACT_CONTINUE };
		snprintf(dc[0].reason, sizeof(dc[0].reason),
			 "pre-switchover before postcopy: R %.1f MB follows on demand",
			 (double)e->model.remaining / 1e6);
		e->phase = PH_SWITCHOVER;
		if (e->opts.before_continue &&
		    (r = e->opts.before_continue(e->userdata, &err)) < 0) {
			/* Nothing ran on the destination yet: cancelling is safe. */
			cancel_now(e, -r, err.message);
			return false;
		}
		r = apply(e, &dc[0], &err);
		record_decision(e, &dc[0], r >= 0, &err);
		if (r < 0) {
			cancel_now(e, -r, err.message);
		} else {
			e->phase = PH_POSTCOPY;
			e->postcopy_active = true;
		}
		return false;
	}
	if (streq(status, "pre-switchover") && e->phase == PH_ACTIVE) {
		if (e->opts.plain) {
			dc[0] = (struct mig_decision){ .action = MIG_ACT_CONTINUE };
			snprintf(dc[0].reason, sizeof(dc[0].reason), "plain mode");
		} else {
			mig_policy_switchover(&e->cfg, &e->model, &dc[0]);
		}
		e->phase = PH_SWITCHOVER;
		if (dc[0].action == MIG_ACT_CANCEL) {
			record_decision(e, &dc[0], true, NULL);
			cancel_now(e, ERANGE, dc[0].reason);
			return false;
		}
		if (e->opts.before_continue &&
		    (r = e->opts.before_continue(e->userdata, &err)) < 0) {
			cancel_now(e, -r, err.message);
			return false;
		}
		r = apply(e, &dc[0], &err);
		record_decision(e, &dc[0], r >= 0, &err);
		if (r < 0)
			cancel_now(e, -r, err.message);
		return false;
	}
	if (!streq(status, "active") || e->phase == PH_POSTCOPY)
		return false;
	if (e->opts.plain) {
		if (elapsed(e) >= e->cfg.deadline_ms)
			cancel_now(e, ETIMEDOUT, "deadline reached (plain mode)");
		return false;
	}
	n = mig_policy_step(&e->cfg, &e->model, elapsed(e), &e->pst, dc, 4);
	for (size_t i = 0; i < n; i++) {
		if (dc[i].action == MIG_ACT_CANCEL) {
			record_decision(e, &dc[i], true, NULL);
			cancel_now(e, ETIMEDOUT, dc[i].reason);
			return false;
		}
		if (dc[i].action == MIG_ACT_POSTCOPY) {
			r = apply(e, &dc[i], &err);
			record_decision(e, &dc[i], r >= 0, &err);
			if (r < 0) {
				/* Still pre-copy: go on (the deadline cancels). */
				qv_error_clear(&err);
				continue;
			}
			e->postcopy_ms = elapsed(e) ? elapsed(e) : 1;
			e->phase = PH_POSTCOPY;
			return false;
		}
		r = apply(e, &dc[i], &err);
		record_decision(e, &dc[i], r >= 0, &err);
		qv_error_clear(&err);
	}
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
	emit(e, "decision", o);
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

static int begin(mig_engine *e, struct qv_error *errp)
{
	struct mig_decision dc[4];
	json_object *a = json_object_new_object();
	size_t n = 0;
	int r;

	if (!e->opts.plain)
		n = mig_policy_initial(&e->cfg, &e->model, ASSUMED_BW_BPS, &e->pst, dc, 4);
	r = set_caps(e, errp);
	if (r < 0) {
		json_object_put(a);
		return r;
	}
	if (e->opts.multifd_channels > 0)
		json_object_object_add(a, "multifd-channels",
				       json_object_new_int((int)e->opts.multifd_channels));
	if (e->opts.bandwidth_bps > 0 || !e->opts.plain)
		json_object_object_add(a, "max-bandwidth", json_object_new_int64(
			e->opts.bandwidth_bps > 0 ? (int64_t)e->opts.bandwidth_bps : (int64_t)NO_CAP_BPS));
	if (json_object_object_length(a) > 0) {
		r = set_params(e, a, errp);
		if (r < 0)
			return r;
	} else {
		json_object_put(a);
	}
	if (!e->opts.plain) {
		for (size_t i = 0; i < n; i++) {
			r = apply(e, &dc[i], errp);
			if (r < 0)
				return r;
		}
	}
	a = json_object_new_object();
	json_object_object_add(a, "uri", json_object_new_string(e->uri));
	r = qmp(e, "migrate", a, NULL, errp);
	json_object_put(a);
	if (r < 0)
		return r;
	e->t_start = qv_now_ms();
	record_multifd(e);
	for (size_t i = 0; i < n; i++)
		record_decision(e, &dc[i], true, NULL);
	e->phase = PH_ACTIVE;
	return 0;
}

/* calc-dirty-rate result: MiB/s -> bytes/s; -EAGAIN while measuring. */
static int read_dirty_rate(mig_engine *e, double *ret_bps)
{
	struct qv_error err = {};
	json_object *q = NULL, *v;
	int r = qmp(e, "query-dirty-rate", NULL, &q, &err);

	if (r < 0)
		return r;
	if (!json_object_object_get_ex(q, "status", &v) ||
	    !streq(json_object_get_string(v), "measured")) {
		json_object_put(q);
		return -EAGAIN;
	}
	r = json_object_object_get_ex(q, "dirty-rate", &v) ? 0 : -ENODATA;
	if (r == 0)
		*ret_bps = (double)json_object_get_int64(v) * 1024.0 * 1024.0;
	json_object_put(q);
	return r;
}

/* QEMU stops the guest before it enters pre-switchover, so every poll
 * interval there is downtime: poll fast once R nears the switchover
 * threshold (B x downtime-limit). */
static uint64_t next_poll_ms(const mig_engine *e)
{
	double b = e->model.bw_bps > 0 ? e->model.bw_bps : e->model.qemu_bw_bps;
	double threshold = b * e->pst.downtime_limit_ms / 1000.0;
	int limit = e->opts.plain ? 0 : e->pst.downtime_limit_ms;

	if (e->phase == PH_ACTIVE && limit > 0 && b > 0 &&
	    (double)e->model.remaining <= 4 * threshold + 8e6)
		return QV_MIG_FAST_POLL_MS;
	return QV_MIG_POLL_MS;
}

static void engine_tick(qv_source *s, void *ud)
{
	mig_engine *e = ud;
	struct qv_error err = {};

	e->timer = NULL;
	if (e->phase == PH_PREMEASURE) {
		double d = 0;
		int r = read_dirty_rate(e, &d);
		if (r == -EAGAIN && qv_now_ms() < e->premeasure_deadline)
			return arm(e, 200);
		if (r == 0)
			mig_model_set_pre_dirty_rate(&e->model, d);
		else
			log_debug("migrate: no pre-measured dirty rate (%d), going on", r);
		r = begin(e, &err);
		if (r < 0)
			return finish(e, r, &err, "failed");
	} else {
		if (poll_once(e))
			return; /* e may be gone */
	}
	arm(e, next_poll_ms(e));
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
	if (!e->uri) {
		mig_engine_free(e);
		return -ENOMEM;
	}
	if (!opts->plain && opts->premeasure) {
		json_object *a = json_object_new_object();
		json_object_object_add(a, "calc-time", json_object_new_int(PREMEASURE_S));
		r = qmp(e, "calc-dirty-rate", a, NULL, errp);
		json_object_put(a);
		if (r >= 0) {
			e->phase = PH_PREMEASURE;
			e->premeasure_deadline = qv_now_ms() + PREMEASURE_S * 1000 + 3000;
			arm(e, PREMEASURE_S * 1000 + 100);
			*ret_engine = e;
			return 0;
		}
		log_debug("migrate: calc-dirty-rate failed (%s), starting without it",
			  errp ? errp->message : "?");
		if (errp)
			qv_error_clear(errp);
	}
	r = begin(e, errp);
	if (r < 0) {
		mig_engine_free(e);
		return r;
	}
	arm(e, QV_MIG_POLL_MS);
	*ret_engine = e;
	return 0;
}

int mig_engine_cancel(mig_engine *e, const char *why)
{
	if (!e || e->phase == PH_DONE)
		return -EALREADY;
	if (e->phase == PH_PREMEASURE) {
		struct qv_error err = {};
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED, "%s", why);
		finish(e, -ECANCELED, &err, "cancelled");
		return 0;
	}
	if (e->phase == PH_POSTCOPY)
		return -EBUSY; /* would lose the guest; see cancel_now() */
	cancel_now(e, ECANCELED, why);
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
	json_object_put(e->decisions);
	json_object_put(e->last_query);
	free(e->uri);
	free(e->multifd_reason);
	free(e);
	return NULL;
}
