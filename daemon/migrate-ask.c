/* SPDX-License-Identifier: MIT */
/* Destination side: an incoming migration whose RAM has all arrived but
 * that nobody finishes asks the source daemon (the URI prepare recorded)
 * whether it still drives it, by VM name and this migration's token.
 * migrate.status there answers; when the source has no outgoing migration
 * of the VM any more, or its driver holds another token (`conflict`), the
 * incoming VM, which never ran, is torn down. An unreachable source changes nothing:
 * the incoming timeout (prepare's timeout_s) still applies. The question
 * is asked from the loop without blocking: connect (off the loop, see
 * common/rpc-connect-async.h), send, and read the answer when it comes. */
#include "common/json.h"
#include "common/log.h"
#include "common/rpc-client.h"
#include "common/rpc-connect-async.h"
#include "daemon/migrate-internal.h"

#define ASK_TIMEOUT_MS 10000
#define ASK_AFTER_MS 30000 /* completed but not finished for this long: ask */

struct ask {
	struct qv_daemon *d;
	char *vm;
	char token[33];
	qv_rpc_conn *conn;
	qv_rpc_connecting *connecting;
	qv_source *io, *timer;
	uint64_t id;
};

static void ask_free(struct ask *a)
{
	qv_rpc_connect_cancel(a->connecting);
	qv_source_remove(a->io);
	qv_source_remove(a->timer);
	qv_rpc_conn_free(a->conn);
	free(a->vm);
	free(a);
}

/* Does the source still hold an outgoing migration of the VM? */
static bool source_still_migrating(json_object *res)
{
	json_object *v;
	const char *role, *state;

	if (json_object_object_get_ex(res, "driver_phase", &v))
		return true;
	role = json_object_object_get_ex(res, "role", &v) ? json_object_get_string(v) : "";
	state = json_object_object_get_ex(res, "state", &v) ? json_object_get_string(v) : "";
	return streq(role, "source") && !streq(state, "failed");
}

static void ask_answered(struct ask *a, int r, const struct qv_error *err, json_object *res)
{
	struct qv_mig *m = qv_mig_find(a->vm, false);

	if (!m || !streq(m->token, a->token) || m->finish_call || m->postcopy_running)
		return; /* finished, replaced or running meanwhile */
	m->asking = false;
	if (r == 0 && source_still_migrating(res))
		return;
	/* not-found: the source has no migration of the VM; conflict: its
	 * driver holds another token (this incoming VM is not its). */
	if (r < 0 && !(r == -EREMOTEIO && (streq(err->reason, QV_REASON_NOT_FOUND) ||
					    streq(err->reason, QV_REASON_CONFLICT)))) {
		log_info("VM %s: cannot ask the source about the unfinished migration: %s", a->vm,
			 err->message);
		return;
	}
	qv_mig_teardown_dest(m, "the source no longer migrates it (asked; the guest never ran "
				"here)");
}

static void on_ask_io(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct ask *a = ud;
	_cleanup_json_ json_object *res = NULL;
	struct qv_error err = {};
	uint64_t got = 0;
	int r = qv_rpc_recv_any(a->conn, 0, &got, &res, &err);

	if (r == -ETIMEDOUT)
		return;
	ask_answered(a, r, &err, res);
	ask_free(a);
}

static void on_ask_timeout(qv_source *s, void *ud)
{
	struct ask *a = ud;
	struct qv_error err = {};
	struct qv_mig *m = qv_mig_find(a->vm, false);

	a->timer = NULL;
	qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT, "no answer from the source");
	if (m)
		m->asking = false;
	ask_answered(a, -ETIMEDOUT, &err, NULL);
	ask_free(a);
}

static void on_ask_connected(int error, qv_rpc_conn *conn, const struct qv_error *cerr,
			     void *ud)
{
	struct ask *a = ud;
	struct qv_error err = {};
	struct qv_mig *m;
	json_object *p = json_object_new_object();

	a->connecting = NULL;
	a->conn = conn;
	json_object_object_add(p, "name", json_object_new_string(a->vm));
	json_object_object_add(p, "token", json_object_new_string(a->token));
	if (error < 0) {
		json_object_put(p);
		err = *cerr;
	} else if (qv_rpc_send(a->conn, "migrate.status", p, &a->id, &err) >= 0 &&
		   qv_loop_add_io(a->d->loop, qv_rpc_conn_fd(a->conn), EPOLLIN, on_ask_io, a,
				  &a->io) >= 0) {
		return; /* the answer (or on_ask_timeout) comes later */
	} else if (!err.set) {
		qv_error_set(&err, EIO, QV_REASON_IO_ERROR, "cannot send to the source");
	}
	if ((m = qv_mig_find(a->vm, false)))
		m->asking = false;
	ask_answered(a, error < 0 ? error : -EIO, &err, NULL);
	ask_free(a);
}

void qv_mig_dest_ask_source(struct qv_mig *m)
{
	struct qv_error err = {};
	struct ask *a;

	if (!m->source_uri || m->asking)
		return;
	a = calloc(1, sizeof(*a));
	if (!a || !(a->vm = strdup(m->vm))) {
		free(a);
		return;
	}
	a->d = m->d;
	snprintf(a->token, sizeof(a->token), "%s", m->token);
	/* One deadline for connect and answer; the connect's own is shorter. */
	if (qv_rpc_connect_async(m->d->loop, m->source_uri, QV_RPC_CONNECT_TIMEOUT_MS,
				 on_ask_connected, a, &a->connecting, &err) < 0 ||
	    qv_loop_add_timer(m->d->loop, ASK_TIMEOUT_MS + QV_RPC_CONNECT_TIMEOUT_MS,
			      on_ask_timeout, a, &a->timer) < 0) {
		log_debug("VM %s: cannot ask the source %s: %s", m->vm, m->source_uri, err.message);
		ask_free(a);
		return;
	}
	m->asking = true;
	log_info("VM %s: incoming migration complete but not finished; asking the source %s",
		 m->vm, m->source_uri);
}

void qv_mig_dest_check_stuck(struct qv_mig *m, const char *incoming_status)
{
	if (!incoming_status || !streq(incoming_status, "completed")) {
		m->complete_since = 0;
		return;
	}
	if (!m->complete_since)
		m->complete_since = qv_now_ms();
	if (qv_now_ms() - m->complete_since < ASK_AFTER_MS)
		return;
	m->complete_since = qv_now_ms(); /* and again every ASK_AFTER_MS */
	qv_mig_dest_ask_source(m);
}
