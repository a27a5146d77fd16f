/* SPDX-License-Identifier: MIT */
#include "cli/output.h"
#include "cli/verbs.h"

/* --json help: the verb table, for scripts and shell completion. */
static int print_verbs_json(void)
{
	_cleanup_json_ json_object *res = json_object_new_object();
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < cli_n_verbs; i++) {
		json_object *v = json_object_new_object();
		json_object_object_add(v, "name", json_object_new_string(cli_verbs[i].name));
		json_object_object_add(v, "usage", json_object_new_string(cli_verbs[i].usage));
		json_object_object_add(v, "summary", json_object_new_string(cli_verbs[i].summary));
		json_object_array_add(arr, v);
	}
	json_object_object_add(res, "verbs", arr);
	out_json(res, stdout);
	return EXIT_OK;
}

int verb_help(struct cli_ctx *ctx, int argc, char **argv)
{
	char name[128];

	if (argc == 1 && ctx->json)
		return print_verbs_json();
	if (argc == 1) {
		cli_print_main_help(stdout);
		return EXIT_OK;
	}
	if (argc > 3)
		return cli_usage_error(ctx, "expected at most one verb");
	snprintf(name, sizeof(name), "%s%s%s", argv[1], argc == 3 ? " " : "", argc == 3 ? argv[2] : "");
	const struct cli_verb *v = cli_find_verb(name);
	if (v) {
		cli_print_verb_help(v, stdout);
		return EXIT_OK;
	}
	/* a group: "help image" */
	bool any = false;
	size_t l = strlen(name);
	for (size_t i = 0; i < cli_n_verbs; i++)
		if (strncmp(cli_verbs[i].name, name, l) == 0 && cli_verbs[i].name[l] == ' ')
			any = true;
	if (any) {
		cli_print_group_help(name, stdout);
		return EXIT_OK;
	}
	return cli_usage_error(ctx, "unknown verb \"%s\"", name);
}
