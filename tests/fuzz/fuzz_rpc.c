/* SPDX-License-Identifier: MIT */
/* libFuzzer entry: arbitrary bytes -> qv_rpc_parse_request (the function the
 * server runs on every received line). Accepted requests must be internally
 * consistent; rejections must explain themselves and map to a JSON-RPC code. */
#include <stddef.h>
#include <stdint.h>

#include "daemon/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qv_rpc_request req;
	struct qv_error err = {};
	int r = qv_rpc_parse_request((const char *)data, size, &req, &err);

	if (r == 0) {
		if (!req.msg || !req.method || !*req.method || err.set)
			__builtin_trap();
		if (req.is_notification && req.id)
			__builtin_trap();
		if (req.params && !json_object_is_type(req.params, json_type_object) &&
		    !json_object_is_type(req.params, json_type_array))
			__builtin_trap();
		/* what the server does next: serialize an id-echoing response */
		json_object *resp = json_object_new_object();
		json_object_object_add(resp, "id", req.id ? json_object_get(req.id) : NULL);
		json_object_object_add(resp, "result",
				       req.params ? json_object_get(req.params) : NULL);
		if (!json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PLAIN))
			__builtin_trap();
		json_object_put(resp);
		if (req.id) {
			json_object *again = json_tokener_parse(json_object_to_json_string_ext(
				req.id, JSON_C_TO_STRING_PLAIN));
			if (!again && !json_object_is_type(req.id, json_type_null))
				__builtin_trap(); /* an echoed id must be valid JSON */
			json_object_put(again);
		}
	} else {
		if (!err.set || !err.message[0] || !err.reason[0])
			__builtin_trap();
		if (r != -EBADMSG && r != -EINVAL && r != -EMSGSIZE && r != -ENOMEM)
			__builtin_trap();
		int code = qv_rpc_code_for_parse_error(r);
		if (code != -32700 && code != -32600)
			__builtin_trap();
		if (r != -EINVAL && req.id)
			__builtin_trap();
	}
	qv_rpc_request_done(&req);
	return 0;
}
