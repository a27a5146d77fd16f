/* SPDX-License-Identifier: MIT */
/* rpc METHOD [JSON-PARAMS]: a raw call for scripts and tests. */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"

int verb_rpc(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "timeout", required_argument, NULL, 't' }, {} };
	_cleanup_json_ json_object *res = NULL;
	json_object *params = NULL;
	int timeout_ms = CLI_CALL_TIMEOUT_MS, c, r;
	char *end;

	while ((c = getopt_long(argc, argv, "+t:", opts, NULL)) != -1) {
		if (c != 't')
			return cli_usage_error(ctx, "invalid option");
		long s = strtol(optarg, &end, 10);
		if (*end || end == optarg || s < 0 || s > 86400)
			return cli_usage_error(ctx, "invalid --timeout \"%s\" (seconds)", optarg);
		timeout_ms = (int)s * 1000;
	}
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage_error(ctx, "expected METHOD [JSON-PARAMS]");
	if (argc - optind == 2) {
		enum json_tokener_error e;
		params = json_tokener_parse_verbose(argv[optind + 1], &e);
		if (!params || (!json_object_is_type(params, json_type_object) &&
				!json_object_is_type(params, json_type_array))) {
			json_object_put(params);
			return cli_usage_error(ctx, "JSON-PARAMS must be a JSON object or array%s%s",
					       params ? "" : ": ", params ? "" : json_tokener_error_desc(e));
		}
	}
	r = cli_call(ctx, argv[optind], params, timeout_ms, &res);
	if (r != EXIT_OK)
		return r;
	if (res)
		out_json(res, stdout);
	else
		printf("null\n");
	return EXIT_OK;
}
