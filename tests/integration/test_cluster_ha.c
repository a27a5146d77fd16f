/* SPDX-License-Identifier: MIT */
/* HA restart with self-fencing (docs/cluster.md "HA restart"): three hosts
 * on etcd (tests/helpers/threehosts.h, TTL 3 s, fence timeout 6 s), an ha VM and a plain VM on h1 with
 * the ha VM's disk in a directory every host sees. Cut h1's link: h1 kills
 * its ha VM within its fence timeout, the leader restarts it on another
 * host after the timeout + margin (the data h1's guest wrote is there), and
 * when the link heals there is exactly one QEMU per VM and the inventory
 * agrees with every host; the plain VM stays h1's and kept running. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "helpers/guest-ctl.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/threehosts.h"

#define FENCE_S "6"
#define BOOT_MS 120000
#define CTL_MS 60000

static struct qvt_threehosts hosts;
static char shared[64];
static bool up;

static void setup(void)
{
	if (!qvt_guest_dir())
		return;
	snprintf(shared, sizeof(shared), "/tmp/qvha-XXXXXX");
	if (!mkdtemp(shared))
		return;
	chmod(shared, 0755);
	const char *const more[] = { "--cluster-shared-dir", shared, "--cluster-fence-timeout",
				     FENCE_S, NULL };
	up = qvt_threehosts_fixture_up(&hosts, "cluster_ha", more);
}

static void teardown(void)
{
	if (up)
		qvt_threehosts_down(&hosts);
	up = false;
	if (shared[0] && !getenv("QVT_KEEP")) {
		char *rm[] = { "rm", "-rf", shared, NULL };
		qvt_run(rm, NULL);
	}
}

TestSuite(cluster_ha, .init = setup, .fini = teardown, .timeout = 300);

static int ip_ns(pid_t ns, const char *a, const char *b, const char *c, const char *d)
{
	char *argv[] = { "ip", "link", (char *)a, (char *)b, (char *)c, (char *)d, NULL };

	return qvt_run_netns(ns, argv, NULL);
}

/* QEMU processes running VM uuid, and in which host's namespace. */
static int qemu_copies(const char *uuid, int *ret_host)
{
	char nsl[QVT_NHOSTS][64];
	struct dirent *de;
	int n = 0;

	for (int i = 0; i < QVT_NHOSTS; i++) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/net", (int)hosts.ns_pid[i]);
		ssize_t k = readlink(p, nsl[i], sizeof(nsl[i]) - 1);
		nsl[i][k > 0 ? k : 0] = '\0';
	}
	DIR *dp = opendir("/proc");
	cr_assert_not_null(dp);
	while ((de = readdir(dp))) {
		char p[300], buf[8192], ns[64];
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		for (ssize_t i = 0; i < len; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[len] = '\0';
		if (!strstr(buf, "qemu-system") || !strstr(buf, uuid))
			continue;
		snprintf(p, sizeof(p), "/proc/%s/ns/net", de->d_name);
		ssize_t k = readlink(p, ns, sizeof(ns) - 1);
		ns[k > 0 ? k : 0] = '\0';
		n++;
		for (int i = 0; i < QVT_NHOSTS; i++)
			if (streq(ns, nsl[i]) && ret_host)
				*ret_host = i;
	}
	closedir(dp);
	return n;
}

/* Daemons whose vm.list has name (a mask of hosts). */
static unsigned defined_on(const char *name)
{
	unsigned mask = 0;

	for (int i = 0; i < QVT_NHOSTS; i++) {
		json_object *res = NULL, *arr, *v;
		struct qv_error err = {};
		cr_assert_eq(qvt_callf(&hosts.d[i], "vm.list", &res, &err, "{}"), 0, "h%d: %s", i,
			     err.message);
		json_object_object_get_ex(res, "vms", &arr);
		for (size_t k = 0; k < json_object_array_length(arr); k++)
			if (json_object_object_get_ex(json_object_array_get_idx(arr, k), "name", &v) &&
			    streq(json_object_get_string(v), name))
				mask |= 1u << i;
		json_object_put(res);
	}
	return mask;
}

static int host_index(const char *owner)
{
	return qvt_threehosts_index(&hosts, owner);
}

static const char *vm_uuid(int h, const char *name, char *buf, size_t size)
{
	struct qv_error err = {};
	_cleanup_json_ json_object *r = qvt_call_name(&hosts.d[h], "vm.info", name, &err);

	cr_assert_not_null(r, "vm.info %s on h%d: %s", name, h, err.message);
	snprintf(buf, size, "%s", qvt_json_str(r, "uuid"));
	return buf;
}

static qvt_ctl *ctl_open(int h, const char *name)
{
	struct qv_error err = {};
	_cleanup_json_ json_object *con = qvt_call_name(&hosts.d[h], "vm.console", name, &err);

	cr_assert_not_null(con, "vm.console %s on h%d: %s", name, h, err.message);
	qvt_ctl *c = qvt_ctl_open(qvt_json_str(con, "path"), BOOT_MS);
	cr_assert_not_null(c, "%s on h%d: the control channel did not answer", name, h);
	return c;
}

/* The events of type on host h for vm, as text ("" none). */
static void events(int h, const char *vm, const char *type, char *out, size_t size)
{
	char db[160], q[256], *res = NULL;

	snprintf(db, sizeof(db), "%s/qvisor.db", hosts.d[h].state_dir);
	snprintf(q, sizeof(q), "SELECT data_json FROM events WHERE type='%s' AND vm='%s'", type, vm);
	char *argv[] = { "sqlite3", "-cmd", ".timeout 5000", db, q, NULL };
	cr_assert_eq(qvt_run(argv, &res), 0);
	snprintf(out, size, "%s", res ? res : "");
	free(res);
}

static void start(int h, const char *name)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&hosts.d[h], "vm.start", name, &err);

	cr_assert_not_null(r, "start %s on h%d: %s", name, h, err.message);
	json_object_put(r);
}

Test(cluster_ha, link_cut_fence_and_restart)
{
	const int victim = 1;
	struct qv_error err = {};
	char disk[128], outside[128], extra[512], owner[16], uuid_ha[40], uuid_plain[40];
	char md5_w[128], md5_r[128], ev[4096];

	QVT_REQUIRE_GUEST();
	if (!up)
		cr_skip_test("three hosts (root, netns, etcd, qvisord) unavailable");

	/* The ha VM's disk in the shared directory; one outside is refused. */
	snprintf(disk, sizeof(disk), "%s/ha1.raw", shared);
	snprintf(outside, sizeof(outside), "%s/outside.raw", hosts.d[victim].dir);
	for (int i = 0; i < 2; i++) {
		int fd = open(i ? outside : disk, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		cr_assert_geq(fd, 0);
		cr_assert_eq(ftruncate(fd, 64 << 20), 0);
		close(fd);
	}
	snprintf(extra, sizeof(extra), "{\"ha\": true, \"memory\": 128, \"disks\": [{\"path\": "
		 "\"%s\", \"format\": \"raw\"}]}", outside);
	cr_assert_neq(qvt_define_guest(&hosts.d[victim], "bad", extra, &err), 0,
		      "an ha VM with a disk outside the shared storage was defined");
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert(strstr(err.message, "not on shared storage"), "%s", err.message);
	cr_log_info("refused: %s", err.message);

	/* On h1: ha1 (ha, shared disk, control channel) and plain1. */
	snprintf(extra, sizeof(extra), "{\"ha\": true, \"memory\": 128, \"cmdline\": \"console=ttyS0 "
		 "panic=-1 qv.ctl=1\", \"disks\": [{\"path\": \"%s\", \"format\": \"raw\"}]}", disk);
	err = (struct qv_error){};
	cr_assert_eq(qvt_define_guest(&hosts.d[victim], "ha1", extra, &err), 0, "%s", err.message);
	cr_assert_eq(qvt_define_guest(&hosts.d[victim], "plain1", "{\"memory\": 128}", &err), 0,
		     "%s", err.message);
	start(victim, "ha1");
	start(victim, "plain1");
	qvt_ctl *c = ctl_open(victim, "ha1");
	cr_assert_eq(qvt_ctl_cmd(c, "blkwrite /dev/vda 8 4 hashared", CTL_MS, md5_w, sizeof(md5_w)),
		     0, "blkwrite: %s", md5_w);
	cr_assert_eq(qvt_ctl_cmd(c, "sync", CTL_MS, ev, sizeof(ev)), 0);
	qvt_ctl_close(c);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&hosts.d[victim], "plain1"),
					       QVT_GUEST_READY, BOOT_MS), 0, "plain1 did not boot");
	vm_uuid(victim, "ha1", uuid_ha, sizeof(uuid_ha));
	vm_uuid(victim, "plain1", uuid_plain, sizeof(uuid_plain));
	int where = -1;
	cr_assert_eq(qemu_copies(uuid_ha, &where), 1);
	cr_assert_eq(where, victim);
	cr_assert_eq(qvt_cluster_owner(&hosts, 0, "ha1", owner, sizeof(owner)), 0);
	cr_assert_str_eq(owner, hosts.name[victim]);

	/* The other two daemons SIGKILL themselves inside cluster.adopt, after
	 * the define and before the start (crash point adopt-defined): the
	 * restarted adopter must still start the VM. */
	setenv("QVISORD_TEST_CRASH_AT", "adopt-defined", 1);
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (i != victim) {
			cr_assert_eq(qvt_daemon_stop(&hosts.d[i], SIGTERM), 0);
			cr_assert_eq(qvt_threehosts_start_daemon(&hosts, i), 0);
		}
	unsetenv("QVISORD_TEST_CRASH_AT");
	for (int i = 0; i < 300 && qvt_cluster_nhosts(&hosts, victim) != QVT_NHOSTS; i++)
		qvt_sleep_ms(100);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, victim), QVT_NHOSTS);

	/* Cut h1's link (its end on the bridge goes down). */
	char br_end[16];
	snprintf(br_end, sizeof(br_end), "h%db", victim);
	cr_assert_eq(ip_ns(hosts.br_pid, "set", br_end, "down", NULL), 0);
	uint64_t t_cut = qv_now_ms();

	/* h1 fences: its ha VM's QEMU is gone; the plain VM's is not. */
	while (qv_now_ms() - t_cut < 60000 && qemu_copies(uuid_ha, NULL) > 0)
		qvt_sleep_ms(100);
	cr_assert_eq(qemu_copies(uuid_ha, NULL), 0, "h1 did not fence ha1 within 60 s");
	double t_fence = (qv_now_ms() - t_cut) / 1000.0;
	cr_log_info("ha1 fenced on h1 %.1f s after the cut (fence timeout %s s)", t_fence, FENCE_S);
	cr_assert_eq(qemu_copies(uuid_plain, &where), 1, "plain1 was stopped by the fence");
	cr_assert_eq(where, victim);
	char st[32];
	for (int i = 0; i < 100 && !streq(qvt_vm_state(&hosts.d[victim], "ha1", st, sizeof(st)),
					   "stopped"); i++)
		qvt_sleep_ms(100); /* the exit is reaped just after the process is gone */
	cr_assert_str_eq(st, "stopped");
	events(victim, "ha1", "vm-fenced", ev, sizeof(ev));
	cr_assert(strstr(ev, "self-fence"), "no vm-fenced event on h1: %s", ev);

	/* A fenced ha VM does not start on h1 (the leader may be starting it
	 * elsewhere: two copies), not even after h1's daemon was SIGKILLed
	 * and restarted, still cut off (the mark is on disk). */
	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			cr_assert_eq(qvt_daemon_stop(&hosts.d[victim], SIGKILL), 0);
			cr_assert_eq(qvt_threehosts_start_daemon(&hosts, victim), 0);
		}
		err = (struct qv_error){};
		json_object *sr = qvt_call_name(&hosts.d[victim], "vm.start", "ha1", &err);
		cr_assert_null(sr, "round %d: a fenced ha VM was started on the fenced host", round);
		cr_assert_str_eq(err.reason, "conflict", "round %d: %s", round, err.message);
		cr_assert(strstr(err.message, "self-fence"), "round %d: %s", round, err.message);
		cr_assert_eq(qemu_copies(uuid_ha, NULL), 0);
		cr_log_info("round %d: vm.start refused: %s", round, err.message);
	}

	/* The leader restarts it on another host after the timeout + margin;
	 * that host's daemon dies in cluster.adopt and is restarted. */
	int to = -1, crashed = -1;
	while (qv_now_ms() - t_cut < 150000) {
		for (int i = 0; i < QVT_NHOSTS; i++) {
			int wst;
			if (i == victim || hosts.d[i].pid <= 0 ||
			    waitpid(hosts.d[i].pid, &wst, WNOHANG) != hosts.d[i].pid)
				continue;
			hosts.d[i].pid = 0;
			crashed = i;
			cr_log_info("h%d's daemon died in cluster.adopt %.1f s after the cut; "
				    "restarting it", i, (qv_now_ms() - t_cut) / 1000.0);
			cr_assert_eq(qvt_threehosts_start_daemon(&hosts, i), 0);
		}
		if (qvt_cluster_owner(&hosts, crashed >= 0 ? crashed : 0, "ha1", owner,
				      sizeof(owner)) == 0 &&
		    (to = host_index(owner)) >= 0 && to != victim &&
		    qemu_copies(uuid_ha, &where) == 1)
			break;
		to = -1;
		qvt_sleep_ms(200);
	}
	cr_assert_geq(crashed, 0, "no daemon reached the crash point in cluster.adopt");
	cr_assert_geq(to, 0, "ha1 was not restarted elsewhere within 150 s of the cut");
	cr_assert_eq(to, crashed, "ha1 runs on h%d, the adopter that crashed was h%d", to, crashed);
	cr_log_info("ha1 running on %s %.1f s after the cut", owner, (qv_now_ms() - t_cut) / 1000.0);
	cr_assert_eq(where, to, "ha1's QEMU runs in h%d's namespace, the inventory says h%d", where,
		     to);
	c = ctl_open(to, "ha1");
	cr_assert_eq(qvt_ctl_cmd(c, "blkread /dev/vda 8 4", CTL_MS, md5_r, sizeof(md5_r)), 0,
		     "blkread: %s", md5_r);
	qvt_ctl_close(c);
	cr_assert_str_eq(md5_r, md5_w, "the restarted guest does not see the shared disk's data");
	events(to, "ha1", "vm-ha-adopted", ev, sizeof(ev));
	cr_assert(strstr(ev, hosts.name[victim]), "no vm-ha-adopted event on %s: %s", owner, ev);
	/* The plain VM stays h1's (and runs there, cut off). */
	cr_assert_eq(qvt_cluster_owner(&hosts, 0, "plain1", owner, sizeof(owner)), 0);
	cr_assert_str_eq(owner, hosts.name[victim]);

	/* Heal: h1 rejoins and drops its copy of ha1. */
	cr_assert_eq(ip_ns(hosts.br_pid, "set", br_end, "up", NULL), 0);
	uint64_t t_heal = qv_now_ms();
	while (qv_now_ms() - t_heal < 60000 &&
	       (qvt_cluster_nhosts(&hosts, 0) != QVT_NHOSTS || defined_on("ha1") != 1u << to))
		qvt_sleep_ms(200);
	cr_assert_eq(qvt_cluster_nhosts(&hosts, 0), QVT_NHOSTS, "h1 did not rejoin");
	cr_assert_eq(defined_on("ha1"), 1u << to, "ha1 defined on hosts 0x%x after the heal",
		     defined_on("ha1"));
	cr_log_info("h1 back and reconciled %.1f s after the heal", (qv_now_ms() - t_heal) / 1000.0);
	events(victim, "ha1", "vm-ha-removed", ev, sizeof(ev));
	cr_assert(strstr(ev, hosts.name[to]), "no vm-ha-removed event on h1: %s", ev);
	cr_assert(access(disk, F_OK) == 0, "the shared disk was removed");

	/* Exactly one running copy of each VM, where the inventory says, and
	 * every host's inventory view agrees (polled: a state write may be
	 * one refresh behind). */
	int n = -1;
	for (int i = 0; i < 150; i++) {
		n = qemu_copies(uuid_ha, &where);
		if (n == 1 && where == to && defined_on("ha1") == 1u << to)
			break;
		qvt_sleep_ms(200);
	}
	cr_assert_eq(n, 1, "%d copies of ha1 after the heal (h%d has one)", n, where);
	cr_assert_eq(where, to, "ha1 runs on h%d, not on h%d where it was restarted", where, to);
	cr_assert_eq(qemu_copies(uuid_plain, &where), 1);
	cr_assert_eq(where, victim);
	cr_assert_eq(defined_on("plain1"), 1u << victim);
	for (int i = 0; i < QVT_NHOSTS; i++) {
		cr_assert_eq(qvt_cluster_owner(&hosts, i, "ha1", owner, sizeof(owner)), 0);
		cr_assert_eq(host_index(owner), to, "h%d's view: ha1 owned by %s", i, owner);
		cr_assert_eq(qvt_cluster_owner(&hosts, i, "plain1", owner, sizeof(owner)), 0);
		cr_assert_eq(host_index(owner), victim, "h%d's view: plain1 owned by %s", i, owner);
	}
	cr_assert_str_eq(qvt_vm_state(&hosts.d[to], "ha1", st, sizeof(st)), "running");
	cr_assert_str_eq(qvt_vm_state(&hosts.d[victim], "plain1", st, sizeof(st)), "running");

	/* vm.move of a stopped ha VM is refused: the copy would leave the
	 * shared storage the leader restarts it from. */
	json_object *r = NULL;
	cr_assert_eq(qvt_callf(&hosts.d[to], "vm.stop", &r, &err, "{\"name\":\"ha1\",\"force\":true}"),
		     0, "%s", err.message);
	json_object_put(r);
	for (int i = 0; i < 600 && !streq(qvt_vm_state(&hosts.d[to], "ha1", st, sizeof(st)),
					   "stopped"); i++)
		qvt_sleep_ms(100);
	cr_assert_str_eq(st, "stopped");
	err = (struct qv_error){};
	cr_assert_neq(qvt_callf(&hosts.d[to], "vm.move", NULL, &err, "{\"name\":\"ha1\",\"to\":\"%s\"}",
				hosts.name[victim]), 0, "an ha VM was moved by copying its shared disk");
	cr_assert_str_eq(err.reason, "unsupported", "%s", err.message);
	cr_assert(strstr(err.message, "ha VM"), "%s", err.message);
	cr_assert_eq(defined_on("ha1"), 1u << to);
	cr_assert(access(disk, F_OK) == 0);
}
