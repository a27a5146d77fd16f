/* SPDX-License-Identifier: MIT */
#include <ctype.h>
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

/* One table cell of vm for column col ("name", "pid", "memory", any key). */
static const char *cell(json_object *vm, const char *col, char *buf, size_t size)
{
	json_object *v;

	if (streq(col, "pid")) {
		const char *pid = field(vm, "pid", buf, size);
		return streq(pid, "0") ? "-" : pid;
	}
	/* A VM the daemon is still re-attaching to after a restart. */
	if (streq(col, "state") && json_object_object_get_ex(vm, "attaching", &v) &&
	    json_object_get_boolean(v)) {
		char st[32];
		snprintf(st, sizeof(st), "%s", field(vm, "state", buf, size));
		snprintf(buf, size, "%s (attaching)", st);
		return buf;
	}
	if (streq(col, "memory")) {
		if (json_object_object_get_ex(vm, "memory_mib", &v) &&
		    json_object_is_type(v, json_type_int))
			return out_size((uint64_t)json_object_get_int64(v) << 20, buf, size);
		return "-";
	}
	return field(vm, col, buf, size);
}

#define LIST_MAX_COLS 16

/* -o: "wide", or a comma-separated list of columns (keys of vm.list's
 * entries; "memory" prints memory_mib as a size). */
static int parse_columns(const char *o, char *store, size_t size, const char **cols,
			 size_t *ret_n)
{
	size_t n = 0;

	if (!o)
		o = "name,state,pid,vcpus,memory";
	else if (streq(o, "wide"))
		o = "name,state,pid,vcpus,memory,accel,uuid";
	if (snprintf(store, size, "%s", o) >= (int)size)
		return -EINVAL;
	for (char *save = NULL, *c = strtok_r(store, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
		if (n == LIST_MAX_COLS || !*c)
			return -EINVAL;
		cols[n++] = c;
	}
	*ret_n = n;
	return n ? 0 : -EINVAL;
}

static void print_table(json_object *shown, const char **cols, size_t n)
{
	char headers[LIST_MAX_COLS][32];
	const char *hp[LIST_MAX_COLS];

	for (size_t c = 0; c < n; c++) {
		snprintf(headers[c], sizeof(headers[c]), "%s", cols[c]);
		for (char *p = headers[c]; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		hp[c] = headers[c];
	}
	out_table *t = out_table_new(n, hp);
	if (!t)
		return;
	for (size_t i = 0; i < json_object_array_length(shown); i++) {
		json_object *vm = json_object_array_get_idx(shown, i);
		char b[LIST_MAX_COLS][64];
		const char *row[LIST_MAX_COLS];
		for (size_t c = 0; c < n; c++)
			row[c] = cell(vm, cols[c], b[c], sizeof(b[c]));
		out_table_add(t, row);
	}
	out_table_print(t, stdout);
	out_table_free(t);
}

int verb_list(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' },
					      { "output", required_argument, NULL, 'o' },
					      {} };
	_cleanup_json_ json_object *res = NULL;
	json_object *vms, *v;
	const char *output = NULL, *cols[LIST_MAX_COLS];
	char store[256];
	bool all = false;
	size_t n_cols = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "ao:", opts, NULL)) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'o')
			output = optarg;
		else
			return cli_usage_error(ctx, "invalid option");
	}
	if (optind != argc)
		return cli_usage_error(ctx, "unexpected argument %s", argv[optind]);
	bool names_only = output && streq(output, "name");
	if (!names_only && parse_columns(output, store, sizeof(store), cols, &n_cols) < 0)
		return cli_usage_error(ctx, "-o takes wide, name or a list of columns like "
				       "name,state,accel");
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
	if (names_only) {
		char b[256];
		for (size_t i = 0; i < json_object_array_length(shown); i++)
			printf("%s\n", field(json_object_array_get_idx(shown, i), "name", b, sizeof(b)));
		return EXIT_OK;
	}
	print_table(shown, cols, n_cols);
	return EXIT_OK;
}
