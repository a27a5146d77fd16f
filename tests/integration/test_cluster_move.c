/* SPDX-License-Identifier: MIT */
/* Cold migration (vm.move, docs/cluster.md "Cold migration") on three
 * hosts joined by etcd: a stopped VM whose 64 MiB disk a guest wrote a
 * pattern to moves to another host; the checksum matches there, the
 * inventory names the new owner, nothing is left on the old host, and the
 * VM boots on the new host and reads the same data. Refusals (running VM,
 * unknown host, its own host) and a move whose destination daemon is
 * SIGKILLed mid-copy (the source keeps the VM intact, the destination's
 * restart removes the partial copy). Real etcd, qvisord, QEMU/TCG. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "helpers/guest-ctl.h"
#include "helpers/guest.h"
#include "helpers/threehosts.h"

#define VM "mv1"
#define BOOT_TIMEOUT_MS 180000
#define CTL_MS 60000
#define WRITE_MIB 16

static struct qvt_threehosts hosts;
static bool up;
static uint64_t t_test;

/* Where the suite's time goes (a figure, not an assertion). */
static void phase(const char *what)
{
	cr_log_info("[%6llu ms] %s", (unsigned long long)(qv_now_ms() - t_test), what);
}

static void setup(void)
{
	up = qvt_threehosts_fixture_up(&hosts, "cluster_move", NULL);
}

static void teardown(void)
{
	if (up)
		qvt_threehosts_down(&hosts);
	up = false;
}

TestSuite(cluster_move, .init = setup, .fini = teardown, .timeout = 400);

static json_object *must(int host, const char *method, const char *fmt, const char *arg)
{
	struct qv_error err = {};
	json_object *r = NULL;

	cr_assert_eq(qvt_callf(&hosts.d[host], method, &r, &err, fmt, arg), 0, "h%d %s: %s", host,
		     method, err.message);
	return r;
}

static void md5_file(const char *path, char out[33])
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "md5sum < '%s'", path);
	qvt_md5_of_cmd(cmd, out);
}

static qvt_ctl *open_ctl(int host)
{
	_cleanup_json_ json_object *con = must(host, "vm.console", "{\"name\":\"%s\"}", VM);
	qvt_ctl *c = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_TIMEOUT_MS);

	cr_assert_not_null(c, "h%d: the guest's control channel did not answer", host);
	return c;
}

static void stop_vm(int host)
{
	char st[32];

	json_object_put(must(host, "vm.stop", "{\"name\":\"%s\",\"force\":true}", VM));
	for (int t = 0; t < 600 && !streq(qvt_vm_state(&hosts.d[host], VM, st, sizeof(st)),
					  "stopped"); t++)
		qvt_sleep_ms(100);
	cr_assert_str_eq(st, "stopped");
}

/* Names defined on daemon i (vm.list: vm.info would be forwarded). */
static bool defined_on(int i, const char *name)
{
	_cleanup_json_ json_object *res = must(i, "vm.list", "{}%s", "");
	json_object *arr, *v;
	bool found = false;

	json_object_object_get_ex(res, "vms", &arr);
	for (size_t k = 0; k < json_object_array_length(arr); k++)
		if (json_object_object_get_ex(json_object_array_get_idx(arr, k), "name", &v) &&
		    streq(json_object_get_string(v), name))
			found = true;
	return found;
}

/* Entries of dir (not "." or ".."); 0 when it does not exist. */
static int entries(const char *dir)
{
	DIR *dh = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!dh)
		return 0;
	while ((e = readdir(dh)))
		n += !streq(e->d_name, ".") && !streq(e->d_name, "..");
	closedir(dh);
	return n;
}

static void expect_refused(const char *to, const char *reason, const char *needle)
{
	struct qv_error err = {};
	char p[256];

	snprintf(p, sizeof(p), "{\"name\":\"%s\",\"to\":\"%s\"}", VM, to);
	cr_assert_neq(qvt_callf(&hosts.d[0], "vm.move", NULL, &err, "%s", p), 0,
		      "move to %s was accepted", to);
	cr_log_info("move to %s refused: %s (%s)", to, err.message, err.reason);
	cr_assert_str_eq(err.reason, reason, "%s", err.message);
	cr_assert(strstr(err.message, needle), "%s", err.message);
}

/* A move to h2 held at 4 MiB/s; h2's daemon SIGKILLed once its partial
 * copy exists. The source must keep everything; h2's restart cleans up. */
static void move_killed_midway(const char *disk, const char *md5_before)
{
	char in_dir[160], owner[16], md5[33];
	struct qv_error err = {};
	qv_rpc_conn *c = qvt_connect(&hosts.d[0]);
	json_object *p = json_object_new_object();
	uint64_t id;
	int t;

	cr_assert_not_null(c);
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "to", json_object_new_string(hosts.name[2]));
	json_object_object_add(p, "bandwidth_mib", json_object_new_int(4));
	cr_assert_eq(qv_rpc_send(c, "vm.move", p, &id, &err), 0, "%s", err.message);
	snprintf(in_dir, sizeof(in_dir), "%s/move-in", hosts.d[2].state_dir);
	for (t = 0; t < 300 && entries(in_dir) == 0; t++)
		qvt_sleep_ms(100);
	cr_assert_gt(entries(in_dir), 0, "no incoming move on h2");
	qvt_sleep_ms(1500); /* some chunks written */
	cr_assert_eq(qvt_daemon_stop(&hosts.d[2], SIGKILL), 0);
	cr_assert_neq(qv_rpc_recv_response(c, 180000, id, NULL, &err), 0,
		      "the move succeeded although its destination was killed");
	cr_log_info("move with the destination killed: %s", err.message);
	qv_rpc_conn_free(c);

	/* The source: VM defined, stopped, the same bytes, still the owner. */
	cr_assert(defined_on(0, VM));
	cr_assert_str_eq(qvt_vm_state(&hosts.d[0], VM, (char[32]){ 0 }, 32), "stopped");
	md5_file(disk, md5);
	cr_assert_str_eq(md5, md5_before);
	cr_assert_eq(qvt_cluster_owner(&hosts, 0, VM, owner, sizeof(owner)), 0);
	cr_assert_str_eq(owner, hosts.name[0]);
	/* The destination's restart removes the partial copy. */
	cr_assert_gt(entries(in_dir), 0, "the partial copy should still be there before restart");
	cr_assert_eq(qvt_threehosts_start_daemon(&hosts, 2), 0);
	cr_assert_eq(entries(in_dir), 0, "h2 kept a partial copy after its restart");
	cr_assert(!defined_on(2, VM));
}

/* An encrypted (LUKS qcow2) disk moves ciphertext verbatim; its key
 * travels over TLS into h2's keystore, which then opens it (a rekey needs
 * the stored passphrase). No boot needed: the VM stays stopped. */
static void encrypted_disk_moves(void)
{
	char md5_before[33], md5_after[33], out[4096];
	struct qv_error err = {};
	_cleanup_json_ json_object *img =
		must(0, "image.create", "{\"name\":\"%s\",\"size\":16777216,\"encrypt\":true}",
		     "mvcrypt");
	char extra[1024], src[512];

	snprintf(src, sizeof(src), "%s", qvt_json_str(img, "path"));
	snprintf(extra, sizeof(extra), "{\"memory\":128,\"disks\":[{\"path\":\"%s\","
		 "\"format\":\"qcow2\"}]}", src);
	cr_assert_eq(qvt_define_guest(&hosts.d[0], "mv2", extra, &err), 0, "%s", err.message);
	md5_file(src, md5_before);
	cr_assert_eq(qvt_cli(&hosts.d[0], "--json move mv2 --to h2", out, sizeof(out)), 0, "%s",
		     out);
	/* stderr (the progress lines) comes first in out. */
	_cleanup_json_ json_object *res = json_tokener_parse(strchr(out, '{') ?: out);
	json_object *disks;
	cr_assert(json_object_object_get_ex(res, "disks", &disks), "%s", out);
	md5_file(qvt_json_str(json_object_array_get_idx(disks, 0), "path"), md5_after);
	cr_assert_str_eq(md5_after, md5_before, "the ciphertext changed on the way");
	_cleanup_json_ json_object *info = must(2, "image.info", "{\"name\":\"%s\"}", "mvcrypt");
	cr_assert(json_object_get_boolean(json_object_object_get(info, "encrypted")));
	cr_assert_str_eq(qvt_json_str(info, "key"), "stored");
	json_object_put(must(2, "image.rekey", "{\"name\":\"%s\"}", "mvcrypt"));
	cr_assert_neq(access(src, F_OK), 0, "the source image %s is still there", src);
	cr_assert(defined_on(2, "mv2") && !defined_on(0, "mv2"));
}

/* The source daemon SIGKILLed right after the owner switch (test crash
 * point): its restart finds the journal "switched", finishes the move on
 * the destination and removes its own copy. */
static void source_killed_after_switch(void)
{
	char path[512], extra[1024], owner[16], md5_before[33], md5_after[33], journal[200];
	struct qv_error err = {};
	_cleanup_json_ json_object *img = must(0, "image.create",
		"{\"name\":\"%s\",\"size\":8388608,\"format\":\"raw\"}", "mvcrash");

	snprintf(path, sizeof(path), "%s", qvt_json_str(img, "path"));
	snprintf(extra, sizeof(extra), "{\"memory\":128,\"disks\":[{\"path\":\"%s\","
		 "\"format\":\"raw\"}]}", path);
	cr_assert_eq(qvt_define_guest(&hosts.d[0], "mv3", extra, &err), 0, "%s", err.message);
	snprintf(extra, sizeof(extra), "seq 1 200000 | dd of='%s' conv=notrunc status=none", path);
	cr_assert_eq(system(extra), 0);
	md5_file(path, md5_before);
	cr_assert_eq(qvt_daemon_stop(&hosts.d[0], SIGTERM), 0);
	setenv("QVISORD_TEST_CRASH_AT", "move-switched", 1);
	int r = qvt_threehosts_start_daemon(&hosts, 0);
	unsetenv("QVISORD_TEST_CRASH_AT");
	cr_assert_eq(r, 0);
	cr_assert_neq(qvt_callf(&hosts.d[0], "vm.move", NULL, &err,
				"{\"name\":\"mv3\",\"to\":\"%s\"}", hosts.name[1]), 0,
		      "the move answered although its daemon was to die");
	cr_log_info("source killed after the switch: %s", err.message);
	snprintf(journal, sizeof(journal), "%s/move-out", hosts.d[0].state_dir);
	cr_assert_eq(entries(journal), 1, "no move journal left by the killed source");
	cr_assert_eq(qvt_cluster_owner(&hosts, 1, "mv3", owner, sizeof(owner)), 0);
	cr_assert_str_eq(owner, hosts.name[1], "the switch did not happen before the crash");
	qvt_daemon_stop(&hosts.d[0], SIGKILL); /* reap it */
	cr_assert_eq(qvt_threehosts_start_daemon(&hosts, 0), 0);
	for (int t = 0; t < 300 && (defined_on(0, "mv3") || !defined_on(1, "mv3")); t++)
		qvt_sleep_ms(100);
	cr_assert(!defined_on(0, "mv3"), "the restarted source kept mv3");
	cr_assert(defined_on(1, "mv3"), "the destination did not get mv3");
	cr_assert_eq(entries(journal), 0);
	cr_assert_neq(access(path, F_OK), 0, "the source disk is still there");
	_cleanup_json_ json_object *info = must(1, "image.info", "{\"name\":\"%s\"}", "mvcrash");
	md5_file(qvt_json_str(info, "path"), md5_after);
	cr_assert_str_eq(md5_after, md5_before);
}

Test(cluster_move, stopped_vm_moves_with_its_disk)
{
	char disk[512], src_run[256], md5_before[33], md5_after[33], guest_w[33], guest_r[33];
	char extra[1024], out[8192], cmd[128], owner[16];
	struct qv_error err = {};

	QVT_REQUIRE_GUEST();
	if (!up)
		cr_skip_test("three hosts (root, netns, etcd, qvisord) unavailable");
	t_test = qv_now_ms();

	/* A 64 MiB raw pool image on h0, a guest writing a pattern to it. */
	_cleanup_json_ json_object *img =
		must(0, "image.create", "{\"name\":\"%s\",\"size\":67108864,\"format\":\"raw\"}",
		     "mvdata");
	snprintf(disk, sizeof(disk), "%s", qvt_json_str(img, "path"));
	snprintf(extra, sizeof(extra),
		 "{\"memory\":128,\"cmdline\":\"console=ttyS0 panic=-1 qv.ctl=1\","
		 "\"disks\":[{\"path\":\"%s\",\"format\":\"raw\"}]}", disk);
	cr_assert_eq(qvt_define_guest(&hosts.d[0], VM, extra, &err), 0, "define: %s", err.message);
	json_object_put(must(0, "vm.start", "{\"name\":\"%s\"}", VM));
	qvt_ctl *c = open_ctl(0);
	phase("guest booted on h0");
	snprintf(cmd, sizeof(cmd), "blkwrite /dev/vda 0 %d seedmove", WRITE_MIB);
	cr_assert_eq(qvt_ctl_cmd(c, cmd, CTL_MS, guest_w, sizeof(guest_w)), 0, "%s", guest_w);
	cr_assert_eq(qvt_ctl_cmd(c, "sync", CTL_MS, NULL, 0), 0);

	/* Running: refused, pointing at live migration. */
	expect_refused(hosts.name[1], "conflict", "use migrate");
	qvt_ctl_close(c);
	stop_vm(0);
	phase("guest wrote its pattern and stopped");
	snprintf(src_run, sizeof(src_run), "%s/vms/%s", hosts.d[0].run_dir, VM);
	cr_assert_eq(access(src_run, F_OK), 0, "%s should exist after a boot", src_run);

	/* Unknown host, its own host: refused, nothing changes. */
	expect_refused("h9", "not-found", "not in the cluster");
	expect_refused(hosts.name[0], "invalid-argument", "already on host");
	/* A cordoned host (maintenance, an evacuation emptying it) gets nothing. */
	json_object_put(must(0, "host.cordon", "{\"host\":\"%s\"}", hosts.name[1]));
	expect_refused(hosts.name[1], "conflict", "cordoned");
	json_object_put(must(0, "host.resume", "{\"host\":\"%s\"}", hosts.name[1]));
	cr_assert(!defined_on(1, VM) && defined_on(0, VM));
	/* A bandwidth whose bytes/s would wrap is refused, not taken as another cap. */
	struct qv_error berr = {};
	cr_assert_neq(qvt_callf(&hosts.d[0], "vm.move", NULL, &berr,
				"{\"name\":\"%s\",\"to\":\"h1\",\"bandwidth_mib\":99999999999999999}",
				VM), 0, "a wrapping bandwidth_mib was accepted");
	cr_assert_str_eq(berr.reason, "invalid-argument", "%s", berr.message);
	cr_assert(strstr(berr.message, "bandwidth_mib"), "%s", berr.message);
	md5_file(disk, md5_before);

	move_killed_midway(disk, md5_before);
	phase("move with the destination killed: source intact, h2 restarted clean");

	/* The move, asked through h1 (not the owner): forwarded to h0. */
	snprintf(cmd, sizeof(cmd), "--json move %s --to %s", VM, hosts.name[1]);
	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qvt_cli(&hosts.d[1], cmd, out, sizeof(out)), 0, "%s", out);
	cr_log_info("qvisor move (64 MiB disk, %d MiB written): %llu ms\n%s", WRITE_MIB,
		    (unsigned long long)(qv_now_ms() - t0), out);
	_cleanup_json_ json_object *res = json_tokener_parse(strchr(out, '{') ?: out);
	cr_assert_not_null(res, "%s", out);
	cr_assert_str_eq(qvt_json_str(res, "host"), hosts.name[1]);
	json_object *disks, *d0;
	cr_assert(json_object_object_get_ex(res, "disks", &disks));
	cr_assert_eq(json_object_array_length(disks), 1);
	d0 = json_object_array_get_idx(disks, 0);
	const char *dest = qvt_json_str(d0, "path");
	cr_assert(strncmp(dest, hosts.d[1].state_dir, strlen(hosts.d[1].state_dir)) == 0,
		  "the new disk %s is not in h1's state dir", dest);

	/* Same bytes on h1; the inventory names h1; nothing left on h0. */
	md5_file(dest, md5_after);
	cr_assert_str_eq(md5_after, md5_before);
	cr_assert_eq(qvt_cluster_owner(&hosts, 2, VM, owner, sizeof(owner)), 0);
	cr_assert_str_eq(owner, hosts.name[1]);
	cr_assert(defined_on(1, VM));
	cr_assert(!defined_on(0, VM));
	cr_assert(!defined_on(2, VM));
	cr_assert_neq(access(disk, F_OK), 0, "the source disk %s is still there", disk);
	cr_assert_neq(access(src_run, F_OK), 0, "the source run dir %s is still there", src_run);
	snprintf(extra, sizeof(extra), "%s/move-out", hosts.d[0].state_dir);
	cr_assert_eq(entries(extra), 0, "a move journal is left on h0");
	snprintf(extra, sizeof(extra), "%s/move-in", hosts.d[1].state_dir);
	cr_assert_eq(entries(extra), 0, "an incoming move is left on h1");

	/* It boots on h1 (started through h0: forwarded) and reads the same data. */
	json_object_put(must(0, "vm.start", "{\"name\":\"%s\"}", VM));
	c = open_ctl(1);
	phase("guest booted on h1");
	snprintf(cmd, sizeof(cmd), "blkread /dev/vda 0 %d", WRITE_MIB);
	cr_assert_eq(qvt_ctl_cmd(c, cmd, CTL_MS, guest_r, sizeof(guest_r)), 0, "%s", guest_r);
	cr_assert_str_eq(guest_r, guest_w, "the guest reads other data on the new host");
	qvt_ctl_close(c);
	stop_vm(1);
	phase("guest read the same data on h1");
	encrypted_disk_moves();
	phase("encrypted disk moved, its key opens it on h2");
	source_killed_after_switch();
	phase("source killed after the owner switch: its restart finished the move");
}
