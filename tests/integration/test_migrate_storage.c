/* SPDX-License-Identifier: MIT */
/* Live migration with storage copy (copy_storage): two real qvisord in two
 * network namespaces, real QEMU (TCG). The guest's data disk lives in the
 * source daemon's pool only; the destination creates its own image in its
 * own pool and receives the data over NBD (blockdev-mirror, write-blocking)
 * before the RAM migration. The test process plays the coordinator. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/twohosts.h"

#define BOOT_TIMEOUT_MS 180000
#define VM "mst1"

static struct qvt_twohosts *const H = &qvt_hosts;

/* md5 (hex) of the first mib MiB of path, via md5sum. */
static void md5_of_file(const char *path, unsigned mib, char out[33])
{
	char cmd[1024];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "head -c %uM '%s' | md5sum", mib, path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%32s", out), 1);
	pclose(p);
}

/* Expected sum of qv.blkwrite=...:mib:seed (build/guest/bin/blkpat). */
static void blkpat_md5(const char *seed, unsigned mib, char out[33])
{
	char cmd[1024];
	FILE *p;
	_cleanup_free_ char *blkpat = qvt_guest_file("bin/blkpat");

	cr_assert_not_null(blkpat);
	if (access(blkpat, X_OK) < 0)
		cr_skip_test("%s missing (rebuild the test guest)", blkpat);
	snprintf(cmd, sizeof(cmd), "'%s' '%s' %u | md5sum", blkpat, seed, mib);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%32s", out), 1);
	pclose(p);
}

/* The QVISOR-BLK-SUM the guest printed. */
static void guest_blk_sum(int host, char out[33])
{
	const char *log = qvt_serial_log(&H->d[host], VM);
	char line[512];
	FILE *f;

	cr_assert_eq(qvt_wait_for_line_in_file(log, "QVISOR-BLK-", BOOT_TIMEOUT_MS), 0,
		     "guest did not report its block checksum");
	/* The serial line arrives byte by byte: re-read until the whole sum
	 * is there (at most 5 s after its first bytes). */
	out[0] = '\0';
	for (int tries = 0; tries < 50 && strlen(out) != 32; tries++) {
		if (tries)
			qvt_sleep_ms(100);
		f = fopen(log, "r");
		cr_assert_not_null(f);
		while (fgets(line, sizeof(line), f)) {
			char *s = strstr(line, "QVISOR-BLK-SUM ");
			cr_assert_null(strstr(line, "QVISOR-BLK-FAIL"), "%s", line);
			if (s && strchr(s, '\n'))
				sscanf(s + strlen("QVISOR-BLK-SUM "), "%32s", out);
		}
		fclose(f);
	}
	cr_assert_eq(strlen(out), 32, "no QVISOR-BLK-SUM in %s", log);
}

/* Data image "data" (raw, size_mib) in the source pool; a guest that
 * writes blkpat(seed, mib) to it at boot. Returns the image path. */
static void start_guest(unsigned size_mib, const char *seed, unsigned mib, char *path,
			size_t psize)
{
	struct qv_error err = {};
	char extra[1024];
	json_object *r, *v;

	cr_assert_eq(qvt_callf(&H->d[0], "image.create", &r, &err,
			       "{\"name\": \"data\", \"size\": %u, \"format\": \"raw\"}",
			       size_mib << 20), 0, "image.create: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "path", &v), "%s", json_object_to_json_string(r));
	snprintf(path, psize, "%s", json_object_get_string(v));
	json_object_put(r);
	snprintf(extra, sizeof(extra),
		 "{\"memory\": 192, \"cmdline\": \"console=ttyS0 panic=-1 "
		 "qv.blkwrite=/dev/vda:%u:%s\", \"disks\": [{\"path\": \"%s\", \"format\": \"raw\"}]}",
		 mib, seed, path);
	cr_assert_eq(qvt_define_guest(&H->d[0], VM, extra, &err), 0, "define: %s", err.message);
	r = qvt_call_name(&H->d[0], "vm.start", VM, &err);
	cr_assert_not_null(r, "start: %s", err.message);
	json_object_put(r);
}

struct prep {
	char uri[128], token[64], nbd[128], dest_path[512];
};

/* migrate.prepare's params (copy_storage) for the source guest: plan on
 * the source for the disk sizes; token: the caller's (NULL: the
 * destination's). */
static json_object *prepare_params(int multifd, const char *token)
{
	struct qv_error err = {};
	json_object *info = qvt_call_name(&H->d[0], "vm.info", VM, &err), *spec, *p, *v, *plan;
	json_object *sizes = json_object_new_array(), *disks;

	cr_assert_not_null(info, "%s", err.message);
	cr_assert(json_object_object_get_ex(info, "spec", &spec));
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
	plan = qvt_call(&H->d[0], "migrate.plan", p, &err);
	cr_assert_not_null(plan, "plan: %s", err.message);
	cr_assert(json_object_object_get_ex(plan, "disks", &disks));
	cr_assert_eq(json_object_array_length(disks), 1);
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(disks, 0), "virtual_size", &v));
	json_object_array_add(sizes, json_object_get(v));
	cr_assert(json_object_object_get_ex(plan, "multifd_reason", &v));
	fprintf(stderr, "plan: multifd decision: %s\n", json_object_get_string(v));
	json_object_put(plan);

	p = json_object_new_object();
	json_object_object_add(p, "spec", json_object_get(spec));
	json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
	json_object_object_add(p, "disk_sizes", sizes);
	if (multifd)
		json_object_object_add(p, "multifd_channels", json_object_new_int(multifd));
	if (token)
		json_object_object_add(p, "token", json_object_new_string(token));
	json_object_put(info);
	return p;
}

/* prepare's answer (r, taken) into pr, checked. */
static void prepare_parse(struct prep *pr, json_object *r)
{
	json_object *v, *disks;

	cr_assert(json_object_object_get_ex(r, "uri", &v));
	snprintf(pr->uri, sizeof(pr->uri), "%s", json_object_get_string(v));
	cr_assert(json_object_object_get_ex(r, "token", &v));
	snprintf(pr->token, sizeof(pr->token), "%s", json_object_get_string(v));
	cr_assert(json_object_object_get_ex(r, "nbd", &v), "no nbd address");
	snprintf(pr->nbd, sizeof(pr->nbd), "%s", json_object_get_string(v));
	cr_assert(strstr(pr->nbd, H->addr[1]), "nbd %s should name the destination", pr->nbd);
	cr_assert(json_object_object_get_ex(r, "disks", &disks));
	snprintf(pr->dest_path, sizeof(pr->dest_path), "%s",
		 json_object_get_string(json_object_array_get_idx(disks, 0)));
	json_object_put(r);
	/* The destination's own pool, not the source's file. */
	cr_assert(strncmp(pr->dest_path, H->d[1].state_dir, strlen(H->d[1].state_dir)) == 0,
		  "destination image %s is not under %s", pr->dest_path, H->d[1].state_dir);
	cr_assert_eq(access(pr->dest_path, F_OK), 0);
}

/* plan on the source, prepare (copy_storage) on the destination. */
static void prepare(struct prep *pr, int multifd)
{
	struct qv_error err = {};
	json_object *r = qvt_call(&H->d[1], "migrate.prepare", prepare_params(multifd, NULL), &err);

	cr_assert_not_null(r, "prepare: %s", err.message);
	prepare_parse(pr, r);
}

static qv_rpc_conn *perform_async(const struct prep *pr, const char *extra_json,
				  uint64_t *ret_id)
{
	struct qv_error err = {};
	qv_rpc_conn *c = qvt_connect(&H->d[0]);
	json_object *p = json_tokener_parse(extra_json);

	cr_assert_not_null(c);
	cr_assert_not_null(p);
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "uri", json_object_new_string(pr->uri));
	json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
	json_object_object_add(p, "nbd", json_object_new_string(pr->nbd));
	cr_assert_eq(qv_rpc_send(c, "migrate.perform", p, ret_id, &err), 0, "%s", err.message);
	return c;
}

static bool wait_undefined(int host, int timeout_ms)
{
	return qvt_wait_vm_undefined(&H->d[host], VM, timeout_ms);
}

/* Until migrate.plan no longer reports a cancelled mirror draining. */
static bool wait_mirror_clean(int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 250) {
		struct qv_error err = {};
		json_object *r, *v;
		bool pending;

		cr_assert_eq(qvt_callf(&H->d[0], "migrate.plan", &r, &err, "{\"name\": \"%s\"}", VM),
			     0, "plan: %s", err.message);
		pending = json_object_object_get_ex(r, "mirror_cleanup", &v) &&
			  json_object_get_boolean(v);
		json_object_put(r);
		if (!pending) {
			fprintf(stderr, "mirror cleanup done after ~%d ms\n", t);
			return true;
		}
		qvt_sleep_ms(250);
	}
	return false;
}

struct watch {
	uint64_t max_offset, len;
	bool saw_mirroring, saw_ram_with_storage;
	bool cancel_mid_mirror, cancelled;
	bool kill_mid_mirror, killed;
};

static void on_notify(qv_rpc_conn *c, const char *method, json_object *p, void *ud)
{
	struct watch *w = ud;
	json_object *v, *st, *x;

	if (!streq(method, "migrate.progress") || !json_object_object_get_ex(p, "storage", &st))
		return;
	if (json_object_object_get_ex(st, "offset", &x) &&
	    (uint64_t)json_object_get_int64(x) > w->max_offset)
		w->max_offset = (uint64_t)json_object_get_int64(x);
	if (json_object_object_get_ex(st, "len", &x))
		w->len = (uint64_t)json_object_get_int64(x);
	if (json_object_object_get_ex(p, "status", &v)) {
		if (streq(json_object_get_string(v), "mirroring"))
			w->saw_mirroring = true;
		else if (streq(json_object_get_string(v), "active"))
			w->saw_ram_with_storage = true;
	}
	if (w->kill_mid_mirror && !w->killed && w->saw_mirroring && w->max_offset > 0 &&
	    w->max_offset < w->len) {
		qvt_daemon_stop(&H->d[0], SIGKILL);
		w->killed = true;
	}
	if (w->cancel_mid_mirror && !w->cancelled && w->saw_mirroring && w->max_offset > 0 &&
	    w->max_offset < w->len) {
		struct qv_error err = {};
		json_object *r = qvt_call_name(&H->d[0], "migrate.cancel", VM, &err);
		cr_assert_not_null(r, "cancel: %s", err.message);
		json_object_put(r);
		w->cancelled = true;
	}
}

TestSuite(migrate_storage, .init = qvt_twohosts_setup, .fini = qvt_twohosts_teardown, .timeout = 600);

/* A whole copy_storage migration (plan, prepare, perform, finish, confirm)
 * of VM from host 0 to host 1, then the checks: one running copy, on the
 * destination, whose own image holds blkpat (expect) over mib MiB. */
static void migrate_prepared(struct prep *pr, const char *expect, unsigned mib, int multifd);

static void migrate_fully(const char *expect, unsigned mib, int multifd)
{
	struct prep pr;

	prepare(&pr, multifd);
	migrate_prepared(&pr, expect, mib, multifd);
}

/* The same from perform on, prepare done (pr). */
static void migrate_prepared(struct prep *prp, const char *expect, unsigned mib, int multifd)
{
	char got[33], buf[32];
	struct prep pr = *prp;
	struct qv_error err = {};
	struct watch w = {};
	json_object *r, *p, *v;
	uint64_t id;

	_cleanup_rpc_conn_ qv_rpc_conn *c = perform_async(
		&pr, multifd ? "{\"max_downtime_ms\": 300, \"bandwidth_mbps\": 100, \"deadline_s\": 180, "
			  "\"multifd_channels\": 2, \"multifd_reason\": \"test\"}"
			: "{\"max_downtime_ms\": 300, \"bandwidth_mbps\": 100, \"deadline_s\": 180}", &id);
	qv_rpc_set_notify_handler(c, on_notify, &w);
	cr_assert_eq(qv_rpc_recv_response(c, 300000, id, &r, &err), 0, "perform: %s (%s)",
		     err.message, err.reason);
	cr_assert(json_object_object_get_ex(r, "status", &v));
	cr_assert_str_eq(json_object_get_string(v), "completed");
	fprintf(stderr, "copy_storage: %s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	{
		bool saw_multifd = false;
		json_object *dec;
		cr_assert(json_object_object_get_ex(r, "decisions", &dec));
		for (size_t i = 0; i < json_object_array_length(dec); i++)
			if (json_object_object_get_ex(json_object_array_get_idx(dec, i), "action", &v) &&
			    streq(json_object_get_string(v), "multifd"))
				saw_multifd = true;
		cr_assert(saw_multifd || !multifd, "the multifd decision is recorded");
	}
	json_object_put(r);
	cr_assert_gt(w.len, 0, "no storage progress was reported");
	cr_assert_eq(w.max_offset, w.len, "mirror progress %llu/%llu",
		     (unsigned long long)w.max_offset, (unsigned long long)w.len);

	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "token", json_object_new_string(pr.token));
	r = qvt_call(&H->d[1], "migrate.finish", p, &err);
	cr_assert_not_null(r, "finish: %s", err.message);
	json_object_put(r);
	r = qvt_call_name(&H->d[0], "migrate.confirm", VM, &err);
	cr_assert_not_null(r, "confirm: %s", err.message);
	json_object_put(r);

	/* Exactly one running copy: on the destination; the source undefined. */
	cr_assert_str_eq(qvt_vm_state(&H->d[1], VM, buf, sizeof(buf)), "running");
	cr_assert(wait_undefined(0, 10000), "the source still defines %s", VM);
	/* The destination's own image holds the data the guest wrote. */
	md5_of_file(pr.dest_path, mib, got);
	cr_assert_str_eq(got, expect, "destination image %s differs", pr.dest_path);
	/* And the guest there uses it: its spec points at the new path. */
	r = qvt_call_name(&H->d[1], "vm.info", VM, &err);
	cr_assert_not_null(r);
	cr_assert(strstr(json_object_to_json_string_ext(r, JSON_C_TO_STRING_NOSLASHESCAPE),
			 pr.dest_path), "the destination spec does not use %s", pr.dest_path);
	json_object_put(r);
	/* The destination guest is alive (its kernel keeps running). */
	cr_assert_gt(qvt_vm_pid(&H->d[1], VM), 0);
	cr_assert_eq(kill(qvt_vm_pid(&H->d[1], VM), 0), 0);
}

/* The source guest every case starts from. */
struct src {
	char path[512];  /* its data image, in host 0's pool */
	char expect[33]; /* md5 of blkpat(seed) over mib MiB */
	unsigned mib;
	int pid;         /* its QEMU */
};

/* Both hosts up, a guest on host 0 that wrote blkpat(seed) over mib MiB of
 * its 64 MiB data image (checked by its own sum); slow: host 0's egress at
 * ~4 MiB/s, so that a mirror takes seconds. */
static void source_guest(struct src *s, const char *seed, unsigned mib, bool slow)
{
	char got[33];

	QVT_REQUIRE_HOSTS();
	s->mib = mib;
	blkpat_md5(seed, mib, s->expect);
	start_guest(64, seed, mib, s->path, sizeof(s->path));
	guest_blk_sum(0, got);
	cr_assert_str_eq(got, s->expect, "guest wrote a different pattern");
	s->pid = qvt_vm_pid(&H->d[0], VM);
	if (slow)
		cr_assert_eq(qvt_twohosts_shape(H, 0, 4), 0);
}

/* The source after a failed migration: the same QEMU, running, its data
 * intact. */
static void source_intact(const struct src *s)
{
	char buf[32], got[33];

	cr_assert_str_eq(qvt_vm_state(&H->d[0], VM, buf, sizeof(buf)), "running");
	cr_assert_eq(qvt_vm_pid(&H->d[0], VM), s->pid, "the source guest was restarted");
	cr_assert_eq(kill(s->pid, 0), 0);
	md5_of_file(s->path, s->mib, got);
	cr_assert_str_eq(got, s->expect, "source image changed");
}

/* The coordinator tears the destination down (what the CLI does): its
 * incoming VM and its image go. */
static void cancel_destination(const struct prep *pr)
{
	struct qv_error err = {};

	cr_assert_eq(qvt_callf(&H->d[1], "migrate.cancel", NULL, &err,
			       "{\"name\": \"%s\", \"token\": \"%s\"}", VM, pr->token),
		     0, "destination cancel: %s", err.message);
	cr_assert(wait_undefined(1, 30000), "destination still defines %s", VM);
	cr_assert_neq(access(pr->dest_path, F_OK), 0, "destination image %s left behind",
		      pr->dest_path);
}

/* After a failure: full speed again, the leftover mirror cleaned up, and
 * the next migration goes through. */
static void migrate_after_failure(const struct src *s)
{
	cr_assert_eq(qvt_twohosts_shape(H, 0, 1000), 0);
	cr_assert(wait_mirror_clean(60000), "the leftover mirror was never cleaned up");
	migrate_fully(s->expect, s->mib, 0);
}

/* prepare and perform with w watching the progress; perform must fail. */
static void perform_failing(struct prep *pr, struct watch *w, struct qv_error *err)
{
	json_object *r = NULL;
	uint64_t id;

	prepare(pr, 0);
	_cleanup_rpc_conn_ qv_rpc_conn *c = perform_async(
		pr, "{\"max_downtime_ms\": 300, \"deadline_s\": 180}", &id);
	qv_rpc_set_notify_handler(c, on_notify, w);
	cr_assert_neq(qv_rpc_recv_response(c, 300000, id, &r, err), 0, "perform should fail");
}

Test(migrate_storage, copy_storage_moves_the_disk_data)
{
	struct src src;
	char got[33];

	source_guest(&src, "mirror-a", 16, false);
	migrate_fully(src.expect, 16, 2); /* multifd on both sides, 2 channels */
	/* The source image is kept (the operator's data). */
	md5_of_file(src.path, 16, got);
	cr_assert_str_eq(got, src.expect);
}

Test(migrate_storage, cancel_mid_mirror_keeps_the_source)
{
	struct src src;
	struct prep pr;
	struct qv_error err = {};
	struct watch w = { .cancel_mid_mirror = true };
	json_object *r;

	/* ~4 MiB/s source egress: the 48 MiB mirror takes ~12 s. */
	source_guest(&src, "mirror-b", 48, true);
	perform_failing(&pr, &w, &err);
	cr_assert(w.cancelled, "never saw the mirror in progress");
	cr_assert_str_eq(err.reason, "cancelled", "%s", err.message);
	fprintf(stderr, "cancelled at mirror offset %llu/%llu\n", (unsigned long long)w.max_offset,
		(unsigned long long)w.len);

	cancel_destination(&pr);
	source_intact(&src);
	r = qvt_call_name(&H->d[0], "migrate.status", VM, &err);
	cr_assert_null(r, "no migration record should remain");
	/* The force-cancelled mirror drains and is removed (job + NBD node). */
	cr_assert(wait_mirror_clean(60000), "the cancelled mirror was never cleaned up");
}

/* The source daemon dies mid-mirror: QEMU keeps mirroring without it. The
 * restarted daemon cancels the leftover job and NBD node and resumes the
 * guest; a second storage migration then goes through (a leftover
 * qvmig-nbd0 node would make its blockdev-add fail). */
Test(migrate_storage, source_daemon_killed_mid_mirror_then_migrates)
{
	struct src src;
	struct prep pr;
	struct qv_error err = {};
	struct watch w = { .kill_mid_mirror = true };

	source_guest(&src, "mirror-c", 32, true);
	perform_failing(&pr, &w, &err);
	cr_assert(w.killed, "never saw the mirror in progress");
	cr_assert_eq(qvt_twohosts_start_daemon(H, 0), 0);
	source_intact(&src);
	cancel_destination(&pr);
	migrate_after_failure(&src);
}

/* Daemon-driven (vm.migrate copy_storage) and the source daemon SIGKILLed
 * while the mirror copies the disk, restarted 1 s later: without an
 * operator the pair converges to exactly one running copy (the source's
 * own QEMU, its data intact), the destination removes its incoming VM and
 * its image (the restarted driver aborts by token), the leftover mirror is
 * cleaned up, and the next vm.migrate of the same VM goes through. */
Test(migrate_storage, vm_migrate_source_daemon_killed_mid_mirror_converges)
{
	struct src src;
	char to[200];
	struct qv_error err = {};
	struct watch w = { .kill_mid_mirror = true };
	json_object *r = NULL, *p;
	uint64_t id;

	source_guest(&src, "mirror-d", 32, true);
	snprintf(to, sizeof(to), "unix://%s", H->d[1].socket);
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "to", json_object_new_string(to));
	json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
	json_object_object_add(p, "deadline_s", json_object_new_int(180));
	json_object_object_add(p, "retry_s", json_object_new_int(60));
	{
		_cleanup_rpc_conn_ qv_rpc_conn *c = qvt_connect(&H->d[0]);
		cr_assert_not_null(c);
		qv_rpc_set_notify_handler(c, on_notify, &w);
		cr_assert_eq(qv_rpc_send(c, "vm.migrate", p, &id, &err), 0, "%s", err.message);
		/* on_notify kills host 0 mid-mirror: the answer never comes */
		cr_assert_neq(qv_rpc_recv_response(c, 300000, id, &r, &err), 0);
	}
	cr_assert(w.killed, "never saw the mirror in progress");
	qvt_sleep_ms(1000);
	cr_assert_eq(qvt_twohosts_start_daemon(H, 0), 0);
	/* Converges: the destination's incoming VM goes away by itself. */
	cr_assert(wait_undefined(1, 90000), "the destination keeps the incoming %s", VM);
	source_intact(&src);
	for (int t = 0; t < 300; t++) { /* the driver record goes with the abort */
		json_object *s = qvt_call_name(&H->d[0], "migrate.status", VM, &err);
		bool driving = s && json_object_object_get_ex(s, "driver_phase", NULL);
		json_object_put(s);
		qv_error_clear(&err);
		if (!driving)
			break;
		qvt_sleep_ms(200);
	}
	migrate_after_failure(&src);
}

/* Restart host h with a QVISORD_TEST_STALL_AT hook that holds while the
 * file (made here, in h's private dir, path in file) exists. */
static void arm_stall(int h, const char *point, char *file, size_t size)
{
	FILE *f;

	snprintf(file, size, "%s/test-stall", H->d[h].dir);
	f = fopen(file, "we");
	cr_assert_not_null(f, "%s: %m", file);
	fclose(f);
	qvt_daemon_stop(&H->d[h], SIGTERM);
	setenv("QVISORD_TEST_STALL_AT", point, 1);
	setenv("QVISORD_TEST_STALL_FILE", file, 1);
	cr_assert_eq(qvt_twohosts_start_daemon(H, h), 0);
	unsetenv("QVISORD_TEST_STALL_AT");
	unsetenv("QVISORD_TEST_STALL_FILE");
}

/* migrate.status on host h: its "state" and "step" ("" when absent, or
 * when there is no migration). */
static void mig_status(int h, char *state, char *step, size_t size)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&H->d[h], "migrate.status", VM, &err), *v;

	snprintf(state, size, "%s", r && json_object_object_get_ex(r, "state", &v)
					    ? json_object_get_string(v) : "");
	snprintf(step, size, "%s", r && json_object_object_get_ex(r, "step", &v)
					   ? json_object_get_string(v) : "");
	json_object_put(r);
}

/* Until host h's incoming migration reads preparing at step (240 s). */
static void wait_prepare_step(int h, const char *step)
{
	char state[32], got[32];

	for (int t = 0; t < 240000; t += 50) {
		mig_status(h, state, got, sizeof(got));
		if (streq(state, "preparing") && streq(got, step))
			return;
		qvt_sleep_ms(50);
	}
	cr_assert_fail("host %d never showed its prepare at step %s (last: %s/%s)", h, step, state,
		       got);
}

/* The image prepare made for the guest's disk in host 1's pool. */
static void dest_image_path(char *buf, size_t size)
{
	struct qv_error err = {};
	json_object *r = qvt_call(&H->d[1], "image.list", json_object_new_object(), &err), *v;

	cr_assert_not_null(r, "image.list: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "pool", &v));
	snprintf(buf, size, "%s/data.raw", json_object_get_string(v));
	json_object_put(r);
}

/* The destination creates the copy_storage image off its loop: its image
 * worker is held (QVISORD_TEST_STALL_AT=dest-create-images, while a file
 * exists), migrate.status there reports the prepare with its step, and
 * vm.list is answered while the image is still being created (the step
 * is unchanged after the answer, the worker still held). Released, the
 * prepare answers and the migration completes: one copy, on host 1. */
Test(migrate_storage, vm_list_answered_while_the_destination_creates_its_image)
{
	struct qv_error err = {};
	struct src src;
	struct prep pr;
	char file[160], state[32], step[32];
	json_object *r = NULL;
	uint64_t id;

	source_guest(&src, "create-a", 8, false);
	arm_stall(1, "dest-create-images", file, sizeof(file));
	_cleanup_rpc_conn_ qv_rpc_conn *c = qvt_connect(&H->d[1]);
	cr_assert_not_null(c);
	cr_assert_eq(qv_rpc_send(c, "migrate.prepare", prepare_params(0, NULL), &id, &err), 0,
		     "%s", err.message);
	wait_prepare_step(1, "creating-images");
	r = qvt_call(&H->d[1], "vm.list", NULL, &err);
	cr_assert_not_null(r, "vm.list while the image is created: %s", err.message);
	json_object_put(r);
	mig_status(1, state, step, sizeof(step));
	cr_assert_str_eq(state, "preparing");
	cr_assert_str_eq(step, "creating-images", "the image worker was not held");
	{ /* and the CLI says so */
		char out[1024];
		cr_assert_eq(qvt_cli(&H->d[1], "migrate-status " VM, out, sizeof(out)), 0, "%s", out);
		cr_assert(strstr(out, "destination migration preparing (step creating-images)"),
			  "qvisor migrate-status printed: %s", out);
	}
	cr_assert_eq(unlink(file), 0);
	r = NULL;
	cr_assert_eq(qv_rpc_recv_response(c, 240000, id, &r, &err), 0, "prepare: %s",
		     err.message);
	prepare_parse(&pr, r);
	mig_status(1, state, step, sizeof(step));
	cr_assert_str_eq(state, "prepared", "after prepare answered");
	migrate_prepared(&pr, src.expect, 8, 0);
}

/* migrate.cancel while the incoming QEMU's start waits in the start queue
 * (QVISORD_TEST_STALL_AT=start-queue holds the queue while a file exists):
 * migrate.status reports the prepare at "start-queued"; the cancel tears
 * down at once, while the queue is still held: prepare fails "cancelled",
 * no VM, no image, no record there, and the source keeps running. Then a
 * migration of the same VM goes through. */
Test(migrate_storage, cancel_while_the_incoming_start_is_queued_tears_down_at_once)
{
	static const char token[] = "00112233445566778899aabbccddeeff";
	struct qv_error err = {};
	struct src src;
	char file[160], img[600], state[32], step[32];
	json_object *r = NULL;
	uint64_t id;
	int rc;

	source_guest(&src, "queue-a", 8, false);
	arm_stall(1, "start-queue", file, sizeof(file));
	dest_image_path(img, sizeof(img));
	_cleanup_rpc_conn_ qv_rpc_conn *c = qvt_connect(&H->d[1]);
	cr_assert_not_null(c);
	cr_assert_eq(qv_rpc_send(c, "migrate.prepare", prepare_params(0, token), &id, &err), 0,
		     "%s", err.message);
	wait_prepare_step(1, "start-queued");
	cr_assert_eq(access(img, F_OK), 0, "the image %s should exist by now", img);
	cr_assert_eq(qvt_callf(&H->d[1], "migrate.cancel", NULL, &err,
			       "{\"name\": \"%s\", \"token\": \"%s\"}", VM, token),
		     0, "cancel while queued: %s", err.message);
	/* At once: the queue is still held, nothing waited for the start. */
	cr_assert_eq(access(file, F_OK), 0);
	cr_assert(qvt_wait_vm_undefined(&H->d[1], VM, 1), "the destination still defines %s", VM);
	cr_assert_neq(access(img, F_OK), 0, "the image %s was left behind", img);
	mig_status(1, state, step, sizeof(step));
	cr_assert_str_eq(state, "", "the destination keeps a migration (%s)", state);
	rc = qv_rpc_recv_response(c, 60000, id, &r, &err);
	json_object_put(r);
	cr_assert_lt(rc, 0, "migrate.prepare should have failed after the cancel");
	cr_assert_str_eq(err.reason, "cancelled", "prepare failed with: %s (%s)", err.message,
			 err.reason);
	cr_assert_eq(unlink(file), 0);
	source_intact(&src);
	/* Nothing was left queued: the next migration goes through. */
	migrate_fully(src.expect, src.mib, 0);
}

/* No file named like the guest's image (data.raw, nor a worker's
 * temporary .data.raw.*) in host 1's pool. */
static bool pool_clean(const char *img)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "ls -a \"$(dirname '%s')\" | grep -q 'data\\.raw'", img);
	return system(cmd) != 0;
}

/* migrate.cancel while the image worker is held: prepare fails
 * "cancelled" at once (the worker still held), and once the worker ran
 * out nothing it made is left in the pool; no VM, no record. */
Test(migrate_storage, cancel_while_the_destination_creates_its_image_leaves_nothing)
{
	static const char token[] = "ffeeddccbbaa99887766554433221100";
	struct qv_error err = {};
	struct src src;
	char file[160], img[600], state[32], step[32];
	json_object *r = NULL;
	uint64_t id;
	int rc, t;

	source_guest(&src, "create-c", 8, false);
	arm_stall(1, "dest-create-images", file, sizeof(file));
	dest_image_path(img, sizeof(img));
	_cleanup_rpc_conn_ qv_rpc_conn *c = qvt_connect(&H->d[1]);
	cr_assert_not_null(c);
	cr_assert_eq(qv_rpc_send(c, "migrate.prepare", prepare_params(0, token), &id, &err), 0,
		     "%s", err.message);
	wait_prepare_step(1, "creating-images");
	cr_assert_eq(qvt_callf(&H->d[1], "migrate.cancel", NULL, &err,
			       "{\"name\": \"%s\", \"token\": \"%s\"}", VM, token),
		     0, "cancel while creating: %s", err.message);
	rc = qv_rpc_recv_response(c, 60000, id, &r, &err);
	json_object_put(r);
	cr_assert_lt(rc, 0, "migrate.prepare should have failed after the cancel");
	cr_assert_str_eq(err.reason, "cancelled", "prepare failed with: %s (%s)", err.message,
			 err.reason);
	cr_assert_eq(access(file, F_OK), 0, "the cancel waited for the worker");
	mig_status(1, state, step, sizeof(step));
	cr_assert_str_eq(state, "", "the destination keeps a migration (%s)", state);
	cr_assert(qvt_wait_vm_undefined(&H->d[1], VM, 1), "the destination defines %s", VM);
	cr_assert_eq(unlink(file), 0);
	for (t = 0; t < 60000 && !pool_clean(img); t += 100)
		qvt_sleep_ms(100);
	cr_assert(pool_clean(img), "the image worker left a file in the pool of %s", img);
	source_intact(&src);
}
