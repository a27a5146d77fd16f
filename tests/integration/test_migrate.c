/* SPDX-License-Identifier: MIT */
/* Live migration end to end: two real qvisord in two network namespaces
 * joined by a veth pair, real QEMU (TCG), the test guest with its dirtier.
 * The test process plays the coordinating client (what `qvisor migrate`
 * does), so each failure can be injected between the phases. */
#include <criterion/criterion.h>
#include <signal.h>

#include "common/json.h"
#include "common/loop.h"
#include "daemon/state.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/twohosts.h"

#define BOOT_TIMEOUT_MS 180000
#define VM "mig1"

static struct qvt_twohosts *const H = &qvt_hosts;

/* Define and start VM on the source with the dirtier at rate:wss. */
static void start_guest(const char *dirty)
{
	qvt_start_dirtier_guest(&H->d[0], VM, dirty, BOOT_TIMEOUT_MS);
}

/* migrate.prepare on the destination with the source's spec. */
static void prepare(char *uri, size_t usz, char *token, size_t tsz)
{
	struct qv_error err = {};
	json_object *info = qvt_call_name(&H->d[0], "vm.info", VM, &err), *spec, *p, *r, *v;

	cr_assert_not_null(info, "%s", err.message);
	cr_assert(json_object_object_get_ex(info, "spec", &spec));
	p = json_object_new_object();
	json_object_object_add(p, "spec", json_object_get(spec));
	json_object_put(info);
	r = qvt_call(&H->d[1], "migrate.prepare", p, &err);
	cr_assert_not_null(r, "prepare: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "uri", &v));
	snprintf(uri, usz, "%s", json_object_get_string(v));
	cr_assert(strstr(uri, H->addr[1]), "uri %s should name the destination address", uri);
	cr_assert(json_object_object_get_ex(r, "token", &v));
	snprintf(token, tsz, "%s", json_object_get_string(v));
	json_object_put(r);
}

/* Send migrate.perform without waiting; returns the connection. */
static qv_rpc_conn *perform_async(const char *uri, const char *extra_json, uint64_t *ret_id)
{
	struct qv_error err = {};
	qv_rpc_conn *c = qvt_connect(&H->d[0]);
	json_object *p = extra_json ? json_tokener_parse(extra_json) : json_object_new_object();

	cr_assert_not_null(c);
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "uri", json_object_new_string(uri));
	cr_assert_eq(qv_rpc_send(c, "migrate.perform", p, ret_id, &err), 0, "%s", err.message);
	return c;
}

static const char *state_of(int host, char *buf, size_t size)
{
	return qvt_vm_state(&H->d[host], VM, buf, size);
}

/* Wait until VM is not defined on host (torn down). */
static bool wait_undefined(int host, int timeout_ms)
{
	return qvt_wait_vm_undefined(&H->d[host], VM, timeout_ms);
}

static void assert_source_running(void)
{
	char buf[32];
	struct qv_runtime_record rec = {};
	qv_state *st = NULL;
	int pid = qvt_vm_pid(&H->d[0], VM);

	cr_assert_str_eq(state_of(0, buf, sizeof(buf)), "running");
	cr_assert_gt(pid, 0);
	cr_assert_eq(kill(pid, 0), 0, "source QEMU %d is gone", pid);
	/* The state store agrees (read by a second connection, WAL). */
	cr_assert_eq(qv_state_open(H->d[0].state_dir, &st, NULL), 0);
	cr_assert_eq(qv_state_runtime_get(st, VM, &rec), 0);
	cr_assert_str_eq(rec.state, "running");
	qv_runtime_record_done(&rec);
	qv_state_close(st);
	/* And the guest still makes progress: a new dirtier report appears. */
	const char *log = qvt_serial_log(&H->d[0], VM);
	FILE *f = fopen(log, "r");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	long before = ftell(f);
	fclose(f);
	bool grew = false;
	for (int t = 0; t < 30000 && !grew; t += 500) {
		qvt_sleep_ms(500);
		f = fopen(log, "r");
		fseek(f, 0, SEEK_END);
		grew = ftell(f) > before;
		fclose(f);
	}
	cr_assert(grew, "the source guest stopped printing");
}

TestSuite(migrate, .init = qvt_twohosts_setup, .fini = qvt_twohosts_teardown, .timeout = 600);

Test(migrate, baseline_completes_with_one_running_copy)
{
	char uri[128], token[64], buf[32];
	struct qv_error err = {};
	json_object *r, *p, *v;
	uint64_t id;
	int src_pid;

	QVT_REQUIRE_HOSTS();
	start_guest("5:32");
	src_pid = qvt_vm_pid(&H->d[0], VM);
	prepare(uri, sizeof(uri), token, sizeof(token));
	cr_assert_str_eq(state_of(1, buf, sizeof(buf)), "migrating");

	_cleanup_rpc_conn_ qv_rpc_conn *c = perform_async(
		uri, "{\"max_downtime_ms\": 300, \"bandwidth_mbps\": 100, \"deadline_s\": 120}", &id);
	cr_assert_eq(qv_rpc_recv_response(c, 300000, id, &r, &err), 0, "perform: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "status", &v));
	cr_assert_str_eq(json_object_get_string(v), "completed");
	cr_assert(json_object_object_get_ex(r, "downtime_ms", &v));
	cr_assert_geq(json_object_get_int64(v), 0);
	cr_assert(json_object_object_get_ex(r, "decisions", &v));
	cr_assert_gt(json_object_array_length(v), 0);
	json_object_put(r);
	/* Completed, not yet finished: neither copy runs. */
	cr_assert_str_eq(state_of(0, buf, sizeof(buf)), "migrating");

	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "token", json_object_new_string("wrong"));
	r = qvt_call(&H->d[1], "migrate.finish", p, &err);
	cr_assert_null(r, "a wrong token must be refused");
	cr_assert_str_eq(err.reason, "permission-denied");

	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "token", json_object_new_string(token));
	r = qvt_call(&H->d[1], "migrate.finish", p, &err);
	cr_assert_not_null(r, "finish: %s", err.message);
	json_object_put(r);
	cr_assert_str_eq(state_of(1, buf, sizeof(buf)), "running");

	/* prepare -> perform -> finish -> cancel: the guest runs on the
	 * destination, so the source must refuse to take over. */
	qv_error_clear(&err);
	r = qvt_call_name(&H->d[0], "migrate.cancel", VM, &err);
	cr_assert_null(r, "cancel after finish must be refused");
	cr_assert_str_eq(err.reason, "conflict", "%s", err.message);
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&H->d[1], "migrate.cancel", NULL, &err,
			       "{\"name\": \"%s\", \"token\": \"%s\"}", VM, token),
		     0, "cancel on a finished destination must be refused");
	cr_assert_str_eq(err.reason, "conflict", "%s", err.message);
	cr_assert_str_eq(state_of(0, buf, sizeof(buf)), "migrating");
	cr_assert_str_eq(state_of(1, buf, sizeof(buf)), "running");
	/* finish is idempotent by token (a source that lost the answer). */
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "token", json_object_new_string(token));
	r = qvt_call(&H->d[1], "migrate.finish", p, &err);
	cr_assert_not_null(r, "repeated finish: %s", err.message);
	json_object_put(r);

	qvt_twohosts_confirm_moved(H, VM, src_pid);
}

/* A migration slow enough to interrupt: high dirty rate, small bandwidth. */
#define SLOW "{\"max_downtime_ms\": 50, \"bandwidth_mbps\": 8, \"deadline_s\": 300}"

Test(migrate, destination_killed_source_keeps_running)
{
	char uri[128], token[64];
	struct qv_error err = {};
	json_object *r = NULL;
	uint64_t id;
	int dpid;

	QVT_REQUIRE_HOSTS();
	start_guest("30:64");
	prepare(uri, sizeof(uri), token, sizeof(token));
	_cleanup_rpc_conn_ qv_rpc_conn *c = perform_async(uri, SLOW, &id);
	qvt_sleep_ms(4000);
	dpid = qvt_vm_pid(&H->d[1], VM);
	cr_assert_gt(dpid, 0);
	kill(dpid, SIGKILL);
	cr_assert_lt(qv_rpc_recv_response(c, 120000, id, &r, &err), 0, "perform should fail");
	assert_source_running();
	cr_assert(wait_undefined(1, 20000), "the destination definition should be removed");
}

Test(migrate, cancel_midway_source_running_destination_torn_down)
{
	char uri[128], token[64];
	struct qv_error err = {};
	json_object *r = NULL;
	uint64_t id;

	QVT_REQUIRE_HOSTS();
	start_guest("30:64");
	prepare(uri, sizeof(uri), token, sizeof(token));
	_cleanup_rpc_conn_ qv_rpc_conn *c = perform_async(uri, SLOW, &id);
	qvt_sleep_ms(4000);
	r = qvt_call_name(&H->d[0], "migrate.cancel", VM, &err);
	cr_assert_not_null(r, "cancel: %s", err.message);
	json_object_put(r);
	r = NULL;
	cr_assert_lt(qv_rpc_recv_response(c, 120000, id, &r, &err), 0, "perform should fail");
	cr_assert_str_eq(err.reason, "cancelled");
	assert_source_running();
	/* Nobody told the destination: its QEMU exits when the stream breaks and
	 * the watchdog removes the definition prepare created. */
	cr_assert(wait_undefined(1, 30000), "the destination should be torn down");
}

Test(migrate, link_down_deadline_source_keeps_running)
{
	char uri[128], token[64];
	struct qv_error err = {};
	json_object *r = NULL;
	uint64_t id;

	QVT_REQUIRE_HOSTS();
	start_guest("30:64");
	prepare(uri, sizeof(uri), token, sizeof(token));
	_cleanup_rpc_conn_ qv_rpc_conn *c = perform_async(
		uri, "{\"max_downtime_ms\": 50, \"bandwidth_mbps\": 8, \"deadline_s\": 10}", &id);
	qvt_sleep_ms(3000);
	cr_assert_eq(qvt_twohosts_link(H, 0, false), 0);
	cr_assert_lt(qv_rpc_recv_response(c, 120000, id, &r, &err), 0, "perform should fail");
	cr_assert_str_eq(err.reason, "timeout", "%s", err.message);
	assert_source_running();
	/* The coordinator tears the destination down: by token only (a
	 * stale or missing one is refused and tears nothing down). */
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&H->d[1], "migrate.cancel", NULL, &err, "{\"name\": \"%s\"}", VM),
		     0, "a destination cancel without a token was accepted");
	cr_assert_str_eq(err.reason, "invalid-argument", "%s", err.message);
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&H->d[1], "migrate.cancel", NULL, &err,
			       "{\"name\": \"%s\", \"token\": \"0123456789abcdef\"}", VM),
		     0, "a destination cancel with a foreign token was accepted");
	cr_assert_str_eq(err.reason, "conflict", "%s", err.message);
	qv_error_clear(&err);
	qvt_callf(&H->d[1], "migrate.cancel", NULL, &err,
		  "{\"name\": \"%s\", \"token\": \"%s\"}", VM, token);
	cr_assert(wait_undefined(1, 30000), "the destination should be torn down");
}

Test(migrate, source_daemon_sigkilled_resolves_to_one_copy)
{
	char uri[128], token[64];
	struct qv_error err = {};
	json_object *r;
	uint64_t id;
	int spid;

	QVT_REQUIRE_HOSTS();
	start_guest("30:64");
	spid = qvt_vm_pid(&H->d[0], VM);
	prepare(uri, sizeof(uri), token, sizeof(token));
	qv_rpc_conn *c = perform_async(uri, SLOW, &id);
	qvt_sleep_ms(4000);
	qvt_daemon_stop(&H->d[0], SIGKILL);
	qv_rpc_conn_free(c);
	cr_assert_eq(kill(spid, 0), 0, "QEMU must survive its daemon");
	cr_assert_eq(qvt_twohosts_start_daemon(H, 0), 0);
	/* The restarted daemon resolved the migration from QEMU's own state
	 * (qv_migrate_registry_load): no migration is pending any more. While
	 * that start-time recovery still runs, migrate.* may answer
	 * "unavailable": asked again then (30 s). */
	uint64_t t0 = qv_now_ms();
	for (;; qvt_sleep_ms(200)) {
		qv_error_clear(&err);
		r = qvt_call_name(&H->d[0], "migrate.status", VM, &err);
		if (r || !streq(err.reason, "unavailable") || qv_now_ms() - t0 > 30000)
			break;
	}
	cr_assert_null(r, "migration still pending after restart");
	cr_assert_str_eq(err.reason, "not-found", "%s", err.message);
	cr_assert_eq(qvt_vm_pid(&H->d[0], VM), spid);
	assert_source_running();
	cr_assert(wait_undefined(1, 30000), "the destination should be torn down");
}

/* The CLI end to end: `qvisor drill run` ping-pongs the VM with a cancel
 * fault in the middle; every step must leave exactly one running copy. */
Test(migrate, cli_drill_ping_pong_with_cancel)
{
	char path[160], bin[512], buf[32];
	const char *b = getenv("QV_BUILD_DIR");
	_cleanup_free_ char *out = NULL;
	FILE *f;
	int rc;

	QVT_REQUIRE_HOSTS();
	snprintf(bin, sizeof(bin), "%s/qvisor", b && *b ? b : "build");
	if (access(bin, X_OK) < 0)
		cr_skip_test("qvisor CLI not built");
	start_guest("5:32");
	snprintf(path, sizeof(path), "%s/drill.json", H->d[0].dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"name\": \"t\", \"vm\": \"%s\", \"hosts\": [\"unix://%s\", \"unix://%s\"],"
		" \"iterations\": 3, \"migrate\": {\"max_downtime_ms\": 300, \"bandwidth_mbps\": 20,"
		" \"deadline_s\": 120}, \"faults\": [{\"iteration\": 1, \"kind\": \"cancel\","
		" \"after_ms\": 1000}]}\n",
		VM, H->d[0].socket, H->d[1].socket);
	fclose(f);
	char *argv[] = { bin, "drill", "run", path, NULL };
	rc = qvt_run(argv, &out);
	cr_assert_eq(rc, 0, "drill failed (%d):\n%s", rc, out ? out : "");
	cr_assert(strstr(out, "passed"), "%s", out);
	cr_assert(strstr(out, "cancel"), "%s", out);
	/* 0: A->B, 1: cancelled (stays on B), 2: B->A */
	cr_assert_str_eq(state_of(0, buf, sizeof(buf)), "running");
	cr_assert(wait_undefined(1, 10000), "%s", out);
}
