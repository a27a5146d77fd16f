/* SPDX-License-Identifier: MIT */
/* image.* end to end: a real qvisord with its pool <state-dir>/images, real
 * QEMU (TCG) and the test guest reading and writing cloned data disks. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "common/json.h"
#include "common/rpc-client.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 180000
#define DATA_MIB 8

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

#define REQUIRE_DAEMON() QVT_REQUIRE_DAEMON(&D)

TestSuite(image, .init = setup, .fini = teardown);

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Call with params given as JSON text (printf format). */
static json_object *callf(struct qv_error *err, const char *method, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static json_object *callf(struct qv_error *err, const char *method, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_object *p = json_tokener_parse(buf);
	cr_assert_not_null(p, "bad test JSON %s", buf);
	qv_error_clear(err);
	return qvt_call(&D, method, p, err);
}

#define must(method, ...)                                                               \
	({                                                                              \
		struct qv_error _e = {};                                                \
		json_object *_r = callf(&_e, method, __VA_ARGS__);                      \
		cr_assert_not_null(_r, "%s failed: %s (%s)", method, _e.message, _e.reason); \
		_r;                                                                     \
	})

/* The call must fail with reason; returns the message (static). */
static const char *must_fail(const char *reason, const char *method, const char *params)
{
	static struct qv_error e;
	json_object *r = callf(&e, method, "%s", params);

	cr_assert_null(r, "%s %s unexpectedly succeeded: %s", method, params,
		       r ? json_object_to_json_string(r) : "");
	cr_assert_str_eq(e.reason, reason, "%s %s: reason %s (%s), want %s", method, params,
			 e.reason, e.message, reason);
	return e.message;
}

/* Absolute path of a pool image (static buffer per call site is enough). */
static char *image_path(const char *name)
{
	_cleanup_json_ json_object *r = must("image.info", "{\"name\":\"%s\"}", name);
	return strdup(qvt_json_str(r, "path"));
}

static void md5_pattern(const char *seed, int mib, char out[33])
{
	_cleanup_free_ char *blkpat = qvt_guest_file("bin/blkpat");
	char cmd[512];

	cr_assert(blkpat && access(blkpat, X_OK) == 0, "blkpat not built");
	snprintf(cmd, sizeof(cmd), "'%s' '%s' %d | md5sum", blkpat, seed, mib);
	qvt_md5_of_cmd(cmd, out);
}

static void md5_file_head(const char *path, int mib, char out[33])
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "head -c %dM '%s' | md5sum", mib, path);
	qvt_md5_of_cmd(cmd, out);
}

static void write_pattern(const char *path, const char *seed, int mib)
{
	_cleanup_free_ char *blkpat = qvt_guest_file("bin/blkpat");
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "'%s' '%s' %d '%s'", blkpat, seed, mib, path);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

/* Define a guest VM whose disks[0] is the pool image (data disk). */
static void define_with_disk(const char *vm, const char *image, const char *fmt,
			     const char *cmdline_extra)
{
	_cleanup_free_ char *path = image_path(image);
	char extra[1024];
	struct qv_error err = {};

	snprintf(extra, sizeof(extra),
		 "{\"cmdline\":\"console=ttyS0 panic=-1 %s\","
		 "\"disks\":[{\"path\":\"%s\",\"format\":\"%s\"}]}",
		 cmdline_extra, path, fmt);
	cr_assert_eq(qvt_define_guest(&D, vm, extra, &err), 0, "define %s: %s", vm, err.message);
}

static void start_vm(const char *vm)
{
	json_object_put(must("vm.start", "{\"name\":\"%s\"}", vm));
}

/* The QVISOR-BLK-SUM line of a VM's serial log. */
static void wait_blk_sum(const char *vm, char out[33])
{
	const char *log = qvt_serial_log(&D, vm);
	char line[512];

	int r = qvt_wait_for_line_in_file(log, "QVISOR-BLK-", BOOT_TIMEOUT_MS);
	cr_assert_eq(r, 0, "VM %s printed no QVISOR-BLK- line (log %s)", vm, log);
	FILE *f = fopen(log, "re");
	cr_assert_not_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "QVISOR-BLK-SUM ");
		cr_assert_null(strstr(line, "QVISOR-BLK-FAIL"), "VM %s: %s", vm, line);
		if (p) {
			snprintf(out, 33, "%s", p + strlen("QVISOR-BLK-SUM "));
			break;
		}
	}
	fclose(f);
	cr_assert_eq(strlen(out), 32, "VM %s: no checksum in its log", vm);
}

static void stop_vm(const char *vm)
{
	json_object_put(must("vm.stop", "{\"name\":\"%s\",\"force\":true}", vm));
}

static bool list_has(json_object *list, const char *name, json_object **ret)
{
	json_object *imgs;

	cr_assert(json_object_object_get_ex(list, "images", &imgs));
	for (size_t i = 0; i < json_object_array_length(imgs); i++) {
		json_object *o = json_object_array_get_idx(imgs, i);
		if (streq(qvt_json_str(o, "name"), name)) {
			if (ret)
				*ret = o;
			return true;
		}
	}
	return false;
}

/* Entries of the pool directory other than the expected image files. */

Test(image, create_list_info_delete_and_validation)
{
	REQUIRE_DAEMON();
	_cleanup_json_ json_object *a = must("image.create",
					     "{\"name\":\"disk1\",\"size\":\"64M\",\"format\":\"raw\"}");
	cr_assert_str_eq(qvt_json_str(a, "format"), "raw");
	cr_assert_eq(qvt_json_int(a, "virtual_size"), 64 << 20);
	_cleanup_json_ json_object *b = must("image.create",
					     "{\"name\":\"disk2\",\"size\":1073741824,\"format\":\"qcow2\"}");
	cr_assert_str_eq(qvt_json_str(b, "format"), "qcow2");
	cr_assert_eq(qvt_json_int(b, "virtual_size"), 1 << 30);
	struct stat st;
	cr_assert_eq(stat(qvt_json_str(b, "path"), &st), 0, "%s missing", qvt_json_str(b, "path"));

	_cleanup_json_ json_object *l = must("image.list", "{}");
	json_object *e = NULL;
	cr_assert(list_has(l, "disk1", &e));
	cr_assert_eq(qvt_json_int(e, "virtual_size"), 64 << 20);
	cr_assert(list_has(l, "disk2", NULL));

	/* Strict params. */
	must_fail("invalid-argument", "image.create", "{\"name\":\"x\",\"size\":\"1G\",\"bogus\":1}");
	must_fail("invalid-argument", "image.create", "{\"name\":\"../x\",\"size\":\"1G\"}");
	must_fail("invalid-argument", "image.create", "{\"name\":\".x\",\"size\":\"1G\"}");
	must_fail("invalid-argument", "image.create", "{\"name\":\"x\",\"size\":\"12Q\"}");
	must_fail("invalid-argument", "image.create", "{\"name\":\"x\",\"size\":-5}");
	must_fail("invalid-argument", "image.create",
		  "{\"name\":\"x\",\"size\":\"1G\",\"format\":\"vmdk\"}");
	must_fail("invalid-argument", "image.list", "{\"pool\":\"other\"}");
	must_fail("invalid-argument", "image.import", "{\"path\":\"relative.img\",\"name\":\"x\"}");
	must_fail("invalid-argument", "image.import", "{\"path\":\"/dev/null\",\"name\":\"x\"}");
	must_fail("not-found", "image.import", "{\"path\":\"/nonexistent.img\",\"name\":\"x\"}");
	must_fail("invalid-argument", "image.clone",
		  "{\"source\":\"disk1\",\"name\":\"y\",\"linked\":\"yes\"}");
	must_fail("invalid-argument", "image.clone",
		  "{\"source\":\"disk1\",\"name\":\"y\",\"linked\":true,\"verify\":true}");
	must_fail("invalid-argument", "image.import",
		  "{\"path\":\"/nonexistent.img\",\"name\":\"x\",\"verify\":1}");
	must_fail("conflict", "image.create", "{\"name\":\"disk1\",\"size\":\"1G\"}");
	must_fail("not-found", "image.info", "{\"name\":\"nope\"}");
	must_fail("not-found", "image.delete", "{\"name\":\"nope\"}");

	_cleanup_json_ json_object *rs = must("image.resize", "{\"name\":\"disk1\",\"size\":\"128M\"}");
	cr_assert_eq(qvt_json_int(rs, "virtual_size"), 128 << 20);

	json_object_put(must("image.delete", "{\"name\":\"disk1\"}"));
	json_object_put(must("image.delete", "{\"name\":\"disk2\"}"));
	_cleanup_json_ json_object *l2 = must("image.list", "{}");
	cr_assert_not(list_has(l2, "disk1", NULL));
	cr_assert_not(list_has(l2, "disk2", NULL));
	cr_assert_eq(qvt_pool_entries(&D), 0);
}

/* A raw template with known data, cloned full and linked; guests read the
 * clones, one guest writes its linked clone; the template stays unchanged. */
Test(image, guests_boot_from_clones, .timeout = 600)
{
	REQUIRE_DAEMON();
	char want_tpl[33], want_w[33], got[33], tpl_before[33], tpl_after[33], full_after[33];

	json_object_put(must("image.create", "{\"name\":\"tpl\",\"size\":\"%dM\"}", 2 * DATA_MIB));
	_cleanup_free_ char *tpl = image_path("tpl");
	write_pattern(tpl, "template", DATA_MIB);
	md5_pattern("template", DATA_MIB, want_tpl);
	md5_pattern("guest-write", DATA_MIB, want_w);
	md5_file_head(tpl, DATA_MIB, tpl_before);
	cr_assert_str_eq(tpl_before, want_tpl);

	_cleanup_json_ json_object *full = must("image.clone",
						"{\"source\":\"tpl\",\"name\":\"c-full\","
						"\"verify\":true}");
	cr_assert_str_eq(qvt_json_str(full, "format"), "raw");
	cr_assert_str_neq(qvt_json_str(full, "op_id"), "");
	/* The copy was read back and its checksum matched the template's. */
	json_object *fst = NULL, *fv = NULL;
	cr_assert(json_object_object_get_ex(full, "stats", &fst));
	cr_assert(json_object_object_get_ex(fst, "verified", &fv) && json_object_get_boolean(fv),
		  "full clone with verify not verified: %s", json_object_to_json_string(fst));
	cr_assert_eq(strlen(qvt_json_str(fst, "checksum")), 16);
	_cleanup_json_ json_object *lr = must("image.clone",
					      "{\"source\":\"tpl\",\"name\":\"c-read\",\"linked\":true}");
	cr_assert_str_eq(qvt_json_str(lr, "format"), "qcow2");
	cr_assert_str_eq(qvt_json_str(lr, "backing"), tpl);
	json_object_put(must("image.clone", "{\"source\":\"tpl\",\"name\":\"c-write\",\"linked\":true}"));

	char rd[64];
	snprintf(rd, sizeof(rd), "qv.blkread=/dev/vda:%d", DATA_MIB);
	char wr[64];
	snprintf(wr, sizeof(wr), "qv.blkwrite=/dev/vda:%d:guest-write", DATA_MIB);
	define_with_disk("vfull", "c-full", "raw", rd);
	define_with_disk("vread", "c-read", "qcow2", rd);
	define_with_disk("vwrite", "c-write", "qcow2", wr);
	start_vm("vfull");
	start_vm("vread");
	start_vm("vwrite");

	wait_blk_sum("vfull", got);
	cr_assert_str_eq(got, want_tpl, "full clone read %s, template data is %s", got, want_tpl);
	wait_blk_sum("vread", got);
	cr_assert_str_eq(got, want_tpl, "linked clone read %s, template data is %s", got,
			 want_tpl);
	wait_blk_sum("vwrite", got);
	cr_assert_str_eq(got, want_w, "guest wrote %s, want %s", got, want_w);
	stop_vm("vfull");
	stop_vm("vread");
	stop_vm("vwrite");

	/* The write went to the overlay only. */
	md5_file_head(tpl, DATA_MIB, tpl_after);
	cr_assert_str_eq(tpl_after, tpl_before, "template changed after the guest wrote its clone");
	_cleanup_free_ char *fullp = image_path("c-full");
	md5_file_head(fullp, DATA_MIB, full_after);
	cr_assert_str_eq(full_after, want_tpl);
	_cleanup_json_ json_object *wi = must("image.info", "{\"name\":\"c-write\"}");
	cr_assert_gt(qvt_json_int(wi, "allocated_size"), DATA_MIB << 20, "overlay holds no data");

	/* The template backs two overlays: not deletable. */
	must_fail("conflict", "image.delete", "{\"name\":\"tpl\"}");
}

Test(image, in_use_images_are_protected, .timeout = 600)
{
	REQUIRE_DAEMON();
	json_object_put(must("image.create", "{\"name\":\"web.qcow2\",\"size\":\"32M\",\"format\":\"qcow2\"}"));
	define_with_disk("web1", "web.qcow2", "qcow2", "");

	const char *msg = must_fail("conflict", "image.delete", "{\"name\":\"web.qcow2\"}");
	cr_assert(strstr(msg, "image web.qcow2 is used by VM web1"), "message: %s", msg);
	msg = must_fail("conflict", "image.resize", "{\"name\":\"web.qcow2\",\"size\":\"64M\"}");
	cr_assert(strstr(msg, "used by VM web1"), "message: %s", msg);
	msg = must_fail("conflict", "image.clone",
			"{\"source\":\"web.qcow2\",\"name\":\"lk\",\"linked\":true}");
	cr_assert(strstr(msg, "web1"), "message: %s", msg);
	_cleanup_json_ json_object *info = must("image.info", "{\"name\":\"web.qcow2\"}");
	json_object *users;
	cr_assert(json_object_object_get_ex(info, "used_by", &users));
	cr_assert_eq(json_object_array_length(users), 1);
	cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(users, 0)), "web1");

	/* Running: a full clone is refused until the VM is paused. */
	_cleanup_free_ char *webp = image_path("web.qcow2");
	start_vm("web1");
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "web1"), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS),
		     0, "web1 never became ready");
	msg = must_fail("conflict", "image.clone", "{\"source\":\"web.qcow2\",\"name\":\"snap\"}");
	cr_assert(strstr(msg, "pause it first"), "message: %s", msg);
	char imp[512];
	snprintf(imp, sizeof(imp), "{\"path\":\"%s\",\"name\":\"imp\"}", webp);
	msg = must_fail("conflict", "image.import", imp);
	cr_assert(strstr(msg, "VM web1"), "message: %s", msg);
	/* list/info keep working while QEMU holds its lock on the qcow2. */
	_cleanup_json_ json_object *l = must("image.list", "{}");
	json_object *e = NULL;
	cr_assert(list_has(l, "web.qcow2", &e));
	cr_assert_eq(qvt_json_int(e, "virtual_size"), 32 << 20);
	json_object_put(must("vm.pause", "{\"name\":\"web1\"}"));
	_cleanup_json_ json_object *c = must("image.clone", "{\"source\":\"web.qcow2\",\"name\":\"snap\"}");
	cr_assert_str_eq(qvt_json_str(c, "format"), "qcow2");
	cr_assert_eq(qvt_json_int(c, "virtual_size"), 32 << 20);
	stop_vm("web1");

	/* Once undefined, the image is free again. */
	json_object_put(must("vm.undefine", "{\"name\":\"web1\"}"));
	json_object_put(must("image.delete", "{\"name\":\"web.qcow2\"}"));
}

struct progress_rec {
	int n;
	int64_t last_done, total;
	bool monotonic;
	char op_id[32];
};

static void on_notify(qv_rpc_conn *c, const char *method, json_object *params, void *ud)
{
	struct progress_rec *p = ud;

	if (!streq(method, "progress"))
		return;
	int64_t done = qvt_json_int(params, "done");
	if (done < p->last_done)
		p->monotonic = false;
	p->last_done = done;
	p->total = qvt_json_int(params, "total");
	snprintf(p->op_id, sizeof(p->op_id), "%s", qvt_json_str(params, "op_id"));
	p->n++;
}

/* A 512 MiB file full of data. */
static char *make_big_file(void)
{
	char *path;

	cr_assert(asprintf(&path, "%s/big.img", D.dir) > 0);
	write_pattern(path, "big", 512);
	return path;
}

Test(image, import_sends_progress_and_keeps_the_daemon_responsive, .timeout = 300)
{
	REQUIRE_DAEMON();
	_cleanup_free_ char *src = make_big_file();
	_cleanup_rpc_conn_ qv_rpc_conn *c = qvt_connect(&D);
	struct progress_rec rec = { .monotonic = true };
	struct qv_error err = {};
	uint64_t id;
	char want[33], got[33];

	cr_assert_not_null(c);
	json_object *p = json_object_new_object();
	json_object_object_add(p, "path", json_object_new_string(src));
	json_object_object_add(p, "name", json_object_new_string("big"));
	/* limited so that the copy lasts a few seconds whatever the disk */
	json_object_object_add(p, "bandwidth", json_object_new_string("128M"));
	cr_assert_eq(qv_rpc_send(c, "image.import", p, &id, &err), 0, "%s", err.message);

	/* The first progress notification: the copy is under way. */
	char *method = NULL;
	json_object *first = NULL;
	cr_assert_eq(qv_rpc_wait_notification(c, 30000, &method, &first, &err), 0, "%s",
		     err.message);
	cr_assert_str_eq(method, "progress");
	free(method);
	on_notify(c, "progress", first, &rec);
	cr_assert_lt(qvt_json_int(first, "done"), 512 << 20, "first progress came at the end");
	json_object_put(first);

	/* The loop keeps serving other clients while the copy runs. */
	json_object *res = NULL;
	int r;
	_cleanup_json_ json_object *l = must("image.list", "{}");
	json_object *ops;
	cr_assert(json_object_object_get_ex(l, "operations", &ops));
	cr_assert_eq(json_object_array_length(ops), 1, "operation not listed: %s",
		     json_object_to_json_string(l));
	cr_assert_str_eq(qvt_json_str(json_object_array_get_idx(ops, 0), "op_id"), rec.op_id);
	cr_assert_not(list_has(l, "big", NULL), "image visible before the copy is complete");
	must_fail("conflict", "image.create", "{\"name\":\"big\",\"size\":\"1M\"}");

	qv_rpc_set_notify_handler(c, on_notify, &rec);
	r = qv_rpc_recv_response(c, 120000, id, &res, &err);
	cr_assert_eq(r, 0, "import failed: %s", err.message);
	cr_assert_geq(rec.n, 2, "only %d progress notifications", rec.n);
	cr_assert(rec.monotonic);
	cr_assert_eq(rec.total, 512 << 20);
	cr_assert_eq(rec.last_done, rec.total, "last progress %ld of %ld", (long)rec.last_done,
		     (long)rec.total);
	cr_assert_str_eq(rec.op_id, qvt_json_str(res, "op_id"));
	cr_assert_eq(qvt_json_int(res, "virtual_size"), 512 << 20);
	cr_assert_str_eq(qvt_json_str(res, "format"), "raw");
	md5_file_head(src, 512, want);
	md5_file_head(qvt_json_str(res, "path"), 512, got);
	cr_assert_str_eq(got, want);
	json_object_put(res);
}

Test(image, disconnect_cancels_import_without_leftovers, .timeout = 300)
{
	REQUIRE_DAEMON();
	_cleanup_free_ char *src = make_big_file();
	qv_rpc_conn *c = qvt_connect(&D);
	struct progress_rec rec = { .monotonic = true };
	struct qv_error err = {};
	uint64_t id;
	char *method = NULL;
	json_object *params = NULL;

	cr_assert_not_null(c);
	int before = qvt_pool_entries(&D);
	json_object *p = json_object_new_object();
	json_object_object_add(p, "path", json_object_new_string(src));
	json_object_object_add(p, "name", json_object_new_string("gone"));
	json_object_object_add(p, "bandwidth", json_object_new_string("32M"));
	cr_assert_eq(qv_rpc_send(c, "image.import", p, &id, &err), 0);
	/* First progress: the copy is under way. */
	cr_assert_eq(qv_rpc_wait_notification(c, 30000, &method, &params, &err), 0, "%s",
		     err.message);
	cr_assert_str_eq(method, "progress");
	cr_assert_lt(qvt_json_int(params, "done"), 512 << 20);
	free(method);
	json_object_put(params);
	qv_rpc_conn_free(c);

	/* The operation ends soon after, cancelled. */
	bool ended = false;
	for (int i = 0; i < 300 && !ended; i++) {
		_cleanup_json_ json_object *l = must("image.list", "{}");
		json_object *ops;
		cr_assert(json_object_object_get_ex(l, "operations", &ops));
		ended = json_object_array_length(ops) == 0;
		if (!ended)
			sleep_ms(100);
	}
	cr_assert(ended, "import still running 30 s after its client left");
	_cleanup_json_ json_object *l = must("image.list", "{}");
	cr_assert_not(list_has(l, "gone", NULL), "cancelled import left an image");
	cr_assert_eq(qvt_pool_entries(&D), before, "cancelled import left a file in the pool");
	(void)rec;
}
