/* SPDX-License-Identifier: MIT */
/* State store: open, schema migrations, transactions, shared helpers.
 * The record accessors live in state-records.c. */
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "daemon/state-internal.h"

/* Ordered migration steps: steps[i] brings the schema from version i to i+1.
 * Append only; never edit a released step. A slot for an `images` table is
 * simply the next step when storage needs it. */
static const char *const migration_steps[] = {
	/* 0 -> 1: core tables */
	"CREATE TABLE vms ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  spec_json TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE TABLE runtime ("
	"  vm TEXT PRIMARY KEY NOT NULL REFERENCES vms(name) ON DELETE CASCADE ON UPDATE CASCADE,"
	"  state TEXT NOT NULL,"
	"  pid INTEGER NOT NULL DEFAULT 0,"
	"  pid_start_time INTEGER NOT NULL DEFAULT 0,"
	"  qmp_path TEXT,"
	"  run_dir TEXT,"
	"  started_at INTEGER NOT NULL DEFAULT 0,"
	"  restarts INTEGER NOT NULL DEFAULT 0,"
	"  last_exit TEXT);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL,"
	"  vm TEXT,"
	"  type TEXT NOT NULL,"
	"  data_json TEXT);"
	"CREATE INDEX events_by_vm ON events(vm, id);"
	"CREATE TABLE networks ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  spec_json TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);",
	/* 1 -> 2: migration engine bookkeeping */
	"CREATE TABLE migrations ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  vm TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('source', 'destination')),"
	"  state TEXT NOT NULL,"
	"  peer TEXT,"
	"  token TEXT,"
	"  data_json TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE INDEX migrations_by_vm ON migrations(vm);",
	/* 2 -> 3: role "driver", the source daemon's record of a vm.migrate
	 * (phase, peer daemon URI, token); SQLite cannot alter a CHECK. */
	"CREATE TABLE migrations3 ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  vm TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('source', 'destination', 'driver')),"
	"  state TEXT NOT NULL,"
	"  peer TEXT,"
	"  token TEXT,"
	"  data_json TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"INSERT INTO migrations3 SELECT id, vm, role, state, peer, token, data_json, created_at,"
	"  updated_at FROM migrations;"
	"DROP TABLE migrations;"
	"ALTER TABLE migrations3 RENAME TO migrations;"
	"CREATE INDEX migrations_by_vm ON migrations(vm);",
	/* 3 -> 4: one uid per VM (daemon/vm-identity.c), freed with the VM */
	"CREATE TABLE vm_ids ("
	"  vm TEXT PRIMARY KEY NOT NULL REFERENCES vms(name) ON DELETE CASCADE ON UPDATE CASCADE,"
	"  uid INTEGER NOT NULL UNIQUE);",
	/* 4 -> 5: firewall security groups (daemon/fw.c, docs/firewall.md) */
	"CREATE TABLE fw_groups ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  spec_json TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);",
	/* 5 -> 6: a VM's snapshot tree, one JSON document (storage/snapshot.h) */
	"CREATE TABLE snapshot_trees ("
	"  vm TEXT PRIMARY KEY NOT NULL REFERENCES vms(name) ON DELETE CASCADE ON UPDATE CASCADE,"
	"  tree_json TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL);",
};

_Static_assert(ARRAY_SIZE(migration_steps) == QV_STATE_SCHEMA_VERSION,
	       "QV_STATE_SCHEMA_VERSION must equal the number of migration steps");

int64_t st_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int st_errno(int rc)
{
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return -ENOENT;
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		return -EEXIST;
	}
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG:
	case SQLITE_RANGE:
		return -EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

int st_prepare(qv_state *st, const char *sql, sqlite3_stmt **ret_stmt)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, ret_stmt, NULL);

	if (rc != SQLITE_OK) {
		log_debug("state: prepare failed: %s (%s)", sqlite3_errmsg(st->db), sql);
		return st_errno(rc);
	}
	return 0;
}

int st_bind_text(sqlite3_stmt *s, int idx, const char *text)
{
	int rc = text ? sqlite3_bind_text(s, idx, text, -1, SQLITE_TRANSIENT)
		      : sqlite3_bind_null(s, idx);
	return st_errno(rc);
}

int st_step_done(qv_state *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	log_debug("state: step failed: %s", sqlite3_errmsg(st->db));
	return st_errno(sqlite3_extended_errcode(st->db));
}

/* Prepare sql (one ?1 = key), run it and leave *ret_stmt on the first row:
 * 0, -ENOENT when there is none, or -errno. */
int st_select_by_key(qv_state *st, const char *sql, const char *key, sqlite3_stmt **ret_stmt)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r;

	r = st_prepare(st, sql, &s);
	if (r < 0)
		return r;
	st_bind_text(s, 1, key);
	r = sqlite3_step(s);
	if (r == SQLITE_DONE)
		return -ENOENT;
	if (r != SQLITE_ROW)
		return st_errno(sqlite3_extended_errcode(st->db));
	*ret_stmt = TAKE_PTR(s);
	return 0;
}

int st_column_strdup(sqlite3_stmt *s, int col, char **ret)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	if (!t) {
		*ret = NULL;
		return 0;
	}
	*ret = strdup((const char *)t);
	return *ret ? 0 : -ENOMEM;
}

static int exec_sql(qv_state *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_debug("state: '%s' failed: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return st_errno(sqlite3_extended_errcode(st->db));
	}
	return 0;
}

static int pragma_int(qv_state *st, const char *sql, int *ret)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	int r = st_prepare(st, sql, &s);

	if (r < 0)
		return r;
	if (sqlite3_step(s) != SQLITE_ROW)
		return st_errno(sqlite3_extended_errcode(st->db));
	*ret = sqlite3_column_int(s, 0);
	return 0;
}

int qv_state_schema_version(qv_state *st)
{
	int v = -1;
	int r = pragma_int(st, "PRAGMA user_version", &v);

	return r < 0 ? r : v;
}

static int refuse_newer(const qv_state *st, int v, struct qv_error *errp)
{
	return qv_error_set(errp, EPROTONOSUPPORT, QV_REASON_UNSUPPORTED,
			    "state database %s has schema version %d, newer than the %d this "
			    "qvisord supports; refusing to open it (upgrade qvisord)",
			    st->path, v, QV_STATE_SCHEMA_VERSION);
}

static int migrate(qv_state *st, int target, struct qv_error *errp)
{
	int v = qv_state_schema_version(st);

	if (v < 0)
		return qv_error_set(errp, v, NULL, "cannot read schema version of %s", st->path);
	if (v > QV_STATE_SCHEMA_VERSION)
		return refuse_newer(st, v, errp);

	while (v < target) {
		char sql[64];
		int r, now;

		r = exec_sql(st, "BEGIN IMMEDIATE");
		if (r < 0)
			return qv_error_set(errp, r, NULL, "cannot lock %s for migration", st->path);
		/* Another process may have migrated while we waited for the lock. */
		r = pragma_int(st, "PRAGMA user_version", &now);
		if (r >= 0 && now != v) {
			exec_sql(st, "ROLLBACK");
			if (now > QV_STATE_SCHEMA_VERSION)
				return refuse_newer(st, now, errp);
			v = now;
			continue;
		}
		if (r >= 0)
			r = exec_sql(st, migration_steps[v]);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (r >= 0)
			r = exec_sql(st, sql);
		if (r >= 0)
			r = exec_sql(st, "COMMIT");
		if (r < 0) {
			const char *m = sqlite3_errmsg(st->db);
			exec_sql(st, "ROLLBACK");
			return qv_error_set(errp, r, QV_REASON_INTERNAL,
					    "schema migration %d -> %d of %s failed: %s", v, v + 1,
					    st->path, m);
		}
		log_debug("state: migrated %s to schema version %d", st->path, v + 1);
		v++;
	}
	return 0;
}

/* The database, its WAL and shm: 0600, whatever an older version left. */
static void make_private(const char *db)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char p[4096];

	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		snprintf(p, sizeof(p), "%s%s", db, suffixes[i]);
		(void)chmod(p, 0600); /* absent files: nothing to do */
	}
}

int qv_state_open_version(const char *state_dir, int target_version, qv_state **ret_state,
			  struct qv_error *errp)
{
	_cleanup_state_ qv_state *st = NULL;
	char *mode = NULL;
	int r, rc;

	if (!state_dir || !*state_dir)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "no state directory");
	if (target_version < 0 || target_version > QV_STATE_SCHEMA_VERSION)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "bad schema version %d", target_version);
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, NULL, "cannot create state directory %s: %s",
				    state_dir, strerror(errno));

	st = calloc(1, sizeof(*st));
	if (!st || asprintf(&st->path, "%s/qvisor.db", state_dir) < 0) {
		if (st)
			st->path = NULL;
		return qv_error_set(errp, ENOMEM, NULL, "out of memory");
	}

	rc = sqlite3_open_v2(st->path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return qv_error_set(errp, st_errno(rc), NULL, "cannot open %s: %s", st->path,
				    st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 5000);

	/* WAL + FULL: a commit is on disk when COMMIT returns, and a killed process
	 * (or crashed host) leaves either the old or the new state. */
	{
		_cleanup_stmt_ sqlite3_stmt *s = NULL;
		r = st_prepare(st, "PRAGMA journal_mode=WAL", &s);
		if (r >= 0 && sqlite3_step(s) == SQLITE_ROW) {
			const char *m = (const char *)sqlite3_column_text(s, 0);
			mode = m ? strdup(m) : NULL;
		}
	}
	if (!mode || strcasecmp(mode, "wal") != 0) {
		free(mode);
		return qv_error_set(errp, EIO, QV_REASON_IO_ERROR,
				    "cannot put %s in WAL mode: %s", st->path,
				    sqlite3_errmsg(st->db));
	}
	free(mode);
	make_private(st->path);
	r = exec_sql(st, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
	if (r < 0)
		return qv_error_set(errp, r, NULL, "cannot configure %s: %s", st->path,
				    sqlite3_errmsg(st->db));

	r = migrate(st, target_version, errp);
	if (r < 0)
		return r;

	*ret_state = TAKE_PTR(st);
	return 0;
}

int qv_state_open(const char *state_dir, qv_state **ret_state, struct qv_error *errp)
{
	return qv_state_open_version(state_dir, QV_STATE_SCHEMA_VERSION, ret_state, errp);
}

qv_state *qv_state_close(qv_state *st)
{
	if (!st)
		return NULL;
	if (st->db)
		sqlite3_close_v2(st->db);
	free(st->path);
	free(st);
	return NULL;
}

void qv_state_closep(qv_state **st)
{
	*st = qv_state_close(*st);
}

int qv_state_check_integrity(qv_state *st, struct qv_error *errp)
{
	_cleanup_stmt_ sqlite3_stmt *s = NULL;
	const char *res;
	int r = st_prepare(st, "PRAGMA integrity_check", &s);

	if (r < 0)
		return qv_error_set(errp, r, NULL, "integrity check failed to run");
	if (sqlite3_step(s) != SQLITE_ROW)
		return qv_error_set(errp, EIO, QV_REASON_IO_ERROR, "integrity check failed: %s",
				    sqlite3_errmsg(st->db));
	res = (const char *)sqlite3_column_text(s, 0);
	if (!res || strcmp(res, "ok") != 0)
		return qv_error_set(errp, EUCLEAN, QV_REASON_IO_ERROR,
				    "state database %s is damaged: %s", st->path,
				    res ? res : "(null)");
	return 0;
}

int qv_state_transaction(qv_state *st, qv_state_txn_fn fn, void *userdata)
{
	char begin[48], commit[48], rollback[96];
	int r;

	if (!st || !fn)
		return -EINVAL;
	if (st->txn_depth == 0) {
		snprintf(begin, sizeof(begin), "BEGIN IMMEDIATE");
		snprintf(commit, sizeof(commit), "COMMIT");
		snprintf(rollback, sizeof(rollback), "ROLLBACK");
	} else {
		unsigned n = ++st->savepoint_seq;
		snprintf(begin, sizeof(begin), "SAVEPOINT qv_sp%u", n);
		snprintf(commit, sizeof(commit), "RELEASE qv_sp%u", n);
		snprintf(rollback, sizeof(rollback), "ROLLBACK TO qv_sp%u; RELEASE qv_sp%u", n, n);
	}

	r = exec_sql(st, begin);
	if (r < 0)
		return r;
	st->txn_depth++;
	r = fn(st, userdata);
	if (r >= 0) {
		int q = exec_sql(st, commit);
		if (q < 0)
			r = q;
	}
	if (r < 0)
		/* A failed COMMIT may already have rolled back; ignore a second error. */
		(void)exec_sql(st, rollback);
	st->txn_depth--;
	if (st->txn_depth == 0)
		st_sync_end(st);
	return r < 0 ? r : 0;
}

/* Migration records back the "one running copy" invariant: their commits
 * are fsynced (synchronous=FULL) even though the rest runs NORMAL. */
void st_sync_full(qv_state *st)
{
	/* SQLite refuses the change inside a transaction: there the
	 * connection's level applies (migration records are written outside). */
	if (!st->sync_full && st->txn_depth == 0 &&
	    exec_sql(st, "PRAGMA synchronous=FULL") >= 0)
		st->sync_full = true;
}

void st_sync_end(qv_state *st)
{
	if (st->sync_full && st->txn_depth == 0) {
		(void)exec_sql(st, "PRAGMA synchronous=NORMAL");
		st->sync_full = false;
	}
}
