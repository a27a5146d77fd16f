/* SPDX-License-Identifier: MIT */
/* net define|undefine|list|info */
#include "cli/output.h"
#include "cli/verbs.h"

static int print_result(struct cli_ctx *ctx, int r, json_object *res)
{
	if (r == EXIT_OK)
		ctx->json ? out_json(res, stdout) : out_kv(res, stdout);
	return r;
}

int verb_net_define(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *spec;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one spec file");
	if ((r = cli_read_json_file(ctx, argv[1], &spec)) != EXIT_OK)
		return r;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "spec", spec);
	r = cli_call(ctx, "net.define", p, CLI_CALL_TIMEOUT_MS, &res);
	return print_result(ctx, r, res);
}

int verb_net_undefine(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected one network name");
	r = cli_call(ctx, "net.undefine", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r == EXIT_OK)
		ctx->json ? out_json(res, stdout) : (void)printf("%s: undefined\n", argv[1]);
	return r;
}

int verb_net_list(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char *const cols[] = { "name", "bridge", "state", NULL };
	_cleanup_json_ json_object *res = NULL;
	json_object *arr = NULL;
	int r;

	if (argc != 1)
		return cli_usage_error(ctx, "takes no arguments");
	if ((r = cli_call(ctx, "net.list", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res)) !=
	    EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	/* {networks:[...]} or whichever array the result holds */
	if (!json_object_object_get_ex(res, "networks", &arr)) {
		json_object_object_foreach(res, k, v) {
			(void)k;
			if (json_object_is_type(v, json_type_array))
				arr = v;
		}
	}
	if (arr && json_object_is_type(arr, json_type_array))
		out_table_from_array(arr, cols, stdout);
	else
		out_kv(res, stdout);
	return EXIT_OK;
}

int verb_net_info(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected one network name");
	r = cli_call(ctx, "net.info", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	return print_result(ctx, r, res);
}
