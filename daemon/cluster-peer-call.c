/* SPDX-License-Identifier: MIT */
/* One call to a peer daemon from the loop: dial off the loop
 * (common/rpc-connect-async.h), send, read the answer when the socket is
 * readable, bounded by a timer. Long calls (a live migration) hold no
 * worker thread, and a stopping daemon cancels them at once. */
#include <string.h>
#include <sys/epoll.h>

#include "common/json.h"
#include "common/log.h"
#include "common/rpc-client.h"
#include "common/rpc-connect-async.h"
#include "daemon/cluster-internal.h"

struct cl_peer_call {
	struct qv_cluster *c;
	char host[64];
	char uri[160];
	char method[40];
	json_object *params;
	unsigned timeout_ms;
	cl_peer_done_fn done;
	void *ud;
	qv_rpc_connecting *connecting;
	qv_rpc_conn *conn;
	qv_source *io, *timer;
	uint64_t id;
};

static void pc_free(struct cl_peer_call *p)
{
	qv_rpc_connect_cancel(p->connecting);
	qv_source_remove(p->io);
	qv_source_remove(p->timer);
	qv_rpc_conn_free(p->conn);
	json_object_put(p->params);
	free(p);
}

static void pc_end(struct cl_peer_call *p, int r, json_object *res, const struct qv_error *err)
{
	p->connecting = NULL; /* the callback ran: the handle is gone */
	p->done(r, res, err, p->ud);
	pc_free(p);
}

static void pc_timeout(qv_source *s, void *ud)
{
	struct cl_peer_call *p = ud;
	struct qv_error err = {};

	p->timer = NULL;
	qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT, "%s: no answer to %s within %u s", p->uri,
		     p->method, p->timeout_ms / 1000);
	p->connecting = qv_rpc_connect_cancel(p->connecting);
	pc_end(p, -ETIMEDOUT, NULL, &err);
}

static void pc_readable(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct cl_peer_call *p = ud;

	for (;;) {
		_cleanup_json_ json_object *res = NULL;
		struct qv_error err = {};
		uint64_t got = 0;
		int r = qv_rpc_recv_any(p->conn, 0, &got, &res, &err);

		if (r == -ETIMEDOUT)
			return;
		if (got && got != p->id)
			continue;
		return pc_end(p, r, res, &err);
	}
}

static void pc_drop_notify(qv_rpc_conn *c, const char *method, json_object *params, void *ud)
{
}

static void pc_connected(int error, qv_rpc_conn *conn, const struct qv_error *err, void *ud)
{
	struct cl_peer_call *p = ud;
	struct qv_error e2 = {};
	int r;

	p->connecting = NULL;
	if (error < 0)
		return pc_end(p, error, NULL, err);
	p->conn = conn;
	if ((r = cl_peer_check(conn, p->host, p->uri, &e2)) < 0)
		return pc_end(p, r, NULL, &e2);
	qv_rpc_set_notify_handler(conn, pc_drop_notify, NULL);
	r = qv_loop_add_io(p->c->d->loop, qv_rpc_conn_fd(conn), EPOLLIN, pc_readable, p, &p->io);
	if (r < 0) {
		qv_error_set(&e2, -r, QV_REASON_INTERNAL, "cannot watch the connection to %s", p->uri);
		return pc_end(p, r, NULL, &e2);
	}
	r = qv_rpc_send(conn, p->method, TAKE_PTR(p->params), &p->id, &e2);
	if (r < 0)
		return pc_end(p, r, NULL, &e2);
}

int cl_peer_check(qv_rpc_conn *conn, const char *host, const char *uri, struct qv_error *errp)
{
	const char *dn = qv_rpc_conn_peer_dn(conn);

	if (qv_rpc_conn_peer_has_name(conn, host))
		return 0;
	return qv_error_set(errp, EACCES, QV_REASON_PERMISSION,
			    "%s answered with a certificate that does not name host %s (%s): "
			    "refusing to call it (the cluster store's address for %s leads to "
			    "another daemon, or its certificate lacks its --cluster-host name: "
			    "qvisor pki issue ADDRESS %s)",
			    uri, host, dn && *dn ? dn : "no certificate", host, host);
}

int cl_peer_call(struct qv_cluster *c, const char *host, const char *address,
		 const char *method, json_object *params, unsigned timeout_ms,
		 cl_peer_done_fn done, void *ud, struct cl_peer_call **ret)
{
	struct cl_peer_call *p = calloc(1, sizeof(*p));
	struct qv_error err = {};
	int r;

	if (!p) {
		json_object_put(params);
		return -ENOMEM;
	}
	*p = (struct cl_peer_call){ .c = c, .params = params, .timeout_ms = timeout_ms,
				    .done = done, .ud = ud };
	snprintf(p->host, sizeof(p->host), "%s", host);
	snprintf(p->uri, sizeof(p->uri), "tls://%s", address);
	snprintf(p->method, sizeof(p->method), "%s", method);
	r = qv_loop_add_timer(c->d->loop, timeout_ms, pc_timeout, p, &p->timer);
	if (r >= 0)
		r = qv_rpc_connect_async(c->d->loop, p->uri, QV_RPC_CONNECT_TIMEOUT_MS, pc_connected,
					 p, &p->connecting, &err);
	if (r < 0) {
		log_warning("Cluster: cannot call %s on %s: %s", method, p->uri,
			    err.message[0] ? err.message : strerror(-r));
		pc_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

struct cl_peer_call *cl_peer_call_cancel(struct cl_peer_call *p)
{
	if (p)
		pc_free(p);
	return NULL;
}
