/* SPDX-License-Identifier: MIT */
/* qvisor balloon NAME [SIZE]: set a VM's balloon target (the memory the guest
 * keeps), or show the balloon's state and the guest's statistics. */
#include <inttypes.h>

#include "cli/output.h"
#include "cli/verbs.h"

static void print_state(json_object *res)
{
	json_object *v, *stats;

	if (json_object_object_get_ex(res, "target", &v) && v)
		printf("target: %" PRId64 " MiB\n", json_object_get_int64(v) >> 20);
	else
		printf("target: unknown (set it again to know)\n");
	if (json_object_object_get_ex(res, "actual", &v) && v)
		printf("actual: %" PRId64 " MiB\n", json_object_get_int64(v) >> 20);
	else
		printf("actual: unknown (the guest driver has not reported yet)\n");
	if (json_object_object_get_ex(res, "memory", &v))
		printf("memory: %" PRId64 " MiB\n", json_object_get_int64(v) >> 20);
	if (json_object_object_get_ex(res, "guest_stats", &stats) &&
	    json_object_object_length(stats) > 0) {
		printf("guest statistics:\n");
		out_kv(stats, stdout);
	}
}

int verb_balloon(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *params;
	uint64_t bytes = 0;
	int r;

	if (argc < 2 || argc > 3)
		return cli_usage_error(ctx, "expected NAME and an optional SIZE");
	if (argc == 3 && (cli_parse_size(argv[2], &bytes) < 0 || bytes == 0 || bytes > INT64_MAX))
		return cli_usage_error(ctx, "invalid size \"%s\" (e.g. 96M, 1G)", argv[2]);
	params = cli_params_name(argv[1]);
	if (bytes)
		json_object_object_add(params, "target", json_object_new_int64((int64_t)bytes));
	r = cli_call(ctx, "vm.balloon", params, CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		print_state(res);
	return EXIT_OK;
}
