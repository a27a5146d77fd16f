/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "common/macro.h"
#include "common/json.h"
#include "daemon/state.h"
#include "daemon/state-internal.h"

static char tmpdir[64];

static void mk_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/qv-state-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	(void)!system(cmd);
}

TestSuite(state, .init = mk_tmpdir, .fini = rm_tmpdir);

static qv_state *open_ok(void)
{
	struct qv_error err = {};
	qv_state *st = NULL;
	int r = qv_state_open(tmpdir, &st, &err);
	cr_assert_eq(r, 0, "open: %d %s", r, err.message);
	cr_assert_not_null(st);
	return st;
}

/* Run raw SQL on the db file (test back door). */
static void raw_sql(const char *sql)
{
	char path[128];
	sqlite3 *db;
	snprintf(path, sizeof(path), "%s/qvisor.db", tmpdir);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

Test(state, open_close_reopen_persists)
{
	qv_state *st = open_ok();
	cr_assert_eq(qv_state_schema_version(st), QV_STATE_SCHEMA_VERSION);
	cr_assert_eq(qv_state_vm_put(st, "vm1", "uuid-1", "{\"name\":\"vm1\"}"), 0);
	cr_assert_eq(qv_state_net_put(st, "net1", "{\"bridge\":\"br0\"}"), 0);
	qv_state_close(st);

	st = open_ok();
	_cleanup_free_ char *uuid = NULL, *spec = NULL, *net = NULL;
	cr_assert_eq(qv_state_vm_get(st, "vm1", &uuid, &spec), 0);
	cr_assert_str_eq(uuid, "uuid-1");
	cr_assert_str_eq(spec, "{\"name\":\"vm1\"}");
	cr_assert_eq(qv_state_net_get(st, "net1", &net), 0);
	cr_assert_str_eq(net, "{\"bridge\":\"br0\"}");
	cr_assert_eq(qv_state_check_integrity(st, NULL), 0);
	qv_state_close(st);
}

Test(state, migrations_from_zero_and_upgrade_keeps_data)
{
	struct qv_error err = {};
	qv_state *st = NULL;

	/* An empty file at version 0 is migrated step by step. */
	cr_assert_eq(qv_state_open_version(tmpdir, 1, &st, &err), 0, "%s", err.message);
	cr_assert_eq(qv_state_schema_version(st), 1);
	cr_assert_eq(qv_state_vm_put(st, "old", "u-old", "{}"), 0);
	/* v2 table does not exist yet */
	struct qv_migration_record m = { .id = "m1", .vm = "old", .role = "source", .state = "x" };
	cr_assert_lt(qv_state_migration_put(st, &m), 0);
	qv_state_close(st);

	st = open_ok();
	cr_assert_eq(qv_state_schema_version(st), QV_STATE_SCHEMA_VERSION);
	_cleanup_free_ char *uuid = NULL;
	cr_assert_eq(qv_state_vm_get(st, "old", &uuid, NULL), 0);
	cr_assert_str_eq(uuid, "u-old");
	cr_assert_eq(qv_state_migration_put(st, &m), 0);
	struct qv_migration_record got = {};
	cr_assert_eq(qv_state_migration_get(st, "m1", &got), 0);
	cr_assert_str_eq(got.role, "source");
	cr_assert_null(got.peer);
	qv_migration_record_done(&got);
	m.role = "driver"; /* schema v3 */
	cr_assert_eq(qv_state_migration_put(st, &m), 0);
	m.role = "bogus";
	cr_assert_lt(qv_state_migration_put(st, &m), 0, "CHECK constraint on role");
	qv_state_close(st);
}

Test(state, refuses_newer_schema)
{
	qv_state *st = open_ok();
	qv_state_close(st);
	raw_sql("PRAGMA user_version = 999");

	struct qv_error err = {};
	st = NULL;
	int r = qv_state_open(tmpdir, &st, &err);
	cr_assert_eq(r, -EPROTONOSUPPORT);
	cr_assert_null(st);
	cr_assert(err.set);
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert_not_null(strstr(err.message, "999"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "newer"), "%s", err.message);
}

static int count_vm(const struct qv_vm_record *rec, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

Test(state, vm_define_duplicate_update_delete)
{
	qv_state *st = open_ok();
	int n = 0;

	cr_assert_eq(qv_state_vm_put(st, "a", "u-a", "{\"v\":1}"), 0);
	cr_assert_eq(qv_state_vm_put(st, "a", "u-other", "{}"), -EEXIST);
	cr_assert_eq(qv_state_vm_put(st, "b", "u-a", "{}"), -EEXIST, "uuid is unique");
	cr_assert_eq(qv_state_vm_put(st, "b", "u-b", "{}"), 0);
	cr_assert_eq(qv_state_vm_update_spec(st, "a", "{\"v\":2}"), 0);
	cr_assert_eq(qv_state_vm_update_spec(st, "zz", "{}"), -ENOENT);
	_cleanup_free_ char *spec = NULL;
	cr_assert_eq(qv_state_vm_get(st, "a", NULL, &spec), 0);
	cr_assert_str_eq(spec, "{\"v\":2}");
	cr_assert_eq(qv_state_vm_list(st, count_vm, &n), 0);
	cr_assert_eq(n, 2);

	/* hostile names are plain data */
	cr_assert_eq(qv_state_vm_put(st, "x'); DROP TABLE vms; --", "u-x", "{}"), 0);
	cr_assert_eq(qv_state_vm_delete(st, "x'); DROP TABLE vms; --"), 0);

	cr_assert_eq(qv_state_vm_delete(st, "a"), 0);
	cr_assert_eq(qv_state_vm_delete(st, "a"), -ENOENT);
	cr_assert_eq(qv_state_vm_get(st, "a", NULL, NULL), -ENOENT);
	n = 0;
	cr_assert_eq(qv_state_vm_list(st, count_vm, &n), 0);
	cr_assert_eq(n, 1);
	qv_state_close(st);
}

static int rt_count(const char *name, const struct qv_runtime_record *rec, void *ud)
{
	cr_assert_str_eq(name, "vm1");
	cr_assert_eq(rec->pid, 4242);
	(*(int *)ud)++;
	return 0;
}

Test(state, runtime_records)
{
	qv_state *st = open_ok();
	struct qv_runtime_record rec = {
		.state = "running", .pid = 4242, .pid_start_time = 123456789012ULL,
		.qmp_path = "/run/qv/vm1/qmp.sock", .run_dir = "/run/qv/vm1",
		.started_at = 1700000000000, .restarts = 2, .last_exit = NULL,
	};
	struct qv_runtime_record got = {};
	int n = 0;

	cr_assert_eq(qv_state_runtime_set(st, "nope", &rec), -ENOENT, "FK: VM must exist");
	cr_assert_eq(qv_state_vm_put(st, "vm1", "u1", "{}"), 0);
	cr_assert_eq(qv_state_runtime_set(st, "vm1", &rec), 0);
	cr_assert_eq(qv_state_runtime_get(st, "vm1", &got), 0);
	cr_assert_str_eq(got.state, "running");
	cr_assert_eq(got.pid, 4242);
	cr_assert_eq(got.pid_start_time, 123456789012ULL);
	cr_assert_str_eq(got.qmp_path, "/run/qv/vm1/qmp.sock");
	cr_assert_str_eq(got.run_dir, "/run/qv/vm1");
	cr_assert_eq(got.started_at, 1700000000000);
	cr_assert_eq(got.restarts, 2);
	cr_assert_null(got.last_exit);
	qv_runtime_record_done(&got);

	rec.state = "stopped";
	rec.last_exit = "{\"status\":0}";
	cr_assert_eq(qv_state_runtime_set(st, "vm1", &rec), 0, "replace");
	cr_assert_eq(qv_state_runtime_get(st, "vm1", &got), 0);
	cr_assert_str_eq(got.state, "stopped");
	cr_assert_str_eq(got.last_exit, "{\"status\":0}");
	qv_runtime_record_done(&got);
	cr_assert_eq(qv_state_runtime_list(st, rt_count, &n), 0);
	cr_assert_eq(n, 1);

	cr_assert_eq(qv_state_runtime_clear(st, "vm1"), 0);
	cr_assert_eq(qv_state_runtime_get(st, "vm1", &got), -ENOENT);
	cr_assert_eq(qv_state_runtime_clear(st, "vm1"), -ENOENT);

	/* delete cascades */
	cr_assert_eq(qv_state_runtime_set(st, "vm1", &rec), 0);
	cr_assert_eq(qv_state_vm_delete(st, "vm1"), 0);
	cr_assert_eq(qv_state_runtime_get(st, "vm1", &got), -ENOENT);
	qv_state_close(st);
}

struct ev_seen {
	int64_t ids[16];
	char types[16][16];
	int n;
};

static int ev_collect(const struct qv_event_record *ev, void *ud)
{
	struct ev_seen *s = ud;
	cr_assert_lt(s->n, 16);
	s->ids[s->n] = ev->id;
	snprintf(s->types[s->n], sizeof(s->types[0]), "%s", ev->type);
	s->n++;
	return 0;
}

Test(state, events_ordering_since_and_prune)
{
	qv_state *st = open_ok();
	int64_t ids[6];
	struct ev_seen seen = {};
	char type[16];

	for (int i = 0; i < 6; i++) {
		snprintf(type, sizeof(type), "t%d", i);
		cr_assert_eq(qv_state_event_append(st, i % 2 ? "vm" : NULL, type,
						   i % 3 ? "{\"i\":1}" : NULL, &ids[i]), 0);
		if (i)
			cr_assert_gt(ids[i], ids[i - 1]);
	}
	cr_assert_eq(qv_state_events_since(st, ids[1], 3, ev_collect, &seen), 0);
	cr_assert_eq(seen.n, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(seen.ids[i], ids[2 + i]);
		snprintf(type, sizeof(type), "t%d", 2 + i);
		cr_assert_str_eq(seen.types[i], type);
	}
	unsigned deleted = 0;
	cr_assert_eq(qv_state_events_prune(st, 2, &deleted), 0);
	cr_assert_eq(deleted, 4);
	memset(&seen, 0, sizeof(seen));
	cr_assert_eq(qv_state_events_since(st, 0, 0, ev_collect, &seen), 0);
	cr_assert_eq(seen.n, 2);
	cr_assert_eq(seen.ids[0], ids[4]);
	/* ids never reused after prune (AUTOINCREMENT) */
	int64_t id7;
	cr_assert_eq(qv_state_event_append(st, NULL, "t7", NULL, &id7), 0);
	cr_assert_gt(id7, ids[5]);
	qv_state_close(st);
}

static int net_count(const char *name, const char *spec, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

Test(state, networks)
{
	qv_state *st = open_ok();
	int n = 0;
	cr_assert_eq(qv_state_net_put(st, "n1", "{}"), 0);
	cr_assert_eq(qv_state_net_put(st, "n1", "{}"), -EEXIST);
	cr_assert_eq(qv_state_net_update(st, "n1", "{\"x\":1}"), 0);
	cr_assert_eq(qv_state_net_update(st, "n2", "{}"), -ENOENT);
	cr_assert_eq(qv_state_net_put(st, "n2", "{}"), 0);
	cr_assert_eq(qv_state_net_list(st, net_count, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(qv_state_net_delete(st, "n1"), 0);
	cr_assert_eq(qv_state_net_delete(st, "n1"), -ENOENT);
	_cleanup_free_ char *s = NULL;
	cr_assert_eq(qv_state_net_get(st, "n1", &s), -ENOENT);
	cr_assert_null(s);
	qv_state_close(st);
}

static int txn_two_then_fail(qv_state *st, void *ud)
{
	cr_assert_eq(qv_state_vm_put(st, "t1", "ut1", "{}"), 0);
	cr_assert_eq(qv_state_event_append(st, "t1", "defined", NULL, NULL), 0);
	return *(int *)ud;
}

static int txn_inner_fail(qv_state *st, void *ud)
{
	return -EIO;
}

static int txn_outer(qv_state *st, void *ud)
{
	cr_assert_eq(qv_state_vm_put(st, "o1", "uo1", "{}"), 0);
	/* a failing nested transaction rolls back only itself */
	cr_assert_eq(qv_state_transaction(st, txn_inner_fail, NULL), -EIO);
	return 0;
}

Test(state, transactions_commit_rollback_nested)
{
	qv_state *st = open_ok();
	int rv = -EINVAL;
	struct ev_seen seen = {};

	cr_assert_eq(qv_state_transaction(st, txn_two_then_fail, &rv), -EINVAL);
	cr_assert_eq(qv_state_vm_get(st, "t1", NULL, NULL), -ENOENT, "rolled back");
	cr_assert_eq(qv_state_events_since(st, 0, 0, ev_collect, &seen), 0);
	cr_assert_eq(seen.n, 0);
	rv = 0;
	cr_assert_eq(qv_state_transaction(st, txn_two_then_fail, &rv), 0);
	cr_assert_eq(qv_state_vm_get(st, "t1", NULL, NULL), 0);
	cr_assert_eq(qv_state_transaction(st, txn_outer, NULL), 0);
	cr_assert_eq(qv_state_vm_get(st, "o1", NULL, NULL), 0);
	qv_state_close(st);
}

/* --- crash safety -------------------------------------------------------- */

#define SPEC_PAD 20000

struct define_ctx {
	int i;
	char *spec;
};

static int define_one(qv_state *st, void *ud)
{
	struct define_ctx *d = ud;
	char name[32], uuid[48];
	struct qv_runtime_record rt = { .state = "defined", .pid = d->i };
	int r;

	snprintf(name, sizeof(name), "vm-%d", d->i);
	snprintf(uuid, sizeof(uuid), "uuid-%d", d->i);
	r = qv_state_vm_put(st, name, uuid, d->spec);
	if (r < 0)
		return r;
	r = qv_state_runtime_set(st, name, &rt);
	if (r < 0)
		return r;
	return qv_state_event_append(st, name, "vm.defined", "{\"complete\":true}", NULL);
}

static void child_define_loop(int start)
{
	struct qv_error err = {};
	qv_state *st = NULL;
	struct define_ctx d;
	/* a multi-page spec: a torn write would be visible */
	char *spec = malloc(SPEC_PAD + 64);
	int n = snprintf(spec, 64, "{\"pad\":\"");
	memset(spec + n, 'x', SPEC_PAD);
	strcpy(spec + n + SPEC_PAD, "\",\"end\":true}");

	if (qv_state_open(tmpdir, &st, &err) < 0)
		_exit(3);
	d.spec = spec;
	for (int i = start;; i++) {
		d.i = i;
		if (qv_state_transaction(st, define_one, &d) < 0)
			_exit(4);
	}
}

static int check_vm_complete(const struct qv_vm_record *rec, void *ud)
{
	_cleanup_(json_object_putp) json_object *o = json_tokener_parse(rec->spec_json);
	json_object *end;
	qv_state *st = ud;
	struct qv_runtime_record rt = {};

	cr_assert_not_null(o, "spec of %s is not JSON", rec->name);
	cr_assert(json_object_object_get_ex(o, "end", &end), "spec of %s is truncated", rec->name);
	cr_assert_eq(strlen(rec->spec_json), SPEC_PAD + 8 + 13);
	/* runtime row was written in the same transaction */
	cr_assert_eq(qv_state_runtime_get(st, rec->name, &rt), 0, "%s has no runtime row",
		     rec->name);
	qv_runtime_record_done(&rt);
	return 0;
}

static int count_events(const struct qv_event_record *ev, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

Test(state, crash_safety_sigkill, .timeout = 120)
{
	int total_vms = 0;
	unsigned seed = (unsigned)getpid();

	qv_state_close(open_ok()); /* create the schema first */
	for (int iter = 0; iter < 8; iter++) {
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0)
			child_define_loop(iter * 100000);
		usleep(20000 + (unsigned)(rand_r(&seed) % 150000));
		cr_assert_eq(kill(pid, SIGKILL), 0);
		int status;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			  "child exited early (status %d)", status);

		qv_state *st = open_ok();
		struct qv_error err = {};
		int vms = 0, events = 0;
		cr_assert_eq(qv_state_check_integrity(st, &err), 0, "%s", err.message);
		cr_assert_eq(qv_state_vm_list(st, check_vm_complete, st), 0);
		cr_assert_eq(qv_state_vm_list(st, count_vm, &vms), 0);
		cr_assert_eq(qv_state_events_since(st, 0, 0, count_events, &events), 0);
		cr_assert_eq(vms, events, "every defined VM has exactly its event");
		cr_assert_geq(vms, total_vms, "committed definitions never disappear");
		total_vms = vms;
		qv_state_close(st);
	}
	cr_assert_gt(total_vms, 0, "the children managed to define something");
	cr_log_info("crash test: %d VMs defined across 8 SIGKILLs", total_vms);
}

/* Migration records commit with synchronous=FULL; the rest stays NORMAL. */
Test(state, migration_records_commit_durably)
{
	_cleanup_state_ qv_state *st = open_ok();
	struct qv_migration_record rec = { .id = "m1", .vm = "vm", .role = "source",
					   .state = "prepared" };

	cr_assert_eq(qv_state_migration_put(st, &rec), 0);
	cr_assert_eq(qv_state_migration_delete(st, "m1"), 0);
	/* Back to NORMAL (1) afterwards, so VM records keep the cheap path. */
	sqlite3_stmt *s = NULL;
	cr_assert_eq(sqlite3_prepare_v2(((struct qv_state *)st)->db, "PRAGMA synchronous", -1, &s,
					NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(s, 0), 1);
	sqlite3_finalize(s);
}
