/* SPDX-License-Identifier: MIT */
/* Three hosts on etcd (docs/cluster.md): membership, the inventory's one
 * owner per VM, placement with host auto, anti-affinity, a reservation
 * that fits nowhere, an etcd member lost, a daemon SIGKILLed and back.
 * Real etcd (3 members, mutual TLS), real qvisord, real QEMU/TCG. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "cluster/etcd.h"
#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "common/pki.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/threehosts.h"

static struct qvt_threehosts hosts;
static bool up;

static void setup(void)
{
	up = qvt_threehosts_fixture_up(&hosts, "cluster", NULL);
}

static void teardown(void)
{
	if (up)
		qvt_threehosts_down(&hosts);
	up = false;
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 300);

#define REQUIRE_CLUSTER()                                                                \
	do {                                                                             \
		QVT_REQUIRE_GUEST();                                                     \
		if (!up)                                                                 \
			cr_skip_test("three hosts (root, netns, etcd, qvisord) unavailable"); \
	} while (0)

static int host_index(const char *owner)
{
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (streq(owner, hosts.name[i]))
			return i;
	return -1;
}

/* The VM is defined on exactly one daemon, and it is the inventory's owner. */
static int one_owner(const char *name)
{
	char owner[16];
	int where = -1, n = 0;

	cr_assert_eq(qvt_cluster_owner(&hosts, 0, name, owner, sizeof(owner)), 0,
		     "%s is not in the inventory", name);
	for (int i = 0; i < QVT_NHOSTS; i++) {
		/* vm.list, not vm.info: info would be forwarded to the owner. */
		json_object *res = NULL, *arr, *v;
		struct qv_error err = {};
		cr_assert_eq(qvt_callf(&hosts.d[i], "vm.list", &res, &err, "{}"), 0);
		json_object_object_get_ex(res, "vms", &arr);
		for (size_t k = 0; k < json_object_array_length(arr); k++)
			if (json_object_object_get_ex(json_object_array_get_idx(arr, k), "name", &v) &&
			    streq(json_object_get_string(v), name)) {
				n++;
				where = i;
			}
		json_object_put(res);
	}
	cr_assert_eq(n, 1, "%s is defined on %d hosts", name, n);
	cr_assert_eq(where, host_index(owner), "%s runs on h%d but the inventory says %s", name,
		     where, owner);
	return where;
}

static void define_auto(const char *name, const char *placement_extra)
{
	struct qv_error err = {};
	char extra[256];

	snprintf(extra, sizeof(extra), "{\"memory\": 128, \"placement\": {\"host\": \"auto\"%s}}",
		 placement_extra ? placement_extra : "");
	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qvt_define_guest(&hosts.d[0], name, extra, &err), 0, "define %s: %s", name,
		     err.message);
	/* A figure, not an assertion: read, place, claim, forward, define. */
	cr_log_info("define %s with host auto: %llu ms", name,
		    (unsigned long long)(qv_now_ms() - t0));
}

static void start_via(int via, const char *name)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&hosts.d[via], "vm.start", name, &err);
	cr_assert_not_null(r, "start %s through h%d: %s", name, via, err.message);
	json_object_put(r);
}

static void restart_h2_with(const char *pki_dir)
{
	snprintf(hosts.d[2].pki_dir, sizeof(hosts.d[2].pki_dir), "%s", pki_dir);
	cr_assert_eq(qvt_daemon_stop(&hosts.d[2], SIGTERM), 0);
	cr_assert_eq(qvt_threehosts_start_daemon(&hosts, 2), 0);
	uint64_t t0 = qv_now_ms();
	while (qv_now_ms() - t0 < 30000 && qvt_cluster_nhosts(&hosts, 0) != 3)
		qvt_sleep_ms(100);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 0), 3, "h2 did not rejoin");
}

/* A forwarded call goes only to a daemon whose certificate names the owner
 * recorded in etcd: h2 restarted with a certificate of the cluster CA that
 * is valid for its address but names h1 cannot receive h2's calls. */
static void wrong_host_certificate(void)
{
	const char *names[] = { "h1" };
	char good[128], bad[160];
	struct qv_error err = {};

	snprintf(good, sizeof(good), "%s", hosts.d[2].pki_dir);
	snprintf(bad, sizeof(bad), "%s/h2-as-h1", hosts.pki_root);
	cr_assert_eq(qv_pki_issue(hosts.pki_root, bad, hosts.addr[2], names, 1, 30, &err), 0, "%s",
		     err.message);
	restart_h2_with(bad);
	/* h2 itself says so at start */
	cr_assert_eq(qvt_wait_for_line_in_file(hosts.d[2].log, "does not name host h2", 30000), 0,
		     "no warning about its certificate in %s", hosts.d[2].log);
	cr_assert_eq(qvt_define_guest(&hosts.d[2], "wrongcert", "{\"memory\": 128}", &err), 0,
		     "%s", err.message);
	json_object *r = qvt_call_name(&hosts.d[0], "vm.info", "wrongcert", &err);
	cr_assert_null(r, "vm.info was forwarded to a daemon whose certificate names h1");
	cr_assert_str_eq(err.reason, "permission-denied", "%s", err.message);
	cr_assert(strstr(err.message, "does not name host h2"), "%s", err.message);
	cr_log_info("forward to a wrong-host certificate: %s", err.message);

	restart_h2_with(good);
	err = (struct qv_error){};
	r = qvt_call_name(&hosts.d[0], "vm.info", "wrongcert", &err);
	cr_assert_not_null(r, "vm.info through h0 with h2's own certificate: %s", err.message);
	json_object_put(r);
	r = qvt_call_name(&hosts.d[2], "vm.undefine", "wrongcert", &err);
	cr_assert_not_null(r, "%s", err.message);
	json_object_put(r);
}

Test(cluster, membership_placement_and_faults)
{
	struct qv_error err = {};
	char out[4096], owner[16];
	int count[QVT_NHOSTS] = {};

	REQUIRE_CLUSTER();

	/* cluster hosts lists the three, from any daemon. */
	cr_assert_eq(qvt_cli(&hosts.d[1], "cluster hosts", out, sizeof(out)), 0, "%s", out);
	cr_log_info("qvisor cluster hosts:\n%s", out);
	for (int i = 0; i < QVT_NHOSTS; i++) {
		cr_assert(strstr(out, hosts.name[i]) && strstr(out, hosts.listen_addr[i]),
			  "h%d missing from:\n%s", i, out);
		cr_assert(strstr(out, hosts.zone[i]), "label %s missing", hosts.zone[i]);
	}
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 2), 3);

	/* Six VMs defined through h0 with host auto, started through h0 (the
	 * call goes to the owner): spread two per host. */
	for (int i = 0; i < 6; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", i);
		define_auto(name, NULL);
		start_via(0, name);
		count[one_owner(name)]++;
	}
	cr_log_info("spread: h0=%d h1=%d h2=%d", count[0], count[1], count[2]);
	for (int i = 0; i < QVT_NHOSTS; i++)
		cr_assert_eq(count[i], 2, "h%d got %d of 6 VMs (want 2 each)", i, count[i]);
	/* The owner's guest really runs: its serial log, on its host. */
	int h_s0 = one_owner("s0");
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&hosts.d[h_s0], "s0"),
					       QVT_GUEST_READY, 120000), 0,
		     "s0 did not boot on h%d", h_s0);
	/* The placement and its reason are an event (h0 decided). */
	{
		char db[160], *q, *ev = NULL;
		snprintf(db, sizeof(db), "%s/qvisor.db", hosts.d[0].state_dir);
		/* .timeout: a reader may meet SQLITE_BUSY (WAL recovery) */
		char *argv[] = { "sqlite3", "-cmd", ".timeout 5000", db,
				 "SELECT data_json FROM events WHERE type='vm-placed' "
						"AND vm='s0'", NULL };
		cr_assert_eq(qvt_run(argv, &ev), 0);
		cr_assert(ev && (q = strstr(ev, "\"reason\"")) && strstr(q, "least loaded"),
			  "no vm-placed event with a reason for s0: %s", ev ? ev : "");
		cr_log_info("vm-placed s0: %s", ev);
		free(ev);
	}

	/* Anti-affinity: three members of group web on three hosts; a fourth
	 * fits nowhere. */
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "web%d", i);
		define_auto(name, ", \"anti_affinity\": [\"web\"]");
		count[i] = 0;
	}
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "web%d", i);
		count[one_owner(name)]++;
	}
	for (int i = 0; i < QVT_NHOSTS; i++)
		cr_assert_eq(count[i], 1, "anti-affinity group web: h%d has %d members", i, count[i]);
	err = (struct qv_error){};
	cr_assert_neq(qvt_define_guest(&hosts.d[0], "web3",
				       "{\"memory\": 128, \"placement\": {\"anti_affinity\": [\"web\"]}}",
				       &err), 0, "a fourth web member was placed");
	cr_assert_str_eq(err.reason, "no-space");
	cr_log_info("web3: %s", err.message);

	/* A reservation that fits nowhere: refused, naming each host. */
	err = (struct qv_error){};
	cr_assert_neq(qvt_define_guest(&hosts.d[1], "huge",
				       "{\"memory\": 128, \"resources\": {\"memory\": "
				       "{\"reservation\": 68719476736}}, \"placement\": {}}",
				       &err), 0, "a 64 GiB reservation was placed");
	cr_assert_str_eq(err.reason, "no-space");
	cr_assert(strstr(err.message, "h0") && strstr(err.message, "h1") &&
			  strstr(err.message, "h2"), "%s", err.message);
	cr_log_info("huge: %s", err.message);
	cr_assert_eq(qvt_cluster_owner(&hosts, 0, "huge", owner, sizeof(owner)), -ENOENT);

	/* A name another host owns cannot be defined here: conflict. */
	int other = (one_owner("s1") + 1) % QVT_NHOSTS;
	err = (struct qv_error){};
	cr_assert_neq(qvt_define_guest(&hosts.d[other], "s1", "{\"memory\": 128}", &err), 0);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert(strstr(err.message, "already defined on host"), "%s", err.message);
	one_owner("s1");

	/* Kill one etcd member: membership and a define still work. */
	qvt_etcd_kill(&hosts.etcd[2]);
	qvt_sleep_ms(4000); /* more than a TTL: every lease was renewed without it */
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 2), 3, "membership lost with one etcd member down");
	define_auto("after-etcd", NULL);
	one_owner("after-etcd");

	/* SIGKILL h1's daemon: it leaves cluster hosts after its lease TTL;
	 * its VMs keep their records (and keep running). */
	int victim = 1;
	cr_assert_eq(qvt_daemon_stop(&hosts.d[victim], SIGKILL), 0);
	uint64_t t0 = qv_now_ms();
	while (qv_now_ms() - t0 < 30000 && qvt_cluster_nhosts(&hosts, 0) != 2)
		qvt_sleep_ms(100);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 0), 2, "h1 still listed 30 s after SIGKILL");
	cr_log_info("h1 left cluster hosts %.1f s after SIGKILL (TTL %s s)",
		    (qv_now_ms() - t0) / 1000.0, QVT_CLUSTER_TTL);
	/* Its VMs cannot be started elsewhere by name: the owner is gone. */
	err = (struct qv_error){};
	char victim_vm[16] = "";
	for (int i = 0; i < 6 && !victim_vm[0]; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", i);
		if (qvt_cluster_owner(&hosts, 0, name, owner, sizeof(owner)) == 0 &&
		    streq(owner, hosts.name[victim]))
			snprintf(victim_vm, sizeof(victim_vm), "%s", name);
	}
	cr_assert(victim_vm[0], "no VM owned by h1 left in the inventory");
	json_object *r = qvt_call_name(&hosts.d[0], "vm.info", victim_vm, &err);
	cr_assert_null(r);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert_eq(qvt_define_guest(&hosts.d[0], victim_vm, "{\"memory\": 128}", &err), -EIO);

	/* Back: it rejoins and reconciles; still exactly one owner each. */
	cr_assert_eq(qvt_threehosts_start_daemon(&hosts, victim), 0);
	t0 = qv_now_ms();
	while (qv_now_ms() - t0 < 30000 && qvt_cluster_nhosts(&hosts, 0) != 3)
		qvt_sleep_ms(100);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 0), 3, "h1 did not rejoin");
	const char *all[] = { "s0", "s1", "s2", "s3", "s4", "s5", "web0", "web1", "web2",
			      "after-etcd" };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		one_owner(all[i]);
	/* Its VM kept running through the daemon's crash, and says so. */
	char st[32];
	/* polled: the restarted daemon reattaches its QEMU and syncs the state
	 * a moment after it answers (a fixed 2 s was one sync on an idle host) */
	t0 = qv_now_ms();
	while (qv_now_ms() - t0 < 30000 &&
	       !streq(qvt_vm_state(&hosts.d[0], victim_vm, st, sizeof(st)), "running"))
		qvt_sleep_ms(200);
	cr_assert_str_eq(st, "running", "%s through h0, 30 s after h1 rejoined", victim_vm);

	/* A clean stop (SIGTERM) revokes the lease: gone as soon as it exited,
	 * no TTL to wait for; back after a restart. */
	cr_assert_eq(qvt_daemon_stop(&hosts.d[2], SIGTERM), 0);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 0), 2, "h2 still listed after a clean stop");
	cr_assert_eq(qvt_threehosts_start_daemon(&hosts, 2), 0);
	t0 = qv_now_ms();
	while (qv_now_ms() - t0 < 30000 && qvt_cluster_nhosts(&hosts, 0) != 3)
		qvt_sleep_ms(100);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 0), 3, "h2 did not rejoin");

	wrong_host_certificate();

	/* etcd loses its quorum (two of three members down): cluster
	 * operations fail clearly, local ones go on, the VMs keep running. */
	qvt_etcd_kill(&hosts.etcd[1]);
	err = (struct qv_error){};
	t0 = qv_now_ms();
	cr_assert_neq(qvt_define_guest(&hosts.d[0], "no-quorum", "{\"memory\": 128}", &err), 0,
		      "defined without an etcd quorum");
	cr_assert_str_eq(err.reason, "unavailable", "%s", err.message);
	cr_assert(strstr(err.message, "cluster store unavailable"), "%s", err.message);
	cr_log_info("without quorum (%.1f s): %s", (qv_now_ms() - t0) / 1000.0, err.message);
	json_object *list = NULL;
	cr_assert_eq(qvt_callf(&hosts.d[h_s0], "vm.list", &list, &err, "{}"), 0);
	json_object_put(list);
	cr_assert_str_eq(qvt_vm_state(&hosts.d[h_s0], "s0", st, sizeof(st)), "running");
	cr_assert_eq(qvt_cli(&hosts.d[h_s0], "cluster hosts", out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "cluster store unavailable"), "%s", out);
	cr_log_info("cluster hosts without quorum: %s", out);
}

/* Without --cluster-endpoints: exactly as before, and the cluster parts
 * say why they are not there. */
static struct qvt_daemon solo;
static void solo_init(void)
{
	qvt_daemon_fixture_start(&solo);
}
static void solo_fini(void)
{
	if (solo.dir[0])
		qvt_daemon_cleanup(&solo);
}
TestSuite(cluster_off, .init = solo_init, .fini = solo_fini, .timeout = 60);

Test(cluster_off, placement_and_cluster_calls_are_refused)
{
	struct qv_error err = {};
	char out[1024];
	json_object *r = NULL;

	QVT_REQUIRE_DAEMON(&solo);
	cr_assert_neq(qvt_callf(&solo, "cluster.hosts", &r, &err, "{}"), 0);
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert(strstr(err.message, "--cluster-endpoints"), "%s", err.message);
	err = (struct qv_error){};
	cr_assert_neq(qvt_define_guest(&solo, "p", "{\"placement\": {\"host\": \"auto\"}}", &err), 0);
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert(strstr(err.message, "placement needs a cluster"), "%s", err.message);
	/* A plain define still works, and answers as before (no host). */
	err = (struct qv_error){};
	cr_assert_eq(qvt_define_guest(&solo, "plain", NULL, &err), 0, "%s", err.message);
	cr_assert_eq(qvt_cli(&solo, "cluster hosts", out, sizeof(out)), 1, "%s", out);
	cr_assert_eq(qvt_callf(&solo, "vm.info", &r, &err, "{\"name\": \"nope\"}"), -EREMOTEIO);
	cr_assert_str_eq(err.reason, "not-found");
}

/* Start-up reconciliation against a real etcd (one member, plain http on
 * 127.0.0.1): a local VM missing from the inventory is recorded, a record
 * of ours without a VM is removed, a record another host owns is left
 * alone and reported. No guest boots. */
static struct qvt_etcd rec_etcd;
static struct qvt_daemon rec_d;
static void rec_fini(void)
{
	if (rec_d.dir[0])
		qvt_daemon_cleanup(&rec_d);
	qvt_etcd_cleanup(&rec_etcd);
}
TestSuite(cluster_reconcile, .fini = rec_fini, .timeout = 120);

static bool inventory_has(const char *name, const char *owner)
{
	struct qv_error err = {};
	json_object *res = NULL, *arr, *v;
	bool found = false;

	if (qvt_callf(&rec_d, "cluster.vms", &res, &err, "{}") < 0)
		return false;
	json_object_object_get_ex(res, "vms", &arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(o, "name", &v) && streq(json_object_get_string(v), name) &&
		    json_object_object_get_ex(o, "owner", &v) && streq(json_object_get_string(v), owner))
			found = true;
	}
	json_object_put(res);
	return found;
}

Test(cluster_reconcile, at_start)
{
	struct qvt_etcd_opts eo = {};
	struct qv_error err = {};
	_cleanup_etcd_ qv_etcd *c = NULL;

	QVT_REQUIRE_GUEST();
	if (qvt_etcd_missing())
		cr_skip_test("%s", qvt_etcd_missing());
	if (access(qvt_daemon_binary(), X_OK) < 0)
		cr_skip_test("qvisord not built");
	cr_assert_eq(qvt_etcd_start(&rec_etcd, &eo), 0);
	cr_assert_eq(qvt_etcd_wait(&rec_etcd, NULL, 20000), 0);
	const char *args[] = { "--cluster-endpoints", rec_etcd.client_url, "--cluster-host", "solo",
			       "--cluster-address", "127.0.0.1:16515", "--cluster-ttl", "3", NULL };
	for (size_t i = 0; i < ARRAY_SIZE(args); i++)
		rec_d.extra_args[i] = args[i];
	cr_assert_eq(qvt_daemon_start(&rec_d), 0);
	cr_assert_eq(qvt_define_guest(&rec_d, "a", NULL, &err), 0, "%s", err.message);
	cr_assert_eq(qvt_define_guest(&rec_d, "b", NULL, &err), 0, "%s", err.message);
	cr_assert(inventory_has("a", "solo") && inventory_has("b", "solo"));
	cr_assert_eq(qvt_daemon_stop(&rec_d, SIGKILL), 0);

	/* While it is down, the inventory drifts. */
	struct qv_etcd_opts co = { .endpoints = rec_etcd.client_url };
	cr_assert_eq(qv_etcd_new(&co, &c, &err), 0);
	cr_assert_eq(qv_etcd_delete(c, "/qvisor/vms/a", &err), 0, "%s", err.message);
	cr_assert_eq(qv_etcd_put(c, "/qvisor/vms/ghost", "{\"name\":\"ghost\",\"owner\":\"solo\"}", 0,
				 NULL, &err), 0);
	cr_assert_eq(qv_etcd_put(c, "/qvisor/vms/b", "{\"name\":\"b\",\"owner\":\"other\"}", 0, NULL,
				 &err), 0);

	cr_assert_eq(qvt_daemon_start(&rec_d), 0);
	uint64_t t0 = qv_now_ms();
	while (qv_now_ms() - t0 < 20000 && (!inventory_has("a", "solo") || inventory_has("ghost", "solo")))
		qvt_sleep_ms(200);
	cr_assert(inventory_has("a", "solo"), "the missing record of a was not recreated");
	cr_assert(!inventory_has("ghost", "solo"), "the stale record ghost was not removed");
	cr_assert(inventory_has("b", "other"), "another host's record was overwritten");
	/* The conflict is reported, as an event. */
	char db[160], *ev = NULL;
	snprintf(db, sizeof(db), "%s/qvisor.db", rec_d.state_dir);
	char *argv[] = { "sqlite3", "-cmd", ".timeout 5000", db,
			 "SELECT data_json FROM events WHERE type='cluster-reconciled' "
					"ORDER BY id DESC LIMIT 1", NULL };
	cr_assert_eq(qvt_run(argv, &ev), 0);
	cr_assert(ev && strstr(ev, "\"created\":1") && strstr(ev, "\"removed\":1") &&
			  strstr(ev, "b (owner other)"), "cluster-reconciled: %s", ev ? ev : "");
	cr_log_info("cluster-reconciled: %s", ev);
	free(ev);
}
