/* SPDX-License-Identifier: MIT */
/* State store: firewall security groups (table fw_groups, schema 5). */
#include "daemon/state-internal.h"

int qv_state_fw_group_put(qv_state *st, const char *name, const char *spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!name || !spec_json)
		return -EINVAL;
	r = st_prepare(st, "INSERT INTO fw_groups (name, spec_json, created_at, updated_at) "
			   "VALUES (?1, ?2, ?3, ?3) ON CONFLICT(name) DO UPDATE SET "
			   "spec_json = excluded.spec_json, updated_at = excluded.updated_at", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	st_bind_text(s, 2, spec_json);
	sqlite3_bind_int64(s, 3, st_now_ms());
	return st_step_done(st, s);
}

int qv_state_fw_group_delete(qv_state *st, const char *name)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!name)
		return -EINVAL;
	r = st_prepare(st, "DELETE FROM fw_groups WHERE name = ?1", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	r = st_step_done(st, s);
	if (r < 0)
		return r;
	return sqlite3_changes(st->db) ? 0 : -ENOENT;
}

int qv_state_fw_group_list(qv_state *st, qv_state_fw_group_fn fn, void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!fn)
		return -EINVAL;
	r = st_prepare(st, "SELECT name, spec_json FROM fw_groups ORDER BY name", &s);
	if (r < 0)
		return r;
	for (;;) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return st_errno(sqlite3_extended_errcode(st->db));
		r = fn((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
		       userdata);
		if (r < 0)
			return r;
	}
}
