/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/cli.h"

/* One function per verb, each in cli/verb-<name>.c. */
#define VERB(n) int verb_##n(struct cli_ctx *ctx, int argc, char **argv)
VERB(define);
VERB(undefine);
VERB(list);
VERB(info);
VERB(start);
VERB(stop);
VERB(reboot);
VERB(pause);
VERB(balloon);
VERB(resume);
VERB(console);
VERB(events);
VERB(host_info);
VERB(host_check);
VERB(net_define);
VERB(net_undefine);
VERB(net_list);
VERB(net_info);
VERB(image_create);
VERB(image_list);
VERB(image_delete);
VERB(image_clone);
VERB(image_import);
VERB(image_resize);
VERB(image_rekey);
VERB(rpc);
VERB(rpc_stdio);
VERB(help);
VERB(migrate);
VERB(migrate_cancel);
VERB(drill_run);
VERB(sim);
VERB(pki_init);
VERB(pki_issue);
VERB(fw_show);
VERB(fw_group);
VERB(cluster_hosts);
VERB(cluster_vms);
VERB(fw_set);
VERB(snapshot_create);
VERB(snapshot_list);
VERB(snapshot_revert);
VERB(snapshot_delete);
VERB(backup);
VERB(cluster_plan);
VERB(cluster_mode);
VERB(host_cordon);
VERB(host_resume);
VERB(host_evacuate);
VERB(move);
VERB(migrate_status);
#undef VERB

void cli_print_main_help(FILE *f);
void cli_print_group_help(const char *group, FILE *f);
