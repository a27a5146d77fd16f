/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/cli.h"

/* cli/verb-libvirt.c: `define --from-libvirt FILE.xml [--lossy] [--dry-run]`
 * (called from verb_define) and `dump-libvirt VM`. */
int cli_define_libvirt(struct cli_ctx *ctx, const char *path, bool lossy, bool dry_run);
int verb_dump_libvirt(struct cli_ctx *ctx, int argc, char **argv);

/* cli/verb-image-foreign.c */
int verb_image_import_foreign(struct cli_ctx *ctx, int argc, char **argv);
int verb_image_import_ova(struct cli_ctx *ctx, int argc, char **argv);
