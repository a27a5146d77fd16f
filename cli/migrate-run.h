/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/verb-migrate.h"

/* One client-coordinated migration (docs/migration.md): vm.info and
 * migrate.plan on src, prepare on dst, perform on src, finish on dst,
 * confirm on src; any failure cancels both sides (the source keeps running)
 * and errp names the phase. An observer (may be NULL) sees every
 * migrate.progress notification
 * is handed to on_progress with the milliseconds since perform was sent,
 * and on_tick is also called about every tick_ms while perform waits, even
 * when no notification arrives. extra_perform (borrowed, may be NULL) adds
 * members to migrate.perform's params (e.g. "copy_storage").
 * On failure *ret_phase (if non-NULL) names the phase that failed. */
struct cli_migrate_observer {
	void (*on_progress)(json_object *notification, uint64_t t_ms, void *userdata);
	void (*on_tick)(uint64_t t_ms, void *userdata);
	int tick_ms; /* default 100 */
	void *userdata;
};

int cli_migrate_run_observed(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
			     const struct cli_migrate_opts *o, json_object *extra_perform,
			     const struct cli_migrate_observer *obs, const char **ret_phase,
			     json_object **ret_stats, struct qv_error *errp);
