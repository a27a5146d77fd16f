/* SPDX-License-Identifier: MIT */
/* backup.* end to end (docs/backup.md): a real qvisord, QEMU (TCG) and the
 * test guest writing patterns through its control channel (qv.ctl=1) while
 * it runs; backups, restores into the pool, and guests booted from the
 * restored images reading the same checksums. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/guest-ctl.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 180000
#define CTL_MS 60000
#define MIB 4

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static char tiny_mount[128]; /* a tmpfs a test mounted, unmounted even when it fails */

static void teardown(void)
{
	if (tiny_mount[0])
		umount2(tiny_mount, MNT_DETACH);
	tiny_mount[0] = '\0';
	qvt_daemon_cleanup(&D);
}

TestSuite(backup, .init = setup, .fini = teardown, .timeout = 600);

static json_object *callv(struct qv_error *err, const char *method, const char *fmt, va_list ap)
{
	char buf[2048];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	json_object *p = json_tokener_parse(buf);
	cr_assert_not_null(p, "bad test JSON %s", buf);
	qv_error_clear(err);
	return qvt_call(&D, method, p, err);
}

static json_object *must(const char *method, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_object *must(const char *method, const char *fmt, ...)
{
	struct qv_error e = {};
	va_list ap;

	va_start(ap, fmt);
	json_object *r = callv(&e, method, fmt, ap);
	va_end(ap);
	cr_assert_not_null(r, "%s failed: %s (%s)", method, e.message, e.reason);
	return r;
}

static json_object *callv_wrap(struct qv_error *err, const char *method, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static json_object *callv_wrap(struct qv_error *err, const char *method, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	json_object *r = callv(err, method, fmt, ap);
	va_end(ap);
	return r;
}

static void md5_pattern(const char *seed, char out[33])
{
	_cleanup_free_ char *blkpat = qvt_guest_file("bin/blkpat");
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "'%s' '%s' %d | md5sum", blkpat, seed, MIB);
	qvt_md5_of_cmd(cmd, out);
}

static void md5_range(const char *path, int off_mib, char out[33])
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "dd if='%s' bs=1M skip=%d count=%d status=none | md5sum", path,
		 off_mib, MIB);
	qvt_md5_of_cmd(cmd, out);
}

static void md5_zeroes(char out[33])
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "head -c %dM /dev/zero | md5sum", MIB);
	qvt_md5_of_cmd(cmd, out);
}

/* A qcow2 pool image, a VM "name" using it, started, its control channel. */
static qvt_ctl *boot_vm(const char *name, const char *image, bool create)
{
	char extra[1024];
	struct qv_error e = {};
	_cleanup_json_ json_object *info = NULL, *con = NULL;

	if (create)
		json_object_put(must("image.create", "{\"name\":\"%s\",\"size\":%d,\"format\":\"qcow2\"}",
				     image, 64 << 20));
	info = must("image.info", "{\"name\":\"%s\"}", image);
	snprintf(extra, sizeof(extra),
		 "{\"cmdline\":\"console=ttyS0 panic=-1 qv.ctl=1\","
		 "\"disks\":[{\"path\":\"%s\",\"format\":\"%s\"}]}",
		 qvt_json_str(info, "path"), qvt_json_str(info, "format"));
	cr_assert_eq(qvt_define_guest(&D, name, extra, &e), 0, "define %s: %s", name, e.message);
	json_object_put(must("vm.start", "{\"name\":\"%s\"}", name));
	con = must("vm.console", "{\"name\":\"%s\"}", name);
	qvt_ctl *c = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_TIMEOUT_MS);
	cr_assert_not_null(c, "VM %s: control channel did not answer", name);
	return c;
}

static void ctl(qvt_ctl *c, const char *cmd, char out[33])
{
	char v[128];

	cr_assert_eq(qvt_ctl_cmd(c, cmd, CTL_MS, v, sizeof(v)), 0, "guest: %s: %s", cmd, v);
	if (out)
		snprintf(out, 33, "%s", v);
}

static void guest_write(qvt_ctl *c, int off_mib, const char *seed)
{
	char cmd[128], got[33], want[33];

	snprintf(cmd, sizeof(cmd), "blkwrite /dev/vda %d %d %s", off_mib, MIB, seed);
	ctl(c, cmd, got);
	md5_pattern(seed, want);
	cr_assert_str_eq(got, want, "guest wrote %s at %d MiB", seed, off_mib);
}

static json_object *backup(const char *vm, const char *want_kind)
{
	json_object *r = must("backup.create", "{\"name\":\"%s\"}", vm);

	cr_assert_str_eq(qvt_json_str(r, "kind"), want_kind, "backup %s: kind %s (forced_full: %s)",
			 qvt_json_str(r, "id"), qvt_json_str(r, "kind"), qvt_json_str(r, "forced_full"));
	cr_assert_eq(json_object_get_boolean(json_object_object_get(r, "quiesced")), false);
	cr_assert(strstr(qvt_json_str(r, "quiesce_note"), "guest agent"), "quiesce note: %s",
		  qvt_json_str(r, "quiesce_note"));
	return r;
}

/* Restore id into pool image `to` and return its path (malloc'd). */
static char *restore(const char *id, const char *to, const char *define)
{
	_cleanup_json_ json_object *r = NULL;
	char def[128] = "";

	if (define)
		snprintf(def, sizeof(def), ",\"define\":\"%s\"", define);
	r = must("backup.restore", "{\"id\":\"%s\",\"to\":\"%s\"%s}", id, to, def);
	json_object *imgs = json_object_object_get(r, "images");
	cr_assert_eq(json_object_array_length(imgs), 1);
	return strdup(json_object_get_string(json_object_array_get_idx(imgs, 0)));
}

static void expect_range(const char *path, int off, const char *seed_or_zero, bool equal)
{
	char got[33], want[33];

	md5_range(path, off, got);
	if (seed_or_zero)
		md5_pattern(seed_or_zero, want);
	else
		md5_zeroes(want);
	if (equal)
		cr_assert_str_eq(got, want, "%s at %d MiB: want %s", path, off,
				 seed_or_zero ? seed_or_zero : "zeroes");
	else
		cr_assert_str_neq(got, want, "%s at %d MiB must not hold %s", path, off, seed_or_zero);
}

static void stop_vm(const char *name)
{
	json_object_put(must("vm.stop", "{\"name\":\"%s\",\"force\":true}", name));
}

static qvt_ctl *restart_ctl(const char *name);

/* b (stopped, as full_incremental_restore_and_boot left it) backed up:
 * a full read by the daemon, said so; restored as qcow2 it holds A, B and
 * C; b started again gets an incremental on it (the bitmap qemu-img added
 * to the stopped image) holding D. */
static void stopped_vm_backup_and_qcow2_restore(qvt_ctl **cp)
{
	char cmd[1024], raw[600];
	struct qv_error e = {};

	_cleanup_json_ json_object *off = must("backup.create", "{\"name\":\"b\"}");
	cr_assert_str_eq(qvt_json_str(off, "kind"), "full");
	cr_assert(strstr(qvt_json_str(off, "forced_full"), "is stopped"), "%s",
		  qvt_json_str(off, "forced_full"));
	cr_assert_eq(json_object_get_boolean(json_object_object_get(off, "quiesced")), false);
	json_object_put(must("backup.verify", "{\"id\":\"%s\"}", qvt_json_str(off, "id")));
	json_object *r = callv_wrap(&e, "backup.restore", "{\"id\":\"%s\",\"to\":\"bq\","
				    "\"format\":\"vmdk\"}", qvt_json_str(off, "id"));
	cr_assert_null(r, "restore into vmdk accepted");
	cr_assert_str_eq(e.reason, "invalid-argument", "%s", e.message);
	_cleanup_json_ json_object *rq = must("backup.restore", "{\"id\":\"%s\",\"to\":\"bq\","
					      "\"format\":\"qcow2\"}", qvt_json_str(off, "id"));
	const char *q = json_object_get_string(json_object_array_get_idx(
		json_object_object_get(rq, "images"), 0));
	cr_assert(strstr(q, "/bq.qcow2"), "%s", q);
	snprintf(raw, sizeof(raw), "%s/bq-check.raw", D.dir);
	snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s' && qemu-img info '%s' | grep -q "
		 "'file format: qcow2' && qemu-img convert -f qcow2 -O raw '%s' '%s'", q, q, q, raw);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	expect_range(raw, 0, "patA", true);
	expect_range(raw, 8, "patB", true);
	expect_range(raw, 16, "patC", true);
	/* sparse: the 64 MiB disk holds 12 MiB of data */
	struct stat st;
	cr_assert_eq(stat(q, &st), 0);
	cr_assert_lt(st.st_blocks * 512, 32 << 20, "qcow2 restore not sparse: %lld bytes",
		     (long long)st.st_blocks * 512);
	json_object_put(must("image.info", "{\"name\":\"bq\"}"));

	*cp = restart_ctl("b");
	guest_write(*cp, 24, "patD");
	_cleanup_json_ json_object *inc = backup("b", "incremental");
	cr_assert_str_eq(qvt_json_str(inc, "parent"), qvt_json_str(off, "id"));
	_cleanup_free_ char *p = restore(qvt_json_str(inc, "id"), "bi", NULL);
	expect_range(p, 16, "patC", true);
	expect_range(p, 24, "patD", true);
}

/* A (0), full, B (8), incremental, C (16): the restored chain has A and B,
 * not C; a VM booted from it (defined by the restore) reads the same. */
Test(backup, full_incremental_restore_and_boot)
{
	char v[33], want[33];

	QVT_REQUIRE_DAEMON(&D);
	qvt_ctl *c = boot_vm("b", "src", true);
	guest_write(c, 0, "patA");
	_cleanup_json_ json_object *full = backup("b", "full");
	cr_assert(strstr(qvt_json_str(full, "forced_full"), "first backup"), "%s",
		  qvt_json_str(full, "forced_full"));
	guest_write(c, 8, "patB");
	_cleanup_json_ json_object *inc = backup("b", "incremental");
	cr_assert_str_eq(qvt_json_str(inc, "parent"), qvt_json_str(full, "id"));
	guest_write(c, 16, "patC");
	qvt_ctl_close(c);

	json_object_put(must("backup.verify", "{\"id\":\"%s\"}", qvt_json_str(inc, "id")));
	_cleanup_free_ char *p = restore(qvt_json_str(inc, "id"), "rest", "r");
	expect_range(p, 0, "patA", true);
	expect_range(p, 8, "patB", true);
	expect_range(p, 16, "patC", false);
	expect_range(p, 16, NULL, true);
	/* the full alone: A, and B not yet */
	_cleanup_free_ char *pf = restore(qvt_json_str(full, "id"), "restfull", NULL);
	expect_range(pf, 0, "patA", true);
	expect_range(pf, 8, NULL, true);

	/* Nothing under a final name can be half-written: no partial left. */
	stop_vm("b");
	json_object_put(must("vm.start", "{\"name\":\"r\"}"));
	qvt_ctl *cb = NULL; /* b boots again while r boots */
	stopped_vm_backup_and_qcow2_restore(&cb);
	qvt_ctl_close(cb);
	_cleanup_json_ json_object *con = must("vm.console", "{\"name\":\"r\"}");
	c = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_TIMEOUT_MS);
	cr_assert_not_null(c, "restored VM did not answer");
	ctl(c, "blkread /dev/vda 0 4", v);
	md5_pattern("patA", want);
	cr_assert_str_eq(v, want, "restored VM reads A");
	ctl(c, "blkread /dev/vda 8 4", v);
	md5_pattern("patB", want);
	cr_assert_str_eq(v, want, "restored VM reads B");
	ctl(c, "blkread /dev/vda 16 4", v);
	md5_zeroes(want);
	cr_assert_str_eq(v, want, "restored VM has no C");
	qvt_ctl_close(c);
	stop_vm("r");
	stop_vm("b");
}


static void wait_state(const char *name, const char *a, const char *b)
{
	char st[32];

	for (int i = 0; i < 300; i++) {
		qvt_vm_state(&D, name, st, sizeof(st));
		if (streq(st, a) || (b && streq(st, b)))
			return;
		qvt_sleep_ms(100);
	}
	cr_assert_fail("VM %s never became %s (is %s)", name, a, st);
}

static qvt_ctl *restart_ctl(const char *name)
{
	json_object_put(must("vm.start", "{\"name\":\"%s\"}", name));
	_cleanup_json_ json_object *con = must("vm.console", "{\"name\":\"%s\"}", name);
	qvt_ctl *c = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_TIMEOUT_MS);
	cr_assert_not_null(c, "VM %s: control channel did not answer", name);
	return c;
}

/* The daemon is SIGKILLed between two backups and a write lands while it
 * is down: the incremental after the restart still has it. QEMU SIGKILLed:
 * the next backup is full and says why. */
Test(backup, daemon_kill_keeps_the_chain_qemu_kill_forces_full)
{
	QVT_REQUIRE_DAEMON(&D);
	qvt_ctl *c = boot_vm("k", "ksrc", true);
	guest_write(c, 0, "kA");
	_cleanup_json_ json_object *full = backup("k", "full");
	guest_write(c, 8, "kB");
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);
	guest_write(c, 16, "kC"); /* nobody watching but QEMU's bitmap */
	cr_assert_eq(qvt_daemon_start(&D), 0);
	_cleanup_json_ json_object *inc = backup("k", "incremental");
	cr_assert_str_eq(qvt_json_str(inc, "parent"), qvt_json_str(full, "id"));
	_cleanup_free_ char *p = restore(qvt_json_str(inc, "id"), "krest", NULL);
	expect_range(p, 0, "kA", true);
	expect_range(p, 8, "kB", true);
	expect_range(p, 16, "kC", true);
	qvt_ctl_close(c);

	/* A clean QEMU shutdown stores the bitmap in the image; the next QEMU
	 * loads it and marks it in use there. Killed, it leaves it so. */
	json_object_put(must("vm.stop", "{\"name\":\"k\"}"));
	wait_state("k", "stopped", NULL);
	c = restart_ctl("k");
	qvt_ctl_close(c);
	int pid = qvt_vm_pid(&D, "k");
	cr_assert_gt(pid, 1);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	wait_state("k", "crashed", "stopped");
	c = restart_ctl("k");
	guest_write(c, 24, "kD");
	_cleanup_json_ json_object *after = backup("k", "full");
	cr_assert(strstr(qvt_json_str(after, "forced_full"), "inconsistent"), "forced_full: %s",
		  qvt_json_str(after, "forced_full"));
	/* and the chain goes on from there */
	guest_write(c, 32, "kE");
	_cleanup_json_ json_object *inc2 = backup("k", "incremental");
	cr_assert_str_eq(qvt_json_str(inc2, "parent"), qvt_json_str(after, "id"));
	_cleanup_free_ char *p2 = restore(qvt_json_str(inc2, "id"), "krest2", NULL);
	expect_range(p2, 24, "kD", true);
	expect_range(p2, 32, "kE", true);
	qvt_ctl_close(c);
	stop_vm("k");
}

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;

	cr_assert_not_null(d, "%s", dir);
	for (struct dirent *de; (de = readdir(d));)
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* A store on a 1 MiB tmpfs: the backup fails with no-space, nothing is left
 * there (not even the partial directory), and the chain in the default
 * store goes on with an incremental. */
Test(backup, full_store_fails_cleanly_and_the_chain_stays_usable)
{
	char store[128];
	struct qv_error e = {};

	QVT_REQUIRE_DAEMON(&D);
	snprintf(store, sizeof(store), "%s/tiny", D.dir);
	cr_assert_eq(mkdir(store, 0700), 0);
	if (mount("tmpfs", store, "tmpfs", 0, "size=1m") < 0)
		cr_skip_test("cannot mount a tmpfs here: %s", strerror(errno));
	snprintf(tiny_mount, sizeof(tiny_mount), "%s", store);
	qvt_ctl *c = boot_vm("f", "fsrc", true);
	guest_write(c, 0, "fA");
	_cleanup_json_ json_object *full = backup("f", "full");
	guest_write(c, 8, "fB");

	json_object *r = callv_wrap(&e, "backup.create", "{\"name\":\"f\",\"store\":\"%s\"}", store);
	cr_assert_null(r, "backup into a full store succeeded");
	cr_assert_str_eq(e.reason, "no-space", "reason %s: %s", e.reason, e.message);
	cr_assert_eq(dir_entries(store), 0, "the failed backup left files in %s", store);

	_cleanup_json_ json_object *inc = backup("f", "incremental");
	cr_assert_str_eq(qvt_json_str(inc, "parent"), qvt_json_str(full, "id"));
	_cleanup_free_ char *p = restore(qvt_json_str(inc, "id"), "frest", NULL);
	expect_range(p, 0, "fA", true);
	expect_range(p, 8, "fB", true);
	qvt_ctl_close(c);
	stop_vm("f");
}

static bool has_id(json_object *arr, const char *id)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		if (streq(json_object_get_string(json_object_array_get_idx(arr, i)), id))
			return true;
	return false;
}

/* F1 I1 I2 F2 I3: keep-last 2 keeps F2 and I3; keep-last 1 keeps I3 and
 * the full it needs; the kept backups verify and restore; a corrupted one
 * fails verification; a backup another needs cannot be deleted. */
Test(backup, prune_keeps_the_policy_and_what_it_needs)
{
	struct qv_error e = {};
	char ids[5][160];

	QVT_REQUIRE_DAEMON(&D);
	qvt_ctl *c = boot_vm("p", "psrc", true);
	for (int i = 0; i < 5; i++) {
		char seed[16];
		snprintf(seed, sizeof(seed), "p%d", i);
		guest_write(c, 4 * i, seed);
		json_object *b = i == 3 ? must("backup.create", "{\"name\":\"p\",\"full\":true}")
					: backup("p", i == 0 ? "full" : "incremental");
		snprintf(ids[i], sizeof(ids[i]), "%s", qvt_json_str(b, "id"));
		json_object_put(b);
	}
	qvt_ctl_close(c);
	stop_vm("p");

	_cleanup_json_ json_object *r1 = must("backup.prune", "{\"vm\":\"p\",\"keep_last\":2}");
	json_object *kept = json_object_object_get(r1, "kept"), *gone = json_object_object_get(r1, "deleted");
	cr_assert_eq(json_object_array_length(kept), 2, "%s", json_object_to_json_string(r1));
	cr_assert(has_id(kept, ids[3]) && has_id(kept, ids[4]));
	cr_assert_eq(json_object_array_length(gone), 3);
	_cleanup_json_ json_object *r2 = must("backup.prune", "{\"vm\":\"p\",\"keep_last\":1}");
	kept = json_object_object_get(r2, "kept");
	cr_assert_eq(json_object_array_length(kept), 2, "the chain of the kept one stays: %s",
		     json_object_to_json_string(r2));
	cr_assert_eq(json_object_array_length(json_object_object_get(r2, "deleted")), 0);
	_cleanup_json_ json_object *l = must("backup.list", "{\"vm\":\"p\"}");
	cr_assert_eq(json_object_array_length(json_object_object_get(l, "backups")), 2);

	json_object_put(must("backup.verify", "{\"id\":\"%s\"}", ids[4]));
	_cleanup_free_ char *p = restore(ids[4], "prest", NULL);
	expect_range(p, 12, "p3", true);
	expect_range(p, 16, "p4", true);

	json_object *r = callv_wrap(&e, "backup.delete", "{\"id\":\"%s\"}", ids[3]);
	cr_assert_null(r);
	cr_assert_str_eq(e.reason, "conflict", "%s", e.message);

	/* flip one byte of the incremental's file: verify must notice */
	char path[512];
	snprintf(path, sizeof(path), "%s/backups/%s/disk0.qcow2", D.state_dir, ids[4]);
	FILE *f = fopen(path, "r+");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 70000, SEEK_SET);
	int ch = fgetc(f);
	fseek(f, 70000, SEEK_SET);
	fputc(ch ^ 0x5a, f);
	fclose(f);
	r = callv_wrap(&e, "backup.verify", "{\"id\":\"%s\"}", ids[4]);
	cr_assert_null(r, "verify missed a corrupted backup");
	cr_assert_str_eq(e.reason, "io-error", "%s", e.message);
	cr_assert(strstr(e.message, "checksum"), "%s", e.message);
}

/* spec.backup: the daemon backs a running VM up on its own (the first
 * check comes a few seconds after the daemon starts, then every minute). */
Test(backup, schedule_backs_a_running_vm_up)
{
	char extra[1024], path[512];
	struct qv_error e = {};

	QVT_REQUIRE_DAEMON(&D);
	snprintf(path, sizeof(path), "%s/sched-store", D.dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	json_object_put(must("image.create", "{\"name\":\"ssrc\",\"size\":%d,\"format\":\"qcow2\"}",
			     64 << 20));
	_cleanup_json_ json_object *info = must("image.info", "{\"name\":\"ssrc\"}");
	snprintf(extra, sizeof(extra),
		 "{\"disks\":[{\"path\":\"%s\",\"format\":\"qcow2\"}],"
		 "\"backup\":{\"schedule\":\"daily\",\"keep_last\":1,\"store\":\"%s\"}}",
		 qvt_json_str(info, "path"), path);
	cr_assert_eq(qvt_define_guest(&D, "s", extra, &e), 0, "define: %s", e.message);
	json_object_put(must("vm.start", "{\"name\":\"s\"}"));
	size_t n = 0;
	for (int i = 0; i < 1200 && n == 0; i++) {
		_cleanup_json_ json_object *l = must("backup.list", "{\"store\":\"%s\"}", path);
		n = json_object_array_length(json_object_object_get(l, "backups"));
		if (!n)
			qvt_sleep_ms(100);
	}
	cr_assert_eq(n, 1, "no scheduled backup within 2 minutes");
	_cleanup_json_ json_object *l = must("backup.list", "{\"store\":\"%s\"}", path);
	json_object *b = json_object_array_get_idx(json_object_object_get(l, "backups"), 0);
	cr_assert_str_eq(qvt_json_str(b, "vm"), "s");
	cr_assert_str_eq(qvt_json_str(b, "kind"), "full");
	stop_vm("s");
}

/* A full backup slowed to 1 MiB/s is cancelled while QEMU copies: the call
 * fails with "cancelled", the store holds nothing of it, and the chain goes
 * on as before (the next backup is an incremental on the old one). */
Test(backup, cancel_midway_leaves_nothing)
{
	char cmd[1024], out[4096], path[600];

	QVT_REQUIRE_DAEMON(&D);
	qvt_ctl *c = boot_vm("c", "csrc", true);
	guest_write(c, 0, "cA");
	_cleanup_json_ json_object *full = backup("c", "full");
	guest_write(c, 8, "cB");
	/* the second full, throttled, in the background through the CLI */
	snprintf(path, sizeof(path), "%s/cancel.out", D.dir);
	snprintf(cmd, sizeof(cmd), "'%s/qvisor' --socket '%s' backup create c --full "
		 "--bandwidth 1M >'%s' 2>&1; echo rc=$? >>'%s'", getenv("QV_BUILD_DIR") ?
		 getenv("QV_BUILD_DIR") : "build", D.socket, path, path);
	FILE *bg = popen(cmd, "r");
	cr_assert_not_null(bg);
	char phase[32] = "";
	for (int i = 0; i < 600 && !streq(phase, "copying"); i++) {
		_cleanup_json_ json_object *st = must("backup.status", "{}");
		json_object *b = json_object_array_get_idx(json_object_object_get(st, "backups"), 0);
		snprintf(phase, sizeof(phase), "%s", qvt_json_str(b, "phase"));
		if (!streq(phase, "copying"))
			qvt_sleep_ms(100);
	}
	cr_assert_str_eq(phase, "copying");
	json_object_put(must("backup.cancel", "{\"name\":\"c\"}"));
	pclose(bg);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	cr_assert(strstr(out, "cancelled") && strstr(out, "rc=1"), "CLI said: %s", out);
	/* nothing of it in the store: two entries are the full and ... nothing else */
	snprintf(path, sizeof(path), "%s/backups", D.state_dir);
	cr_assert_eq(dir_entries(path), 1, "the cancelled backup left something in %s", path);
	_cleanup_json_ json_object *inc = backup("c", "incremental");
	cr_assert_str_eq(qvt_json_str(inc, "parent"), qvt_json_str(full, "id"));
	_cleanup_free_ char *p = restore(qvt_json_str(inc, "id"), "crest", NULL);
	expect_range(p, 8, "cB", true);
	qvt_ctl_close(c);
	stop_vm("c");
}

/* The test guest plus Debian's qemu-ga and the ext4 modules of the guest's
 * kernel package (the base guest has no disk filesystem to freeze); ext4
 * also needs the crc32c hash, which the kernel loads by name. */
static void build_agent_initrd(char *img, size_t size)
{
	const char *src = getenv("QV_SRC_DIR");
	char cmd[3072];
	struct stat st;

	if (stat("/usr/sbin/qemu-ga", &st) != 0)
		cr_skip_test("qemu-guest-agent is not installed (scripts/install-deps.sh)");
	snprintf(img, size, "%s/qga.img", D.dir);
	snprintf(cmd, sizeof(cmd),
		 "set -e; x=%s/qga-extra; k=%s/kmod; mkdir -p $x/usr/sbin $x/lib/modules/extra $k; "
		 "cp /usr/sbin/qemu-ga $x/usr/sbin/; deb=$(ls %s/cache/linux-image-*.deb | head -n1); "
		 "dpkg-deb --fsys-tarfile \"$deb\" | tar -x -C $k --wildcards "
		 "'./lib/modules/*/kernel/fs/ext4/ext4.ko' './lib/modules/*/kernel/fs/jbd2/jbd2.ko' "
		 "'./lib/modules/*/kernel/fs/mbcache.ko' './lib/modules/*/kernel/lib/crc16.ko' "
		 "'./lib/modules/*/kernel/crypto/crc32c_generic.ko'; "
		 "for m in crc32c_generic crc16 mbcache jbd2 ext4; do cp $(find $k -name $m.ko) $x/lib/modules/extra/; "
		 "echo $m.ko >>$x/lib/modules/extra/order; done; "
		 "for dep in $(modinfo -F depends $x/lib/modules/extra/ext4.ko | tr , ' '); do "
		 "grep -qx $dep.ko $x/lib/modules/extra/order; done; "
		 "%s/scripts/mkguest.sh --extra $x --out %s --base %s >%s/mkguest.log 2>&1",
		 D.dir, D.dir, qvt_guest_dir(), src && *src ? src : ".", img, qvt_guest_dir(), D.dir);
	if (system(cmd) != 0)
		cr_skip_test("cannot build a guest with qemu-ga and ext4 (%s/mkguest.log; needs the "
			     "kernel package in the guest's cache)", D.dir);
}

/* A VM with the real guest agent and a mounted ext4: the backup freezes
 * it (the agent answers with the filesystems it froze: quiesced, and the
 * metadata says so), the guest goes on writing to it after the thaw, and
 * the restored disk holds the file written before the backup (debugfs). */
Test(backup, quiesced_with_the_guest_agent)
{
	char img[512], extra[1536], v[128];
	struct qv_error e = {};

	QVT_REQUIRE_DAEMON(&D);
	build_agent_initrd(img, sizeof(img));
	json_object_put(must("image.create", "{\"name\":\"qsrc\",\"size\":%d,\"format\":\"qcow2\"}",
			     64 << 20));
	_cleanup_json_ json_object *info = must("image.info", "{\"name\":\"qsrc\"}");
	snprintf(extra, sizeof(extra),
		 "{\"memory\":192,\"guest_agent\":true,\"initrd\":\"%s\","
		 "\"cmdline\":\"console=ttyS0 panic=-1 qv.ctl=1\","
		 "\"disks\":[{\"path\":\"%s\",\"format\":\"qcow2\"}]}", img,
		 qvt_json_str(info, "path"));
	cr_assert_eq(qvt_define_guest(&D, "q", extra, &e), 0, "define: %s", e.message);
	qvt_ctl *c = restart_ctl("q");
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "q"), "QVISOR-AGENT started", 30000),
		     0, "the guest did not start qemu-ga");
	ctl(c, "fsmount /dev/vda /mnt", v);
	cr_assert_str_eq(v, "1", "ext4 not mounted in the guest");
	ctl(c, "fswrite /mnt/before quiet", v);

	_cleanup_json_ json_object *b = must("backup.create", "{\"name\":\"q\"}");
	cr_assert_eq(json_object_get_boolean(json_object_object_get(b, "quiesced")), true,
		     "not quiesced: %s", qvt_json_str(b, "quiesce_note"));
	cr_assert(strstr(qvt_json_str(b, "quiesce_note"), "froze 1 filesystem"), "%s",
		  qvt_json_str(b, "quiesce_note"));
	/* thawed: a write and sync on the filesystem complete, the VM runs */
	ctl(c, "fswrite /mnt/after thawed", v);
	cr_assert_str_eq(v, "thawed");
	_cleanup_json_ json_object *st = must("vm.info", "{\"name\":\"q\"}");
	cr_assert_str_eq(qvt_json_str(st, "state"), "running");
	_cleanup_json_ json_object *i = must("backup.info", "{\"id\":\"%s\"}", qvt_json_str(b, "id"));
	cr_assert_eq(json_object_get_boolean(json_object_object_get(i, "quiesced")), true,
		     "the stored metadata says not quiesced");

	_cleanup_free_ char *p = restore(qvt_json_str(b, "id"), "qrest", NULL);
	char cmd[1024], out[64] = "";
	snprintf(cmd, sizeof(cmd), "debugfs -R 'cat /before' '%s' 2>/dev/null", p);
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	if (!fgets(out, sizeof(out), f))
		out[0] = '\0';
	int rc = pclose(f);
	if (rc == 0 || out[0]) /* debugfs (e2fsprogs) present */
		cr_assert_str_eq(out, "quiet\n", "the restored filesystem lacks the file");
	qvt_ctl_close(c);
	stop_vm("q");
}
