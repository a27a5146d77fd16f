/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "common/error.h"

/* The host state store: one SQLite database, <state_dir>/qvisor.db.
 *
 * Durability: WAL journal, synchronous=NORMAL (a killed process never loses
 * a committed transaction; a power cut may lose the last few), except that
 * a commit that writes a migration record runs synchronous=FULL (on disk
 * when it returns: the "exactly one running copy" invariant must survive a
 * power cut). Foreign keys on, busy_timeout. Files are 0600.
 * Every public mutator is one statement (atomic by itself); several changes
 * that must land together go through qv_state_transaction(). A SIGKILL at any
 * instant leaves either the old or the new state, never a half-written one.
 *
 * Schema: PRAGMA user_version holds the schema version; an ordered list of
 * migration steps brings an older database up to date, each step in its own
 * transaction. A database newer than this code is refused (-EPROTONOSUPPORT,
 * reason "unsupported").
 *
 * Strings passed in are copied by SQLite; strings handed back through ret_*
 * are caller-owned copies (free()); strings inside records passed to list
 * callbacks are valid only during the callback.
 *
 * Not thread-safe: use one qv_state from one thread (the daemon loop). */

typedef struct qv_state qv_state;

/* Schema version this code writes. */
#define QV_STATE_SCHEMA_VERSION 6

int qv_state_open(const char *state_dir, qv_state **ret_state, struct qv_error *errp);
/* For tests and tooling: migrate only up to target_version (<= latest). */
int qv_state_open_version(const char *state_dir, int target_version, qv_state **ret_state,
			  struct qv_error *errp);
qv_state *qv_state_close(qv_state *st);
void qv_state_closep(qv_state **st);
#define _cleanup_state_ _cleanup_(qv_state_closep)

/* PRAGMA user_version of the open database. */
int qv_state_schema_version(qv_state *st);
/* PRAGMA integrity_check == "ok": 0, else -EUCLEAN (errp says what). */
int qv_state_check_integrity(qv_state *st, struct qv_error *errp);

/* Run fn inside one transaction (BEGIN IMMEDIATE ... COMMIT). fn returning
 * < 0 rolls everything back and that value is returned. Nests: an inner call
 * becomes a SAVEPOINT. */
typedef int (*qv_state_txn_fn)(qv_state *st, void *userdata);
int qv_state_transaction(qv_state *st, qv_state_txn_fn fn, void *userdata);

/* --- VM definitions ------------------------------------------------------ */

struct qv_vm_record {
	const char *name;
	const char *uuid;
	const char *spec_json;
	int64_t created_at; /* unix ms */
	int64_t updated_at; /* unix ms */
};

/* -EEXIST if the name or the uuid is already defined. */
int qv_state_vm_put(qv_state *st, const char *name, const char *uuid, const char *spec_json);
/* -ENOENT if not defined. */
int qv_state_vm_update_spec(qv_state *st, const char *name, const char *spec_json);
/* -ENOENT if not defined. Deletes the runtime record too (cascade). */
int qv_state_vm_delete(qv_state *st, const char *name);
/* -ENOENT if not defined. Either ret may be NULL. */
int qv_state_vm_get(qv_state *st, const char *name, char **ret_uuid, char **ret_spec_json);
/* Ordered by name. A callback returning < 0 stops the walk; that value is
 * returned. */
typedef int (*qv_state_vm_fn)(const struct qv_vm_record *rec, void *userdata);
int qv_state_vm_list(qv_state *st, qv_state_vm_fn fn, void *userdata);

/* --- runtime records (one per running/known VM process) ------------------ */

struct qv_runtime_record {
	char *state;            /* "running", "paused", "stopped", ... */
	int64_t pid;            /* 0 = none */
	uint64_t pid_start_time; /* /proc/<pid>/stat field 22: identity check */
	char *qmp_path;
	char *run_dir;
	int64_t started_at;     /* unix ms */
	int64_t restarts;
	char *last_exit;        /* free text/JSON, may be NULL */
};

/* Free the strings of a record filled by qv_state_runtime_get(). */
void qv_runtime_record_done(struct qv_runtime_record *rec);

/* Insert or replace. -ENOENT if the VM is not defined. */
int qv_state_runtime_set(qv_state *st, const char *name, const struct qv_runtime_record *rec);
/* -ENOENT if there is no record. Fills caller-owned copies. */
int qv_state_runtime_get(qv_state *st, const char *name, struct qv_runtime_record *ret);
/* -ENOENT if there was no record. */
int qv_state_runtime_clear(qv_state *st, const char *name);
typedef int (*qv_state_runtime_fn)(const char *name, const struct qv_runtime_record *rec,
				   void *userdata);
int qv_state_runtime_list(qv_state *st, qv_state_runtime_fn fn, void *userdata);

/* --- events (append-only log) -------------------------------------------- */

struct qv_event_record {
	int64_t id;         /* strictly increasing */
	int64_t time;       /* unix ms */
	const char *vm;     /* may be NULL */
	const char *type;
	const char *data_json; /* may be NULL */
};

/* vm and data_json may be NULL. ret_id may be NULL. */
int qv_state_event_append(qv_state *st, const char *vm, const char *type, const char *data_json,
			  int64_t *ret_id);
/* Events with id > after_id in id order, at most limit (0 = no limit). */
typedef int (*qv_state_event_fn)(const struct qv_event_record *ev, void *userdata);
int qv_state_events_since(qv_state *st, int64_t after_id, unsigned limit, qv_state_event_fn fn,
			  void *userdata);
/* Keep only the newest `keep` events. ret_deleted may be NULL. */
int qv_state_events_prune(qv_state *st, unsigned keep, unsigned *ret_deleted);

/* Delete events older than min_time (unix ms), then all but the newest
 * `keep`. ret_deleted (may be NULL) counts both. */
int qv_state_events_trim(qv_state *st, int64_t min_time, unsigned keep, unsigned *ret_deleted);

/* --- per-VM ids (schema v3) ---------------------------------------------- */

/* The uid recorded for vm: 0 and *ret_uid, or -ENOENT. */
int qv_state_vm_uid_get(qv_state *st, const char *vm, uint32_t *ret_uid);
/* Record uid for vm (replacing its old one). -EEXIST if another VM has it,
 * -ENOENT if vm is not defined. */
int qv_state_vm_uid_set(qv_state *st, const char *vm, uint32_t uid);
/* Every recorded uid, for the allocator. */
typedef int (*qv_state_uid_fn)(const char *vm, uint32_t uid, void *userdata);
int qv_state_vm_uid_list(qv_state *st, qv_state_uid_fn fn, void *userdata);

/* --- networks ------------------------------------------------------------ */

int qv_state_net_put(qv_state *st, const char *name, const char *spec_json); /* -EEXIST */
int qv_state_net_update(qv_state *st, const char *name, const char *spec_json); /* -ENOENT */
int qv_state_net_get(qv_state *st, const char *name, char **ret_spec_json);  /* -ENOENT */
int qv_state_net_delete(qv_state *st, const char *name);                    /* -ENOENT */
typedef int (*qv_state_net_fn)(const char *name, const char *spec_json, void *userdata);
int qv_state_net_list(qv_state *st, qv_state_net_fn fn, void *userdata);

/* --- migrations (schema v2; for the migration engine) -------------------- */

struct qv_migration_record {
	char *id;        /* caller-chosen unique id */
	char *vm;
	char *role;      /* "source" | "destination" | "driver" (schema v3: vm.migrate) */
	char *state;
	char *peer;      /* may be NULL */
	char *token;     /* may be NULL */
	char *data_json; /* may be NULL */
};

void qv_migration_record_done(struct qv_migration_record *rec);
/* Insert or replace by id. */
int qv_state_migration_put(qv_state *st, const struct qv_migration_record *rec);
int qv_state_migration_get(qv_state *st, const char *id, struct qv_migration_record *ret);
int qv_state_migration_delete(qv_state *st, const char *id); /* -ENOENT */
typedef int (*qv_state_migration_fn)(const struct qv_migration_record *rec, void *userdata);
int qv_state_migration_list(qv_state *st, qv_state_migration_fn fn, void *userdata);

/* --- firewall security groups (daemon/state-records.c) --- */
/* Insert or replace the group's canonical JSON. */
int qv_state_fw_group_put(qv_state *st, const char *name, const char *spec_json);
int qv_state_fw_group_delete(qv_state *st, const char *name); /* -ENOENT */
typedef int (*qv_state_fw_group_fn)(const char *name, const char *spec_json, void *userdata);
int qv_state_fw_group_list(qv_state *st, qv_state_fw_group_fn fn, void *userdata);
