/* SPDX-License-Identifier: MIT */
#include "cli/output.h"
#include "cli/verbs.h"

int verb_info(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected one VM name");
	r = cli_call(ctx, "vm.info", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		out_kv(res, stdout);
	return EXIT_OK;
}
