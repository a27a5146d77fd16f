/* SPDX-License-Identifier: MIT */
/* Encrypted (LUKS qcow2) pool images end to end: a real qvisord with a host
 * master key, real QEMU (TCG) and the test guest writing through the
 * encryption; the passphrase is then searched for everywhere it must not be
 * (QEMU's command line and log, the daemon's log, the state database, the
 * keystore, events, every RPC answer). docs/storage.md "Encrypted images". */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "common/json.h"
#include "common/rpc-client.h"
#include "helpers/guest-ctl.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 240000
#define MIB 8
#define SEED "luks-seed"

static struct qvt_daemon D;
static char keydir[64], master1[96], master2[96], pass_file[96];
static char passphrase[64];
static qv_rpc_conn *C;  /* subscribed to events; every call goes through it */
static char *transcript; /* every answer, error and event seen, as text */
static size_t transcript_len;

static void record(const char *s)
{
	size_t n = strlen(s);
	char *t = realloc(transcript, transcript_len + n + 2);

	cr_assert_not_null(t);
	transcript = t;
	memcpy(transcript + transcript_len, s, n);
	transcript_len += n;
	transcript[transcript_len++] = '\n';
	transcript[transcript_len] = '\0';
}

static void on_notify(qv_rpc_conn *c, const char *method, json_object *params, void *ud)
{
	record(method);
	if (params)
		record(json_object_to_json_string(params));
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	cr_assert(fd >= 0, "create %s", path);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void setup(void)
{
	unsigned char k[32];

	snprintf(keydir, sizeof(keydir), "/tmp/qvk-XXXXXX");
	cr_assert_not_null(mkdtemp(keydir));
	for (int i = 0; i < 32; i++)
		k[i] = (unsigned char)(i * 7 + 1);
	snprintf(master1, sizeof(master1), "%s/master1", keydir);
	snprintf(master2, sizeof(master2), "%s/master2", keydir);
	write_file(master1, k, 32, 0600);
	k[0] ^= 0xff;
	write_file(master2, k, 32, 0600);
	/* Unique per run, so a hit can only come from this test. */
	snprintf(passphrase, sizeof(passphrase), "QvtPass-%d-%ld-zq", (int)getpid(),
		 (long)time(NULL));
	snprintf(pass_file, sizeof(pass_file), "%s/pass", keydir);
	write_file(pass_file, passphrase, strlen(passphrase), 0600);
	D.extra_args[0] = "--master-key-file";
	D.extra_args[1] = master1;
	D.extra_args[2] = "--log-level";
	D.extra_args[3] = "debug";
	qvt_daemon_fixture_start(&D);
	if (D.pid > 0) {
		C = qvt_connect(&D);
		cr_assert_not_null(C);
		qv_rpc_set_notify_handler(C, on_notify, NULL);
		cr_assert_eq(qv_rpc_invoke(C, "events.subscribe", NULL, 10000, NULL, NULL), 0);
	}
}

static void teardown(void)
{
	C = qv_rpc_conn_free(C);
	qvt_daemon_cleanup(&D);
	qvt_rm_rf(keydir);
	free(transcript);
	transcript = NULL;
	transcript_len = 0;
}

TestSuite(encrypt, .init = setup, .fini = teardown, .timeout = 900);

/* Call through C (params as JSON text); records the answer or the error. */
static int callv(json_object **ret, struct qv_error *err, const char *method, const char *fmt,
		 va_list ap)
{
	char buf[4096];
	json_object *res = NULL;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	json_object *p = json_tokener_parse(buf);
	cr_assert_not_null(p, "bad test JSON %s", buf);
	qv_error_clear(err);
	int r = qv_rpc_invoke(C, method, p, 600000, &res, err);
	record(r < 0 ? err->message : json_object_to_json_string(res));
	if (ret)
		*ret = res;
	else
		json_object_put(res);
	return r;
}

static json_object *must(const char *method, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static json_object *must(const char *method, const char *fmt, ...)
{
	struct qv_error err = {};
	json_object *res = NULL;
	va_list ap;

	va_start(ap, fmt);
	int r = callv(&res, &err, method, fmt, ap);
	va_end(ap);
	cr_assert_eq(r, 0, "%s failed: %s (%s)", method, err.message, err.reason);
	return res;
}

/* The call must fail with reason; returns the message (static). */
static const char *must_fail(const char *reason, const char *method, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *must_fail(const char *reason, const char *method, const char *fmt, ...)
{
	static struct qv_error err;
	va_list ap;

	va_start(ap, fmt);
	int r = callv(NULL, &err, method, fmt, ap);
	va_end(ap);
	cr_assert_lt(r, 0, "%s %s unexpectedly succeeded", method, fmt);
	cr_assert_str_eq(err.reason, reason, "%s: reason %s (%s), want %s", method, err.reason,
			 err.message, reason);
	return err.message;
}

static char *image_path(const char *name)
{
	_cleanup_json_ json_object *r = must("image.info", "{\"name\":\"%s\"}", name);
	return strdup(qvt_json_str(r, "path"));
}

/* The whole file (at most 256 MiB; /proc files too), *ret_len bytes. */
static char *slurp(const char *path, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap + 1);

	cr_assert_not_null(buf);
	for (ssize_t n; fd >= 0 && (n = read(fd, buf + len, cap - len)) > 0;) {
		len += (size_t)n;
		if (len == cap) {
			cr_assert_lt(cap, 256 << 20, "%s too large", path);
			cap *= 2;
			buf = realloc(buf, cap + 1);
			cr_assert_not_null(buf);
		}
	}
	if (fd >= 0)
		close(fd);
	buf[len] = '\0';
	*ret_len = len;
	return buf;
}

static bool file_has(const char *path, const void *needle, size_t n)
{
	size_t len;
	_cleanup_free_ char *buf = slurp(path, &len);
	return memmem(buf, len, needle, n) != NULL;
}

static void assert_no_passphrase(const char *what, const char *path)
{
	cr_assert_not(file_has(path, passphrase, strlen(passphrase)),
		      "the passphrase appears in %s (%s)", what, path);
}

/* 4 KiB of `blkpat SEED MIB` at offset off. */
static void pattern_chunk(size_t off, char out[4096])
{
	_cleanup_free_ char *blkpat = qvt_guest_file("bin/blkpat");
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "'%s' %s %d", blkpat, SEED, MIB);
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	char *buf = malloc(MIB << 20);
	size_t got = fread(buf, 1, MIB << 20, f);
	pclose(f);
	cr_assert_eq(got, (size_t)MIB << 20, "blkpat gave %zu bytes", got);
	memcpy(out, buf + off, 4096);
	free(buf);
}

static void define_vm(const char *vm, const char *disks_json, const char *cmdline_extra)
{
	char extra[2048];
	struct qv_error err = {};

	snprintf(extra, sizeof(extra),
		 "{\"cmdline\":\"console=ttyS0 panic=-1 %s\",\"disks\":%s}", cmdline_extra,
		 disks_json);
	cr_assert_eq(qvt_define_guest(&D, vm, extra, &err), 0, "define %s: %s", vm, err.message);
}

static void qemu_img_check(const char *path, const char *pass, bool want_ok)
{
	char pf[128], cmd[1024];

	snprintf(pf, sizeof(pf), "%s/check-pass", keydir);
	write_file(pf, pass, strlen(pass), 0600);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img check -q -U --object secret,id=s0,file=%s --image-opts "
		 "driver=qcow2,file.filename=%s,encrypt.key-secret=s0 >/dev/null 2>&1", pf, path);
	int st = system(cmd);
	cr_assert_eq(st == 0, want_ok, "qemu-img check with %s passphrase: status %d",
		     want_ok ? "the right" : "a wrong", st);
}

/* The guest writes through the encryption and reads back; the file holds
 * no plaintext (a plain disk written the same way does: the search works);
 * the passphrase is nowhere it must not be. */
Test(encrypt, guest_writes_through_luks_and_the_passphrase_never_leaks)
{
	QVT_REQUIRE_DAEMON(&D);
	char out[4096], cmd[512];

	snprintf(cmd, sizeof(cmd), "image create sec 64M --encrypt --passphrase-file %s",
		 pass_file);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 0, "%s: %s", cmd, out);
	record(out);
	snprintf(cmd, sizeof(cmd), "--json image create sec2 64M --encrypt --passphrase-file - < %s",
		 pass_file);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 0, "%s: %s", cmd, out);
	record(out);
	cr_assert(strstr(out, "\"encrypted\":true") || strstr(out, "\"encrypted\": true"), "%s",
		  out);
	/* A passphrase is never taken from argv. */
	cr_assert_neq(qvt_cli(&D, "image create x 1M --encrypt --passphrase hunter2", out,
			      sizeof(out)), 0);
	json_object_put(must("image.delete", "{\"name\":\"sec2\"}"));
	json_object_put(must("image.create", "{\"name\":\"plain\",\"size\":\"64M\","
					     "\"format\":\"qcow2\"}"));

	_cleanup_json_ json_object *info = must("image.info", "{\"name\":\"sec\"}");
	cr_assert_str_eq(qvt_json_str(info, "format"), "qcow2");
	cr_assert(json_object_get_boolean(json_object_object_get(info, "encrypted")));
	cr_assert_str_eq(qvt_json_str(info, "key"), "stored");
	cr_assert_eq(qvt_json_int(info, "key_slots"), 1);
	_cleanup_free_ char *sec = image_path("sec"), *plain = image_path("plain");

	char disks[1024];
	snprintf(disks, sizeof(disks),
		 "[{\"path\":\"%s\",\"format\":\"qcow2\"},{\"path\":\"%s\",\"format\":\"qcow2\"}]",
		 sec, plain);
	define_vm("enc1", disks, "qv.ctl=1");
	json_object_put(must("vm.start", "{\"name\":\"enc1\"}"));
	_cleanup_json_ json_object *con = must("vm.console", "{\"name\":\"enc1\"}");
	qvt_ctl *ctl = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_TIMEOUT_MS);
	cr_assert_not_null(ctl, "the guest never answered on its console");
	char sum[64], want[64];
	snprintf(cmd, sizeof(cmd), "'%s/bin/blkpat' %s %d | md5sum", qvt_guest_dir(), SEED, MIB);
	FILE *f = popen(cmd, "r");
	cr_assert(f && fgets(want, sizeof(want), f));
	pclose(f);
	want[32] = '\0';
	snprintf(cmd, sizeof(cmd), "blkwrite /dev/vda 0 %d %s", MIB, SEED);
	cr_assert_eq(qvt_ctl_cmd(ctl, cmd, 300000, sum, sizeof(sum)), 0, "vda: %s", sum);
	cr_assert_str_eq(sum, want, "read back through LUKS differs");
	snprintf(cmd, sizeof(cmd), "blkread /dev/vda 0 %d", MIB);
	cr_assert_eq(qvt_ctl_cmd(ctl, cmd, 300000, sum, sizeof(sum)), 0);
	cr_assert_str_eq(sum, want);
	snprintf(cmd, sizeof(cmd), "blkwrite /dev/vdb 0 %d %s", MIB, SEED);
	cr_assert_eq(qvt_ctl_cmd(ctl, cmd, 300000, sum, sizeof(sum)), 0, "vdb: %s", sum);
	qvt_ctl_cmd(ctl, "sync", 60000, sum, sizeof(sum));
	qvt_ctl_close(ctl);

	/* QEMU's command line carries only ciphertext and a master key fd. */
	int pid = qvt_vm_pid(&D, "enc1");
	cr_assert_gt(pid, 0);
	char p[128];
	snprintf(p, sizeof(p), "/proc/%d/cmdline", pid);
	size_t cl_len;
	_cleanup_free_ char *cl = slurp(p, &cl_len);
	cr_assert_gt(cl_len, 0);
	cr_assert(memmem(cl, cl_len, "\"keyid\":\"qv-master\"", 19), "no encrypted secret on argv");
	cr_assert_not(memmem(cl, cl_len, passphrase, strlen(passphrase)),
		      "the passphrase is on QEMU's command line");
	/* Migration: the key goes only over tls:// (or the local socket) and
	 * only with copy_storage; refused before anything starts. */
	const char *m = must_fail("permission-denied", "vm.migrate",
				  "{\"name\":\"enc1\",\"to\":\"ssh://otherhost\","
				  "\"copy_storage\":true}");
	cr_assert(strstr(m, "TLS"), "%s", m);
	m = must_fail("unsupported", "vm.migrate",
		      "{\"name\":\"enc1\",\"to\":\"tls://otherhost\"}");
	cr_assert(strstr(m, "copy_storage"), "%s", m);
	/* A snapshot overlay, a RAM state file or a backup would hold the
	 * guest's data in clear: refused (docs/security.md). */
	m = must_fail("unsupported", "snapshot.create", "{\"name\":\"enc1\",\"snapshot\":\"s1\"}");
	cr_assert(strstr(m, "encrypted"), "%s", m);
	char store[] = "/tmp/qvt-encbk-XXXXXX";
	cr_assert_not_null(mkdtemp(store));
	snprintf(cmd, sizeof(cmd), "{\"name\":\"enc1\",\"store\":\"%s\"}", store);
	m = must_fail("unsupported", "backup.create", cmd);
	cr_assert(strstr(m, "encrypted"), "%s", m);
	rmdir(store);
	/* Nothing started: no migration record, the VM runs on. */
	must_fail("not-found", "migrate.status", "{\"name\":\"enc1\"}");
	char vst[32];
	cr_assert_str_eq(qvt_vm_state(&D, "enc1", vst, sizeof(vst)), "running");
	json_object_put(must("vm.stop", "{\"name\":\"enc1\",\"force\":true}"));

	/* Plaintext: in the plain image (the search works), not in the LUKS one. */
	char chunk[4096];
	pattern_chunk(1 << 20, chunk);
	cr_assert(file_has(plain, chunk, sizeof(chunk)), "search broken: plain image lacks the "
							   "pattern");
	cr_assert_not(file_has(sec, chunk, sizeof(chunk)), "plaintext in the encrypted image");
	pattern_chunk(5 << 20, chunk);
	cr_assert_not(file_has(sec, chunk, sizeof(chunk)), "plaintext in the encrypted image");

	/* Nowhere else either. */
	snprintf(p, sizeof(p), "%s/vms/enc1/qemu.log", D.run_dir);
	cr_assert_eq(access(p, F_OK), 0, "%s missing", p);
	assert_no_passphrase("the QEMU log", p);
	snprintf(p, sizeof(p), "%s/qvisor.db", D.state_dir);
	assert_no_passphrase("the state database", p);
	snprintf(p, sizeof(p), "%s/qvisor.db-wal", D.state_dir);
	assert_no_passphrase("the state database WAL", p);
	snprintf(p, sizeof(p), "%s/keys/sec.key", D.state_dir);
	cr_assert_eq(access(p, F_OK), 0);
	assert_no_passphrase("the keystore (wrapped by the master key)", p);
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	snprintf(p, sizeof(p), "%s/keys", D.state_dir);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	assert_no_passphrase("the daemon log (debug level)", D.log);
	json_object_put(must("vm.info", "{\"name\":\"enc1\"}"));
	json_object_put(must("image.list", "{}"));
	/* Drain queued events, then the transcript of answers and events. */
	for (char *ev = NULL; qv_rpc_wait_notification(C, 200, &ev, NULL, NULL) == 0; free(ev))
		record(ev);
	cr_assert_gt(transcript_len, 0);
	cr_assert(strstr(transcript, "enc1"), "no events or answers recorded");
	cr_assert_null(strstr(transcript, passphrase), "the passphrase is in an RPC answer or "
						       "event");
	/* The key in the store still opens the image; a wrong one does not. */
	qemu_img_check(sec, passphrase, true);
	qemu_img_check(sec, "not-the-passphrase", false);
}

/* A qemu-img run that makes a LUKS keyslot. Its PBKDF benchmark reads the
 * thread's CPU time and sometimes (loaded or idle) reads no progress and fails
 * with "Unable to get accurate CPU usage" (the daemon's storage/image-crypt.c
 * retries the same way); any other failure fails the test. */
static void run_keyslot_cmd(const char *cmd)
{
	char errf[160], full[2048], msg[512] = "";

	snprintf(errf, sizeof(errf), "%s/qemu-img.err", keydir);
	snprintf(full, sizeof(full), "%s 2>%s", cmd, errf);
	for (int attempt = 1;; attempt++) {
		int st = system(full);
		size_t n = 0;
		FILE *f = fopen(errf, "r");

		if (f) {
			n = fread(msg, 1, sizeof(msg) - 1, f);
			fclose(f);
		}
		msg[n] = 0;
		if (st == 0)
			return;
		cr_assert(attempt < 5 && strstr(msg, "accurate CPU usage"),
			  "%s: status %d: %s", cmd, st, msg);
		fprintf(stderr, "retrying (%s): %s\n", msg, cmd);
	}
}

/* Passphrase of the LUKS image written to path with qemu-img directly. */
static void qemu_img_create_luks(const char *path, const char *pass)
{
	char pf[128], cmd[1024];

	snprintf(pf, sizeof(pf), "%s/ext-pass", keydir);
	write_file(pf, pass, strlen(pass), 0600);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img create -q -f qcow2 --object secret,id=s0,file=%s -o "
		 "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 %s 32M",
		 pf, path);
	run_keyslot_cmd(cmd);
	snprintf(cmd, sizeof(cmd),
		 "qemu-io --object secret,id=s0,file=%s --image-opts "
		 "driver=qcow2,file.filename=%s,encrypt.key-secret=s0 -c 'write -P 0x5a 0 4M' "
		 ">/dev/null", pf, path);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Operator behind qvisor's back: the image's only keyslot now takes `to`. */
static void qemu_img_swap_key(const char *path, const char *from, const char *to)
{
	char pf[128], pt[128], cmd[1536];

	snprintf(pf, sizeof(pf), "%s/from", keydir);
	snprintf(pt, sizeof(pt), "%s/to", keydir);
	write_file(pf, from, strlen(from), 0600);
	write_file(pt, to, strlen(to), 0600);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img amend -q --object secret,id=a,file=%s --object secret,id=b,file=%s "
		 "-o encrypt.state=active,encrypt.new-secret=b,encrypt.iter-time=10 --image-opts "
		 "driver=qcow2,file.filename=%s,encrypt.key-secret=a", pf, pt, path);
	run_keyslot_cmd(cmd);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img amend -q --object secret,id=a,file=%s --object secret,id=b,file=%s "
		 "-o encrypt.state=inactive,encrypt.old-secret=a --image-opts "
		 "driver=qcow2,file.filename=%s,encrypt.key-secret=b", pf, pt, path);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void restart_daemon_with(const char *master)
{
	C = qv_rpc_conn_free(C);
	cr_assert_eq(qvt_daemon_stop(&D, SIGTERM), 0);
	D.extra_args[1] = master;
	cr_assert_eq(qvt_daemon_start(&D), 0);
	C = qvt_connect(&D);
	cr_assert_not_null(C);
}

/* Import (refused without or with a wrong passphrase), full clone (keeps
 * the key; a guest reads the data), linked clone refused, resize, rekey
 * (the old passphrase stops opening the image), a wrong key or a wrong
 * master key fails the start with a clear error, delete drops the key. */
Test(encrypt, import_clone_resize_rekey_and_wrong_keys)
{
	QVT_REQUIRE_DAEMON(&D);
	char ext[128], cmd[512], out[4096], pf2[128];
	const char *msg;

	snprintf(ext, sizeof(ext), "%s/external.qcow2", keydir);
	qemu_img_create_luks(ext, passphrase);
	msg = must_fail("invalid-argument", "image.import", "{\"path\":\"%s\",\"name\":\"imp\"}",
			ext);
	cr_assert(strstr(msg, "passphrase"), "%s", msg);
	msg = must_fail("qemu-error", "image.import",
			"{\"path\":\"%s\",\"name\":\"imp\",\"passphrase\":\"wrong-one\"}", ext);
	cr_assert(strstr(msg, "Invalid password"), "%s", msg);
	cr_assert_eq(qvt_pool_entries(&D), 0, "a refused import left a file in the pool");
	snprintf(cmd, sizeof(cmd), "image import %s imp --passphrase-file %s", ext, pass_file);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 0, "%s: %s", cmd, out);
	record(out);
	_cleanup_json_ json_object *imp = must("image.info", "{\"name\":\"imp\"}");
	cr_assert_str_eq(qvt_json_str(imp, "key"), "stored");

	/* Full clone: same key (a byte copy); linked: refused. */
	_cleanup_json_ json_object *cl = must("image.clone", "{\"source\":\"imp\",\"name\":\"cl\"}");
	cr_assert(json_object_get_boolean(json_object_object_get(cl, "encrypted")));
	cr_assert_str_eq(qvt_json_str(cl, "key"), "stored");
	msg = must_fail("unsupported", "image.clone",
			"{\"source\":\"imp\",\"name\":\"ln\",\"linked\":true}");
	cr_assert(strstr(msg, "full clone"), "%s", msg);
	_cleanup_free_ char *clp = image_path("cl");
	qemu_img_check(clp, passphrase, true);

	/* Resize needs the key: done by the daemon with it. */
	_cleanup_json_ json_object *rs = must("image.resize", "{\"name\":\"cl\",\"size\":\"64M\"}");
	cr_assert_eq(qvt_json_int(rs, "virtual_size"), 64 << 20);

	/* A guest reads the clone's data (qemu-io wrote 4 MiB of 0x5a). */
	char disks[512], want[64], line[512];
	snprintf(disks, sizeof(disks), "[{\"path\":\"%s\",\"format\":\"qcow2\"}]", clp);
	define_vm("enc2", disks, "qv.blkread=/dev/vda:4");
	json_object_put(must("vm.start", "{\"name\":\"enc2\"}"));
	FILE *f = popen("head -c 4M /dev/zero | tr '\\0' 'Z' | md5sum", "r");
	cr_assert(f && fgets(want, sizeof(want), f));
	pclose(f);
	want[32] = '\0';
	const char *log = qvt_serial_log(&D, "enc2");
	cr_assert_eq(qvt_wait_for_line_in_file(log, "QVISOR-BLK-", BOOT_TIMEOUT_MS), 0);
	f = fopen(log, "re");
	bool found = false;
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "QVISOR-BLK-SUM ")) {
			cr_assert(strstr(line, want), "guest read %s, want %s", line, want);
			found = true;
		}
	if (f)
		fclose(f);
	cr_assert(found);
	/* Rekey refused while the VM runs. */
	must_fail("conflict", "image.rekey", "{\"name\":\"cl\"}");
	json_object_put(must("vm.stop", "{\"name\":\"enc2\",\"force\":true}"));

	/* Rekey: a new passphrase from a file; the old one stops working. */
	snprintf(pf2, sizeof(pf2), "%s/pass2", keydir);
	char pass2[80];
	snprintf(pass2, sizeof(pass2), "%s-two", passphrase);
	write_file(pf2, pass2, strlen(pass2), 0600);
	snprintf(cmd, sizeof(cmd), "--json image rekey cl --passphrase-file %s", pf2);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 0, "%s: %s", cmd, out);
	record(out);
	cr_assert(strstr(out, "rekeyed"), "%s", out);
	_cleanup_json_ json_object *rk = must("image.info", "{\"name\":\"cl\"}");
	cr_assert_eq(qvt_json_int(rk, "key_slots"), 1);
	qemu_img_check(clp, passphrase, false);
	qemu_img_check(clp, pass2, true);
	/* and a generated key: neither given passphrase opens it any more */
	json_object_put(must("image.rekey", "{\"name\":\"cl\"}"));
	qemu_img_check(clp, pass2, false);
	must_fail("invalid-argument", "image.rekey", "{\"name\":\"imp\",\"passphrase\":\"\"}");
	must_fail("not-found", "image.rekey", "{\"name\":\"nope\"}");

	/* The keystore's key no longer opens imp: the start fails clearly. */
	_cleanup_free_ char *impp = image_path("imp");
	qemu_img_swap_key(impp, passphrase, "somebody-elses");
	snprintf(disks, sizeof(disks), "[{\"path\":\"%s\",\"format\":\"qcow2\"}]", impp);
	define_vm("enc3", disks, "");
	msg = must_fail("qemu-error", "vm.start", "{\"name\":\"enc3\"}");
	cr_assert(strstr(msg, "Invalid password") || strstr(msg, "keyslot"), "%s", msg);
	char st[32];
	cr_assert_str_eq(qvt_vm_state(&D, "enc3", st, sizeof(st)), "stopped");

	/* Another host master key: the keys do not unwrap; said before QEMU runs. */
	restart_daemon_with(master2);
	msg = must_fail("permission-denied", "vm.start", "{\"name\":\"enc2\"}");
	cr_assert(strstr(msg, "master key"), "%s", msg);
	restart_daemon_with(master1);

	/* Delete drops the key file. */
	json_object_put(must("vm.undefine", "{\"name\":\"enc3\"}"));
	json_object_put(must("image.delete", "{\"name\":\"imp\"}"));
	char kp[160];
	snprintf(kp, sizeof(kp), "%s/keys/imp.key", D.state_dir);
	cr_assert_neq(access(kp, F_OK), 0, "%s stays after image.delete", kp);
	cr_assert_null(strstr(transcript, passphrase), "the passphrase is in an RPC answer");
}

/* Storage migration of an encrypted disk to a second daemon over its unix
 * socket (the key never leaves the host; tls:// is the network case): the
 * destination creates its own LUKS image with the passphrase it received,
 * stores it in its keystore, and the guest reads its data there. */
Test(encrypt, storage_migration_carries_the_key)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qvt_daemon D2 = { 0 };
	char out[128], cmd[256], sum[64], want[64], disks[512];

	char stall[300];

	D2.extra_args[0] = "--master-key-file";
	D2.extra_args[1] = master2;
	/* The destination's image worker is held (while the file exists)
	 * before it creates the LUKS image: see below. */
	snprintf(stall, sizeof(stall), "%s/stall", keydir);
	write_file(stall, "1", 1, 0600);
	setenv("QVISORD_TEST_STALL_AT", "dest-create-images", 1);
	setenv("QVISORD_TEST_STALL_FILE", stall, 1);
	cr_assert_eq(qvt_daemon_start(&D2), 0);
	unsetenv("QVISORD_TEST_STALL_AT");
	unsetenv("QVISORD_TEST_STALL_FILE");
	snprintf(cmd, sizeof(cmd), "image create mig 32M --encrypt --passphrase-file %s",
		 pass_file);
	cr_assert_eq(qvt_cli(&D, cmd, out, sizeof(out)), 0, "%s", out);
	_cleanup_free_ char *path = image_path("mig");
	snprintf(disks, sizeof(disks), "[{\"path\":\"%s\",\"format\":\"qcow2\"}]", path);
	define_vm("encm", disks, "qv.ctl=1");
	json_object_put(must("vm.start", "{\"name\":\"encm\"}"));
	_cleanup_json_ json_object *con = must("vm.console", "{\"name\":\"encm\"}");
	qvt_ctl *ctl = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_TIMEOUT_MS);
	cr_assert_not_null(ctl);
	snprintf(cmd, sizeof(cmd), "blkwrite /dev/vda 0 4 %s", SEED);
	cr_assert_eq(qvt_ctl_cmd(ctl, cmd, 300000, want, sizeof(want)), 0, "%s", want);
	qvt_ctl_close(ctl);

	char params[512], st[32], step[64];
	struct qv_error err = {};
	uint64_t mid;
	snprintf(params, sizeof(params),
		 "{\"name\":\"encm\",\"to\":\"unix://%s\",\"copy_storage\":true,"
		 "\"dest_address\":\"127.0.0.1\",\"deadline_s\":240}", D2.socket);
	_cleanup_rpc_conn_ qv_rpc_conn *mc = qvt_connect(&D);
	cr_assert_not_null(mc);
	cr_assert_eq(qv_rpc_send(mc, "vm.migrate", json_tokener_parse(params), &mid, &err), 0,
		     "%s", err.message);
	/* The LUKS image (qemu-img, its PBKDF) is created off the destination's
	 * loop: while the worker is held, migrate.status there reports the
	 * prepare at that step and vm.list is answered. */
	for (int t = 0; t < 240000; t += 50) {
		_cleanup_json_ json_object *ms = qvt_call_name(&D2, "migrate.status", "encm", &err);
		snprintf(step, sizeof(step), "%s", qvt_json_str(ms, "step"));
		if (streq(step, "creating-images"))
			break;
		qvt_sleep_ms(50);
	}
	cr_assert_str_eq(step, "creating-images", "the destination never reported the image step");
	qv_error_clear(&err); /* the not-found of the first polls */
	{
		_cleanup_json_ json_object *l = qvt_call(&D2, "vm.list", NULL, &err);
		cr_assert_not_null(l, "vm.list while the LUKS image is created: %s", err.message);
		_cleanup_json_ json_object *ms = qvt_call_name(&D2, "migrate.status", "encm", &err);
		cr_assert_str_eq(qvt_json_str(ms, "state"), "preparing");
		cr_assert_str_eq(qvt_json_str(ms, "step"), "creating-images");
		cr_assert_null(strstr(json_object_to_json_string(ms), passphrase));
	}
	cr_assert_eq(unlink(stall), 0);
	_cleanup_json_ json_object *res = NULL;
	cr_assert_eq(qv_rpc_recv_response(mc, 300000, mid, &res, &err), 0, "vm.migrate: %s",
		     err.message);
	cr_assert_str_eq(qvt_vm_state(&D2, "encm", st, sizeof(st)), "running");
	_cleanup_json_ json_object *di = qvt_call_name(&D2, "image.info", "mig", &err);
	cr_assert_not_null(di, "no image mig on the destination: %s", err.message);
	cr_assert(json_object_get_boolean(json_object_object_get(di, "encrypted")));
	cr_assert_str_eq(qvt_json_str(di, "key"), "stored");
	cr_assert_null(strstr(json_object_to_json_string(di), passphrase));
	/* The guest reads its data on the destination, through LUKS there. */
	_cleanup_json_ json_object *con2 = qvt_call_name(&D2, "vm.console", "encm", &err);
	cr_assert_not_null(con2, "%s", err.message);
	ctl = qvt_ctl_open(qvt_json_str(con2, "path"), 120000);
	cr_assert_not_null(ctl);
	cr_assert_eq(qvt_ctl_cmd(ctl, "blkread /dev/vda 0 4", 300000, sum, sizeof(sum)), 0);
	cr_assert_str_eq(sum, want, "data read on the destination differs");
	qvt_ctl_close(ctl);
	char chunk[4096], p[200];
	pattern_chunk(1 << 20, chunk);
	cr_assert_not(file_has(qvt_json_str(di, "path"), chunk, sizeof(chunk)),
		      "plaintext in the destination's image");
	snprintf(p, sizeof(p), "%s/qvisor.db", D2.state_dir);
	assert_no_passphrase("the destination's state database", p);
	snprintf(p, sizeof(p), "%s/qvisor.db", D.state_dir);
	assert_no_passphrase("the source's state database", p);
	assert_no_passphrase("the destination's log", D2.log);
	assert_no_passphrase("the source's log", D.log);
	qvt_daemon_cleanup(&D2);
}
