/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/cli.h"

/* Shared by the simple per-VM verbs (undefine, reboot, pause, resume):
 * `method` {name} on each NAME, pipelined; prints "NAME: <state or done>". */
int cli_simple_vm_verb(struct cli_ctx *ctx, int argc, char **argv, const char *method,
		       const char *done_word);
