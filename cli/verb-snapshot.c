/* SPDX-License-Identifier: MIT */
/* qvisor snapshot create|list|revert|delete (docs/snapshots.md) */
#include <getopt.h>
#include <inttypes.h>

#include "cli/output.h"
#include "cli/verbs.h"

/* Merges and memory saves report progress: no call deadline. */
#define SNAPSHOT_TIMEOUT_MS (-1)

static json_object *params(const char *vm, const char *snap)
{
	json_object *p = cli_params_name(vm);

	if (snap)
		json_object_object_add(p, "snapshot", json_object_new_string(snap));
	return p;
}

static int call(struct cli_ctx *ctx, const char *method, json_object *p, json_object **ret)
{
	int r = cli_connect(ctx);

	if (r != EXIT_OK) {
		json_object_put(p);
		return r;
	}
	qv_rpc_set_notify_handler(ctx->conn, cli_progress_notify, NULL);
	r = cli_call(ctx, method, p, SNAPSHOT_TIMEOUT_MS, ret);
	cli_progress_finish();
	return r;
}

static int member_bool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

int verb_snapshot_create(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "memory", no_argument, NULL, 'm' }, {} };
	_cleanup_json_ json_object *res = NULL;
	json_object *p;
	bool memory = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "m", opts, NULL)) != -1) {
		if (c != 'm')
			return cli_usage_error(ctx, "invalid option");
		memory = true;
	}
	if (argc - optind != 2)
		return cli_usage_error(ctx, "expected VM and NAME");
	p = params(argv[optind], argv[optind + 1]);
	if (memory)
		json_object_object_add(p, "memory", json_object_new_boolean(true));
	if ((r = call(ctx, "snapshot.create", p, &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("Snapshot %s of %s created%s.\n", argv[optind + 1], argv[optind],
		       member_bool(res, "memory") ? " (with memory state)" : "");
	return EXIT_OK;
}

int verb_snapshot_revert(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *v;
	int r;

	if (argc != 3)
		return cli_usage_error(ctx, "expected VM and NAME");
	if ((r = call(ctx, "snapshot.revert", params(argv[1], argv[2]), &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("%s reverted to snapshot %s%s; it is %s.\n", argv[1], argv[2],
		       member_bool(res, "memory_restored") ? " (memory state restored)" : "",
		       json_object_object_get_ex(res, "vm_state", &v) ? json_object_get_string(v)
								      : "?");
	return EXIT_OK;
}

int verb_snapshot_delete(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (argc != 3)
		return cli_usage_error(ctx, "expected VM and NAME");
	if ((r = call(ctx, "snapshot.delete", params(argv[1], argv[2]), &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("Snapshot %s of %s deleted%s.\n", argv[2], argv[1],
		       member_bool(res, "merged") ? " (merged into the chain)" : "");
	return EXIT_OK;
}

/* Depth of s in the tree, for indentation. */
static int level(json_object *list, json_object *s)
{
	int n = 0;

	for (json_object *v; n < 64 && json_object_object_get_ex(s, "parent", &v) && v; n++) {
		json_object *next = NULL;
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *e = json_object_array_get_idx(list, i), *nm;
			if (json_object_object_get_ex(e, "name", &nm) &&
			    streq(json_object_get_string(nm), json_object_get_string(v)))
				next = e;
		}
		if (!next)
			break;
		s = next;
	}
	return n;
}

int verb_snapshot_list(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char *const headers[] = { "NAME", "PARENT", "CREATED", "DISKS", "MEMORY",
					       "SIZE", "STATE" };
	_cleanup_json_ json_object *res = NULL;
	json_object *list, *v;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected VM");
	if ((r = cli_call(ctx, "snapshot.list", params(argv[1], NULL), CLI_CALL_TIMEOUT_MS,
			  &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		return out_json(res, stdout), EXIT_OK;
	json_object_object_get_ex(res, "snapshots", &list);
	out_table *t = out_table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		json_object *s = json_object_array_get_idx(list, i), *disks;
		char name[160], when[40], ndisks[16], size[32], state[48];
		int lv = level(list, s);

		snprintf(name, sizeof(name), "%*s%s%s", 2 * lv, "",
			 json_object_object_get_ex(s, "name", &v) ? json_object_get_string(v) : "?",
			 member_bool(s, "current") ? " *" : "");
		out_clock(json_object_object_get_ex(s, "created_at", &v) ? json_object_get_int64(v) : 0,
			  when, sizeof(when));
		snprintf(ndisks, sizeof(ndisks), "%zu", json_object_object_get_ex(s, "disks", &disks) ?
			 json_object_array_length(disks) : 0);
		out_size(json_object_object_get_ex(s, "size", &v) ? (uint64_t)json_object_get_int64(v)
								   : 0, size, sizeof(size));
		snprintf(state, sizeof(state), "%s", json_object_object_get_ex(s, "state", &v) ?
			 json_object_get_string(v) : "?");
		json_object_object_get_ex(s, "parent", &v);
		const char *cells[] = { name, v ? json_object_get_string(v) : "-", when, ndisks,
					member_bool(s, "memory") ? "yes" : "no", size, state };
		out_table_add(t, cells);
	}
	out_table_print(t, stdout);
	out_table_free(t);
	json_object_object_get_ex(res, "current", &v);
	printf("current: %s (* marks it; the VM's disks run on top of it)\n",
	       v ? json_object_get_string(v) : "none");
	return EXIT_OK;
}
