/* SPDX-License-Identifier: MIT */
#include "cli/verbs.h"
#include "cli/vm-verbs.h"

int verb_pause(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_simple_vm_verb(ctx, argc, argv, "vm.pause", "paused");
}
