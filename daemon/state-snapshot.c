/* SPDX-License-Identifier: MIT */
/* Snapshot trees in the state store. */
#include "daemon/state-internal.h"
#include "daemon/state-snapshot.h"

int qv_state_snap_tree_get(qv_state *st, const char *vm, char **ret_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!vm)
		return -EINVAL;
	r = st_select_by_key(st, "SELECT tree_json FROM snapshot_trees WHERE vm = ?1", vm, &s);
	if (r < 0)
		return r;
	r = st_column_strdup(s, 0, ret_json);
	return r < 0 ? r : (*ret_json ? 0 : -ENOENT);
}

int qv_state_snap_tree_put(qv_state *st, const char *vm, const char *tree_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!vm || !tree_json)
		return -EINVAL;
	r = st_prepare(st, "INSERT OR REPLACE INTO snapshot_trees (vm, tree_json, updated_at) "
			   "VALUES (?1, ?2, ?3)", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, vm);
	st_bind_text(s, 2, tree_json);
	sqlite3_bind_int64(s, 3, st_now_ms());
	return st_step_done(st, s);
}
