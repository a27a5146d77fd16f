/* SPDX-License-Identifier: MIT */
/* cluster hosts, cluster vms (docs/cluster.md) */
#include "cli/output.h"
#include "cli/verbs.h"

/* a.b of o as text ("-" when absent). */
static const char *field(json_object *o, const char *a, const char *b, char *buf, size_t size)
{
	json_object *v = o;

	if (a && !json_object_object_get_ex(o, a, &v))
		return "-";
	if (!json_object_object_get_ex(v, b, &v))
		return "-";
	return out_scalar(v, buf, size);
}

static const char *labels_text(json_object *rec, char *buf, size_t size)
{
	json_object *l;
	size_t n = 0;

	buf[0] = '\0';
	if (!json_object_object_get_ex(rec, "labels", &l) || !json_object_is_type(l, json_type_object))
		return "-";
	json_object_object_foreach(l, k, v) {
		int w = snprintf(buf + n, size - n, "%s%s=%s", n ? "," : "", k, json_object_get_string(v));
		if (w < 0 || (size_t)w >= size - n)
			break;
		n += (size_t)w;
	}
	return n ? buf : "-";
}

static int list(struct cli_ctx *ctx, int argc, const char *method, const char *member,
		bool hosts)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *arr;
	int r;

	if (argc != 1)
		return cli_usage_error(ctx, "takes no arguments");
	if ((r = cli_call(ctx, method, json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	if (!json_object_object_get_ex(res, member, &arr) || !json_object_is_type(arr, json_type_array)) {
		fprintf(stderr, "qvisor: %s: malformed answer\n", method);
		return EXIT_FAILED;
	}
	out_table *t = hosts ? out_table_new(7, (const char *[]){ "HOST", "ADDRESS", "VMS", "RUNNING",
							       "CPUS", "MEMORY_MIB", "LABELS" })
			     : out_table_new(5, (const char *[]){ "NAME", "HOST", "STATE", "MEMORY_MIB",
							       "GROUPS" });
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i), *pl, *g;
		char b[7][256];
		if (hosts)
			out_table_add(t, (const char *[]){
				field(o, NULL, "name", b[0], 256), field(o, NULL, "address", b[1], 256),
				field(o, "usage", "vms", b[2], 256), field(o, "usage", "running", b[3], 256),
				field(o, "capacity", "vcpus", b[4], 256),
				field(o, "capacity", "memory_mib", b[5], 256), labels_text(o, b[6], 256) });
		else {
			const char *groups = "-";
			if (json_object_object_get_ex(o, "placement", &pl) &&
			    json_object_object_get_ex(pl, "anti_affinity", &g))
				groups = json_object_to_json_string_ext(g, JSON_C_TO_STRING_PLAIN);
			out_table_add(t, (const char *[]){
				field(o, NULL, "name", b[0], 256), field(o, NULL, "owner", b[1], 256),
				field(o, NULL, "state", b[2], 256), field(o, NULL, "memory_mib", b[3], 256),
				groups });
		}
	}
	out_table_print(t, stdout);
	out_table_free(t);
	if (hosts) {
		char b[256];
		printf("leader: %s\n", field(res, NULL, "leader", b, sizeof(b)));
	}
	return EXIT_OK;
}

int verb_cluster_hosts(struct cli_ctx *ctx, int argc, char **argv)
{
	return list(ctx, argc, "cluster.hosts", "hosts", true);
}

int verb_cluster_vms(struct cli_ctx *ctx, int argc, char **argv)
{
	return list(ctx, argc, "cluster.vms", "vms", false);
}
