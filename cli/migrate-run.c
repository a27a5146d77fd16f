/* SPDX-License-Identifier: MIT */
/* The client side of one live migration, shared by `qvisor migrate` and
 * `qvisor drill run`: one vm.migrate call on the source daemon, which runs
 * the whole protocol against the destination (migrate/protocol.h). This
 * only renders its migrate.progress notifications and a periodic tick. If
 * this client goes away the migration goes on; migrate.cancel stops it. */
#include <time.h>

#include "cli/migrate-run.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Times are from the start of perform (as when the client drove the
 * steps): a drill's fault at_ms means "into the transfer", whatever
 * planning and prepare cost; ticks start then too. */
struct obs_ctx {
	const struct cli_migrate_observer *obs;
	uint64_t t0;
	bool performing;
	char phase[32];
};

static void on_notify(qv_rpc_conn *c, const char *method, json_object *p, void *ud)
{
	struct obs_ctx *oc = ud;
	json_object *v;

	if (!streq(method, "migrate.progress"))
		return;
	if (json_object_object_get_ex(p, "type", &v) && streq(json_object_get_string(v), "phase") &&
	    json_object_object_get_ex(p, "phase", &v)) {
		snprintf(oc->phase, sizeof(oc->phase), "%s", json_object_get_string(v));
		if (!oc->performing && streq(oc->phase, "performing")) {
			oc->performing = true;
			oc->t0 = now_ms();
		}
	}
	if (oc->obs && oc->obs->on_progress)
		oc->obs->on_progress(p, oc->performing ? now_ms() - oc->t0 : 0, oc->obs->userdata);
}

static json_object *migrate_params(const char *name, const char *to,
				   const struct cli_migrate_opts *o, json_object *extra)
{
	json_object *p = json_object_new_object();

#define ADD(k, v) json_object_object_add(p, k, v)
	ADD("name", json_object_new_string(name));
	ADD("to", json_object_new_string(to));
	ADD("max_downtime_ms", json_object_new_int64(o->max_downtime_ms));
	ADD("bandwidth_mbps", json_object_new_int64(o->bandwidth_mibps));
	ADD("deadline_s", json_object_new_int64(o->deadline_s));
	ADD("allow_postcopy", json_object_new_boolean(o->allow_postcopy));
	ADD("plain", json_object_new_boolean(o->plain));
	ADD("keep_definition", json_object_new_boolean(o->keep_definition));
	ADD("copy_storage", json_object_new_boolean(o->copy_storage));
	if (o->insecure)
		ADD("insecure", json_object_new_boolean(true));
	if (o->dest_address)
		ADD("dest_address", json_object_new_string(o->dest_address));
	if (o->listen)
		ADD("listen", json_object_new_string(o->listen));
	if (extra)
		ADD("perform", json_object_get(extra));
#undef ADD
	return p;
}

int cli_migrate_run_observed(qv_rpc_conn *src, const char *to, const char *name,
			     const struct cli_migrate_opts *o, json_object *extra_perform,
			     const struct cli_migrate_observer *obs, const char **ret_phase,
			     json_object **ret_stats, struct qv_error *errp)
{
	static char failed_phase[32];
	struct obs_ctx oc = { .obs = obs, .t0 = now_ms(), .phase = "planning" };
	int tick = obs && obs->tick_ms > 0 ? obs->tick_ms : 100;
	/* The daemon bounds every step; this only guards a daemon that died. */
	uint64_t limit = (uint64_t)(o->deadline_s + 600) * 1000, id, got;
	int r;

	r = qv_rpc_send(src, "vm.migrate", migrate_params(name, to, o, extra_perform), &id, errp);
	if (r < 0)
		return r;
	if (!o->quiet)
		fprintf(stderr, "Migrating %s to %s\n", name, to);
	qv_rpc_set_notify_handler(src, on_notify, &oc);
	for (;;) {
		json_object *res = NULL;
		got = 0;
		r = qv_rpc_recv_any(src, tick, &got, &res, errp);
		if (r == -ETIMEDOUT) {
			uint64_t t = now_ms() - oc.t0;
			if (t > limit) {
				r = qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
						 "no answer from vm.migrate after %llu s",
						 (unsigned long long)(t / 1000));
				break;
			}
			if (obs && obs->on_tick && oc.performing)
				obs->on_tick(t, obs->userdata);
			qv_error_clear(errp);
			continue;
		}
		if (got != id && (r == 0 || r == -EREMOTEIO)) {
			json_object_put(res); /* not ours */
			qv_error_clear(errp);
			continue;
		}
		if (r == 0 && ret_stats)
			*ret_stats = res;
		else
			json_object_put(res);
		break;
	}
	qv_rpc_set_notify_handler(src, NULL, NULL);
	if (r < 0 && ret_phase) {
		snprintf(failed_phase, sizeof(failed_phase), "%s", oc.phase);
		*ret_phase = failed_phase;
	}
	return r;
}
