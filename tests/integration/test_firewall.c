/* SPDX-License-Identifier: MIT */
/* The nftables firewall (docs/firewall.md) with real guests (TCG) on one
 * bridge, each test in its own netns with its own qvisord, so the table
 * `bridge qvisor` is private to the test. The guests are driven through
 * their control channel (qv.ctl=1); nft and iproute2 check the kernel. */
#include "helpers/guest-ctl.h"
#include "net-util.h"

#define CTL_MS 30000

static struct qvt_daemon qd;
static qvt_ctl *ctl_a, *ctl_b;

static void fini(void)
{
	ctl_a = qvt_ctl_close(ctl_a);
	ctl_b = qvt_ctl_close(ctl_b);
	qvt_daemon_cleanup(&qd);
}

static bool table_exists(void)
{
	char *argv[] = { "nft", "list", "table", "bridge", "qvisor", NULL };
	return qvt_run(argv, NULL) == 0;
}

static void lan(void)
{
	net_setup(&qd);
	if (qvt_run((char *[]){ "nft", "--version", NULL }, NULL) != 0)
		cr_skip_test("nft (package nftables) is not installed");
	json_object_put(net_call_ok(&qd, "net.define",
				    "{\"spec\": {\"name\": \"lan\", \"bridge\": \"qvfw0\", "
				    "\"address\": \"10.31.0.1/24\"}}"));
}

/* Start vm and open its control channel. */
static qvt_ctl *start_ctl(const char *vm)
{
	char p[96];
	json_object *con, *path;

	snprintf(p, sizeof(p), "{\"name\": \"%s\"}", vm);
	json_object_put(net_call_ok(&qd, "vm.start", p));
	con = net_call_ok(&qd, "vm.console", p);
	cr_assert(json_object_object_get_ex(con, "path", &path));
	qvt_ctl *c = qvt_ctl_open(json_object_get_string(path), NET_DEADLINE_MS * 2);
	cr_assert_not_null(c, "VM %s: control channel did not answer", vm);
	json_object_put(con);
	return c;
}

static int ctl(qvt_ctl *c, const char *cmd)
{
	char v[256];
	return qvt_ctl_cmd(c, cmd, CTL_MS, v, sizeof(v));
}

static void ctl_ok(qvt_ctl *c, const char *cmd)
{
	char v[256];
	int r = qvt_ctl_cmd(c, cmd, CTL_MS, v, sizeof(v));
	cr_assert_eq(r, 0, "guest command \"%s\": %d %s", cmd, r, v);
}

static void got(qvt_ctl *c, const char *what, char *buf, size_t len)
{
	cr_assert_eq(qvt_ctl_cmd(c, what, CTL_MS, buf, len), 0, "%s", what);
}

/* An ncsend that must get through to a listener nclisten just started: the
 * guest answers nclisten once it has put `nc -l` in the background, which
 * may not be listening yet (a refused connection fails at once). Retried
 * while the guest says "connect", for at most 10 s. */
static void ncsend_ok(qvt_ctl *c, const char *cmd)
{
	char v[256] = "";
	int r = -1;

	for (int i = 0; i < 20; i++) {
		r = qvt_ctl_cmd(c, cmd, CTL_MS, v, sizeof(v));
		if (r == 0 || r != -EIO || !strstr(v, "connect"))
			break;
		usleep(500 * 1000);
	}
	cr_assert_eq(r, 0, "guest command \"%s\": %d %s", cmd, r, v);
}

/* got until the listener's file holds word: the sender's nc returns once its
 * data is sent, the receiver's nc appends it a moment later. */
static void got_word(qvt_ctl *c, const char *what, const char *word, char *buf, size_t len)
{
	for (int i = 0; i < 100; i++) {
		got(c, what, buf, len);
		if (strstr(buf, word))
			return;
		usleep(100 * 1000);
	}
	cr_assert_fail("%s: no \"%s\" within 10 s, received: %s", what, word, buf);
}

/* fw.show of vm, NIC 0. */
static json_object *fw_nic0(const char *vm)
{
	char p[96];
	json_object *res, *nics;

	snprintf(p, sizeof(p), "{\"name\": \"%s\"}", vm);
	res = net_call_ok(&qd, "fw.show", p);
	cr_assert(json_object_object_get_ex(res, "nics", &nics));
	json_object *n = json_object_get(json_object_array_get_idx(nics, 0));
	json_object_put(res);
	return n;
}

static int64_t spoof_drops(const char *vm, const char *tag)
{
	json_object *n = fw_nic0(vm), *d, *t, *v;
	int64_t x = -1;

	if (json_object_object_get_ex(n, "anti_spoof_drops", &d) &&
	    json_object_object_get_ex(d, tag, &t) && json_object_object_get_ex(t, "packets", &v))
		x = json_object_get_int64(v);
	json_object_put(n);
	cr_assert_geq(x, 0, "no anti-spoofing counter %s for %s", tag, vm);
	return x;
}

static void neigh_mac(const char *ip, char ret[32])
{
	char *argv[] = { "ip", "-j", "neigh", "show", (char *)ip, "dev", "qvfw0", NULL };
	_cleanup_free_ char *out = NULL;

	ret[0] = 0;
	cr_assert_eq(qvt_run(argv, &out), 0);
	json_object *j = json_tokener_parse(out);
	if (j && json_object_array_length(j)) {
		const char *m = jstr_at(json_object_array_get_idx(j, 0), "lladdr");
		snprintf(ret, 32, "%s", m ? m : "");
	}
	json_object_put(j);
}

#define MAC_A "52:54:00:31:00:02"
#define MAC_B "52:54:00:31:00:03"

Test(firewall, anti_spoofing_restart_and_teardown, .fini = fini, .timeout = 420)
{
	char mac[32];

	QVT_REQUIRE_GUEST();
	lan();
	net_define_vm(&qd, "a", "qv.ip=eth0:10.31.0.2/24 qv.ctl=1",
		      "[{\"network\": \"lan\", \"mac\": \"" MAC_A "\", \"firewall\": "
		      "{\"addresses\": [\"10.31.0.2\"]}}]");
	net_define_vm(&qd, "b", "qv.ip=eth0:10.31.0.3/24 qv.ctl=1",
		      "[{\"network\": \"lan\", \"mac\": \"" MAC_B "\", \"firewall\": "
		      "{\"addresses\": [\"10.31.0.3\"]}}]");
	ctl_a = start_ctl("a");
	ctl_b = start_ctl("b");
	cr_assert(table_exists(), "no table bridge qvisor with two VMs running");

	/* Honest guests reach each other (ICMP and UDP) and the host. */
	ctl_ok(ctl_a, "pingto 10.31.0.3");
	ctl_ok(ctl_b, "pingto 10.31.0.2");
	ctl_ok(ctl_a, "udpprobe 10.31.0.3");
	cr_assert_eq(qvt_run((char *[]){ "busybox", "ping", "-c", "1", "-W", "5", "10.31.0.3", NULL }, NULL),
		     0, "host cannot ping b");
	neigh_mac("10.31.0.3", mac);
	cr_assert_str_eq(mac, MAC_B);

	/* ARP spoofing of b's address: the host's neighbour entry stays b's. */
	int64_t arp0 = spoof_drops("a", "arp-ip");
	ctl_ok(ctl_a, "arpspoof eth0 10.31.0.3");
	neigh_mac("10.31.0.3", mac);
	cr_assert_str_eq(mac, MAC_B, "ARP spoofing moved 10.31.0.3 to %s", mac);
	cr_assert_gt(spoof_drops("a", "arp-ip"), arp0, "arp-ip drop counter did not move");

	/* a takes another IP: nothing gets through, the drop counters move. */
	int64_t ip0 = spoof_drops("a", "ip") + spoof_drops("a", "arp-ip");
	ctl_ok(ctl_a, "ipset eth0 10.31.0.9/24");
	cr_assert_neq(ctl(ctl_a, "pingto 10.31.0.3"), 0, "ping from a spoofed IP got through");
	cr_assert_neq(ctl(ctl_a, "udpprobe 10.31.0.3"), 0, "UDP from a spoofed IP answered");
	cr_assert_gt(spoof_drops("a", "ip") + spoof_drops("a", "arp-ip"), ip0);
	ctl_ok(ctl_b, "pingto 10.31.0.1"); /* the honest one still can */

	/* Back to its own IP, then a new MAC: dropped again at the MAC check. */
	ctl_ok(ctl_a, "ipset eth0 10.31.0.2/24");
	ctl_ok(ctl_a, "pingto 10.31.0.3");
	int64_t mac0 = spoof_drops("a", "mac");
	ctl_ok(ctl_a, "macset eth0 52:54:00:31:00:99");
	cr_assert_neq(ctl(ctl_a, "pingto 10.31.0.3"), 0, "ping from a spoofed MAC got through");
	cr_assert_gt(spoof_drops("a", "mac"), mac0, "mac drop counter did not move");
	ctl_ok(ctl_b, "pingto 10.31.0.1");
	ctl_ok(ctl_a, "macset eth0 " MAC_A);

	/* Daemon SIGKILL + restart: the ruleset is the same object for object
	 * (handles included); counters were not reset. */
	_cleanup_free_ char *before = NULL, *after = NULL;
	cr_assert_eq(qvt_run((char *[]){ "nft", "-s", "-j", "list", "table", "bridge", "qvisor",
					 NULL }, &before), 0);
	int64_t macs = spoof_drops("a", "mac");
	cr_assert_eq(qvt_daemon_stop(&qd, SIGKILL), 0);
	cr_assert_eq(qvt_daemon_start(&qd), 0, "qvisord did not restart");
	cr_assert_eq(qvt_run((char *[]){ "nft", "-s", "-j", "list", "table", "bridge", "qvisor",
					 NULL }, &after), 0);
	cr_assert_str_eq(after, before, "ruleset changed across a daemon restart");
	cr_assert_geq(spoof_drops("a", "mac"), macs, "counters were reset by the restart");

	/* Stopping a VM removes its chains; the last one takes the table. */
	json_object *na = fw_nic0("a");
	char tap_a[32], chain[64];
	snprintf(tap_a, sizeof(tap_a), "%s", jstr_at(na, "tap"));
	json_object_put(na);
	snprintf(chain, sizeof(chain), "n_%s_out", tap_a);
	net_stop_vm(&qd, "a");
	_cleanup_free_ char *listing = NULL;
	cr_assert_eq(qvt_run((char *[]){ "nft", "list", "table", "bridge", "qvisor", NULL },
			     &listing), 0);
	cr_assert_null(strstr(listing, tap_a), "VM a's rules left after vm.stop: %s", listing);
	net_stop_vm(&qd, "b");
	cr_assert_not(table_exists(), "table left after the last VM stopped");
	json_object_put(net_call_ok(&qd, "vm.undefine", "{\"name\": \"a\"}"));
	json_object_put(net_call_ok(&qd, "vm.undefine", "{\"name\": \"b\"}"));
	json_object_put(net_call_ok(&qd, "net.undefine", "{\"name\": \"lan\"}"));
	_cleanup_free_ char *rs = NULL;
	cr_assert_eq(qvt_run((char *[]){ "nft", "list", "ruleset", NULL }, &rs), 0);
	cr_assert_eq(strspn(rs, " \n"), strlen(rs), "nft ruleset not empty: %s", rs);
}

Test(firewall, security_group_changed_live, .fini = fini, .timeout = 420)
{
	char v[256], out[8192];

	QVT_REQUIRE_GUEST();
	lan();
	/* a spec naming an undefined group is refused */
	net_define_vm_fails(&qd, "x", "[{\"network\": \"lan\", \"firewall\": {\"groups\": "
				      "[\"nope\"]}}]", "not-found", "firewall group nope");
	json_object_put(net_call_ok(&qd, "fw.group.define",
				    "{\"group\": {\"name\": \"web\", \"rules\": [{\"direction\": "
				    "\"in\", \"protocol\": \"tcp\", \"ports\": [8080], "
				    "\"action\": \"accept\"}]}}"));
	net_call_fails(&qd, "fw.group.define", "{\"group\": {\"name\": \"bad\", \"rules\": "
		       "[{\"direction\": \"in\", \"protocol\": \"tcp\", \"ports\": [\"9-1\"], "
		       "\"action\": \"accept\"}]}}", "invalid-argument", "LO <= HI");
	net_define_vm(&qd, "srv", "qv.ip=eth0:10.31.0.3/24 qv.ctl=1",
		      "[{\"network\": \"lan\", \"firewall\": {\"addresses\": [\"10.31.0.3\"], "
		      "\"groups\": [\"web\"], \"policy_in\": \"drop\"}}]");
	net_define_vm(&qd, "cli", "qv.ip=eth0:10.31.0.2/24 qv.ctl=1",
		      "[{\"network\": \"lan\", \"firewall\": {\"addresses\": [\"10.31.0.2\"]}}]");
	net_call_fails(&qd, "fw.group.undefine", "{\"name\": \"web\"}", "conflict", "srv");
	/* an incoming migration whose spec names a group this host lacks is
	 * refused before anything is created */
	_cleanup_free_ char *kernel = qvt_guest_file("vmlinuz");
	char mp[1024];
	snprintf(mp, sizeof(mp), "{\"spec\": {\"name\": \"mig\", \"kernel\": \"%s\", \"nics\": "
		 "[{\"network\": \"lan\", \"firewall\": {\"groups\": [\"nope\"]}}]}, "
		 "\"tls\": false}", kernel);
	net_call_fails(&qd, "migrate.prepare", mp, "not-found", "firewall group nope is not defined");
	net_call_fails(&qd, "vm.info", "{\"name\": \"mig\"}", "not-found", "mig");
	ctl_b = start_ctl("srv");
	ctl_a = start_ctl("cli");
	ctl_ok(ctl_b, "nclisten 8080");
	ctl_ok(ctl_b, "nclisten 9090");

	/* web allows 8080 only; srv's default in is drop */
	ncsend_ok(ctl_a, "ncsend 10.31.0.3 8080 first");
	cr_assert_neq(ctl(ctl_a, "ncsend 10.31.0.3 9090 blocked"), 0, "9090 got through");
	cr_assert_neq(ctl(ctl_a, "pingto 10.31.0.3"), 0, "ping got through a drop policy");
	got_word(ctl_b, "got tcp 8080", "first", v, sizeof(v));
	got(ctl_b, "got tcp 9090", v, sizeof(v));
	cr_assert_null(strstr(v, "blocked"));

	/* qvisor fw show: the group rule counted the connection */
	cr_assert_eq(qvt_cli(&qd, "--json fw show srv", out, sizeof(out)), 0, "%s", out);
	json_object *j = json_tokener_parse(out), *nics, *groups, *rules, *pk;
	cr_assert_not_null(j, "%s", out);
	cr_assert(json_object_object_get_ex(j, "nics", &nics));
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(nics, 0), "groups", &groups));
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(groups, 0), "rules", &rules));
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(rules, 0), "packets", &pk));
	cr_assert_gt(json_object_get_int64(pk), 0, "group rule counter: %s", out);
	json_object_put(j);
	cr_assert_eq(qvt_cli(&qd, "fw show srv", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "web") && strstr(out, "8080"), "%s", out);

	/* Change the group live, through the CLI: 9090 only. No VM restarts. */
	int pid = qvt_vm_pid(&qd, "srv");
	char path[256];
	snprintf(path, sizeof(path), "%s/web.json", qd.dir);
	FILE *f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs("{\"name\": \"web\", \"rules\": [{\"direction\": \"in\", \"protocol\": \"tcp\", "
	      "\"ports\": [9090], \"action\": \"accept\"}]}", f);
	fclose(f);
	char args[400];
	snprintf(args, sizeof(args), "fw group define %s", path);
	cr_assert_eq(qvt_cli(&qd, args, out, sizeof(out)), 0, "%s", out);
	ctl_ok(ctl_a, "ncsend 10.31.0.3 9090 second");
	cr_assert_neq(ctl(ctl_a, "ncsend 10.31.0.3 8080 late"), 0, "8080 still open");
	got_word(ctl_b, "got tcp 9090", "second", v, sizeof(v));
	cr_assert_eq(qvt_vm_pid(&qd, "srv"), pid, "the VM was restarted");
	cr_assert_eq(qvt_cli(&qd, "fw group list", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "web") && strstr(out, "srv"), "%s", out);

	/* fw.vm.set: a NIC's own firewall changed live; a bad one changes nothing */
	net_call_fails(&qd, "fw.vm.set", "{\"name\": \"srv\", \"firewall\": {\"groups\": "
		       "[\"nope\"]}}", "not-found", "firewall group nope");
	net_call_fails(&qd, "fw.vm.set", "{\"name\": \"srv\", \"nic\": 3, \"firewall\": null}",
		       "invalid-argument", "params.nic");
	cr_assert_neq(ctl(ctl_a, "pingto 10.31.0.3"), 0, "ping got through before fw.vm.set");
	json_object_put(net_call_ok(&qd, "fw.vm.set", "{\"name\": \"srv\", \"firewall\": "
				    "{\"addresses\": [\"10.31.0.3\"], \"rules\": [{\"direction\": "
				    "\"in\", \"protocol\": \"icmp\", \"action\": \"accept\"}], "
				    "\"policy_in\": \"drop\"}}"));
	ctl_ok(ctl_a, "pingto 10.31.0.3");
	cr_assert_neq(ctl(ctl_a, "ncsend 10.31.0.3 9090 nogroup"), 0, "9090 open without the group");
	cr_assert_eq(qvt_vm_pid(&qd, "srv"), pid, "the VM was restarted");
	/* and it is in the stored spec */
	json_object *info = net_call_ok(&qd, "vm.info", "{\"name\": \"srv\"}");
	cr_assert(strstr(json_object_to_json_string(info), "\"icmp\""), "spec not updated");
	json_object_put(info);
}

/* On a DHCP network the NIC may use the address dnsmasq leased to it (and
 * nothing else): the daemon learns the lease from the leases file. */
Test(firewall, dhcp_lease_is_learned, .fini = fini, .timeout = 300)
{
	char line[256], ip[64] = "", other[64];

	QVT_REQUIRE_GUEST();
	net_setup(&qd);
	if (qvt_run((char *[]){ "nft", "--version", NULL }, NULL) != 0)
		cr_skip_test("nft (package nftables) is not installed");
	json_object_put(net_call_ok(&qd, "net.define",
				    "{\"spec\": {\"name\": \"dh\", \"bridge\": \"qvfw1\", "
				    "\"address\": \"10.32.0.1/24\", \"dhcp\": {\"start\": "
				    "\"10.32.0.100\", \"end\": \"10.32.0.150\"}}}"));
	net_define_vm(&qd, "d", "qv.dhcp=eth0 qv.ctl=1", "[{\"network\": \"dh\"}]");
	ctl_a = start_ctl("d");
	const char *log = qvt_serial_log(&qd, "d");
	cr_assert_eq(qvt_wait_for_line_in_file(log, "QVISOR-DHCP eth0 ", NET_DEADLINE_MS), 0,
		     "no DHCP lease through the firewall");
	cr_assert_eq(net_grep(log, "QVISOR-DHCP eth0 ", line, sizeof(line)), 0);
	sscanf(line, "QVISOR-DHCP eth0 %63s", ip);
	char *slash = strchr(ip, '/');
	if (slash)
		*slash = 0;
	/* the daemon polls the leases file every 2 s */
	bool learned = false;
	for (int i = 0; i < 50 && !learned; i++) {
		json_object *n = fw_nic0("d");
		const char *l = jstr_at(n, "learned");
		learned = l && streq(l, ip);
		json_object_put(n);
		if (!learned)
			qvt_sleep_ms(200);
	}
	cr_assert(learned, "lease %s not learned by the firewall", ip);
	ctl_ok(ctl_a, "pingto 10.32.0.1");

	/* another address of the same subnet is not the lease: dropped */
	snprintf(other, sizeof(other), "10.32.0.%d/24", strcmp(ip, "10.32.0.149") ? 149 : 148);
	int64_t d0 = spoof_drops("d", "ip") + spoof_drops("d", "arp-ip");
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "ipset eth0 %s", other);
	ctl_ok(ctl_a, cmd);
	cr_assert_neq(ctl(ctl_a, "pingto 10.32.0.1"), 0, "a non-leased address got through");
	cr_assert_gt(spoof_drops("d", "ip") + spoof_drops("d", "arp-ip"), d0);
}
