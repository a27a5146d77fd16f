/* SPDX-License-Identifier: MIT */
#include "cli/vm-verbs.h"

static json_object *name_params(const char *name, void *ud)
{
	return cli_params_name(name);
}

static void print_state(const char *name, json_object *res, void *ud)
{
	json_object *v;
	const char *state = ud;

	if (json_object_object_get_ex(res, "state", &v) && json_object_is_type(v, json_type_string))
		state = json_object_get_string(v);
	printf("%s: %s\n", name, state);
}

int cli_simple_vm_verb(struct cli_ctx *ctx, int argc, char **argv, const char *method,
		       const char *done_word)
{
	struct cli_batch b = {
		.method = method,
		.timeout_ms = CLI_CALL_TIMEOUT_MS,
		.params = name_params,
		.print = print_state,
		.userdata = (void *)done_word,
	};

	if (argc < 2)
		return cli_usage_error(ctx, "expected at least one VM name");
	for (int i = 1; i < argc; i++)
		if (argv[i][0] == '-')
			return cli_usage_error(ctx, "unknown option %s", argv[i]);
	return cli_batch_run(ctx, &b, argv + 1, (size_t)argc - 1);
}
