/* SPDX-License-Identifier: MIT */
#include "cli/output.h"
#include "cli/verbs.h"

int verb_define(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *spec = NULL, *v;
	char buf[64];
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one spec file");
	if ((r = cli_read_json_file(ctx, argv[1], &spec)) != EXIT_OK)
		return r;
	json_object *params = json_object_new_object();
	json_object_object_add(params, "spec", spec);
	if ((r = cli_call(ctx, "vm.define", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	const char *name = json_object_object_get_ex(res, "name", &v) ? out_scalar(v, buf, sizeof(buf)) : "-";
	printf("Defined %s", name);
	if (json_object_object_get_ex(res, "uuid", &v))
		printf(" (%s)", json_object_get_string(v));
	printf("\n");
	return EXIT_OK;
}
