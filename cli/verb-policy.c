/* SPDX-License-Identifier: MIT */
/* policy show [VM], policy mode MODE, host pressure: the host resource loop. */
#include "cli/output.h"
#include "cli/verbs.h"

int verb_policy_show(struct cli_ctx *ctx, int argc, char **argv);
int verb_policy_mode(struct cli_ctx *ctx, int argc, char **argv);
int verb_host_pressure(struct cli_ctx *ctx, int argc, char **argv);

static const char *field(json_object *o, const char *path1, const char *path2, char *buf)
{
	json_object *v;

	if (!json_object_object_get_ex(o, path1, &v))
		return "-";
	if (path2 && !json_object_object_get_ex(v, path2, &v))
		return "-";
	return out_scalar(v, buf, 64);
}

static void print_vms(json_object *vms)
{
	out_table *t = out_table_new(9, (const char *[]){ "VM", "MODE", "CLASS", "DEMAND",
							   "WEIGHT", "CPU.MAX", "CPUSET",
							   "MEM.HIGH", "BALLOON" });
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *o = json_object_array_get_idx(vms, i), *a = NULL;
		char b[9][64];
		json_object *bal, *bt, *idle;
		json_object_object_get_ex(o, "allocation", &a);
		/* an idle group (cpu.idle = 1) has no weight that matters */
		bool is_idle = a && json_object_object_get_ex(a, "cpu.idle", &idle) &&
			       json_object_get_int(idle) == 1;
		snprintf(b[8], sizeof(b[8]), "-");
		if (json_object_object_get_ex(o, "balloon", &bal) &&
		    json_object_object_get_ex(bal, "target", &bt) && json_object_get_int64(bt) > 0)
			out_size((uint64_t)json_object_get_int64(bt), b[8], sizeof(b[8]));
		out_table_add(t, (const char *[]){
			field(o, "name", NULL, b[0]), field(o, "mode", NULL, b[1]),
			field(o, "resources", "class", b[2]), field(o, "demand", "cpu_cores", b[3]),
			is_idle ? "idle" : a ? field(a, "cpu.weight", NULL, b[4]) : "-",
			a ? field(a, "cpu.max", NULL, b[5]) : "-",
			a ? field(a, "cpuset.cpus", NULL, b[6]) : "-",
			a ? field(a, "memory.high", NULL, b[7]) : "-",
			b[8] });
	}
	out_table_print(t, stdout);
	out_table_free(t);
	/* how each latency VM's exclusive cores are kept */
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *o = json_object_array_get_idx(vms, i), *a, *by, *why;
		char b[2][64];
		if (!json_object_object_get_ex(o, "allocation", &a) ||
		    !json_object_object_get_ex(a, "exclusive_by", &by))
			continue;
		printf("%s: exclusive cores %s kept by %s", field(o, "name", NULL, b[0]),
		       field(a, "cpuset.cpus", NULL, b[1]),
		       streq(json_object_get_string(by), "partition") ? "a cpuset partition root"
								       : "cpuset.cpus only");
		if (json_object_object_get_ex(a, "partition_refused", &why))
			printf(" (%s)", json_object_get_string(why));
		printf("\n");
	}
}

static void print_recent(json_object *recent)
{
	size_t n = json_object_array_length(recent);

	if (!n)
		return;
	printf("\nrecent changes:\n");
	for (size_t i = n > 20 ? n - 20 : 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(recent, i), *v;
		char b[5][64];
		bool applied = json_object_object_get_ex(c, "applied", &v) && json_object_get_boolean(v);
		printf("  %s %s: %s -> %s%s (%s)\n", field(c, "vm", NULL, b[0]),
		       field(c, "knob", NULL, b[1]), field(c, "from", NULL, b[2]),
		       field(c, "to", NULL, b[3]), applied ? "" : " [advised]",
		       json_object_object_get_ex(c, "reason", &v) ? json_object_get_string(v) : "");
	}
}

int verb_policy_show(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *params = json_object_new_object(), *v;
	int r;

	if (argc > 2) {
		json_object_put(params);
		return cli_usage_error(ctx, "takes at most one VM name");
	}
	if (argc == 2)
		json_object_object_add(params, "name", json_object_new_string(argv[1]));
	if ((r = cli_call(ctx, "policy.show", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	char b[2][64];
	printf("mode %s, interval %s ms\n\n", field(res, "mode", NULL, b[0]),
	       field(res, "interval_ms", NULL, b[1]));
	if (json_object_object_get_ex(res, "vms", &v))
		print_vms(v);
	if (json_object_object_get_ex(res, "recent", &v))
		print_recent(v);
	return EXIT_OK;
}

int verb_policy_mode(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "needs MODE (off, advise or enforce)");
	json_object *params = json_object_new_object();
	json_object_object_add(params, "mode", json_object_new_string(argv[1]));
	if ((r = cli_call(ctx, "policy.set-mode", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("resource loop mode: %s\n", argv[1]);
	return EXIT_OK;
}

int verb_host_pressure(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *v;
	int r;

	if (argc != 1)
		return cli_usage_error(ctx, "takes no arguments");
	if ((r = cli_call(ctx, "host.pressure", json_object_new_object(), CLI_CALL_TIMEOUT_MS,
			  &res)) != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	char b[2][64];
	bool over = json_object_object_get_ex(res, "overloaded", &v) && json_object_get_boolean(v);
	printf("overloaded: %s%s%s\n", over ? "yes" : "no", over ? ": " : "",
	       over ? field(res, "reason", NULL, b[0]) : "");
	if (json_object_object_get_ex(res, "host", &v))
		out_kv(v, stdout);
	if (json_object_object_get_ex(res, "vms", &v)) {
		out_table *t = out_table_new(4, (const char *[]){ "VM", "CLASS", "CPU", "MEMORY" });
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *o = json_object_array_get_idx(v, i);
			char c[4][64];
			out_table_add(t, (const char *[]){
				field(o, "name", NULL, c[0]), field(o, "class", NULL, c[1]),
				field(o, "demand", "cpu_cores", c[2]),
				field(o, "demand", "memory_bytes", c[3]) });
		}
		out_table_print(t, stdout);
		out_table_free(t);
	}
	(void)b;
	return EXIT_OK;
}
