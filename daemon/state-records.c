/* SPDX-License-Identifier: MIT */
/* State store accessors: vms, runtime, events, networks, migrations.
 * Every statement is prepared and bound; no SQL is built from user data. */
#include "daemon/state-internal.h"

static int check_args(const char *a, const char *b)
{
	return a && b ? 0 : -EINVAL;
}

/* Run a prepared+bound write; -ENOENT if it changed no row and want_row. */
static int write_stmt(qv_state *st, sqlite3_stmt *s, bool want_row)
{
	int r = st_step_done(st, s);

	if (r < 0)
		return r;
	if (want_row && sqlite3_changes(st->db) == 0)
		return -ENOENT;
	return 0;
}

/* --- vms ----------------------------------------------------------------- */

int qv_state_vm_put(qv_state *st, const char *name, const char *uuid, const char *spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int64_t now = st_now_ms();
	int r;

	if (check_args(name, uuid) < 0 || !spec_json)
		return -EINVAL;
	r = st_prepare(st, "INSERT INTO vms (name, uuid, spec_json, created_at, updated_at) "
			   "VALUES (?1, ?2, ?3, ?4, ?4)", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	st_bind_text(s, 2, uuid);
	st_bind_text(s, 3, spec_json);
	sqlite3_bind_int64(s, 4, now);
	return write_stmt(st, s, false);
}

int qv_state_vm_update_spec(qv_state *st, const char *name, const char *spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (check_args(name, spec_json) < 0)
		return -EINVAL;
	r = st_prepare(st, "UPDATE vms SET spec_json = ?2, updated_at = ?3 WHERE name = ?1", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	st_bind_text(s, 2, spec_json);
	sqlite3_bind_int64(s, 3, st_now_ms());
	return write_stmt(st, s, true);
}

static int delete_by_key(qv_state *st, const char *sql, const char *key)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!key)
		return -EINVAL;
	r = st_prepare(st, sql, &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, key);
	return write_stmt(st, s, true);
}

int qv_state_vm_delete(qv_state *st, const char *name)
{
	return delete_by_key(st, "DELETE FROM vms WHERE name = ?1", name);
}

int qv_state_vm_get(qv_state *st, const char *name, char **ret_uuid, char **ret_spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	_cleanup_free_ char *uuid = NULL, *spec = NULL;
	int r;

	if (!name)
		return -EINVAL;
	r = st_select_by_key(st, "SELECT uuid, spec_json FROM vms WHERE name = ?1", name, &s);
	if (r < 0)
		return r;
	if ((ret_uuid && st_column_strdup(s, 0, &uuid) < 0) ||
	    (ret_spec_json && st_column_strdup(s, 1, &spec) < 0))
		return -ENOMEM;
	if (ret_uuid)
		*ret_uuid = TAKE_PTR(uuid);
	if (ret_spec_json)
		*ret_spec_json = TAKE_PTR(spec);
	return 0;
}

static const char *col_text(sqlite3_stmt *s, int col)
{
	return (const char *)sqlite3_column_text(s, col);
}

/* Step through rows, calling row(s, userdata) on each. */
static int for_each_row(qv_state *st, sqlite3_stmt *s,
			int (*row)(sqlite3_stmt *s, void *fn, void *userdata), void *fn,
			void *userdata)
{
	for (;;) {
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return st_errno(sqlite3_extended_errcode(st->db));
		int r = row(s, fn, userdata);
		if (r < 0)
			return r;
	}
}

static int vm_row(sqlite3_stmt *s, void *fn, void *userdata)
{
	struct qv_vm_record rec = {
		.name = col_text(s, 0),
		.uuid = col_text(s, 1),
		.spec_json = col_text(s, 2),
		.created_at = sqlite3_column_int64(s, 3),
		.updated_at = sqlite3_column_int64(s, 4),
	};
	return ((qv_state_vm_fn)fn)(&rec, userdata);
}

int qv_state_vm_list(qv_state *st, qv_state_vm_fn fn, void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!fn)
		return -EINVAL;
	r = st_prepare(st, "SELECT name, uuid, spec_json, created_at, updated_at FROM vms "
			   "ORDER BY name", &s);
	if (r < 0)
		return r;
	return for_each_row(st, s, vm_row, (void *)fn, userdata);
}

/* --- runtime ------------------------------------------------------------- */

void qv_runtime_record_done(struct qv_runtime_record *rec)
{
	if (!rec)
		return;
	free(rec->state);
	free(rec->qmp_path);
	free(rec->run_dir);
	free(rec->last_exit);
	memset(rec, 0, sizeof(*rec));
}

int qv_state_runtime_set(qv_state *st, const char *name, const struct qv_runtime_record *rec)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!name || !rec || !rec->state)
		return -EINVAL;
	r = st_prepare(st, "INSERT OR REPLACE INTO runtime (vm, state, pid, pid_start_time, "
			   "qmp_path, run_dir, started_at, restarts, last_exit) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	st_bind_text(s, 2, rec->state);
	sqlite3_bind_int64(s, 3, rec->pid);
	sqlite3_bind_int64(s, 4, (int64_t)rec->pid_start_time);
	st_bind_text(s, 5, rec->qmp_path);
	st_bind_text(s, 6, rec->run_dir);
	sqlite3_bind_int64(s, 7, rec->started_at);
	sqlite3_bind_int64(s, 8, rec->restarts);
	st_bind_text(s, 9, rec->last_exit);
	return write_stmt(st, s, false);
}

#define RUNTIME_COLS "state, pid, pid_start_time, qmp_path, run_dir, started_at, restarts, last_exit"

/* Fill *rec with caller-owned copies of columns first..first+7. */
static int runtime_from_row(sqlite3_stmt *s, int first, struct qv_runtime_record *rec)
{
	struct qv_runtime_record t = {
		.pid = sqlite3_column_int64(s, first + 1),
		.pid_start_time = (uint64_t)sqlite3_column_int64(s, first + 2),
		.started_at = sqlite3_column_int64(s, first + 5),
		.restarts = sqlite3_column_int64(s, first + 6),
	};
	if (st_column_strdup(s, first, &t.state) < 0 ||
	    st_column_strdup(s, first + 3, &t.qmp_path) < 0 ||
	    st_column_strdup(s, first + 4, &t.run_dir) < 0 ||
	    st_column_strdup(s, first + 7, &t.last_exit) < 0) {
		qv_runtime_record_done(&t);
		return -ENOMEM;
	}
	*rec = t;
	return 0;
}

int qv_state_runtime_get(qv_state *st, const char *name, struct qv_runtime_record *ret)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!name || !ret)
		return -EINVAL;
	r = st_select_by_key(st, "SELECT " RUNTIME_COLS " FROM runtime WHERE vm = ?1", name, &s);
	if (r < 0)
		return r;
	return runtime_from_row(s, 0, ret);
}

int qv_state_runtime_clear(qv_state *st, const char *name)
{
	return delete_by_key(st, "DELETE FROM runtime WHERE vm = ?1", name);
}

static int runtime_row(sqlite3_stmt *s, void *fn, void *userdata)
{
	struct qv_runtime_record rec;
	int r = runtime_from_row(s, 1, &rec);

	if (r < 0)
		return r;
	r = ((qv_state_runtime_fn)fn)(col_text(s, 0), &rec, userdata);
	qv_runtime_record_done(&rec);
	return r;
}

int qv_state_runtime_list(qv_state *st, qv_state_runtime_fn fn, void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!fn)
		return -EINVAL;
	r = st_prepare(st, "SELECT vm, " RUNTIME_COLS " FROM runtime ORDER BY vm", &s);
	if (r < 0)
		return r;
	return for_each_row(st, s, runtime_row, (void *)fn, userdata);
}

/* --- events -------------------------------------------------------------- */

int qv_state_event_append(qv_state *st, const char *vm, const char *type, const char *data_json,
			  int64_t *ret_id)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!type)
		return -EINVAL;
	r = st_prepare(st, "INSERT INTO events (time, vm, type, data_json) "
			   "VALUES (?1, ?2, ?3, ?4)", &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, st_now_ms());
	st_bind_text(s, 2, vm);
	st_bind_text(s, 3, type);
	st_bind_text(s, 4, data_json);
	r = write_stmt(st, s, false);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

static int event_row(sqlite3_stmt *s, void *fn, void *userdata)
{
	struct qv_event_record ev = {
		.id = sqlite3_column_int64(s, 0),
		.time = sqlite3_column_int64(s, 1),
		.vm = col_text(s, 2),
		.type = col_text(s, 3),
		.data_json = col_text(s, 4),
	};
	return ((qv_state_event_fn)fn)(&ev, userdata);
}

int qv_state_events_since(qv_state *st, int64_t after_id, unsigned limit, qv_state_event_fn fn,
			  void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!fn)
		return -EINVAL;
	r = st_prepare(st, "SELECT id, time, vm, type, data_json FROM events WHERE id > ?1 "
			   "ORDER BY id LIMIT ?2", &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int64(s, 2, limit ? (int64_t)limit : -1);
	return for_each_row(st, s, event_row, (void *)fn, userdata);
}

int qv_state_events_prune(qv_state *st, unsigned keep, unsigned *ret_deleted)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	r = st_prepare(st, "DELETE FROM events WHERE id <= "
			   "(SELECT COALESCE(MAX(id), 0) FROM events) - ?1", &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, keep);
	r = write_stmt(st, s, false);
	if (r < 0)
		return r;
	if (ret_deleted)
		*ret_deleted = (unsigned)sqlite3_changes(st->db);
	return 0;
}

/* --- networks ------------------------------------------------------------ */

int qv_state_net_put(qv_state *st, const char *name, const char *spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (check_args(name, spec_json) < 0)
		return -EINVAL;
	r = st_prepare(st, "INSERT INTO networks (name, spec_json, created_at, updated_at) "
			   "VALUES (?1, ?2, ?3, ?3)", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	st_bind_text(s, 2, spec_json);
	sqlite3_bind_int64(s, 3, st_now_ms());
	return write_stmt(st, s, false);
}

int qv_state_net_update(qv_state *st, const char *name, const char *spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (check_args(name, spec_json) < 0)
		return -EINVAL;
	r = st_prepare(st, "UPDATE networks SET spec_json = ?2, updated_at = ?3 WHERE name = ?1",
		       &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	st_bind_text(s, 2, spec_json);
	sqlite3_bind_int64(s, 3, st_now_ms());
	return write_stmt(st, s, true);
}

int qv_state_net_get(qv_state *st, const char *name, char **ret_spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!name || !ret_spec_json)
		return -EINVAL;
	r = st_select_by_key(st, "SELECT spec_json FROM networks WHERE name = ?1", name, &s);
	if (r < 0)
		return r;
	return st_column_strdup(s, 0, ret_spec_json);
}

int qv_state_net_delete(qv_state *st, const char *name)
{
	return delete_by_key(st, "DELETE FROM networks WHERE name = ?1", name);
}

static int net_row(sqlite3_stmt *s, void *fn, void *userdata)
{
	return ((qv_state_net_fn)fn)(col_text(s, 0), col_text(s, 1), userdata);
}

int qv_state_net_list(qv_state *st, qv_state_net_fn fn, void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!fn)
		return -EINVAL;
	r = st_prepare(st, "SELECT name, spec_json FROM networks ORDER BY name", &s);
	if (r < 0)
		return r;
	return for_each_row(st, s, net_row, (void *)fn, userdata);
}

/* --- migrations ---------------------------------------------------------- */

void qv_migration_record_done(struct qv_migration_record *rec)
{
	if (!rec)
		return;
	free(rec->id);
	free(rec->vm);
	free(rec->role);
	free(rec->state);
	free(rec->peer);
	free(rec->token);
	free(rec->data_json);
	memset(rec, 0, sizeof(*rec));
}

int qv_state_migration_put(qv_state *st, const struct qv_migration_record *rec)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!rec || !rec->id || !rec->vm || !rec->role || !rec->state)
		return -EINVAL;
	r = st_prepare(st, "INSERT INTO migrations (id, vm, role, state, peer, token, data_json, "
			   "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) "
			   "ON CONFLICT(id) DO UPDATE SET vm = ?2, role = ?3, state = ?4, "
			   "peer = ?5, token = ?6, data_json = ?7, updated_at = ?8", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, rec->id);
	st_bind_text(s, 2, rec->vm);
	st_bind_text(s, 3, rec->role);
	st_bind_text(s, 4, rec->state);
	st_bind_text(s, 5, rec->peer);
	st_bind_text(s, 6, rec->token);
	st_bind_text(s, 7, rec->data_json);
	sqlite3_bind_int64(s, 8, st_now_ms());
	st_sync_full(st);
	r = write_stmt(st, s, false);
	st_sync_end(st);
	return r;
}

#define MIGRATION_COLS "id, vm, role, state, peer, token, data_json"

static int migration_from_row(sqlite3_stmt *s, struct qv_migration_record *rec)
{
	struct qv_migration_record t = {};
	char **f[] = { &t.id, &t.vm, &t.role, &t.state, &t.peer, &t.token, &t.data_json };

	for (size_t i = 0; i < ARRAY_SIZE(f); i++)
		if (st_column_strdup(s, (int)i, f[i]) < 0) {
			qv_migration_record_done(&t);
			return -ENOMEM;
		}
	*rec = t;
	return 0;
}

int qv_state_migration_get(qv_state *st, const char *id, struct qv_migration_record *ret)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!id || !ret)
		return -EINVAL;
	r = st_select_by_key(st, "SELECT " MIGRATION_COLS " FROM migrations WHERE id = ?1", id, &s);
	if (r < 0)
		return r;
	return migration_from_row(s, ret);
}

int qv_state_migration_delete(qv_state *st, const char *id)
{
	int r;

	st_sync_full(st);
	r = delete_by_key(st, "DELETE FROM migrations WHERE id = ?1", id);
	st_sync_end(st);
	return r;
}

static int migration_row(sqlite3_stmt *s, void *fn, void *userdata)
{
	struct qv_migration_record rec;
	int r = migration_from_row(s, &rec);

	if (r < 0)
		return r;
	r = ((qv_state_migration_fn)fn)(&rec, userdata);
	qv_migration_record_done(&rec);
	return r;
}

int qv_state_migration_list(qv_state *st, qv_state_migration_fn fn, void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (!fn)
		return -EINVAL;
	r = st_prepare(st, "SELECT " MIGRATION_COLS " FROM migrations ORDER BY id", &s);
	if (r < 0)
		return r;
	return for_each_row(st, s, migration_row, (void *)fn, userdata);
}

/* --- firewall security groups (schema 5) --------------------------------- */

int qv_state_fw_group_put(qv_state *st, const char *name, const char *spec_json)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	if (check_args(name, spec_json) < 0)
		return -EINVAL;
	r = st_prepare(st, "INSERT INTO fw_groups (name, spec_json, created_at, updated_at) "
			   "VALUES (?1, ?2, ?3, ?3) ON CONFLICT(name) DO UPDATE SET "
			   "spec_json = excluded.spec_json, updated_at = excluded.updated_at", &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, name);
	st_bind_text(s, 2, spec_json);
	sqlite3_bind_int64(s, 3, st_now_ms());
	return write_stmt(st, s, false);
}

int qv_state_fw_group_delete(qv_state *st, const char *name)
{
	return delete_by_key(st, "DELETE FROM fw_groups WHERE name = ?1", name);
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
	return for_each_row(st, s, net_row, (void *)fn, userdata); /* same row shape */
}
