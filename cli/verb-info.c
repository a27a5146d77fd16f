/* SPDX-License-Identifier: MIT */
#include "cli/output.h"
#include "cli/verbs.h"

/* A running VM with a guest agent: add what the agent reports (OS, IP
 * addresses) as "agent", or "agent_error"; never fails the verb. */
static void add_agent(struct cli_ctx *ctx, const char *name, json_object *res)
{
	json_object *spec, *ga, *state, *ag = NULL;
	struct qv_error err = {};

	if (!json_object_object_get_ex(res, "spec", &spec) ||
	    !json_object_object_get_ex(spec, "guest_agent", &ga) || !json_object_get_boolean(ga) ||
	    !json_object_object_get_ex(res, "state", &state) ||
	    !streq(json_object_get_string(state), "running"))
		return;
	if (qv_rpc_invoke(ctx->conn, "vm.agent-info", cli_params_name(name), 10000, &ag, &err) < 0) {
		json_object_object_add(res, "agent_error", json_object_new_string(err.message));
		return;
	}
	json_object_object_del(ag, "name");
	json_object_object_add(res, "agent", ag);
}

int verb_info(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected one VM name");
	r = cli_call(ctx, "vm.info", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	add_agent(ctx, argv[1], res);
	if (ctx->json)
		out_json(res, stdout);
	else
		out_kv(res, stdout);
	return EXIT_OK;
}
