/* SPDX-License-Identifier: MIT */
/* State store accessors added for isolation: per-VM uids, event trimming. */
#include "daemon/state-internal.h"

int qv_state_events_trim(qv_state *st, int64_t min_time, unsigned keep, unsigned *ret_deleted)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	unsigned pruned = 0;
	int r;

	r = st_prepare(st, "DELETE FROM events WHERE time < ?1", &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, min_time);
	r = st_step_done(st, s);
	if (r < 0)
		return r;
	unsigned aged = (unsigned)sqlite3_changes(st->db);
	r = qv_state_events_prune(st, keep, &pruned);
	if (r < 0)
		return r;
	if (ret_deleted)
		*ret_deleted = aged + pruned;
	return 0;
}

int qv_state_vm_uid_get(qv_state *st, const char *vm, uint32_t *ret_uid)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r = st_select_by_key(st, "SELECT uid FROM vm_ids WHERE vm = ?1", vm, &s);

	if (r < 0)
		return r;
	*ret_uid = (uint32_t)sqlite3_column_int64(s, 0);
	return 0;
}

int qv_state_vm_uid_set(qv_state *st, const char *vm, uint32_t uid)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	r = st_prepare(st, "INSERT INTO vm_ids (vm, uid) VALUES (?1, ?2) "
			   "ON CONFLICT(vm) DO UPDATE SET uid = excluded.uid", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, vm);
	sqlite3_bind_int64(s, 2, uid);
	return st_step_done(st, s);
}

int qv_state_vm_uid_list(qv_state *st, qv_state_uid_fn fn, void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r, rc;

	r = st_prepare(st, "SELECT vm, uid FROM vm_ids ORDER BY uid", &s);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		r = fn((const char *)sqlite3_column_text(s, 0), (uint32_t)sqlite3_column_int64(s, 1),
		       userdata);
		if (r < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : st_errno(rc);
}
