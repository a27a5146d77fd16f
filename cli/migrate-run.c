/* SPDX-License-Identifier: MIT */
/* The client side of one live migration (docs/migration.md), shared by
 * `qvisor migrate` and `qvisor drill run`: vm.info and migrate.plan on the
 * source, prepare on the destination, perform on the source (sent
 * asynchronously so an observer sees every progress notification and a
 * periodic tick), finish on the destination, confirm on the source. Any
 * failure cancels both sides: the source keeps running. */
#include <time.h>
#include <unistd.h>

#include "cli/migrate-run.h"

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

/* Best effort: say what happened (unless quiet) but keep the first error. */
static void try_call(qv_rpc_conn *c, const struct cli_migrate_opts *o, const char *what,
		     const char *method, const char *name)
{
	struct qv_error err = {};

	if (qv_rpc_invoke(c, method, name_params(name), 60000, NULL, &err) < 0 && !o->quiet)
		fprintf(stderr, "qvisor: migrate: %s: %s (%s)\n", what, err.message, err.reason);
}

/* migrate.plan on the source: disk sizes (copy_storage) and the multifd
 * decision, which both QEMUs must share. A daemon without migrate.plan
 * gets neither (plain migration). */
static int plan(qv_rpc_conn *src, const char *name, const struct cli_migrate_opts *o,
		json_object **ret, struct qv_error *errp)
{
	json_object *p = name_params(name);
	struct qv_error err = {};
	int r;

	json_object_object_add(p, "copy_storage", json_object_new_boolean(o->copy_storage));
	json_object_object_add(p, "bandwidth_mbps", json_object_new_int64(o->bandwidth_mibps));
	r = qv_rpc_invoke(src, "migrate.plan", json_object_get(p), CLI_CALL_TIMEOUT_MS, ret, &err);
	/* A cancelled storage mirror may still drain: wait up to 60 s. */
	for (int i = 0; r == 0 && o->copy_storage && i < 240; i++) {
		json_object *v;
		if (!json_object_object_get_ex(*ret, "mirror_cleanup", &v) ||
		    !json_object_get_boolean(v))
			break;
		if (i == 0 && !o->quiet)
			fprintf(stderr, "Waiting for a cancelled storage mirror of %s to drain\n", name);
		usleep(250 * 1000);
		json_object_put(*ret);
		*ret = NULL;
		r = qv_rpc_invoke(src, "migrate.plan", json_object_get(p), CLI_CALL_TIMEOUT_MS, ret,
				  &err);
	}
	json_object_put(p);
	if (r < 0 && !o->copy_storage) {
		*ret = NULL;
		return 0;
	}
	if (r < 0)
		*errp = err;
	return r;
}

struct obs_ctx {
	const struct cli_migrate_observer *obs;
	uint64_t t0;
	bool postcopy;  /* a start-postcopy decision was applied */
};

static void on_notify(qv_rpc_conn *c, const char *method, json_object *p, void *ud)
{
	struct obs_ctx *oc = ud;
	json_object *v;

	if (streq(method, "migrate.progress") && json_object_object_get_ex(p, "type", &v) &&
	    streq(json_object_get_string(v), "decision") &&
	    json_object_object_get_ex(p, "action", &v) &&
	    streq(json_object_get_string(v), "start-postcopy") &&
	    json_object_object_get_ex(p, "applied", &v) && json_object_get_boolean(v))
		oc->postcopy = true;
	if (streq(method, "migrate.progress") && oc->obs && oc->obs->on_progress)
		oc->obs->on_progress(p, now_ms() - oc->t0, oc->obs->userdata);
}

/* Send perform, wait for its response while ticking. */
static int perform(qv_rpc_conn *src, json_object *p, const struct cli_migrate_opts *o,
		   const struct cli_migrate_observer *obs, json_object **ret_stats,
		   bool *ret_postcopy, struct qv_error *errp)
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
	*ret_postcopy = oc.postcopy;
	return r;
}

static json_object *prepare_params(json_object *spec, const struct cli_migrate_opts *o,
				   json_object *pl, int64_t multifd)
{
	json_object *p = json_object_new_object(), *disks, *x;

	json_object_object_add(p, "spec", json_object_get(spec));
	if (o->dest_address)
		json_object_object_add(p, "address", json_object_new_string(o->dest_address));
	if (o->listen)
		json_object_object_add(p, "listen", json_object_new_string(o->listen));
	if (multifd > 0)
		json_object_object_add(p, "multifd_channels", json_object_new_int64(multifd));
	if (o->allow_postcopy && !o->plain)
		json_object_object_add(p, "allow_postcopy", json_object_new_boolean(true));
	if (o->insecure)
		json_object_object_add(p, "tls", json_object_new_boolean(false));
	/* The certificate the source QEMU will present (TLS streams). */
	if (pl && json_object_object_get_ex(pl, "tls_dn", &x))
		json_object_object_add(p, "peer_dn", json_object_get(x));
	if (o->copy_storage) {
		json_object *sizes = json_object_new_array();
		if (pl && json_object_object_get_ex(pl, "disks", &disks))
			for (size_t i = 0; i < json_object_array_length(disks); i++) {
				json_object *dk = json_object_array_get_idx(disks, i);
				json_object_array_add(sizes, json_object_new_int64(
					json_object_object_get_ex(dk, "virtual_size", &x)
						? json_object_get_int64(x) : 0));
			}
		json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
		json_object_object_add(p, "disk_sizes", sizes);
	}
	return p;
}

/* The plan's multifd choice, unless plain mode or postcopy overrides it. */
static void multifd_choice(json_object *pl, const struct cli_migrate_opts *o,
			   int64_t *ret_channels, const char **ret_reason)
{
	json_object *v;

	*ret_channels = 0;
	*ret_reason = NULL;
	if (!pl || o->plain)
		return;
	if (json_object_object_get_ex(pl, "multifd_channels", &v))
		*ret_channels = json_object_get_int64(v);
	if (json_object_object_get_ex(pl, "multifd_reason", &v))
		*ret_reason = json_object_get_string(v);
	if (o->allow_postcopy && *ret_channels > 0) {
		/* QEMU 7.2 cannot combine postcopy-ram and multifd: the operator
		 * asked for postcopy explicitly, it wins. */
		*ret_channels = 0;
		*ret_reason = "off: allow_postcopy (QEMU 7.2 cannot combine postcopy with multifd)";
	}
}

static json_object *perform_params(const char *name, const struct cli_migrate_opts *o,
				   const char *uri, int64_t multifd, const char *multifd_reason,
				   const char *nbd, bool tls, json_object *extra)
{
	json_object *p = name_params(name);

	json_object_object_add(p, "uri", json_object_new_string(uri));
	json_object_object_add(p, "max_downtime_ms", json_object_new_int64(o->max_downtime_ms));
	json_object_object_add(p, "bandwidth_mbps", json_object_new_int64(o->bandwidth_mibps));
	json_object_object_add(p, "deadline_s", json_object_new_int64(o->deadline_s));
	json_object_object_add(p, "allow_postcopy", json_object_new_boolean(o->allow_postcopy));
	json_object_object_add(p, "plain", json_object_new_boolean(o->plain));
	if (multifd > 0)
		json_object_object_add(p, "multifd_channels", json_object_new_int64(multifd));
	if (multifd_reason)
		json_object_object_add(p, "multifd_reason", json_object_new_string(multifd_reason));
	if (o->copy_storage) {
		json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
		json_object_object_add(p, "nbd", json_object_new_string(nbd));
	}
	/* The destination chose the transport; the source follows or refuses. */
	if (tls) {
		json_object_object_add(p, "tls", json_object_new_boolean(true));
		if (o->dest_tls_host)
			json_object_object_add(p, "tls_hostname", json_object_new_string(o->dest_tls_host));
	}
	if (extra) {
		json_object_object_foreach(extra, k, ev)
			json_object_object_add(p, k, json_object_get(ev));
	}
	return p;
}

/* After a successful perform: start the guest on the destination, then
 * retire the source copy. *phase names the step that failed. */
static int finish_and_confirm(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
			      const struct cli_migrate_opts *o, const char *token, bool postcopy,
			      const char **phase, struct qv_error *errp)
{
	json_object *p;
	int r;

	*phase = "finish on the destination";
	p = name_params(name);
	json_object_object_add(p, "token", json_object_new_string(token));
	r = qv_rpc_invoke(dst, "migrate.finish", p, CLI_CALL_TIMEOUT_MS, NULL, errp);
	if (r < 0 && postcopy)
		/* The destination runs the guest since the switch: the source
		 * copy is stale and must not take over. */
		return qv_error_prefix(errp, "%s completed via postcopy and runs on the "
				       "destination, but finishing there failed (the source stays "
				       "paused)", name), r;
	if (r < 0) {
		/* The destination never ran: hand the guest back to the source. */
		try_call(dst, o, "cancel on the destination", "migrate.cancel", name);
		try_call(src, o, "resume on the source", "migrate.cancel", name);
		return r;
	}
	*phase = "confirm on the source";
	p = name_params(name);
	json_object_object_add(p, "keep_definition", json_object_new_boolean(o->keep_definition));
	r = qv_rpc_invoke(src, "migrate.confirm", p, CLI_CALL_TIMEOUT_MS, NULL, errp);
	if (r < 0)
		qv_error_prefix(errp, "%s runs on the destination, but confirming on the source "
			       "failed (stop the source copy by hand)", name);
	return r;
}

int cli_migrate_run_observed(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
			     const struct cli_migrate_opts *o, json_object *extra_perform,
			     const struct cli_migrate_observer *obs, const char **ret_phase,
			     json_object **ret_stats, struct qv_error *errp)
{
	_cleanup_json_ json_object *info = NULL, *pl = NULL, *prep = NULL, *stats = NULL;
	const char *uri, *token, *phase = "source", *multifd_reason, *nbd = "";
	int64_t multifd;
	bool postcopy = false;
	json_object *spec, *v;
	int r;

	r = qv_rpc_invoke(src, "vm.info", name_params(name), CLI_CALL_TIMEOUT_MS, &info, errp);
	if (r < 0)
		goto fail;
	if (!json_object_object_get_ex(info, "spec", &spec)) {
		r = qv_error_set(errp, EPROTO, QV_REASON_INTERNAL, "vm.info without a spec");
		goto fail;
	}
	phase = "plan on the source";
	r = plan(src, name, o, &pl, errp);
	if (r < 0)
		goto fail;
	multifd_choice(pl, o, &multifd, &multifd_reason);

	phase = "prepare on the destination";
	r = qv_rpc_invoke(dst, "migrate.prepare", prepare_params(spec, o, pl, multifd),
			  CLI_CALL_TIMEOUT_MS, &prep, errp);
	if (r < 0)
		goto fail;
	uri = json_object_object_get_ex(prep, "uri", &v) ? json_object_get_string(v) : "";
	token = json_object_object_get_ex(prep, "token", &v) ? json_object_get_string(v) : "";
	if (o->copy_storage && json_object_object_get_ex(prep, "nbd", &v))
		nbd = json_object_get_string(v);
	if (!o->quiet)
		fprintf(stderr, "Migrating %s (%s)\n", name, uri);

	phase = "perform";
	r = perform(src, perform_params(name, o, uri, multifd, multifd_reason, nbd,
					json_object_object_get_ex(prep, "tls", &v) &&
						json_object_get_boolean(v),
					extra_perform),
		    o, obs, &stats, &postcopy, errp);
	if (stats && json_object_object_get_ex(stats, "postcopy", &v))
		postcopy = json_object_get_boolean(v);
	if (r < 0 && postcopy) {
		/* Failed after the postcopy switch: neither side has the whole
		 * guest; cancelling would kill the destination half. */
		qv_error_prefix(errp, "%s failed after the postcopy switch: the source stays "
			       "paused and the destination keeps its half (postcopy recovery "
			       "is not supported; see docs/migration.md)", name);
		goto fail;
	}
	if (r < 0) {
		/* The source resumed itself; remove the incoming QEMU. */
		try_call(dst, o, "cancel on the destination", "migrate.cancel", name);
		if (r != -EREMOTEIO)
			try_call(src, o, "cancel on the source", "migrate.cancel", name);
		goto fail;
	}
	r = finish_and_confirm(src, dst, name, o, token, postcopy, &phase, errp);
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
