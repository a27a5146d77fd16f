/* SPDX-License-Identifier: MIT */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"

#define DEFAULT_STOP_TIMEOUT_S 30

struct stop_opts {
	bool force;
	int64_t timeout_s;
};

static json_object *stop_params(const char *name, void *ud)
{
	const struct stop_opts *o = ud;
	json_object *p = cli_params_name(name);

	json_object_object_add(p, "force", json_object_new_boolean(o->force));
	json_object_object_add(p, "timeout", json_object_new_int64(o->timeout_s));
	return p;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

static void print_stopped(const char *name, json_object *res, void *ud)
{
	const char *state = str_field(res, "state"), *how = str_field(res, "how");
	const char *ex = str_field(res, "exit");

	printf("%s: %s", name, state ?: "stopped");
	if (how && ex)
		printf(" (%s, exit %s)", how, ex);
	else if (how || ex)
		printf(" (%s%s)", how ? "" : "exit ", how ?: ex);
	printf("\n");
}

int verb_stop(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "force", no_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "parallel", required_argument, NULL, 'j' },
		{}
	};
	struct stop_opts o = { .timeout_s = DEFAULT_STOP_TIMEOUT_S };
	struct cli_batch b = {
		.method = "vm.stop",
		.parallel = CLI_BATCH_PARALLEL_DEFAULT,
		.params = stop_params,
		.print = print_stopped,
		.userdata = &o,
	};
	_cleanup_strv_free_ char **names = NULL;
	bool all = false;
	size_t n;
	char *end;
	int c, r;

	while ((c = getopt_long(argc, argv, "aft:j:", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'f':
			o.force = true;
			break;
		case 'j':
			if ((r = cli_parse_parallel(ctx, optarg, &b.parallel)) != EXIT_OK)
				return r;
			break;
		case 't':
			errno = 0;
			o.timeout_s = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || o.timeout_s < 0 || o.timeout_s > 86400)
				return cli_usage_error(ctx, "invalid --timeout \"%s\" (seconds)", optarg);
			break;
		default:
			return cli_usage_error(ctx, "invalid option");
		}
	}
	if (all == (optind < argc))
		return cli_usage_error(ctx, "expected VM names or --all");
	/* The daemon may wait the whole stop timeout before escalating to
	 * quit and kill: give it that plus a margin. */
	b.timeout_ms = (int)(o.timeout_s * 1000) + 30 * 1000;
	if (!all)
		return cli_batch_run(ctx, &b, argv + optind, (size_t)(argc - optind));
	if ((r = cli_vm_names(ctx, true, &names, &n)) != EXIT_OK)
		return r;
	return cli_batch_run(ctx, &b, names, n);
}
