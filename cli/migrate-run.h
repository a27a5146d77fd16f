/* SPDX-License-Identifier: MIT */
#pragma once

#include "cli/verb-migrate.h"

/* One daemon-driven migration (docs/migration.md): vm.migrate on src
 * (the source daemon) to the daemon at `to`, which src dials itself. An
 * observer (may be NULL) gets every migrate.progress notification
 * (on_progress, with the ms since the call) and on_tick about every
 * tick_ms. extra_perform (borrowed, may be NULL) adds members to
 * migrate.perform's params. On failure *ret_phase (if non-NULL) names the
 * protocol phase that failed (static storage). */
struct cli_migrate_observer {
	void (*on_progress)(json_object *notification, uint64_t t_ms, void *userdata);
	void (*on_tick)(uint64_t t_ms, void *userdata);
	int tick_ms; /* default 100 */
	void *userdata;
};

int cli_migrate_run_observed(qv_rpc_conn *src, const char *to, const char *name,
			     const struct cli_migrate_opts *o, json_object *extra_perform,
			     const struct cli_migrate_observer *obs, const char **ret_phase,
			     json_object **ret_stats, struct qv_error *errp);
