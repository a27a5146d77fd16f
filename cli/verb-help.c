/* SPDX-License-Identifier: MIT */
#include "cli/verbs.h"

int verb_help(struct cli_ctx *ctx, int argc, char **argv)
{
	char name[128];

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
