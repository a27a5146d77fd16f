/* SPDX-License-Identifier: MIT */
/* Host maintenance on three hosts (docs/cluster.md "Maintenance"): h0
 * runs four 128 MiB test guests and has one stopped VM; `host.evacuate h0`
 * sent to h1 cordons h0 and live-migrates the four away in waves (a
 * second evacuation of h0 is a conflict, on h1 and on h2); afterwards
 * each runs on exactly one other host, the inventory names that host, the
 * guests answer on their control channel, the stopped VM is reported as
 * left; h0 stays unschedulable across a daemon restart (host auto never
 * lands there) until `host.resume`; then the CLI evacuates h2, which runs
 * VMs that came from h0. Real etcd (3 members, mutual TLS), real qvisord,
 * real QEMU/TCG. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "helpers/guest-ctl.h"
#include "helpers/guest.h"
#include "helpers/threehosts.h"

#define BOOT_TIMEOUT_MS 180000
#define NVMS 4

static struct qvt_threehosts hosts;
static bool up;

static void setup(void)
{
	up = qvt_threehosts_fixture_up(&hosts, "cluster_evacuate", NULL);
}

static void teardown(void)
{
	if (up)
		qvt_threehosts_down(&hosts);
	up = false;
}

TestSuite(cluster_evacuate, .init = setup, .fini = teardown, .timeout = 600);

static int host_index(const char *name)
{
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (streq(name, hosts.name[i]))
			return i;
	return -1;
}

/* Which daemons list VM name (vm.list: never forwarded); -1 if none, -2
 * if several. */
static int defined_on(const char *name)
{
	int where = -1;

	for (int i = 0; i < QVT_NHOSTS; i++) {
		json_object *res = NULL, *arr, *v;
		struct qv_error err = {};
		cr_assert_eq(qvt_callf(&hosts.d[i], "vm.list", &res, &err, "{}"), 0, "%s", err.message);
		json_object_object_get_ex(res, "vms", &arr);
		for (size_t k = 0; k < json_object_array_length(arr); k++)
			if (json_object_object_get_ex(json_object_array_get_idx(arr, k), "name", &v) &&
			    streq(json_object_get_string(v), name))
				where = where == -1 ? i : -2;
		json_object_put(res);
	}
	return where;
}

/* The host named by cluster.hosts' record for h: its schedulable flag. */
static bool schedulable(int via, const char *h)
{
	json_object *res = NULL, *arr, *v;
	struct qv_error err = {};
	bool s = true;

	cr_assert_eq(qvt_callf(&hosts.d[via], "cluster.hosts", &res, &err, "{}"), 0, "%s",
		     err.message);
	json_object_object_get_ex(res, "hosts", &arr);
	for (size_t k = 0; k < json_object_array_length(arr); k++) {
		json_object *o = json_object_array_get_idx(arr, k);
		if (streq(qvt_json_str(o, "name"), h) && json_object_object_get_ex(o, "schedulable", &v))
			s = json_object_get_boolean(v);
	}
	json_object_put(res);
	return s;
}

/* Defined through daemon via with host auto: where it landed. */
static const char *define_auto(int via, const char *name, char *host, size_t size)
{
	struct qv_error err = {};
	int where;

	cr_assert_eq(qvt_define_guest(&hosts.d[via], name,
				      "{\"memory\": 128, \"placement\": {\"host\": \"auto\"}}", &err),
		     0, "define %s: %s", name, err.message);
	where = defined_on(name);
	cr_assert(where >= 0, "%s is defined on no host or several", name);
	snprintf(host, size, "%s", hosts.name[where]);
	cr_log_info("%s placed on %s", name, host);
	return host;
}

static void ctl_ping(int on, const char *name)
{
	struct qv_error err = {};
	json_object *con = qvt_call_name(&hosts.d[on], "vm.console", name, &err);
	char v[64];

	cr_assert_not_null(con, "console of %s on h%d: %s", name, on, err.message);
	qvt_ctl *c = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_TIMEOUT_MS);
	cr_assert_not_null(c, "%s on h%d: the guest does not answer its control channel", name, on);
	cr_assert_eq(qvt_ctl_cmd(c, "ping", 30000, v, sizeof(v)), 0, "%s: ping failed", name);
	qvt_ctl_close(c);
	json_object_put(con);
}

static void expect_error(int via, const char *method, const char *params, const char *reason,
			 const char *needle)
{
	json_object *res = NULL;
	struct qv_error err = {};

	cr_assert_neq(qvt_callf(&hosts.d[via], method, &res, &err, "%s", params), 0,
		      "%s %s succeeded", method, params);
	cr_assert_str_eq(err.reason, reason, "%s %s: %s", method, params, err.message);
	cr_assert(!needle || strstr(err.message, needle), "%s %s: %s", method, params, err.message);
	cr_log_info("%s %s -> %s: %s", method, params, err.reason, err.message);
}

Test(cluster_evacuate, evacuate_cordon_resume)
{
	struct qv_error err = {};
	char name[16], host[16], owner[16];

	QVT_REQUIRE_GUEST();
	if (!up)
		cr_skip_test("three hosts (root, netns, etcd, qvisord) unavailable");
	uint64_t t_start = qv_now_ms();

	/* Four running guests and one stopped VM on h0 (defined there: no
	 * placement section). */
	for (int i = 0; i < NVMS; i++) {
		snprintf(name, sizeof(name), "ev%d", i);
		cr_assert_eq(qvt_define_guest(&hosts.d[0], name,
					      "{\"memory\": 128, \"cmdline\": \"console=ttyS0 "
					      "panic=-1 qv.ctl=1\"}", &err),
			     0, "define %s: %s", name, err.message);
		json_object_put(qvt_call_name(&hosts.d[0], "vm.start", name, &err));
	}
	cr_assert_eq(qvt_define_guest(&hosts.d[0], "idle", "{\"memory\": 128}", &err), 0, "%s",
		     err.message);
	/* A fifth running VM whose anti-affinity group has a member on each
	 * other host: it fits nowhere else and stays, the others still move. */
	for (int i = 0; i < QVT_NHOSTS; i++) {
		char extra[160];
		snprintf(name, sizeof(name), "aa%d", i);
		snprintf(extra, sizeof(extra), "{\"memory\": 128, \"placement\": {\"host\": \"%s\", "
			 "\"anti_affinity\": [\"grp\"]}}", hosts.name[i]);
		cr_assert_eq(qvt_define_guest(&hosts.d[0], name, extra, &err), 0, "define %s: %s", name,
			     err.message);
	}
	json_object_put(qvt_call_name(&hosts.d[0], "vm.start", "aa0", &err));
	for (int i = 0; i < NVMS; i++) {
		snprintf(name, sizeof(name), "ev%d", i);
		ctl_ping(0, name);
	}

	cr_log_info("phase: guests up at %.1f s", (qv_now_ms() - t_start) / 1000.0);
	/* Bad input: clear errors, nothing changes. */
	expect_error(2, "host.evacuate", "{\"host\": \"nohost\"}", "not-found", "nohost");
	expect_error(2, "host.evacuate", "{\"host\": \"../x\"}", "invalid-argument", NULL);
	expect_error(2, "host.resume", "{\"host\": \"nohost\"}", "not-found", "nohost");
	cr_assert(schedulable(0, hosts.name[0]));

	/* Evacuate h0, driven by h1, waiting for the end. */
	qv_rpc_conn *conn = qvt_connect(&hosts.d[1]);
	uint64_t id, t0 = qv_now_ms();
	json_object *p = json_object_new_object(), *res = NULL;
	json_object_object_add(p, "host", json_object_new_string(hosts.name[0]));
	json_object_object_add(p, "wait", json_object_new_boolean(true));
	cr_assert_eq(qv_rpc_send(conn, "host.evacuate", p, &id, &err), 0, "%s", err.message);
	/* The plan comes first (h0 is cordoned and locked by then). */
	char *method = NULL;
	json_object *plan = NULL;
	cr_assert_eq(qv_rpc_wait_notification(conn, 120000, &method, &plan, &err), 0, "%s",
		     err.message);
	cr_assert_str_eq(method, "host.evacuate.progress");
	cr_log_info("plan: %s", json_object_to_json_string(plan));
	cr_assert_eq(qvt_json_int(plan, "waves"), 2, "4 VMs off one host at 2 per host: 2 waves");
	free(method);
	json_object_put(plan);
	/* A second evacuation of h0 is refused wherever it is asked, and so
	 * is resuming it meanwhile. */
	expect_error(2, "host.evacuate", "{\"host\": \"h0\"}", "conflict", "already running");
	expect_error(1, "host.evacuate", "{\"host\": \"h0\"}", "conflict", "already running");
	expect_error(0, "host.resume", "{\"host\": \"h0\"}", "conflict", "evacuated");
	cr_assert_eq(qv_rpc_recv_response(conn, 480000, id, &res, &err), 0, "evacuate: %s",
		     err.message);
	qv_rpc_conn_free(conn);
	cr_log_info("host.evacuate h0 (%.1f s): %s", (qv_now_ms() - t0) / 1000.0,
		    json_object_to_json_string(res));
	cr_assert_eq(qvt_json_int(res, "moved"), NVMS, "%s", json_object_to_json_string(res));
	cr_assert_eq(qvt_json_int(res, "failed"), 0);
	json_object *left, *moves, *skipped, *v;
	cr_assert(json_object_object_get_ex(res, "skipped", &skipped) &&
		  json_object_array_length(skipped) == 1, "aa0 is not reported as fitting nowhere");
	json_object *sk = json_object_array_get_idx(skipped, 0);
	cr_assert_str_eq(qvt_json_str(sk, "vm"), "aa0");
	cr_assert(strstr(qvt_json_str(sk, "reason"), "anti-affinity") ||
		  strstr(qvt_json_str(sk, "reason"), "grp"), "refusal without its cause: %s",
		  qvt_json_str(sk, "reason"));
	cr_assert(json_object_object_get_ex(res, "left", &left) &&
		  json_object_array_length(left) == 1 &&
		  streq(qvt_json_str(json_object_array_get_idx(left, 0), "vm"), "idle"),
		  "the stopped VM is not reported as left");
	cr_assert(json_object_object_get_ex(res, "moves", &moves));
	for (size_t i = 0; i < json_object_array_length(moves); i++) {
		json_object *m = json_object_array_get_idx(moves, i);
		cr_assert(strstr(qvt_json_str(m, "reason"), "evacuating h0"), "%s",
			  qvt_json_str(m, "reason"));
		cr_assert(json_object_object_get_ex(m, "wave", &v));
	}
	json_object_put(res);

	/* Each runs on exactly one other host, which the inventory names, and
	 * answers there. */
	for (int i = 0; i < NVMS; i++) {
		snprintf(name, sizeof(name), "ev%d", i);
		int where = defined_on(name);
		cr_assert(where > 0, "%s is on h%d after the evacuation", name, where);
		uint64_t w0 = qv_now_ms();
		while (qvt_cluster_owner(&hosts, 2, name, owner, sizeof(owner)) == 0 &&
		       !streq(owner, hosts.name[where]) && qv_now_ms() - w0 < 15000)
			qvt_sleep_ms(200);
		cr_assert_str_eq(owner, hosts.name[where], "%s runs on h%d, inventory says %s", name,
				 where, owner);
		char st[32];
		cr_assert_str_eq(qvt_vm_state(&hosts.d[where], name, st, sizeof(st)), "running");
		ctl_ping(where, name);
	}
	cr_assert_eq(defined_on("idle"), 0, "the stopped VM moved");
	char st[32];
	cr_assert_eq(defined_on("aa0"), 0, "aa0 moved in spite of its anti-affinity group");
	cr_assert_str_eq(qvt_vm_state(&hosts.d[0], "aa0", st, sizeof(st)), "running");
	cr_log_info("phase: evacuation checked at %.1f s", (qv_now_ms() - t_start) / 1000.0);

	/* h0 stays unschedulable, across a restart of its daemon. */
	cr_assert(!schedulable(1, hosts.name[0]));
	cr_assert_eq(qvt_daemon_stop(&hosts.d[0], SIGTERM), 0);
	cr_assert_eq(qvt_threehosts_start_daemon(&hosts, 0), 0);
	uint64_t w0 = qv_now_ms();
	while (qvt_cluster_nhosts(&hosts, 1) != 3 && qv_now_ms() - w0 < 30000)
		qvt_sleep_ms(100);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 1), 3, "h0 did not rejoin");
	cr_assert(!schedulable(2, hosts.name[0]), "h0 schedulable again after its restart");
	/* The emptiest host is never picked while cordoned. */
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "new%d", i);
		define_auto(i % QVT_NHOSTS, name, host, sizeof(host));
		cr_assert(host_index(host) > 0, "%s placed on the cordoned h0", name);
	}
	err = (struct qv_error){};
	cr_assert_neq(qvt_define_guest(&hosts.d[1], "pin0",
				       "{\"memory\": 128, \"placement\": {\"host\": \"h0\"}}", &err),
		      0, "a VM was placed on the cordoned h0 by name");
	cr_assert_str_eq(err.reason, "conflict", "%s", err.message);
	cr_assert(strstr(err.message, "unschedulable"), "%s", err.message);

	/* host resume: schedulable, and the emptiest host again. */
	cr_assert_eq(qvt_callf(&hosts.d[2], "host.resume", &res, &err, "{\"host\": \"h0\"}"), 0,
		     "%s", err.message);
	json_object_put(res);
	cr_assert(schedulable(1, hosts.name[0]));
	define_auto(1, "back0", host, sizeof(host));
	cr_assert_str_eq(host, hosts.name[0], "the resumed, emptiest host was not chosen");
	/* The CLI, as an operator would: cordon by hand, resume, an unknown
	 * host (exit 4), and an evacuation with nothing running to move. */
	char out[4096];
	cr_assert_eq(qvt_cli(&hosts.d[1], "host cordon h2 --reason 'disk swap'", out, sizeof(out)), 0,
		     "%s", out);
	cr_assert(strstr(out, "unschedulable (disk swap)"), "%s", out);
	cr_assert(!schedulable(0, hosts.name[2]));
	cr_assert_eq(qvt_cli(&hosts.d[1], "host resume h2", out, sizeof(out)), 0, "%s", out);
	cr_assert(schedulable(0, hosts.name[2]));
	cr_assert_eq(qvt_cli(&hosts.d[0], "host evacuate nohost --wait", out, sizeof(out)), 4, "%s",
		     out);
	cr_assert(strstr(out, "not a live member"), "%s", out);
	cr_assert_eq(qvt_cli(&hosts.d[0], "host evacuate h2 --wait", out, sizeof(out)), 0, "%s", out);
	cr_log_info("qvisor host evacuate h2 --wait:\n%s", out);
	cr_assert(strstr(out, " 0 failed, 0 fit nowhere"), "%s", out);
	/* nothing runs on h2 now; what ran there (arrived from h0) runs elsewhere */
	for (int i = 0; i < NVMS; i++) {
		snprintf(name, sizeof(name), "ev%d", i);
		int where = defined_on(name);
		cr_assert(where == 0 || where == 1, "%s is on h%d after evacuating h2", name, where);
		cr_assert_str_eq(qvt_vm_state(&hosts.d[where], name, st, sizeof(st)), "running");
	}
	cr_assert(!schedulable(1, hosts.name[2]));
	cr_assert_eq(qvt_cli(&hosts.d[0], "cluster hosts", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "h2 (cordoned)") && !strstr(out, "h0 (cordoned)"), "%s", out);
	cr_assert_eq(qvt_cli(&hosts.d[2], "host resume h2", out, sizeof(out)), 0, "%s", out);
	cr_assert(schedulable(1, hosts.name[2]));
	cr_log_info("phase: done at %.1f s", (qv_now_ms() - t_start) / 1000.0);
}
