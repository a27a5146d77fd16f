/* SPDX-License-Identifier: MIT */
/* cluster plan, cluster mode (docs/cluster.md "Balancer") */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/output.h"
#include "cli/verbs.h"

static const char *str_of(json_object *o, const char *key, char *buf, size_t size)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return "-";
	return out_scalar(v, buf, size);
}

static void print_plan(json_object *res)
{
	json_object *arr;
	char b[6][256];

	printf("mode: %s  leader: %s  threshold: %s  cooldown: %s s\n",
	       str_of(res, "mode", b[0], 256), str_of(res, "leader", b[1], 256),
	       str_of(res, "threshold", b[2], 256), str_of(res, "cooldown_s", b[3], 256));
	if (json_object_object_get_ex(res, "hosts", &arr)) {
		out_table *t = out_table_new(3, (const char *[]){ "HOST", "CPU_USED_MILLI", "CPU_UTIL" });
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *h = json_object_array_get_idx(arr, i), *u;
			char pct[32] = "-";
			if (json_object_object_get_ex(h, "cpu_util", &u))
				snprintf(pct, sizeof(pct), "%.0f%%", 100 * json_object_get_double(u));
			out_table_add(t, (const char *[]){ str_of(h, "name", b[0], 256),
							   str_of(h, "cpu_used_milli", b[1], 256), pct });
		}
		out_table_print(t, stdout);
		out_table_free(t);
	}
	if (json_object_object_get_ex(res, "decisions", &arr))
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *d = json_object_array_get_idx(arr, i);
			printf("%-5s %-8s %s: %s\n", str_of(d, "kind", b[0], 256),
			       str_of(d, "why", b[1], 256), str_of(d, "vm", b[2], 256),
			       str_of(d, "reason", b[3], 256));
		}
	printf("%s\n", str_of(res, "summary", b[0], 256));
}

int verb_cluster_plan(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "threshold", required_argument, NULL, 't' }, {} };
	_cleanup_json_ json_object *res = NULL;
	json_object *params = json_object_new_object();
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		double x = c == 't' ? strtod(optarg, &end) : 0;
		if (c != 't' || *end || !(x > 0 && x <= 1)) {
			json_object_put(params);
			return cli_usage_error(ctx, "--threshold takes a share in (0, 1]");
		}
		json_object_object_add(params, "threshold", json_object_new_double(x));
	}
	if (optind != argc) {
		json_object_put(params);
		return cli_usage_error(ctx, "takes no arguments");
	}
	if ((r = cli_call(ctx, "cluster.plan", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		print_plan(res);
	return EXIT_OK;
}

int verb_cluster_mode(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *params = json_object_new_object();
	char b[2][64];
	int r;

	if (argc > 2) {
		json_object_put(params);
		return cli_usage_error(ctx, "takes at most one mode: off, advise or enforce");
	}
	if (argc == 2) {
		if (!streq(argv[1], "off") && !streq(argv[1], "advise") && !streq(argv[1], "enforce")) {
			json_object_put(params);
			return cli_usage_error(ctx, "mode must be off, advise or enforce");
		}
		json_object_object_add(params, "mode", json_object_new_string(argv[1]));
	}
	if ((r = cli_call(ctx, "cluster.mode", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else if (argc == 2)
		printf("balancer mode: %s (was %s)\n", str_of(res, "mode", b[0], 64),
		       str_of(res, "previous", b[1], 64));
	else
		printf("balancer mode: %s\n", str_of(res, "mode", b[0], 64));
	return EXIT_OK;
}
