/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <inttypes.h>

#include "cli/output.h"
#include "cli/verbs.h"

static const char *field(json_object *vm, const char *key, char *buf, size_t size)
{
	json_object *v;
	if (!json_object_object_get_ex(vm, key, &v))
		return "-";
	return out_scalar(v, buf, size);
}

int verb_list(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' }, {} };
	_cleanup_json_ json_object *res = NULL;
	json_object *vms, *v;
	bool all = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "a", opts, NULL)) != -1) {
		if (c != 'a')
			return cli_usage_error(ctx, "invalid option");
		all = true;
	}
	if (optind != argc)
		return cli_usage_error(ctx, "unexpected argument %s", argv[optind]);
	if ((r = cli_call(ctx, "vm.list", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res)) !=
	    EXIT_OK)
		return r;
	if (!json_object_object_get_ex(res, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array)) {
		fprintf(stderr, "qvisor: list: malformed vm.list result\n");
		return EXIT_FAILED;
	}
	/* without --all: only active VMs, in JSON too */
	_cleanup_json_ json_object *shown = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *state = json_object_object_get_ex(vm, "state", &v)
					    ? json_object_get_string(v) : NULL;
		if (all || cli_state_is_active(state))
			json_object_array_add(shown, json_object_get(vm));
	}
	if (ctx->json) {
		json_object_object_add(res, "vms", json_object_get(shown));
		out_json(res, stdout);
		return EXIT_OK;
	}
	out_table *t = out_table_new(5, (const char *[]){ "NAME", "STATE", "PID", "VCPUS", "MEMORY" });
	if (!t)
		return EXIT_FAILED;
	for (size_t i = 0; i < json_object_array_length(shown); i++) {
		json_object *vm = json_object_array_get_idx(shown, i);
		char b[5][64];
		const char *pid = field(vm, "pid", b[0], sizeof(b[0]));
		const char *mem = "-";
		if (streq(pid, "0"))
			pid = "-";
		if (json_object_object_get_ex(vm, "memory_mib", &v) &&
		    json_object_is_type(v, json_type_int))
			mem = out_size((uint64_t)json_object_get_int64(v) << 20, b[1], sizeof(b[1]));
		out_table_add(t, (const char *[]){ field(vm, "name", b[2], sizeof(b[2])),
						  field(vm, "state", b[3], sizeof(b[3])), pid,
						  field(vm, "vcpus", b[4], sizeof(b[4])), mem });
	}
	out_table_print(t, stdout);
	out_table_free(t);
	return EXIT_OK;
}
