/* SPDX-License-Identifier: MIT */
/* host cordon, host resume, host evacuate (docs/cluster.md "Maintenance") */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"

#define EVACUATE_TIMEOUT_MS (6 * 3600 * 1000)

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "-";
}

int verb_host_cordon(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "reason", required_argument, NULL, 'r' }, {} };
	_cleanup_json_ json_object *res = NULL;
	const char *reason = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'r')
			return cli_usage_error(ctx, "invalid option");
		reason = optarg;
	}
	if (optind != argc - 1)
		return cli_usage_error(ctx, "expected one host name");
	json_object *p = json_object_new_object();
	json_object_object_add(p, "host", json_object_new_string(argv[optind]));
	if (reason)
		json_object_object_add(p, "reason", json_object_new_string(reason));
	if ((r = cli_call(ctx, "host.cordon", p, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("host %s: unschedulable (%s)\n", jstr(res, "host"), jstr(res, "reason"));
	return EXIT_OK;
}

int verb_host_resume(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *v;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one host name");
	json_object *p = json_object_new_object();
	json_object_object_add(p, "host", json_object_new_string(argv[1]));
	if ((r = cli_call(ctx, "host.resume", p, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("host %s: schedulable%s\n", jstr(res, "host"),
		       json_object_object_get_ex(res, "was_cordoned", &v) && !json_object_get_boolean(v)
			       ? " (it was not cordoned)" : "");
	return EXIT_OK;
}

/* One line per progress notification: the plan, then each VM's result. */
static void on_progress(qv_rpc_conn *c, const char *method, json_object *p, void *ud)
{
	json_object *v, *a;

	if (!streq(method, "host.evacuate.progress"))
		return;
	if (json_object_object_get_ex(p, "vm", &v)) {
		bool failed = json_object_object_get_ex(p, "error", NULL);
		fprintf(stderr, "  %-20s -> %-10s %s (%s ms)%s%s\n", jstr(p, "vm"), jstr(p, "to"),
			jstr(p, "result"), jstr(p, "duration_ms"), failed ? ": " : "",
			failed ? jstr(p, "error") : "");
		return;
	}
	if (json_object_object_get_ex(p, "done", &v) && json_object_get_boolean(v))
		return; /* the answer says it */
	fprintf(stderr, "%s\n", jstr(p, "summary"));
	if (json_object_object_get_ex(p, "moves", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *m = json_object_array_get_idx(a, i);
			fprintf(stderr, "  wave %s: %s -> %s\n", jstr(m, "wave"), jstr(m, "vm"),
				jstr(m, "to"));
		}
}

static void print_list(json_object *res, const char *key, const char *title)
{
	json_object *a;

	if (!json_object_object_get_ex(res, key, &a))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *o = json_object_array_get_idx(a, i);
		printf("%s %s: %s\n", title, jstr(o, "vm"), jstr(o, "reason"));
	}
}

static void print_evacuation(json_object *res)
{
	json_object *a;

	out_table *t = out_table_new(5, (const char *[]){ "VM", "TO", "WAVE", "RESULT", "REASON" });
	json_object_object_get_ex(res, "moves", &a);
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *m = json_object_array_get_idx(a, i);
		out_table_add(t, (const char *[]){ jstr(m, "vm"), jstr(m, "to"), jstr(m, "wave"),
						   jstr(m, "result"),
						   streq(jstr(m, "result"), "failed") ? jstr(m, "error")
										  : jstr(m, "reason") });
	}
	out_table_print(t, stdout);
	out_table_free(t);
	print_list(res, "skipped", "fits nowhere:");
	print_list(res, "left", "left:");
	printf("%s; host %s unschedulable\n", jstr(res, "summary"), jstr(res, "host"));
}

int verb_host_evacuate(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "wait", no_argument, NULL, 'w' }, {} };
	_cleanup_json_ json_object *res = NULL;
	struct qv_error err = {};
	bool wait = false;
	uint64_t id;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'w')
			return cli_usage_error(ctx, "invalid option");
		wait = true;
	}
	if (optind != argc - 1)
		return cli_usage_error(ctx, "expected one host name");
	if ((r = cli_connect(ctx)) != EXIT_OK)
		return r;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "host", json_object_new_string(argv[optind]));
	json_object_object_add(p, "wait", json_object_new_boolean(wait));
	if (!ctx->json)
		qv_rpc_set_notify_handler(ctx->conn, on_progress, NULL);
	r = qv_rpc_send(ctx->conn, "host.evacuate", p, &id, &err);
	if (r >= 0)
		r = qv_rpc_recv_response(ctx->conn, wait ? EVACUATE_TIMEOUT_MS : CLI_CALL_TIMEOUT_MS, id,
					 &res, &err);
	qv_rpc_set_notify_handler(ctx->conn, NULL, NULL);
	if (r < 0)
		return cli_report(ctx, NULL, r, &err);
	if (ctx->json)
		out_json(res, stdout);
	else if (wait)
		print_evacuation(res);
	else
		printf("evacuation of %s started (%s); follow it with `qvisor events`\n",
		       jstr(res, "host"), jstr(res, "summary"));
	json_object *v, *sk;
	/* the host is not empty: a migration failed or a VM fits nowhere */
	if (wait && ((json_object_object_get_ex(res, "failed", &v) && json_object_get_int(v) > 0) ||
		     (json_object_object_get_ex(res, "skipped", &sk) &&
		      json_object_array_length(sk) > 0)))
		return EXIT_FAILED;
	return EXIT_OK;
}
