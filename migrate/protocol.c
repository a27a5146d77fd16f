/* SPDX-License-Identifier: MIT */
/* The migration protocol state machine (migrate/protocol.h). Each step is
 * one call to one side; answers drive the next step. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "migrate/protocol-internal.h"


static const char *const phase_names[] = {
	[MIG_PHASE_PLANNING] = "planning",     [MIG_PHASE_PREPARING] = "preparing",
	[MIG_PHASE_PERFORMING] = "performing", [MIG_PHASE_FINISHING] = "finishing",
	[MIG_PHASE_CONFIRMING] = "confirming", [MIG_PHASE_ABORTING] = "aborting",
	[MIG_PHASE_DONE] = "done",             [MIG_PHASE_FAILED] = "failed",
};

const char *mig_phase_to_string(enum mig_phase p)
{
	return (unsigned)p < ARRAY_SIZE(phase_names) ? phase_names[p] : "unknown";
}

int mig_phase_from_string(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(phase_names); i++)
		if (streq(s, phase_names[i]))
			return (int)i;
	return -1;
}

int64_t mig_blackout_ms(int64_t stop_unix_us, int64_t resume_unix_us)
{
	if (stop_unix_us <= 0 || resume_unix_us <= 0 || resume_unix_us < stop_unix_us)
		return -1;
	return (resume_unix_us - stop_unix_us + 500) / 1000;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int mig_proto_new(const struct mig_proto_opts *opts, const struct mig_proto_ops *ops, void *ud,
		  mig_proto **ret)
{
	mig_proto *p = calloc(1, sizeof(*p));

	if (!p || !opts->name)
		return free(p), opts->name ? -ENOMEM : -EINVAL;
	p->o = *opts;
	p->name = strdup(opts->name);
	p->dest_address = dup_or_null(opts->dest_address);
	p->listen = dup_or_null(opts->listen);
	p->source_uri = dup_or_null(opts->source_uri);
	p->dest_tls_host = dup_or_null(opts->dest_tls_host);
	p->o.dest_tls_host = p->dest_tls_host;
	p->extra = opts->extra_perform ? json_object_get(opts->extra_perform) : NULL;
	p->o.name = p->name;
	p->o.max_downtime_ms = opts->max_downtime_ms ? opts->max_downtime_ms : 300;
	p->o.deadline_s = opts->deadline_s ? opts->deadline_s : 300;
	p->o.retry_s = opts->retry_s ? opts->retry_s : 120;
	p->o.retry_ms = opts->retry_ms ? opts->retry_ms : 500;
	p->ops = ops;
	p->ud = ud;
	if (!p->name)
		return mig_proto_free(p), -ENOMEM;
	*ret = p;
	return 0;
}

mig_proto *mig_proto_free(mig_proto *p)
{
	if (!p)
		return NULL;
	free(p->name);
	free(p->dest_address);
	free(p->listen);
	free(p->source_uri);
	free(p->dest_tls_host);
	json_object_put(p->extra);
	json_object_put(p->spec);
	json_object_put(p->plan);
	json_object_put(p->prep);
	json_object_put(p->stats);
	free(p);
	return NULL;
}

enum mig_phase mig_proto_phase(const mig_proto *p)
{
	return p->phase;
}

const char *mig_proto_token(const mig_proto *p)
{
	return p->token;
}

void mp_set_phase(mig_proto *p, enum mig_phase ph)
{
	if (p->phase == ph)
		return;
	p->phase = ph;
	p->ops->phase(p->ud, ph);
}

json_object *mp_name_params(const mig_proto *p)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(p->name));
	return o;
}


/* --- the end ----------------------------------------------------------------- */

void mp_finish_ok(mig_proto *p)
{
	mp_set_phase(p, MIG_PHASE_DONE);
	p->ops->done(p->ud, 0, NULL, p->stats);
}

void mp_finish_fail(mig_proto *p)
{
	struct qv_error e = p->fail;

	if (!e.set)
		qv_error_set(&e, EIO, QV_REASON_INTERNAL, "migration failed");
	mp_set_phase(p, MIG_PHASE_FAILED);
	p->ops->done(p->ud, p->fail_errno ? p->fail_errno : -EIO, &e, p->stats);
}

void mp_remember_failure(mig_proto *p, int error, const struct qv_error *errp,
			     const char *where)
{
	if (p->fail.set)
		return;
	if (errp && errp->set)
		p->fail = *errp;
	else
		qv_error_set(&p->fail, error < 0 ? -error : EIO, QV_REASON_UNAVAILABLE, "%s",
			     strerror(error < 0 ? -error : EIO));
	qv_error_prefix(&p->fail, "%s", where);
	p->fail_errno = error < 0 ? error : -EIO;
}

/* Abort: the destination first (it must confirm it never ran the guest),
 * then resume the source. */
void mp_send_cancel_dst(mig_proto *p)
{
	json_object *o = mp_name_params(p);

	if (p->token[0])
		json_object_object_add(o, "token", json_object_new_string(p->token));
	mp_send_step(p, ST_CANCEL_DST, MIG_SIDE_DEST, "migrate.cancel", o, CALL_TIMEOUT_MS);
}

void mp_start_abort(mig_proto *p)
{
	mp_set_phase(p, MIG_PHASE_ABORTING);
	p->retry_until = qv_now_ms() + (uint64_t)p->o.retry_s * 1000;
	mp_send_cancel_dst(p);
}

void mp_send_cancel_src(mig_proto *p)
{
	json_object *o = mp_name_params(p);

	json_object_object_add(o, "destination_never_ran", json_object_new_boolean(true));
	mp_send_step(p, ST_CANCEL_SRC, MIG_SIDE_SOURCE, "migrate.cancel", o, CALL_TIMEOUT_MS);
}

/* --- steps ------------------------------------------------------------------- */

void mp_send_step(mig_proto *p, enum step st, enum mig_side side, const char *method,
		      json_object *params, unsigned timeout_ms)
{
	p->step = st;
	p->tag++;
	if (p->ops->call(p->ud, side, method, params, timeout_ms, p->tag) < 0) {
		/* Report it as a lost connection from the tick, never
		 * recursively from inside this call. */
		p->unsent = true;
		p->tag++; /* a late answer to the unsent call is stale */
		if (p->ops->later(p->ud, 0) < 0)
			p->unsent = false; /* nothing can drive us: stuck, the caller sees no done */
	}
}

void mp_send_plan(mig_proto *p)
{
	json_object *o = mp_name_params(p);

	json_object_object_add(o, "copy_storage", json_object_new_boolean(p->o.copy_storage));
	json_object_object_add(o, "bandwidth_mbps", json_object_new_int64(p->o.bandwidth_mibps));
	mp_send_step(p, ST_PLAN, MIG_SIDE_SOURCE, "migrate.plan", o, CALL_TIMEOUT_MS);
}

static int64_t plan_multifd(const mig_proto *p, const char **ret_reason)
{
	json_object *v;
	int64_t ch = 0;

	*ret_reason = NULL;
	if (!p->plan || p->o.plain)
		return 0;
	if (json_object_object_get_ex(p->plan, "multifd_channels", &v))
		ch = json_object_get_int64(v);
	if (json_object_object_get_ex(p->plan, "multifd_reason", &v))
		*ret_reason = json_object_get_string(v);
	if (p->o.allow_postcopy && ch > 0) {
		/* QEMU 7.2 cannot combine postcopy-ram and multifd: the operator
		 * asked for postcopy explicitly, it wins. */
		*ret_reason = "off: allow_postcopy (QEMU 7.2 cannot combine postcopy with multifd)";
		ch = 0;
	}
	return ch;
}

void mp_send_prepare(mig_proto *p)
{
	json_object *o = json_object_new_object(), *disks, *x;
	const char *reason;
	int64_t mf = plan_multifd(p, &reason);

	json_object_object_add(o, "spec", json_object_get(p->spec));
	if (p->dest_address)
		json_object_object_add(o, "address", json_object_new_string(p->dest_address));
	if (p->listen)
		json_object_object_add(o, "listen", json_object_new_string(p->listen));
	if (p->source_uri)
		json_object_object_add(o, "source", json_object_new_string(p->source_uri));
	/* The incoming VM outlives a silent source by the whole deadline. */
	json_object_object_add(o, "timeout_s", json_object_new_int64(p->o.deadline_s + 120));
	if (mf > 0)
		json_object_object_add(o, "multifd_channels", json_object_new_int64(mf));
	if (p->o.allow_postcopy && !p->o.plain)
		json_object_object_add(o, "allow_postcopy", json_object_new_boolean(true));
	if (p->o.insecure)
		json_object_object_add(o, "tls", json_object_new_boolean(false));
	/* The certificate the source QEMU will present (TLS streams). */
	if (p->plan && json_object_object_get_ex(p->plan, "tls_dn", &x))
		json_object_object_add(o, "peer_dn", json_object_get(x));
	if (p->o.copy_storage) {
		json_object *sizes = json_object_new_array();
		if (p->plan && json_object_object_get_ex(p->plan, "disks", &disks))
			for (size_t i = 0; i < json_object_array_length(disks); i++) {
				json_object *dk = json_object_array_get_idx(disks, i);
				json_object_array_add(sizes, json_object_new_int64(
					json_object_object_get_ex(dk, "virtual_size", &x)
						? json_object_get_int64(x) : 0));
			}
		json_object_object_add(o, "copy_storage", json_object_new_boolean(true));
		json_object_object_add(o, "disk_sizes", sizes);
	}
	/* The token is ours, chosen before prepare and persisted with the
	 * phase: an abort after a lost prepare answer still names exactly
	 * the incoming migration it may have created. */
	if (!p->token[0]) {
		unsigned char rnd[16];
		if (getrandom(rnd, sizeof(rnd), 0) == sizeof(rnd))
			for (size_t i = 0; i < sizeof(rnd); i++)
				snprintf(p->token + 2 * i, 3, "%02x", rnd[i]);
	}
	if (p->token[0])
		json_object_object_add(o, "token", json_object_new_string(p->token));
	mp_set_phase(p, MIG_PHASE_PREPARING);
	mp_send_step(p, ST_PREPARE, MIG_SIDE_DEST, "migrate.prepare", o, CALL_TIMEOUT_MS);
}

void mp_send_perform(mig_proto *p)
{
	json_object *o = mp_name_params(p), *v;
	const char *reason;
	int64_t mf = plan_multifd(p, &reason);

#define ADD(k, val) json_object_object_add(o, k, val)
	ADD("uri", json_object_new_string(json_object_object_get_ex(p->prep, "uri", &v)
						  ? json_object_get_string(v) : ""));
	ADD("max_downtime_ms", json_object_new_int64(p->o.max_downtime_ms));
	ADD("bandwidth_mbps", json_object_new_int64(p->o.bandwidth_mibps));
	ADD("deadline_s", json_object_new_int64(p->o.deadline_s));
	ADD("allow_postcopy", json_object_new_boolean(p->o.allow_postcopy));
	ADD("plain", json_object_new_boolean(p->o.plain));
	if (mf > 0)
		ADD("multifd_channels", json_object_new_int64(mf));
	if (reason)
		ADD("multifd_reason", json_object_new_string(reason));
	if (p->o.copy_storage) {
		ADD("copy_storage", json_object_new_boolean(true));
		ADD("nbd", json_object_new_string(json_object_object_get_ex(p->prep, "nbd", &v)
							  ? json_object_get_string(v) : ""));
	}
	/* The destination chose the transport; the source follows or refuses. */
	if (json_object_object_get_ex(p->prep, "tls", &v) && json_object_get_boolean(v)) {
		ADD("tls", json_object_new_boolean(true));
		if (p->dest_tls_host)
			ADD("tls_hostname", json_object_new_string(p->dest_tls_host));
	}
#undef ADD
	if (p->extra) {
		json_object_object_foreach(p->extra, k, ev)
			json_object_object_add(o, k, json_object_get(ev));
	}
	mp_set_phase(p, MIG_PHASE_PERFORMING);
	mp_send_step(p, ST_PERFORM, MIG_SIDE_SOURCE, "migrate.perform", o,
		  (unsigned)(p->o.deadline_s + 120) * 1000);
}

void mp_send_finish(mig_proto *p)
{
	json_object *o = mp_name_params(p);

	json_object_object_add(o, "token", json_object_new_string(p->token));
	mp_send_step(p, ST_FINISH, MIG_SIDE_DEST, "migrate.finish", o, CALL_TIMEOUT_MS);
}

void mp_send_status(mig_proto *p)
{
	mp_send_step(p, ST_STATUS, MIG_SIDE_SOURCE, "migrate.status", mp_name_params(p),
		     CALL_TIMEOUT_MS);
}

void mp_start_finish(mig_proto *p)
{
	mp_set_phase(p, MIG_PHASE_FINISHING);
	p->retry_until = qv_now_ms() + (uint64_t)p->o.retry_s * 1000;
	mp_send_finish(p);
}

void mp_send_confirm(mig_proto *p)
{
	json_object *o = mp_name_params(p);

	json_object_object_add(o, "keep_definition", json_object_new_boolean(p->o.keep_definition));
	mp_set_phase(p, MIG_PHASE_CONFIRMING);
	mp_send_step(p, ST_CONFIRM, MIG_SIDE_SOURCE, "migrate.confirm", o, CALL_TIMEOUT_MS);
}

int mig_proto_start(mig_proto *p)
{
	p->phase = MIG_PHASE_PLANNING;
	p->ops->phase(p->ud, MIG_PHASE_PLANNING);
	mp_send_step(p, ST_INFO, MIG_SIDE_SOURCE, "vm.info", mp_name_params(p), CALL_TIMEOUT_MS);
	return 0;
}

int mig_proto_resume(mig_proto *p, enum mig_phase phase, const char *token)
{
	snprintf(p->token, sizeof(p->token), "%s", token ? token : "");
	p->resumed = true;
	p->phase = phase;
	/* Our own socket may not listen yet, the peer may be restarting too. */
	p->retry_until = qv_now_ms() + (uint64_t)p->o.retry_s * 1000;
	qv_error_set(&p->fail, ECANCELED, QV_REASON_CANCELLED,
		     "the source daemon restarted during the migration");
	p->fail_errno = -ECANCELED;
	switch (phase) {
	case MIG_PHASE_PLANNING:
		mp_finish_fail(p);
		return 0;
	case MIG_PHASE_PERFORMING:
		/* Did QEMU complete while no daemon watched? The source's record
		 * says (migrate.recover ran at daemon start). */
		p->retry_until = qv_now_ms() + (uint64_t)p->o.retry_s * 1000;
		mp_send_status(p);
		return 0;
	case MIG_PHASE_FINISHING:
		mp_start_finish(p);
		return 0;
	case MIG_PHASE_CONFIRMING:
		mp_send_confirm(p);
		return 0;
	case MIG_PHASE_PREPARING:
	case MIG_PHASE_ABORTING:
		mp_start_abort(p);
		return 0;
	default:
		return -EINVAL;
	}
}
