/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/cli.h"

/* cli/verb-nic.c: NIC hotplug on a running VM (vm.nic-add / vm.nic-remove). */
int verb_nic_add(struct cli_ctx *ctx, int argc, char **argv);
int verb_nic_remove(struct cli_ctx *ctx, int argc, char **argv);
