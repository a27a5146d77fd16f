/* SPDX-License-Identifier: MIT */
/* vm.migrate: the source daemon drives the migration protocol
 * (migrate/protocol.h) from its loop against the destination daemon.
 *
 * Both sides are reached through the same JSON-RPC client, wired into the
 * loop: the destination at the `to` URI (anything common/rpc-connect
 * dials: unix:, ssh://, tls:// when it exists), and this daemon's own steps
 * (plan, perform, confirm, cancel) over its own unix socket, so the steps
 * keep one implementation and their asynchronous replies and progress
 * notifications come back like any peer's. The driver's record
 * (id "<vm>-p2p", role "driver": phase, peer, token, options) is written at
 * every phase change; a restarted daemon resumes it
 * (qv_mig_p2p_resume_all). The vm.migrate caller only watches: when it
 * goes away the migration goes on; migrate.cancel stops it. */
#include "common/json.h"
#include "common/log.h"
#include "common/rpc-client.h"
#include "common/rpc-connect-async.h"
#include "common/tls.h"
#include "daemon/migrate-internal.h"
#include "migrate/protocol.h"

struct qv_p2p;

struct p2p_end {
	struct qv_p2p *x;
	int side;
	char *uri;
	qv_rpc_conn *conn;
	qv_source *io;
	uint64_t id;        /* outstanding request id, 0 = none */
	uint64_t tag;
	qv_source *timeout;
	/* Dialling the end off the loop (common/rpc-connect-async.h); the call
	 * waiting for it: */
	qv_rpc_connecting *connecting;
	char *method;
	json_object *params;
	unsigned timeout_ms;
};

struct qv_p2p {
	struct qv_p2p *next;
	struct qv_daemon *d;
	char *vm;
	mig_proto *proto;
	struct p2p_end end[2]; /* MIG_SIDE_SOURCE (ourselves), MIG_SIDE_DEST */
	qv_source *later, *reap;
	qv_rpc_call *call;     /* vm.migrate, NULL once answered or after a restart */
	qv_rpc_client *client; /* for notifications; may be gone */
	json_object *opts;     /* the vm.migrate params, persisted */
	uint64_t started_ms;   /* qv_now_ms() at vm.migrate, 0 after a restart */
};

static struct qv_p2p *drivers;

struct qv_p2p *qv_mig_p2p_find(const char *vm)
{
	for (struct qv_p2p *x = drivers; x; x = x->next)
		if (streq(x->vm, vm))
			return x;
	return NULL;
}

static void end_close(struct p2p_end *e)
{
	e->io = qv_source_remove(e->io);
	e->timeout = qv_source_remove(e->timeout);
	e->conn = qv_rpc_conn_free(e->conn);
	e->id = 0;
	e->connecting = qv_rpc_connect_cancel(e->connecting);
	free(e->method);
	e->method = NULL;
	json_object_put(e->params);
	e->params = NULL;
}

static void p2p_free(struct qv_p2p *x)
{
	for (struct qv_p2p **p = &drivers; *p; p = &(*p)->next)
		if (*p == x) {
			*p = x->next;
			break;
		}
	for (int i = 0; i < 2; i++) {
		end_close(&x->end[i]);
		free(x->end[i].uri);
	}
	qv_source_remove(x->later);
	qv_source_remove(x->reap);
	mig_proto_free(x->proto);
	if (x->call)
		qv_rpc_call_error(x->call, NULL);
	if (x->client)
		qv_rpc_client_unref(x->client);
	json_object_put(x->opts);
	free(x->vm);
	free(x);
}

static void notify(struct qv_p2p *x, const char *method, json_object *params)
{
	if (x->client && qv_rpc_client_is_connected(x->client))
		(void)qv_rpc_client_notify(x->client, method, params);
	json_object_put(params);
}

/* --- record ------------------------------------------------------------------ */

static void record_id(const char *vm, char *buf, size_t size)
{
	snprintf(buf, size, "%s-p2p", vm);
}

static void persist(struct qv_p2p *x, enum mig_phase ph)
{
	char id[96];
	const char *token = x->proto ? mig_proto_token(x->proto) : "";
	struct qv_migration_record rec = {
		.id = id, .vm = x->vm, .role = (char *)"driver", .state = (char *)mig_phase_to_string(ph),
		.peer = x->end[MIG_SIDE_DEST].uri, .token = token[0] ? (char *)token : NULL,
		.data_json = (char *)json_object_to_json_string_ext(x->opts, JSON_C_TO_STRING_PLAIN),
	};

	record_id(x->vm, id, sizeof(id));
	if (ph == MIG_PHASE_DONE || ph == MIG_PHASE_FAILED)
		(void)qv_state_migration_delete(x->d->state, id);
	else if (qv_state_migration_put(x->d->state, &rec) < 0)
		log_warning("VM %s: cannot persist the migration phase %s, ignoring", x->vm,
			    rec.state);
}

/* --- the two ends -------------------------------------------------------------- */

static void end_answer(struct p2p_end *e, int error, const struct qv_error *err,
		       json_object *res)
{
	uint64_t tag = e->tag;

	e->id = 0;
	e->timeout = qv_source_remove(e->timeout);
	mig_proto_answer(e->x->proto, tag, error, err, res);
}

static void end_lost(struct p2p_end *e, int error, const struct qv_error *err)
{
	bool waiting = e->id != 0;

	end_close(e); /* reconnect at the next call */
	if (waiting)
		end_answer(e, error, err, NULL);
}

static void on_timeout(qv_source *s, void *ud)
{
	struct p2p_end *e = ud;
	struct qv_error err = {};

	e->timeout = NULL;
	qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT, "no answer from %s", e->uri);
	end_lost(e, -ETIMEDOUT, &err);
}

static void on_readable(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct p2p_end *e = ud;

	while (e->conn && e->id) {
		_cleanup_json_ json_object *res = NULL;
		struct qv_error err = {};
		uint64_t got = 0;
		int r = qv_rpc_recv_any(e->conn, 0, &got, &res, &err);

		if (r == -ETIMEDOUT)
			return;
		if (got && got != e->id)
			continue; /* an abandoned request's late answer */
		if (got)
			return end_answer(e, r, &err, res);
		return end_lost(e, r, &err);
	}
	if (e->conn && (revents & (EPOLLHUP | EPOLLERR)))
		end_close(e); /* idle and closed by the peer: reconnect next time */
}

/* Progress from our own perform, passed on to the vm.migrate caller. */
static void on_notify(qv_rpc_conn *c, const char *method, json_object *params, void *ud)
{
	struct qv_p2p *x = ud;
	json_object *v;

	if (!streq(method, "migrate.progress"))
		return;
	if (json_object_object_get_ex(params, "type", &v) &&
	    streq(json_object_get_string(v), "decision") &&
	    json_object_object_get_ex(params, "action", &v) &&
	    streq(json_object_get_string(v), "start-postcopy") &&
	    json_object_object_get_ex(params, "applied", &v) && json_object_get_boolean(v))
		mig_proto_postcopy_switched(x->proto);
	notify(x, method, json_object_get(params));
}

static int end_send(struct p2p_end *e, const char *method, json_object *params,
		    unsigned timeout_ms, uint64_t tag)
{
	struct qv_error err = {};
	int r = qv_rpc_send(e->conn, method, params, &e->id, &err);

	if (r < 0) {
		end_close(e);
		return r;
	}
	e->tag = tag;
	if (qv_loop_add_timer(e->x->d->loop, timeout_ms, on_timeout, e, &e->timeout) < 0)
		e->timeout = NULL;
	log_debug("VM %s: %s -> %s", e->x->vm, method, e->uri);
	return 0;
}

static int end_attach(struct p2p_end *e, qv_rpc_conn *conn)
{
	e->conn = conn;
	if (e->side == MIG_SIDE_SOURCE)
		qv_rpc_set_notify_handler(e->conn, on_notify, e->x);
	return qv_loop_add_io(e->x->d->loop, qv_rpc_conn_fd(e->conn), EPOLLIN, on_readable, e,
			      &e->io);
}

/* The end is reachable (or not): send the call that waited for it. A call
 * that never left is reported as such, so the protocol knows the peer
 * holds nothing of it (a prepare that never arrived needs no abort). */
static void on_connected(int error, qv_rpc_conn *conn, const struct qv_error *err, void *ud)
{
	struct p2p_end *e = ud;
	_cleanup_free_ char *method = TAKE_PTR(e->method);
	json_object *params = TAKE_PTR(e->params);
	uint64_t tag = e->tag;
	int r = error;

	e->connecting = NULL;
	if (r == 0 && (r = end_attach(e, conn)) < 0)
		end_close(e);
	if (r == 0 && (r = end_send(e, method, TAKE_PTR(params), e->timeout_ms, tag)) == 0)
		return;
	json_object_put(params);
	if (error < 0)
		log_debug("VM %s: cannot reach %s: %s", e->x->vm, e->uri, err->message);
	mig_proto_unsent(e->x->proto, tag, r, error < 0 ? err : NULL);
}

static int op_call(void *ud, enum mig_side side, const char *method, json_object *params,
		   unsigned timeout_ms, uint64_t tag)
{
	struct qv_p2p *x = ud;
	struct p2p_end *e = &x->end[side];
	struct qv_error err = {};
	int r;

	if (e->id || e->connecting)
		end_close(e); /* one call at a time per end: drop a stale one */
	if (side == MIG_SIDE_DEST && streq(method, "migrate.prepare") &&
	    (r = qv_mig_add_disk_keys(x->d, x->vm, e->uri, params, &err)) < 0) {
		log_warning("VM %s: %s", x->vm, err.message);
		json_object_put(params);
		return r;
	}
	if (e->conn)
		return end_send(e, method, params, timeout_ms, tag);
	/* Dial off the loop: a tls:// peer may take its handshake deadline. */
	e->method = strdup(method);
	e->params = params;
	e->timeout_ms = timeout_ms;
	e->tag = tag;
	r = e->method ? qv_rpc_connect_async(x->d->loop, e->uri, QV_RPC_CONNECT_TIMEOUT_MS,
					     on_connected, e, &e->connecting, &err)
		      : -ENOMEM;
	if (r < 0) {
		log_debug("VM %s: cannot reach %s: %s", x->vm, e->uri, err.message);
		end_close(e);
	}
	return r;
}

static void on_later(qv_source *s, void *ud)
{
	struct qv_p2p *x = ud;

	x->later = NULL;
	mig_proto_tick(x->proto);
}

static int op_later(void *ud, unsigned ms)
{
	struct qv_p2p *x = ud;

	x->later = qv_source_remove(x->later);
	return qv_loop_add_timer(x->d->loop, ms, on_later, x, &x->later);
}

static void op_phase(void *ud, enum mig_phase ph)
{
	struct qv_p2p *x = ud;
	json_object *n = json_object_new_object();

	persist(x, ph);
	{
		char point[48];
		snprintf(point, sizeof(point), "driver-%s", mig_phase_to_string(ph));
		qv_mig_test_crash_point(point);
	}
	log_info("VM %s: migration to %s: %s", x->vm, x->end[MIG_SIDE_DEST].uri,
		 mig_phase_to_string(ph));
	json_object_object_add(n, "name", json_object_new_string(x->vm));
	json_object_object_add(n, "type", json_object_new_string("phase"));
	json_object_object_add(n, "phase", json_object_new_string(mig_phase_to_string(ph)));
	notify(x, "migrate.progress", n);
}

static void op_note(void *ud, const char *what, const char *detail)
{
	struct qv_p2p *x = ud;
	json_object *n = json_object_new_object();

	log_info("VM %s: %s: %s", x->vm, what, detail);
	json_object_object_add(n, "name", json_object_new_string(x->vm));
	json_object_object_add(n, "type", json_object_new_string("note"));
	json_object_object_add(n, "what", json_object_new_string(what));
	json_object_object_add(n, "detail", json_object_new_string(detail));
	notify(x, "migrate.progress", n);
}

static void on_reap(qv_source *s, void *ud)
{
	struct qv_p2p *x = ud;

	x->reap = NULL;
	p2p_free(x);
}

static void op_done(void *ud, int error, const struct qv_error *errp, json_object *stats)
{
	struct qv_p2p *x = ud;

	qv_mig_metrics_driven(error == 0,
			      x->started_ms ? (int64_t)(qv_now_ms() - x->started_ms) : -1, stats);
	if (error == 0) {
		log_info("VM %s: migrated to %s: %s", x->vm, x->end[MIG_SIDE_DEST].uri,
			 json_object_to_json_string_ext(stats, JSON_C_TO_STRING_PLAIN));
		if (x->call)
			qv_rpc_call_reply(x->call, json_object_get(stats));
	} else {
		log_warning("VM %s: migration to %s failed: %s", x->vm, x->end[MIG_SIDE_DEST].uri,
			    errp->message);
		if (x->call)
			qv_rpc_call_error_data(x->call, errp,
					       stats ? json_object_get(stats) : NULL);
	}
	x->call = NULL;
	/* Not from inside the protocol's own callback. */
	if (qv_loop_add_timer(x->d->loop, 0, on_reap, x, &x->reap) < 0)
		x->reap = NULL;
}

static const struct mig_proto_ops p2p_ops = {
	.call = op_call, .later = op_later, .phase = op_phase, .note = op_note, .done = op_done,
};

/* --- entry points -------------------------------------------------------------- */

static struct qv_p2p *p2p_new(struct qv_daemon *d, const char *vm, const char *to,
			      json_object *opts)
{
	struct qv_p2p *x = calloc(1, sizeof(*x));
	char self[4200];

	if (!x)
		return NULL;
	snprintf(self, sizeof(self), "unix://%s", d->cfg.socket_path);
	x->d = d;
	x->vm = strdup(vm);
	x->opts = json_object_get(opts);
	for (int i = 0; i < 2; i++)
		x->end[i] = (struct p2p_end){ .x = x, .side = i };
	x->end[MIG_SIDE_SOURCE].uri = strdup(self);
	x->end[MIG_SIDE_DEST].uri = strdup(to);
	if (!x->vm || !x->end[0].uri || !x->end[1].uri) {
		p2p_free(x);
		return NULL;
	}
	x->next = drivers;
	drivers = x;
	return x;
}

static void opts_from_json(json_object *o, struct mig_proto_opts *po)
{
	json_object *v;

#define INT(k, f) if (json_object_object_get_ex(o, k, &v)) po->f = json_object_get_int(v)
#define BOOL(k, f) if (json_object_object_get_ex(o, k, &v)) po->f = json_object_get_boolean(v)
#define STR(k, f) if (json_object_object_get_ex(o, k, &v)) po->f = json_object_get_string(v)
	INT("max_downtime_ms", max_downtime_ms);
	INT("bandwidth_mbps", bandwidth_mibps);
	INT("deadline_s", deadline_s);
	INT("retry_s", retry_s);
	BOOL("allow_postcopy", allow_postcopy);
	BOOL("plain", plain);
	BOOL("keep_definition", keep_definition);
	BOOL("copy_storage", copy_storage);
	BOOL("insecure", insecure);
	STR("dest_address", dest_address);
	STR("listen", listen);
	STR("source_uri", source_uri);
#undef INT
#undef BOOL
#undef STR
	if (json_object_object_get_ex(o, "perform", &v))
		po->extra_perform = v;
}

static int p2p_setup(struct qv_p2p *x, struct qv_error *errp)
{
	struct mig_proto_opts po = { .name = x->vm };
	char self[4200], tls_host[256];

	snprintf(self, sizeof(self), "unix://%s", x->d->cfg.socket_path);
	po.source_uri = self;
	opts_from_json(x->opts, &po);
	/* Over tls:// the destination's certificate must name the host we
	 * dialled; its QEMU presents the same one on the stream. */
	if (strncmp(x->end[MIG_SIDE_DEST].uri, "tls://", 6) == 0) {
		int port;
		if (qv_parse_host_port(x->end[MIG_SIDE_DEST].uri + 6, QV_TLS_DEFAULT_PORT, tls_host,
				       sizeof(tls_host), &port, errp) < 0)
			return -EINVAL;
		po.dest_tls_host = tls_host;
	}
	if (mig_proto_new(&po, &p2p_ops, x, &x->proto) < 0)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	return 0;
}

int qv_mig_p2p_start(qv_rpc_call *call, struct qv_daemon *d, const char *vm, const char *to,
		     json_object *opts)
{
	struct qv_error err = {};
	struct qv_p2p *x;

	if (qv_mig_p2p_find(vm) || qv_mig_find(vm, true) || qv_mig_find(vm, false))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "VM %s already has a migration in progress", vm);
	x = p2p_new(d, vm, to, opts);
	if (!x)
		return -ENOMEM;
	if (p2p_setup(x, &err) < 0) {
		p2p_free(x);
		return qv_rpc_call_error(call, &err), 0;
	}
	x->call = call;
	x->client = qv_rpc_client_ref(qv_rpc_call_client(call));
	x->started_ms = qv_now_ms();
	log_info("VM %s: migrating to %s (daemon-driven)", vm, to);
	return mig_proto_start(x->proto);
}

int qv_mig_p2p_cancel(struct qv_p2p *x, struct qv_error *errp)
{
	struct qv_mig *m;
	int r = mig_proto_cancel(x->proto, errp);

	if (r < 0)
		return r;
	/* Performing: stop the engine or the mirror; perform then fails and
	 * the protocol removes the incoming VM. */
	m = qv_mig_find(x->vm, true);
	if (m && mig_proto_phase(x->proto) == MIG_PHASE_PERFORMING)
		return qv_mig_stop_outgoing(m, errp);
	return 0;
}

const char *qv_mig_p2p_phase(const struct qv_p2p *x)
{
	return mig_phase_to_string(mig_proto_phase(x->proto));
}

const char *qv_mig_p2p_token(const struct qv_p2p *x)
{
	return mig_proto_token(x->proto);
}

struct rec_copy {
	char *vm, *state, *peer, *token, *data;
};

static int copy_driver(const struct qv_migration_record *rec, void *ud)
{
	struct rec_copy **v = ud;
	size_t n = 0;

	if (!streq(rec->role, "driver"))
		return 0;
	while ((*v)[n].vm)
		n++;
	struct rec_copy *nv = realloc(*v, (n + 2) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[n] = (struct rec_copy){ strdup(rec->vm), strdup(rec->state),
				   rec->peer ? strdup(rec->peer) : NULL,
				   rec->token ? strdup(rec->token) : NULL,
				   rec->data_json ? strdup(rec->data_json) : NULL };
	nv[n + 1] = (struct rec_copy){};
	return 0;
}

static void resume_one(struct qv_daemon *d, const struct rec_copy *rc)
{
	_cleanup_json_ json_object *opts = NULL;
	struct qv_error err = {};
	struct qv_p2p *x;
	int ph = mig_phase_from_string(rc->state);

	if (!rc->vm || qv_mig_p2p_find(rc->vm))
		return;
	opts = rc->data ? json_tokener_parse(rc->data) : NULL;
	if (!opts)
		opts = json_object_new_object();
	x = p2p_new(d, rc->vm, rc->peer ? rc->peer : "", opts);
	if (!x || ph < 0 || p2p_setup(x, &err) < 0 ||
	    mig_proto_resume(x->proto, (enum mig_phase)ph, rc->token) < 0) {
		log_warning("VM %s: cannot resume the migration record (phase %s), ignoring",
			    rc->vm, rc->state);
		if (x)
			p2p_free(x);
		return;
	}
	log_info("VM %s: resuming the migration to %s at phase %s", rc->vm, rc->peer, rc->state);
}

void qv_mig_p2p_resume_all(struct qv_daemon *d)
{
	struct rec_copy *v = calloc(1, sizeof(*v));

	if (!v || qv_state_migration_list(d->state, copy_driver, &v) < 0)
		log_warning("Cannot list migration records, ignoring");
	for (struct rec_copy *rc = v; rc && rc->vm; rc++) {
		resume_one(d, rc);
		free(rc->vm);
		free(rc->state);
		free(rc->peer);
		free(rc->token);
		free(rc->data);
	}
	free(v);
}
