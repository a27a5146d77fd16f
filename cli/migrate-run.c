/* SPDX-License-Identifier: MIT */
/* cli_migrate_run with an observer (for drills): the protocol of
 * docs/migration.md driven step by step, perform sent asynchronously so the
 * caller sees every progress notification and a periodic tick. */
#include <time.h>

#include "cli/migrate-run.h"

struct obs_ctx {
	const struct cli_migrate_observer *obs;
	uint64_t t0;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static json_object *name_params(const char *name)
{
	json_object *p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(name));
	return p;
}

static void quiet_call(qv_rpc_conn *c, const char *method, const char *name)
{
	(void)qv_rpc_invoke(c, method, name_params(name), 60000, NULL, NULL);
}

static void on_notify(qv_rpc_conn *c, const char *method, json_object *p, void *ud)
{
	struct obs_ctx *oc = ud;

	(void)c;
	if (streq(method, "migrate.progress") && oc->obs && oc->obs->on_progress)
		oc->obs->on_progress(p, now_ms() - oc->t0, oc->obs->userdata);
}

/* Send perform, wait for its response while ticking. */
static int perform(qv_rpc_conn *src, json_object *p, const struct cli_migrate_opts *o,
		   const struct cli_migrate_observer *obs, json_object **ret_stats,
		   struct qv_error *errp)
{
	struct obs_ctx oc = { .obs = obs, .t0 = now_ms() };
	int tick = obs && obs->tick_ms > 0 ? obs->tick_ms : 100;
	uint64_t limit = (uint64_t)(o->deadline_s + 120) * 1000, id, got;
	int r;

	r = qv_rpc_send(src, "migrate.perform", p, &id, errp);
	if (r < 0)
		return r;
	qv_rpc_set_notify_handler(src, on_notify, &oc);
	for (;;) {
		json_object *res = NULL;
		got = 0;
		r = qv_rpc_recv_any(src, tick, &got, &res, errp);
		if (r == -ETIMEDOUT) {
			uint64_t t = now_ms() - oc.t0;
			if (t > limit) {
				r = qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
						 "no answer from perform after %llu s",
						 (unsigned long long)(t / 1000));
				break;
			}
			if (obs && obs->on_tick)
				obs->on_tick(t, obs->userdata);
			qv_error_clear(errp);
			continue;
		}
		if (got != id && (r == 0 || r == -EREMOTEIO)) {
			json_object_put(res); /* not ours */
			qv_error_clear(errp);
			continue;
		}
		if (r == 0)
			*ret_stats = res;
		break;
	}
	qv_rpc_set_notify_handler(src, NULL, NULL);
	return r;
}

int cli_migrate_run_observed(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
			     const struct cli_migrate_opts *o, json_object *extra_perform,
			     const struct cli_migrate_observer *obs, const char **ret_phase,
			     json_object **ret_stats, struct qv_error *errp)
{
	_cleanup_json_ json_object *info = NULL, *prep = NULL, *stats = NULL;
	json_object *spec, *p, *v;
	const char *uri, *token, *phase = "source";
	int r;

	r = qv_rpc_invoke(src, "vm.info", name_params(name), CLI_CALL_TIMEOUT_MS, &info, errp);
	if (r < 0)
		goto fail;
	if (!json_object_object_get_ex(info, "spec", &spec)) {
		r = qv_error_set(errp, EPROTO, QV_REASON_INTERNAL, "vm.info without a spec");
		goto fail;
	}
	phase = "prepare";
	p = json_object_new_object();
	json_object_object_add(p, "spec", json_object_get(spec));
	if (o->dest_address)
		json_object_object_add(p, "address", json_object_new_string(o->dest_address));
	if (o->listen)
		json_object_object_add(p, "listen", json_object_new_string(o->listen));
	r = qv_rpc_invoke(dst, "migrate.prepare", p, CLI_CALL_TIMEOUT_MS, &prep, errp);
	if (r < 0)
		goto fail;
	uri = json_object_object_get_ex(prep, "uri", &v) ? json_object_get_string(v) : "";
	token = json_object_object_get_ex(prep, "token", &v) ? json_object_get_string(v) : "";

	phase = "perform";
	p = name_params(name);
	json_object_object_add(p, "uri", json_object_new_string(uri));
	json_object_object_add(p, "max_downtime_ms", json_object_new_int64(o->max_downtime_ms));
	json_object_object_add(p, "bandwidth_mbps", json_object_new_int64(o->bandwidth_mibps));
	json_object_object_add(p, "deadline_s", json_object_new_int64(o->deadline_s));
	json_object_object_add(p, "plain", json_object_new_boolean(o->plain));
	if (extra_perform) {
		json_object_object_foreach(extra_perform, k, ev)
			json_object_object_add(p, k, json_object_get(ev));
	}
	r = perform(src, p, o, obs, &stats, errp);
	if (r < 0) {
		/* The source resumed itself; remove the incoming QEMU. */
		quiet_call(dst, "migrate.cancel", name);
		if (r != -EREMOTEIO)
			quiet_call(src, "migrate.cancel", name);
		goto fail;
	}
	phase = "finish";
	p = name_params(name);
	json_object_object_add(p, "token", json_object_new_string(token));
	r = qv_rpc_invoke(dst, "migrate.finish", p, CLI_CALL_TIMEOUT_MS, NULL, errp);
	if (r < 0) {
		quiet_call(dst, "migrate.cancel", name);
		quiet_call(src, "migrate.cancel", name);
		goto fail;
	}
	phase = "confirm";
	p = name_params(name);
	json_object_object_add(p, "keep_definition", json_object_new_boolean(o->keep_definition));
	r = qv_rpc_invoke(src, "migrate.confirm", p, CLI_CALL_TIMEOUT_MS, NULL, errp);
	if (r < 0)
		goto fail;
	if (ret_stats)
		*ret_stats = TAKE_PTR(stats);
	return 0;
fail:
	qv_error_prefix(errp, "%s", phase);
	if (ret_phase)
		*ret_phase = phase;
	return r;
}
