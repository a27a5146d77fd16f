/* SPDX-License-Identifier: MIT */
/* host info, host check */
#include "cli/output.h"
#include "cli/verbs.h"

int verb_host_info(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (argc != 1)
		return cli_usage_error(ctx, "takes no arguments");
	if ((r = cli_call(ctx, "host.info", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res)) !=
	    EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		out_kv(res, stdout);
	return EXIT_OK;
}

int verb_host_check(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *checks, *v;
	int r, failed = 0;

	if (argc != 1)
		return cli_usage_error(ctx, "takes no arguments");
	if ((r = cli_call(ctx, "host.check", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res)) !=
	    EXIT_OK)
		return r;
	if (!json_object_object_get_ex(res, "checks", &checks) ||
	    !json_object_is_type(checks, json_type_array)) {
		fprintf(stderr, "qvisor: host check: malformed host.check result\n");
		return EXIT_FAILED;
	}
	out_table *t = ctx->json ? NULL
				 : out_table_new(3, (const char *[]){ "STATUS", "CHECK", "DETAIL" });
	for (size_t i = 0; i < json_object_array_length(checks); i++) {
		json_object *c = json_object_array_get_idx(checks, i);
		char b[3][64];
		const char *status = json_object_object_get_ex(c, "status", &v) ? out_scalar(v, b[0], 64) : "-";
		if (streq(status, "fail"))
			failed++;
		if (t)
			out_table_add(t, (const char *[]){
				status,
				json_object_object_get_ex(c, "name", &v) ? out_scalar(v, b[1], 64) : "-",
				json_object_object_get_ex(c, "detail", &v) ? out_scalar(v, b[2], 64) : "" });
	}
	if (t) {
		out_table_print(t, stdout);
		out_table_free(t);
	} else
		out_json(res, stdout);
	if (failed) {
		fprintf(stderr, "qvisor: host check: %d check%s failed\n", failed, failed > 1 ? "s" : "");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}
