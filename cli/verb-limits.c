/* SPDX-License-Identifier: MIT */
/* qvisor limits NAME [--cpu 50%] [--memory-max 1G] ...: change a VM's
 * resource limits (live when running; vm.set-limits), or show them. */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"

int verb_limits(struct cli_ctx *ctx, int argc, char **argv);

/* "none" removes a limit (JSON null). */
static void put(json_object *lim, const char *key, const char *val, bool integer)
{
	if (streq(val, "none")) {
		json_object_object_add(lim, key, NULL);
		return;
	}
	if (integer) {
		char *end;
		long long v = strtoll(val, &end, 10);
		if (!*end && end != val) {
			json_object_object_add(lim, key, json_object_new_int64(v));
			return;
		}
	}
	json_object_object_add(lim, key, json_object_new_string(val));
}

static int show(struct cli_ctx *ctx, const char *name)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *spec, *lim;
	int r = cli_call(ctx, "vm.info", cli_params_name(name), CLI_CALL_TIMEOUT_MS, &res);

	if (r != EXIT_OK)
		return r;
	if (!json_object_object_get_ex(res, "spec", &spec) ||
	    !json_object_object_get_ex(spec, "limits", &lim))
		lim = NULL;
	if (ctx->json)
		out_json(lim ? lim : json_object_new_object(), stdout);
	else if (!lim || json_object_object_length(lim) == 0)
		printf("%s: no limits\n", name);
	else
		out_kv(lim, stdout);
	return EXIT_OK;
}

int verb_limits(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cpu", required_argument, NULL, 'c' },
		{ "cpu-weight", required_argument, NULL, 'w' },
		{ "cpuset-cpus", required_argument, NULL, 'C' },
		{ "cpuset-mems", required_argument, NULL, 'M' },
		{ "memory-max", required_argument, NULL, 'm' },
		{ "memory-high", required_argument, NULL, 'H' },
		{ "swap-max", required_argument, NULL, 's' },
		{ "pids-max", required_argument, NULL, 'p' },
		{ "set", required_argument, NULL, 'j' },
		{}
	};
	_cleanup_json_ json_object *lim = json_object_new_object();
	_cleanup_json_ json_object *res = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "c:w:C:M:m:H:s:p:j:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': put(lim, "cpu_max", streq(optarg, "none") ? "max" : optarg, false); break;
		case 'w': put(lim, "cpu_weight", optarg, true); break;
		case 'C': put(lim, "cpuset_cpus", optarg, false); break;
		case 'M': put(lim, "cpuset_mems", optarg, false); break;
		case 'm': put(lim, "memory_max", optarg, false); break;
		case 'H': put(lim, "memory_high", optarg, false); break;
		case 's': put(lim, "memory_swap_max", optarg, false); break;
		case 'p': put(lim, "pids_max", optarg, true); break;
		case 'j': {
			json_object *o = json_tokener_parse(optarg);
			if (!o || !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				return cli_usage_error(ctx, "--set needs a JSON object");
			}
			json_object_object_foreach(o, k, v)
				json_object_object_add(lim, k, json_object_get(v));
			json_object_put(o);
			break;
		}
		default:
			return cli_usage_error(ctx, "invalid option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(ctx, "expected one VM name");
	if (json_object_object_length(lim) == 0)
		return show(ctx, argv[optind]);
	json_object *p = cli_params_name(argv[optind]);
	json_object_object_add(p, "limits", json_object_get(lim));
	r = cli_call(ctx, "vm.set-limits", p, CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	json_object *applied;
	bool live = json_object_object_get_ex(res, "applied", &applied) &&
		    json_object_get_boolean(applied);
	printf("%s: limits %s\n", argv[optind], live ? "applied" : "saved (applied at next start)");
	return EXIT_OK;
}
