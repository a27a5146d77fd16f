/* SPDX-License-Identifier: MIT */
/* Snapshots end to end: real qvisord, QEMU (TCG) and the test guest acting
 * through its control channel (qv.ctl=1). The guest writes known patterns
 * (blkwrite returns the md5 of the range it wrote, blkread the md5 it
 * reads), so every check compares what the guest itself sees.
 *  - revert: A, snapshot, B over A, revert -> the range reads A again;
 *  - a snapshot taken while the guest writes, then merged away (live
 *    block-commit) while it runs: every range keeps its content, also after
 *    a cold boot from the merged image (the VM's original disk);
 *  - a memory snapshot: revert resumes the guest where it was, no boot;
 *  - offline create/delete on a stopped VM (qemu-img merges) and bad input;
 *  - a restarted daemon finishes what a killed one left. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/macro.h"
#include "helpers/guest-ctl.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 180000
#define CMD_TIMEOUT_MS 120000
#define VM "snapvm"

static struct qvt_daemon D;
static char disk[256];

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 600);

/* A raw 64 MiB disk outside the pool (the VM's original disk). */
static void make_disk(void)
{
	int fd;

	snprintf(disk, sizeof(disk), "%s/data.raw", D.dir);
	fd = open(disk, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 64 << 20), 0);
	close(fd);
}

static void define_vm(bool start)
{
	struct qv_error err = {};
	char extra[512];
	json_object *r;

	make_disk();
	snprintf(extra, sizeof(extra),
		 "{\"memory\": 192, \"cmdline\": \"console=ttyS0 panic=-1 qv.ctl=1\", "
		 "\"disks\": [{\"path\": \"%s\", \"format\": \"raw\"}]}", disk);
	cr_assert_eq(qvt_define_guest(&D, VM, extra, &err), 0, "define: %s", err.message);
	if (!start)
		return;
	r = qvt_call_name(&D, "vm.start", VM, &err);
	cr_assert_not_null(r, "start: %s", err.message);
	json_object_put(r);
}

static qvt_ctl *ctl_open(void)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&D, "vm.console", VM, &err), *p;
	qvt_ctl *c;

	cr_assert_not_null(r, "vm.console: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "path", &p));
	c = qvt_ctl_open(json_object_get_string(p), BOOT_TIMEOUT_MS);
	json_object_put(r);
	cr_assert_not_null(c, "guest control channel did not answer");
	return c;
}

/* Run a guest command, return its value (md5 etc.) in v. */
static void ctl(qvt_ctl *c, const char *cmd, char *v, size_t size)
{
	int r = qvt_ctl_cmd(c, cmd, CMD_TIMEOUT_MS, v, size);

	cr_assert_eq(r, 0, "guest: %s: %d %s", cmd, r, v);
}

static int snap_call(const char *method, const char *snap, const char *extra,
		     json_object **ret, struct qv_error *err)
{
	*err = (struct qv_error){};
	return qvt_callf(&D, method, ret, err, "{\"name\": \"%s\", \"snapshot\": \"%s\"%s}", VM,
			 snap, extra ? extra : "");
}

static void snap_ok(const char *method, const char *snap, const char *extra)
{
	struct qv_error err = {};

	cr_assert_eq(snap_call(method, snap, extra, NULL, &err), 0, "%s %s: %s (%s)", method, snap,
		     err.message, err.reason);
}

static json_object *snap_list(void)
{
	struct qv_error err = {};
	json_object *r;

	cr_assert_eq(qvt_callf(&D, "snapshot.list", &r, &err, "{\"name\": \"%s\"}", VM), 0,
		     "snapshot.list: %s", err.message);
	return r;
}

static size_t n_snapshots(const char **ret_current)
{
	static char cur[64];
	json_object *r = snap_list(), *a, *c;
	size_t n;

	cr_assert(json_object_object_get_ex(r, "snapshots", &a));
	n = json_object_array_length(a);
	json_object_object_get_ex(r, "current", &c);
	snprintf(cur, sizeof(cur), "%s", c ? json_object_get_string(c) : "");
	if (ret_current)
		*ret_current = cur;
	json_object_put(r);
	return n;
}

static const char *spec_disk_path(char *buf, size_t size)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&D, "vm.info", VM, &err), *s, *d, *p;

	cr_assert_not_null(r);
	cr_assert(json_object_object_get_ex(r, "spec", &s) &&
		  json_object_object_get_ex(s, "disks", &d));
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(d, 0), "path", &p));
	snprintf(buf, size, "%s", json_object_get_string(p));
	json_object_put(r);
	return buf;
}

static int count_ready(void)
{
	char path[512], line[4096];
	int n = 0;

	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s%s", qvt_serial_log(&D, VM), k ? ".1" : "");
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			n += strstr(line, QVT_GUEST_READY) != NULL;
		if (f)
			fclose(f);
	}
	return n;
}

static void stop_vm(void)
{
	struct qv_error err = {};

	cr_assert_eq(qvt_callf(&D, "vm.stop", NULL, &err, "{\"name\": \"%s\", \"force\": true}",
			       VM), 0, "stop: %s", err.message);
	for (int i = 0; i < 300; i++) {
		char st[32];
		if (streq(qvt_vm_state(&D, VM, st, sizeof(st)), "stopped"))
			return;
		qvt_sleep_ms(100);
	}
	cr_assert_fail("VM did not stop");
}

/* The ranges the first test writes read back as written. */
static void check_ranges(qvt_ctl *g, const char *a, const char *c, const char *d,
			 const char *e, const char *f)
{
	static const char *const cmds[] = { "blkread /dev/vda 0 4", "blkread /dev/vda 8 16",
					    "blkread /dev/vda 32 4", "blkread /dev/vda 40 2",
					    "blkread /dev/vda 48 2" };
	const char *want[] = { a, c, d, e, f };
	char v[64];

	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		ctl(g, cmds[i], v, sizeof(v));
		cr_assert_str_eq(v, want[i], "%s after the merges", cmds[i]);
	}
}

/* snapshot.delete of snap from another process; the daemon is SIGKILLed
 * as soon as the entry is "deleting" (the store is written before QEMU's
 * merge starts, so the kill lands while block-commit copies), then started
 * again. true when the entry is still there (the merge was cut). */
static bool delete_killed_midway(const char *snap)
{
	bool seen = false, left;
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct qv_error err = {};
		_exit(snap_call("snapshot.delete", snap, NULL, NULL, &err) == 0 ? 0 : 1);
	}
	for (int i = 0; i < 6000 && !seen; i++) {
		json_object *r = snap_list();
		seen = strstr(json_object_to_json_string(r), "\"state\": \"deleting\"") != NULL;
		json_object_put(r);
		if (!seen)
			qvt_sleep_ms(5);
	}
	cr_assert(seen, "snapshot %s never became deleting", snap);
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(qvt_daemon_start(&D), 0);
	json_object *r = snap_list();
	left = strstr(json_object_to_json_string(r), "\"state\": \"deleting\"") != NULL;
	cr_log_info("delete of %s killed: %s", snap, left ? "cut (still deleting)" : "had finished");
	json_object_put(r);
	return left;
}

Test(snapshot, revert_restores_and_live_delete_keeps_data)
{
	char a[64], b[64], c[64], d[64], e[64], f[64], v[64], path[512];
	const char *cur;
	qvt_ctl *g;
	pid_t pid;
	int status;

	QVT_REQUIRE_DAEMON(&D);
	define_vm(true);
	g = ctl_open();
	ctl(g, "blkwrite /dev/vda 0 4 seedA", a, sizeof(a));
	snap_ok("snapshot.create", "s1", NULL);
	cr_assert_eq(n_snapshots(&cur), 1);
	cr_assert_str_eq(cur, "s1");
	ctl(g, "blkwrite /dev/vda 0 4 seedB", b, sizeof(b));
	cr_assert_str_neq(a, b);
	ctl(g, "blkread /dev/vda 0 4", v, sizeof(v));
	cr_assert_str_eq(v, b);

	/* Revert: the VM restarts on a new overlay of s1's image. */
	qvt_ctl_close(g);
	snap_ok("snapshot.revert", "s1", NULL);
	g = ctl_open();
	ctl(g, "blkread /dev/vda 0 4", v, sizeof(v));
	cr_assert_str_eq(v, a, "revert did not restore pattern A");

	/* A snapshot taken while the guest writes 16 MiB at 8 MiB. */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct qv_error err = {};
		qvt_sleep_ms(300);
		_exit(snap_call("snapshot.create", "s2", NULL, NULL, &err) == 0 ? 0 : 1);
	}
	ctl(g, "blkwrite /dev/vda 8 16 seedC", c, sizeof(c));
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "snapshot.create during writes");
	cr_assert_eq(n_snapshots(&cur), 2);
	cr_assert_str_eq(cur, "s2");
	ctl(g, "blkwrite /dev/vda 32 4 seedD", d, sizeof(d));

	/* Two more points, then merge them all away while the guest runs:
	 * s2 is an inner image (block-commit of s3's image into s2's, the
	 * header of s4's image rewritten), s3 the next inner one, s4 and s1
	 * active commits (the last one into the original disk). */
	snap_ok("snapshot.create", "s3", NULL);
	ctl(g, "blkwrite /dev/vda 40 2 seedE", e, sizeof(e));
	snap_ok("snapshot.create", "s4", NULL);
	ctl(g, "blkwrite /dev/vda 48 2 seedF", f, sizeof(f));
	snap_ok("snapshot.delete", "s2", NULL);
	cr_assert_eq(n_snapshots(&cur), 3);
	cr_assert_str_eq(cur, "s4");
	snap_ok("snapshot.delete", "s3", NULL);
	ctl(g, "ping", v, sizeof(v));
	snap_ok("snapshot.delete", "s4", NULL);
	cr_assert_eq(n_snapshots(&cur), 1);
	cr_assert_str_eq(cur, "s1");
	/* s1 (an active commit into the original disk) with the daemon
	 * SIGKILLed while QEMU's block-commit runs: the guest keeps its data,
	 * and the restarted daemon lets the delete be run again (live it asks
	 * for a VM restart, the node names being lost: offline then). */
	bool stopped = false;
	if (delete_killed_midway("s1")) {
		cr_assert_eq(n_snapshots(&cur), 1, "s1 must stay listed (deleting)");
		check_ranges(g, a, c, d, e, f);
		struct qv_error err = {};
		if (snap_call("snapshot.delete", "s1", NULL, NULL, &err) < 0) {
			cr_assert_str_eq(err.reason, "conflict", "%s", err.message);
			qvt_ctl_close(g);
			g = NULL;
			stop_vm();
			stopped = true;
			snap_ok("snapshot.delete", "s1", NULL);
		}
	}
	cr_assert_eq(n_snapshots(&cur), 0);
	cr_assert_str_eq(spec_disk_path(path, sizeof(path)), disk,
			 "after merging everything the VM runs on its original disk");
	if (g)
		check_ranges(g, a, c, d, e, f);

	/* A cold boot from the merged original disk reads the same. */
	if (g)
		qvt_ctl_close(g);
	if (!stopped)
		stop_vm();
	json_object_put(qvt_call_name(&D, "vm.start", VM, NULL));
	g = ctl_open();
	check_ranges(g, a, c, d, e, f);
	qvt_ctl_close(g);
}

Test(snapshot, memory_revert_resumes_without_boot)
{
	char a[64], b[64], v[64], pid1[32], pid2[32];
	struct qv_error err = {};
	json_object *r, *m;
	qvt_ctl *g;
	int ready;

	QVT_REQUIRE_DAEMON(&D);
	define_vm(true);
	g = ctl_open();
	ctl(g, "blkwrite /dev/vda 0 2 seedA", a, sizeof(a));
	ctl(g, "dirty 1 4", pid1, sizeof(pid1)); /* a process that exists only in RAM */
	cr_assert_eq(snap_call("snapshot.create", "m1", ", \"memory\": true", &r, &err), 0,
		     "create --memory: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "memory", &m) && json_object_get_boolean(m));
	json_object_put(r);
	ctl(g, "undirty", v, sizeof(v));
	ctl(g, "blkwrite /dev/vda 0 2 seedB", b, sizeof(b));
	cr_assert_str_neq(a, b);
	ready = count_ready();
	cr_assert_geq(ready, 1);

	qvt_ctl_close(g);
	cr_assert_eq(snap_call("snapshot.revert", "m1", NULL, &r, &err), 0, "revert: %s",
		     err.message);
	cr_assert(json_object_object_get_ex(r, "memory_restored", &m) && json_object_get_boolean(m));
	json_object_put(r);
	g = ctl_open();
	ctl(g, "ping", v, sizeof(v));
	cr_assert_str_eq(v, "pong");
	ctl(g, "blkread /dev/vda 0 2", v, sizeof(v));
	cr_assert_str_eq(v, a);
	cr_assert_eq(count_ready(), ready, "the guest booted again instead of resuming");
	/* The dirtier started before the snapshot runs again: undirty finds
	 * it, and a new one gets a later pid than the restored one. */
	ctl(g, "dirty 1 4", pid2, sizeof(pid2));
	cr_assert_gt(atoi(pid2), atoi(pid1));
	qvt_ctl_close(g);
}

Test(snapshot, offline_and_bad_input)
{
	struct qv_error err = {};
	char out[8192], cmd[256];
	json_object *r;

	QVT_REQUIRE_DAEMON(&D);
	define_vm(false);
	/* Unknown VM, unknown snapshot, bad names, duplicates, --memory offline. */
	cr_assert_lt(qvt_callf(&D, "snapshot.create", NULL, &err,
			       "{\"name\": \"nosuchvm\", \"snapshot\": \"x\"}"), 0);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert_lt(snap_call("snapshot.revert", "nosuch", NULL, NULL, &err), 0);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert(strstr(err.message, "no snapshot named nosuch"), "%s", err.message);
	cr_assert_lt(snap_call("snapshot.delete", "nosuch", NULL, NULL, &err), 0);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert_lt(snap_call("snapshot.create", "../x", NULL, NULL, &err), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert_lt(snap_call("snapshot.create", "", NULL, NULL, &err), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert_lt(snap_call("snapshot.create", "m", ", \"memory\": true", NULL, &err), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert_lt(snap_call("snapshot.create", "x", ", \"bogus\": 1", NULL, &err), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");

	/* Offline: o1, write through the chain, o2, then merge o1 (qemu-img). */
	snap_ok("snapshot.create", "o1", NULL);
	cr_assert_lt(snap_call("snapshot.create", "o1", NULL, NULL, &err), 0);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert(strstr(err.message, "already has a snapshot named o1"), "%s", err.message);
	snap_ok("snapshot.create", "o2", NULL);
	cr_assert_eq(n_snapshots(NULL), 2);

	/* CLI: the tree, --json, errors with exit codes. */
	snprintf(cmd, sizeof(cmd), "snapshot list %s", VM);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "o1") && strstr(out, "  o2 *") && strstr(out, "current: o2"), "%s",
		  out);
	snprintf(cmd, sizeof(cmd), "--json snapshot list %s", VM);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 0, "%s", out);
	r = json_tokener_parse(out);
	cr_assert_not_null(r, "%s", out);
	json_object_put(r);
	snprintf(cmd, sizeof(cmd), "snapshot revert %s nosuch", VM);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 4, "%s", out);
	cr_assert(strstr(out, "no snapshot named nosuch"), "%s", out);

	snap_ok("snapshot.delete", "o1", NULL);
	cr_assert_eq(n_snapshots(NULL), 1);
	snap_ok("snapshot.revert", "o2", NULL);
	snap_ok("snapshot.delete", "o2", NULL);
	cr_assert_eq(n_snapshots(NULL), 0);
	char path[512];
	cr_assert_str_eq(spec_disk_path(path, sizeof(path)), disk);
}

/* Crash recovery (docs/snapshots.md): a daemon killed while creating a
 * snapshot leaves a "creating" entry; a finished operation may leave files
 * to remove. A restarted daemon drops the entry (the chain stays), removes
 * those files (only inside the VM's snapshot directory), resolves a merge
 * cut around its switch, and keeps the rest. */
Test(snapshot, restart_recovers_cut_operations)
{
	char dir[512], stray[600], mem[600], outside[600], db[256];
	_cleanup_free_ char *text = NULL;
	sqlite3 *h;
	sqlite3_stmt *st;
	json_object *tree, *list, *e, *un, *r;
	struct qv_error err = {};
	const char *cur;

	QVT_REQUIRE_DAEMON(&D);
	define_vm(false);
	snap_ok("snapshot.create", "keep", NULL);
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);

	snprintf(dir, sizeof(dir), "%s/images/.snapshots/%s", D.state_dir, VM);
	snprintf(stray, sizeof(stray), "%s/ov99-d0.qcow2", dir);
	snprintf(mem, sizeof(mem), "%s/mem98.state", dir);
	snprintf(outside, sizeof(outside), "%s/outside.img", D.dir);
	const char *files[] = { stray, mem, outside };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		close(open(files[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	snprintf(db, sizeof(db), "%s/qvisor.db", D.state_dir);
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(h, "SELECT tree_json FROM snapshot_trees WHERE vm = ?1", -1,
					&st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, VM, -1, SQLITE_STATIC);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	tree = json_tokener_parse((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	cr_assert_not_null(tree);
	cr_assert(json_object_object_get_ex(tree, "snapshots", &list));
	e = json_tokener_parse("{\"name\": \"cut\", \"parent\": \"keep\", \"state\": \"creating\", "
			       "\"created_at\": 1, \"disks\": []}");
	json_object_object_add(e, "memory", json_object_new_string(mem));
	json_object_array_add(list, e);
	/* "keep" was being merged away, cut around the switch. */
	e = json_object_array_get_idx(list, 0);
	json_object_object_add(e, "state", json_object_new_string("deleting"));
	json_object_object_add(e, "merge", json_tokener_parse(
				       "{\"disk\": 0, \"node\": \"disk0\", \"path\": \"/nonexistent\", "
				       "\"format\": \"raw\", \"paused\": false}"));
	un = json_object_new_array();
	json_object_array_add(un, json_object_new_string(stray));
	json_object_array_add(un, json_object_new_string(outside)); /* never removed */
	json_object_object_add(tree, "unlink", un);
	cr_assert_eq(sqlite3_prepare_v2(h, "UPDATE snapshot_trees SET tree_json = ?1 WHERE vm = ?2",
					-1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, json_object_to_json_string(tree), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, VM, -1, SQLITE_STATIC);
	cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(h);
	json_object_put(tree);

	cr_assert_eq(qvt_daemon_start(&D), 0);
	cr_assert_eq(n_snapshots(&cur), 1, "the cut snapshot must be dropped");
	cr_assert_str_eq(cur, "keep");
	cr_assert_neq(access(stray, F_OK), 0, "a file of the unlink list survived");
	cr_assert_neq(access(mem, F_OK), 0, "the cut snapshot's memory file survived");
	cr_assert_eq(access(outside, F_OK), 0, "a file outside the snapshot dir was removed");
	/* Without QEMU nothing switched: the disk stays, "keep" stays
	 * "deleting" (not revertable) and a second delete finishes it. */
	char path[512];
	cr_assert_str_neq(spec_disk_path(path, sizeof(path)), "/nonexistent");
	r = snap_list();
	cr_assert(strstr(json_object_to_json_string(r), "\"state\": \"deleting\""), "%s",
		  json_object_to_json_string(r));
	json_object_put(r);
	cr_assert_lt(snap_call("snapshot.revert", "keep", NULL, NULL, &err), 0);
	cr_assert_str_eq(err.reason, "conflict");
	snap_ok("snapshot.delete", "keep", NULL);
	cr_assert_eq(n_snapshots(NULL), 0);
}
