/* SPDX-License-Identifier: MIT */
/* JSON-RPC calls: dispatch to handlers, (asynchronous) responses, errors,
 * notifications and broadcasts. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/rpc-internal.h"

static qv_rpc_call *call_unref(qv_rpc_call *call)
{
	if (!call || --call->ref > 0)
		return NULL;
	if (!call->finished && call->client)
		call->client->pending_calls--;
	qv_rpc_request_done(&call->req);
	qv_rpc_client_unref(call->client);
	free(call);
	return NULL;
}

/* Serialize and queue msg. A response (is_response) over the size cap
 * becomes an error response for id; anything else over the cap is dropped. */
static int send_message(qv_rpc_client *c, json_object *msg, bool is_response, json_object *id)
{
	const char *s;
	size_t len;

	if (!c->connected)
		return -ENOTCONN;
	s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!s)
		return -ENOMEM;
	if (len > QV_RPC_MAX_MESSAGE) {
		log_debug("rpc: client %u: dropping a %zu byte message", c->id, len);
		if (!is_response)
			return -EMSGSIZE;
		return rpc_send_error(c, id, QV_RPC_INTERNAL_ERROR, "response exceeds 1 MiB",
				      QV_REASON_INTERNAL, NULL);
	}
	return rpc_client_queue(c, s, len);
}

static json_object *new_envelope(json_object *id)
{
	json_object *m = json_object_new_object();

	if (!m)
		return NULL;
	json_object_object_add(m, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(m, "id", id ? json_object_get(id) : NULL);
	return m;
}

int rpc_send_error(qv_rpc_client *c, json_object *id, int code, const char *message,
		   const char *reason, json_object *extra_data)
{
	_cleanup_json_ json_object *m = new_envelope(id);
	json_object *e, *data;

	if (!m) {
		json_object_put(extra_data);
		return -ENOMEM;
	}
	e = json_object_new_object();
	data = extra_data && json_object_is_type(extra_data, json_type_object)
		       ? extra_data
		       : json_object_new_object();
	if (data != extra_data)
		json_object_put(extra_data);
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message", json_object_new_string(message ? message : ""));
	json_object_object_add(data, "reason",
			       json_object_new_string(reason ? reason : QV_REASON_INTERNAL));
	json_object_object_add(e, "data", data);
	json_object_object_add(m, "error", e);
	/* An error that is too big cannot be replaced again. */
	return send_message(c, m, false, NULL);
}

/* Finish the call: mark it, tell the observer. */
static bool finish(qv_rpc_call *call, bool ok)
{
	if (call->finished)
		return false;
	call->finished = true;
	call->client->pending_calls--;
	qv_rpc_server *s = call->client->server;
	if (s && s->observe_fn && call->req.method)
		s->observe_fn(call->req.method, qv_now_ms() - call->start_ms, ok, s->observe_ud);
	return true;
}

static int finish_and_release(qv_rpc_call *call, int r)
{
	qv_rpc_client *c = qv_rpc_client_ref(call->client);

	call_unref(call); /* the handler's reference */
	rpc_client_update(c);
	qv_rpc_client_unref(c);
	return r;
}

int qv_rpc_call_reply(qv_rpc_call *call, json_object *result)
{
	qv_rpc_client *c;
	int r = 0;

	if (!call || !finish(call, true)) {
		json_object_put(result);
		return -EALREADY;
	}
	c = call->client;
	if (!c->connected) {
		json_object_put(result);
		r = -ENOTCONN;
	} else if (call->req.is_notification) {
		json_object_put(result);
	} else {
		_cleanup_json_ json_object *m = new_envelope(call->req.id);
		if (!m) {
			json_object_put(result);
			r = -ENOMEM;
		} else {
			json_object_object_add(m, "result", result);
			r = send_message(c, m, true, call->req.id);
		}
	}
	return finish_and_release(call, r);
}

int qv_rpc_call_error_data(qv_rpc_call *call, const struct qv_error *err, json_object *data)
{
	qv_rpc_client *c;
	const char *reason = err && err->set ? err->reason : QV_REASON_INTERNAL;
	const char *message = err && err->set ? err->message : "internal error";
	int r = 0;

	if (!call || !finish(call, false)) {
		json_object_put(data);
		return -EALREADY;
	}
	c = call->client;
	if (!c->connected) {
		json_object_put(data);
		r = -ENOTCONN;
	} else if (call->req.is_notification) {
		json_object_put(data);
	} else {
		r = rpc_send_error(c, call->req.id, qv_rpc_code_for_reason(reason), message, reason,
				   data);
	}
	return finish_and_release(call, r);
}

int qv_rpc_call_error(qv_rpc_call *call, const struct qv_error *err)
{
	return qv_rpc_call_error_data(call, err, NULL);
}

const char *qv_rpc_call_method(qv_rpc_call *call)
{
	return call->req.method;
}

json_object *qv_rpc_call_id(qv_rpc_call *call)
{
	return call->req.is_notification ? NULL : call->req.id;
}

bool qv_rpc_call_is_notification(qv_rpc_call *call)
{
	return call->req.is_notification;
}

const struct qv_rpc_peer *qv_rpc_call_peer(qv_rpc_call *call)
{
	return &call->client->peer;
}

qv_rpc_client *qv_rpc_call_client(qv_rpc_call *call)
{
	return call->client;
}

bool qv_rpc_call_client_gone(qv_rpc_call *call)
{
	return !call->client->connected;
}

qv_rpc_server *qv_rpc_client_server(qv_rpc_client *client)
{
	return client ? client->server : NULL;
}

void qv_rpc_server_set_access_fn(qv_rpc_server *server, qv_rpc_access_fn fn, void *userdata)
{
	server->access_fn = fn;
	server->access_ud = userdata;
}

void qv_rpc_server_set_gate_fn(qv_rpc_server *server, qv_rpc_gate_fn fn, void *userdata)
{
	server->gate_fn = fn;
	server->gate_ud = userdata;
}

static const struct rpc_method_entry *find_method(qv_rpc_server *s, const char *name)
{
	for (size_t i = 0; s && i < s->n_methods; i++)
		if (streq(s->methods[i].m->name, name))
			return &s->methods[i];
	return NULL;
}

void rpc_dispatch(qv_rpc_client *c, struct qv_rpc_request *req)
{
	const struct rpc_method_entry *e = find_method(c->server, req->method);
	qv_rpc_call *call;
	int r;

	if (!e) {
		char msg[128];
		log_debug("rpc: client %u: unknown method %.64s", c->id, req->method);
		if (!req->is_notification) {
			snprintf(msg, sizeof(msg), "unknown method '%.64s'", req->method);
			rpc_send_error(c, req->id, QV_RPC_METHOD_NOT_FOUND, msg,
				       QV_REASON_NOT_FOUND, NULL);
		}
		qv_rpc_request_done(req);
		return;
	}
	if (c->server->access_fn &&
	    !c->server->access_fn(&c->peer, req->method, c->server->access_ud)) {
		char msg[160];
		if (!req->is_notification) {
			snprintf(msg, sizeof(msg), "method '%.64s' is not allowed for uid %u on this "
				 "socket (docs/security.md)", req->method, (unsigned)c->peer.uid);
			rpc_send_error(c, req->id, qv_rpc_code_for_reason(QV_REASON_PERMISSION),
				       msg, QV_REASON_PERMISSION, NULL);
		}
		qv_rpc_request_done(req);
		return;
	}
	call = calloc(1, sizeof(*call));
	if (!call) {
		if (!req->is_notification)
			rpc_send_error(c, req->id, QV_RPC_INTERNAL_ERROR, "out of memory",
				       QV_REASON_INTERNAL, NULL);
		qv_rpc_request_done(req);
		return;
	}
	call->ref = 2; /* the handler's and ours for the duration of the call */
	call->client = qv_rpc_client_ref(c);
	call->start_ms = qv_now_ms();
	call->req = *req;
	memset(req, 0, sizeof(*req));
	c->pending_calls++;

	log_debug("rpc: client %u: %s", c->id, call->req.method);
	if (c->server->gate_fn) {
		struct qv_error gerr = {};
		if (!c->server->gate_fn(call->req.method, call->req.params, &gerr,
					c->server->gate_ud)) {
			if (!gerr.set)
				qv_error_set(&gerr, EAGAIN, QV_REASON_UNAVAILABLE, "%s: try again",
					     call->req.method);
			qv_rpc_call_error(call, &gerr);
			call_unref(call);
			return;
		}
	}
	r = e->m->fn(call, call->req.params, e->userdata);
	if (r < 0 && !call->finished) {
		struct qv_error err = {};
		qv_error_set(&err, r, NULL, "%s failed: %s", call->req.method, strerror(-r));
		qv_rpc_call_error(call, &err); /* releases the handler's reference */
	}
	call_unref(call);
}

static int notify(qv_rpc_client *c, const char *method, json_object *params)
{
	_cleanup_json_ json_object *m = json_object_new_object();

	if (!m)
		return -ENOMEM;
	json_object_object_add(m, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(m, "method", json_object_new_string(method));
	if (params)
		json_object_object_add(m, "params", json_object_get(params));
	return send_message(c, m, false, NULL);
}

int qv_rpc_client_notify(qv_rpc_client *c, const char *method, json_object *params)
{
	if (!c || !method)
		return -EINVAL;
	if (!c->connected)
		return -ENOTCONN;
	return notify(c, method, params);
}

int qv_rpc_server_broadcast(qv_rpc_server *s, const char *method, json_object *params)
{
	_cleanup_json_ json_object *m = NULL;
	const char *str;
	size_t len;
	int n = 0;

	if (!s || !method)
		return -EINVAL;
	m = json_object_new_object();
	if (!m)
		return -ENOMEM;
	json_object_object_add(m, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(m, "method", json_object_new_string(method));
	if (params)
		json_object_object_add(m, "params", json_object_get(params));
	str = json_object_to_json_string_length(m, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!str)
		return -ENOMEM;
	if (len > QV_RPC_MAX_MESSAGE)
		return -EMSGSIZE;
	/* Serialize once; a queue failure may close (and unlink) that client. */
	for (qv_rpc_client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (c->subscribed && rpc_client_queue(c, str, len) == 0)
			n++;
	}
	return n;
}
