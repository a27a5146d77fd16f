/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/cli.h"

/* The client side of one live migration (docs/migration.md), shared by
 * `qvisor migrate` and `qvisor drill run`: vm.info on src, prepare on dst,
 * perform on src (progress on stderr unless quiet), finish on dst, confirm
 * on src. On failure both sides are cancelled (source running, incoming
 * QEMU removed) and errp says which phase failed. *ret_stats gets perform's
 * statistics. */
struct cli_migrate_opts {
	long max_downtime_ms;
	long bandwidth_mibps;     /* 0 = no cap */
	long deadline_s;
	bool allow_postcopy;
	bool plain;
	bool keep_definition;
	bool quiet;
	const char *dest_address;
	const char *listen;
	/* drills: cancel through `fault` (another connection to the source)
	 * once perform has run cancel_after_ms */
	qv_rpc_conn *fault;
	uint64_t cancel_after_ms;
};

int cli_migrate_run(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
		    const struct cli_migrate_opts *o, json_object **ret_stats,
		    struct qv_error *errp);
