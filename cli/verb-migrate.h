/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/cli.h"

/* Options of one client-coordinated migration (cli/migrate-run.h runs it). */
struct cli_migrate_opts {
	long max_downtime_ms;
	long bandwidth_mibps;     /* 0 = no cap */
	long deadline_s;
	bool allow_postcopy;
	bool plain;
	bool keep_definition;
	bool quiet;
	bool copy_storage;        /* mirror non-shared disks over NBD */
	const char *dest_address;
	const char *listen;
	/* the destination was reached over tls://HOST: its migration stream
	 * certificate is checked for HOST too (NULL: the stream's address) */
	const char *dest_tls_host;
	bool insecure;            /* plain-TCP stream (both daemons need --insecure) */
};

/* migrate.status's answer as one line: "VM: ROLE migration STATE (step
 * STEP, N QMP steps done), driver phase P, peer URI"; returns buf. */
const char *cli_migrate_status_line(json_object *res, char *buf, size_t size);
