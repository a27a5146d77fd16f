/* SPDX-License-Identifier: MIT */
/* JSON-RPC 2.0 request parsing and error-code mapping (pure functions). */
#include <math.h>

#include "daemon/rpc.h"

/* json-c nesting limit for untrusted input. */
#define RPC_JSON_DEPTH 64

static const struct {
	const char *reason;
	int code;
} reason_codes[] = {
	{ QV_REASON_INVALID_ARGUMENT, QV_RPC_INVALID_PARAMS },
	{ QV_REASON_NOT_FOUND, -32001 },
	{ QV_REASON_CONFLICT, -32002 },
	{ QV_REASON_UNAVAILABLE, -32003 },
	{ QV_REASON_QEMU_ERROR, -32004 },
	{ QV_REASON_TIMEOUT, -32005 },
	{ QV_REASON_IO_ERROR, -32006 },
	{ QV_REASON_NO_SPACE, -32007 },
	{ QV_REASON_PERMISSION, -32008 },
	{ QV_REASON_UNSUPPORTED, -32009 },
	{ QV_REASON_CANCELLED, -32010 },
	{ QV_REASON_INTERNAL, QV_RPC_INTERNAL_ERROR },
};

int qv_rpc_code_for_reason(const char *reason)
{
	if (!reason)
		return QV_RPC_INTERNAL_ERROR;
	for (size_t i = 0; i < ARRAY_SIZE(reason_codes); i++)
		if (streq(reason, reason_codes[i].reason))
			return reason_codes[i].code;
	return QV_RPC_APP_ERROR;
}

int qv_rpc_code_for_parse_error(int r)
{
	return r == -EBADMSG ? QV_RPC_PARSE_ERROR : QV_RPC_INVALID_REQUEST;
}

void qv_rpc_request_done(struct qv_rpc_request *req)
{
	if (!req)
		return;
	if (req->msg)
		json_object_put(req->msg);
	else if (req->id)
		json_object_put(req->id);
	memset(req, 0, sizeof(*req));
}

static json_object *parse_json(const char *line, size_t len, struct qv_error *errp, int *ret_r)
{
	json_tokener *tok;
	json_object *o;
	enum json_tokener_error e;

	tok = json_tokener_new_ex(RPC_JSON_DEPTH);
	if (!tok) {
		*ret_r = qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, line, (int)len);
	e = json_tokener_get_error(tok);
	if (!o && e == json_tokener_continue) {
		/* A bare scalar at the end of input ("123") needs a terminator. */
		o = json_tokener_parse_ex(tok, "", 1);
		e = json_tokener_get_error(tok);
	}
	if (!o || e != json_tokener_success) {
		if (o)
			json_object_put(o);
		*ret_r = qv_error_set(errp, EBADMSG, QV_REASON_INVALID_ARGUMENT,
				      "parse error: %s", json_tokener_error_desc(e));
		json_tokener_free(tok);
		return NULL;
	}
	json_tokener_free(tok);
	return o;
}

static bool valid_id(json_object *id)
{
	switch (json_object_get_type(id)) {
	case json_type_null:
	case json_type_int:
	case json_type_string:
		return true;
	case json_type_double:
		return isfinite(json_object_get_double(id));
	default:
		return false;
	}
}

static int invalid(struct qv_error *errp, const char *msg)
{
	return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "invalid request: %s", msg);
}

static int validate(json_object *msg, struct qv_rpc_request *req, struct qv_error *errp)
{
	static const char *const allowed[] = { "jsonrpc", "id", "method", "params", NULL };
	json_object *id = NULL, *v;
	bool has_id;

	if (json_object_is_type(msg, json_type_array))
		return invalid(errp, "batch requests are not supported");
	if (!json_object_is_type(msg, json_type_object))
		return invalid(errp, "not a JSON object");

	/* json-c represents JSON null as a NULL object: "id":null is a request. */
	has_id = json_object_object_get_ex(msg, "id", &id);
	if (has_id) {
		if (!valid_id(id))
			return invalid(errp, "id must be a string, a number or null");
		req->id = id;
	}
	if (!json_object_object_get_ex(msg, "jsonrpc", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !streq(json_object_get_string(v), "2.0"))
		return invalid(errp, "\"jsonrpc\" must be \"2.0\"");
	if (!json_object_object_get_ex(msg, "method", &v) ||
	    !json_object_is_type(v, json_type_string))
		return invalid(errp, "\"method\" must be a string");
	req->method = json_object_get_string(v);
	if (!*req->method)
		return invalid(errp, "\"method\" is empty");
	if (json_object_object_get_ex(msg, "params", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_object) &&
		    !json_object_is_type(v, json_type_array))
			return invalid(errp, "\"params\" must be an object or an array");
		req->params = v;
	}
	json_object_object_foreach(msg, key, val) {
		(void)val;
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			ok = ok || streq(*a, key);
		if (!ok)
			return invalid(errp, "unknown member");
	}
	req->is_notification = !has_id;
	return 0;
}

int qv_rpc_parse_request(const char *line, size_t len, struct qv_rpc_request *ret,
			 struct qv_error *errp)
{
	struct qv_rpc_request req = {};
	json_object *msg;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (len > QV_RPC_MAX_MESSAGE)
		return qv_error_set(errp, EMSGSIZE, QV_REASON_INVALID_ARGUMENT,
				    "message exceeds 1 MiB");
	if (!line || len == 0)
		return qv_error_set(errp, EBADMSG, QV_REASON_INVALID_ARGUMENT,
				    "parse error: empty message");
	if (memchr(line, '\0', len))
		return qv_error_set(errp, EBADMSG, QV_REASON_INVALID_ARGUMENT,
				    "parse error: NUL byte in message");

	msg = parse_json(line, len, errp, &r);
	if (!msg)
		return r;

	r = validate(msg, &req, errp);
	if (r < 0) {
		/* Keep only the id, so the error response can echo it. */
		ret->id = req.id ? json_object_get(req.id) : NULL;
		json_object_put(msg);
		return r;
	}
	req.msg = msg;
	*ret = req;
	return 0;
}
