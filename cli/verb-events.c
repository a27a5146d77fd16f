/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <signal.h>
#include <time.h>

#include "cli/output.h"
#include "cli/verbs.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

/* Human lines: local clock time, the time since the previous event (since
 * the subscription for the first), VM, type, data. */
static void print_event(struct cli_ctx *ctx, const char *method, json_object *params,
			int64_t *last_ms)
{
	json_object *v;
	char b[4][64];

	if (ctx->json) {
		printf("%s\n", params ? out_json_compact(params) : "null");
		return;
	}
	int64_t t = json_object_object_get_ex(params, "time", &v) &&
				    json_object_is_type(v, json_type_int)
			    ? json_object_get_int64(v) : 0;
	const char *vm = json_object_object_get_ex(params, "vm", &v) ? out_scalar(v, b[1], 64) : "-";
	const char *type = json_object_object_get_ex(params, "type", &v) ? out_scalar(v, b[2], 64)
									 : method;
	bool color = out_color(stdout);
	if (t > 0) {
		printf("%s (+%s)", out_clock(t, b[0], sizeof(b[0])),
		       out_duration(t > *last_ms ? t - *last_ms : 0, b[3], sizeof(b[3])));
		*last_ms = t;
	} else {
		printf("-");
	}
	printf(" %s %s%s%s", vm, color ? OUT_SGR_BOLD : "", type, color ? OUT_SGR_RESET : "");
	if (json_object_object_get_ex(params, "data", &v) && v &&
	    !(json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0))
		printf(" %s", out_json_compact(v));
	printf("\n");
}

int verb_events(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "vm", required_argument, NULL, 'v' }, {} };
	_cleanup_json_ json_object *res = NULL;
	struct qv_error err = { 0 };
	const char *vm = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "v:", opts, NULL)) != -1) {
		if (c != 'v')
			return cli_usage_error(ctx, "invalid option");
		vm = optarg;
	}
	if (optind != argc)
		return cli_usage_error(ctx, "unexpected argument %s", argv[optind]);
	json_object *params = json_object_new_object();
	if (vm)
		json_object_object_add(params, "vm", json_object_new_string(vm));
	if ((r = cli_call(ctx, "events.subscribe", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t last_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	/* SIGINT/SIGTERM: stop cleanly with status 0 */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!interrupted) {
		_cleanup_free_ char *method = NULL;
		_cleanup_json_ json_object *p = NULL;
		qv_error_clear(&err);
		r = qv_rpc_wait_notification(ctx->conn, 500, &method, &p, &err);
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0)
			return cli_report(ctx, NULL, r, &err);
		print_event(ctx, method, p, &last_ms);
		fflush(stdout);
	}
	return EXIT_OK;
}
