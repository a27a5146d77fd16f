/* SPDX-License-Identifier: MIT */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"

static json_object *start_params(const char *name, void *ud)
{
	return cli_params_name(name);
}

static void print_started(const char *name, json_object *res, void *ud)
{
	json_object *v;
	char buf[32];

	printf("%s: %s", name,
	       json_object_object_get_ex(res, "state", &v) ? json_object_get_string(v) : "started");
	if (json_object_object_get_ex(res, "pid", &v) && json_object_get_int64(v) > 0)
		printf(" (pid %s)", out_scalar(v, buf, sizeof(buf)));
	printf("\n");
}

int verb_start(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "parallel", required_argument, NULL, 'j' },
		{}
	};
	struct cli_batch b = {
		.method = "vm.start",
		.timeout_ms = CLI_CALL_TIMEOUT_MS,
		.parallel = CLI_BATCH_PARALLEL_DEFAULT,
		.params = start_params,
		.print = print_started,
	};
	_cleanup_strv_free_ char **names = NULL;
	bool all = false;
	size_t n;
	int c, r;

	while ((c = getopt_long(argc, argv, "aj:", opts, NULL)) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'j' && (r = cli_parse_parallel(ctx, optarg, &b.parallel)) != EXIT_OK)
			return r;
		else if (c != 'j')
			return cli_usage_error(ctx, "invalid option");
	}
	if (all == (optind < argc))
		return cli_usage_error(ctx, "expected VM names or --all");
	if (!all)
		return cli_batch_run(ctx, &b, argv + optind, (size_t)(argc - optind));
	if ((r = cli_vm_names(ctx, false, &names, &n)) != EXIT_OK)
		return r;
	return cli_batch_run(ctx, &b, names, n);
}
