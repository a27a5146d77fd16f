/* SPDX-License-Identifier: MIT */
/* One method on many VMs: all requests pipelined on one connection, results
 * printed as they complete. */
#include "cli/cli.h"
#include "cli/output.h"
#include "common/loop.h"

bool cli_state_is_active(const char *state)
{
	static const char *const inactive[] = { "stopped", "defined", "shutoff", "shut-off",
						"off", "crashed", "failed", "inactive" };
	if (!state)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(inactive); i++)
		if (streq(state, inactive[i]))
			return false;
	return true;
}

int cli_vm_names(struct cli_ctx *ctx, bool active, char ***ret_names, size_t *ret_n)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *vms, *v;
	int r = cli_call(ctx, "vm.list", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res);

	if (r != EXIT_OK)
		return r;
	if (!json_object_object_get_ex(res, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array)) {
		fprintf(stderr, "qvisor: %s: malformed vm.list result\n", ctx->verb);
		return EXIT_FAILED;
	}
	size_t n = json_object_array_length(vms), k = 0;
	char **names = calloc(n + 1, sizeof(*names));
	if (!names)
		return EXIT_FAILED;
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *state = NULL, *name;
		if (json_object_object_get_ex(vm, "state", &v))
			state = json_object_get_string(v);
		if (!json_object_object_get_ex(vm, "name", &v) ||
		    cli_state_is_active(state) != active)
			continue;
		name = json_object_get_string(v);
		if (!(names[k++] = strdup(name))) {
			strv_free(names);
			return EXIT_FAILED;
		}
	}
	*ret_names = names;
	*ret_n = k;
	return EXIT_OK;
}

int cli_batch_run(struct cli_ctx *ctx, const struct cli_batch *b, char **names, size_t n)
{
	_cleanup_free_ uint64_t *ids = calloc(n ? n : 1, sizeof(*ids));
	_cleanup_free_ int *codes = calloc(n ? n : 1, sizeof(*codes));
	struct qv_error err = { 0 };
	int r;

	if (!ids || !codes)
		return EXIT_FAILED;
	if ((r = cli_connect(ctx)) != EXIT_OK)
		return r;
	for (size_t i = 0; i < n; i++) {
		qv_error_clear(&err);
		r = qv_rpc_send(ctx->conn, b->method, b->params(names[i], b->userdata), &ids[i],
				&err);
		if (r < 0)
			return cli_report(ctx, names[i], r, &err);
	}
	uint64_t deadline = qv_now_ms() + (uint64_t)b->timeout_ms;
	for (size_t done = 0; done < n; done++) {
		_cleanup_json_ json_object *res = NULL;
		uint64_t id = 0, now = qv_now_ms();
		int left = now < deadline ? (int)(deadline - now) : 0;
		size_t i;

		qv_error_clear(&err);
		r = qv_rpc_recv_any(ctx->conn, left, &id, &res, &err);
		for (i = 0; i < n && ids[i] != id; i++)
			;
		if (r < 0 && r != -EREMOTEIO) { /* timeout or connection lost: the rest fail */
			for (size_t j = 0; j < n; j++)
				if (ids[j] && !codes[j]) {
					cli_report(ctx, names[j], r, &err);
					codes[j] = cli_exit_code(r, &err);
				}
			break;
		}
		if (i == n)
			continue; /* cannot happen: ids are ours */
		ids[i] = 0;
		if (r < 0) {
			codes[i] = cli_report(ctx, names[i], r, &err);
			continue;
		}
		if (ctx->json)
			out_json(res, stdout);
		else
			b->print(names[i], res, b->userdata);
		fflush(stdout);
	}
	for (size_t i = 0; i < n; i++)
		if (codes[i])
			return codes[i];
	return EXIT_OK;
}
