/* SPDX-License-Identifier: MIT */
/* Real guests (TCG) on qvisor networks, each test in its own netns with its
 * own qvisord: two guests ping each other over a network's bridge; a guest
 * gets a DHCP lease from the network's dnsmasq; a NIC is hot-plugged into a
 * running guest and removed again. iproute2 checks what qvisor claims. */
#include "net-util.h"

static struct qvt_daemon qd;

static void fini(void)
{
	qvt_daemon_cleanup(&qd);
}

static void start_vm(const char *name)
{
	char p[96];

	snprintf(p, sizeof(p), "{\"name\": \"%s\"}", name);
	json_object_put(net_call_ok(&qd, "vm.start", p));
}

static void wait_serial(const char *vm, const char *needle)
{
	const char *log = qvt_serial_log(&qd, vm);
	int r = qvt_wait_for_line_in_file(log, needle, NET_DEADLINE_MS);

	cr_assert_eq(r, 0, "VM %s: no \"%s\" on the serial console within %d ms", vm, needle,
		     NET_DEADLINE_MS);
}

/* vm.nic-list entry i of vm. */
static json_object *nic_of(const char *vm, size_t i)
{
	char p[96];
	json_object *res, *arr = NULL;

	snprintf(p, sizeof(p), "{\"name\": \"%s\"}", vm);
	res = net_call_ok(&qd, "vm.nic-list", p);
	cr_assert(json_object_object_get_ex(res, "nics", &arr));
	cr_assert_gt(json_object_array_length(arr), i);
	json_object *n = json_object_get(json_object_array_get_idx(arr, i));
	json_object_put(res);
	return n;
}

static int64_t jint_at(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

Test(net_guests, two_guests_ping_and_links_match, .fini = fini, .timeout = 240)
{
	QVT_REQUIRE_GUEST();
	net_setup(&qd);
	json_object_put(net_call_ok(&qd, "net.define",
				    "{\"spec\": {\"name\": \"lan\", \"bridge\": \"qvbr-lan\", "
				    "\"address\": \"10.0.0.1/24\", \"mtu\": 1400}}"));
	net_define_vm(&qd, "g2", "qv.ip=eth0:10.0.0.3/24", "[{\"network\": \"lan\"}]");
	net_define_vm(&qd, "g1", "qv.ip=eth0:10.0.0.2/24 qv.ping=10.0.0.3,10.0.0.1",
		      "[{\"network\": \"lan\"}]");
	start_vm("g2");
	wait_serial("g2", QVT_GUEST_READY);
	start_vm("g1");
	wait_serial("g1", "QVISOR-PING-OK 10.0.0.3");
	wait_serial("g1", "QVISOR-PING-OK 10.0.0.1");

	/* What qvisor says ... */
	json_object *info = net_call_ok(&qd, "net.info", "{\"name\": \"lan\"}");
	json_object *ports = NULL;
	cr_assert_str_eq(jstr_at(info, "state"), "active");
	cr_assert(json_object_object_get_ex(info, "ports", &ports));
	cr_assert_eq(json_object_array_length(ports), 2);
	/* ... is what the kernel has. */
	json_object *br = qvt_ip_link("qvbr-lan");
	cr_assert_not_null(br);
	cr_assert_str_eq(qvt_link_kind(br), "bridge");
	cr_assert_eq(qvt_link_mtu(br), 1400);
	json_object *addrs = qvt_ip_addrs("qvbr-lan");
	cr_assert(qvt_addrs_have(addrs, "10.0.0.1", 24));
	json_object_put(addrs);
	json_object_put(br);
	const char *vms[] = { "g1", "g2" };
	for (size_t i = 0; i < 2; i++) {
		json_object *nic = nic_of(vms[i], 0);
		const char *tap = jstr_at(nic, "tap");
		bool listed = false;
		for (size_t k = 0; k < json_object_array_length(ports); k++)
			listed |= streq(json_object_get_string(json_object_array_get_idx(ports, k)),
					tap);
		cr_assert(listed, "TAP %s of %s not in net.info ports", tap, vms[i]);
		json_object *l = qvt_ip_link(tap);
		cr_assert_not_null(l, "TAP %s missing", tap);
		cr_assert_str_eq(qvt_link_kind(l), "tun");
		cr_assert_str_eq(qvt_link_master(l), "qvbr-lan");
		cr_assert_eq(qvt_link_mtu(l), 1400);
		cr_assert(qvt_link_has_flag(l, "UP"));
		cr_assert_str_eq(jstr_at(nic, "bridge"), "qvbr-lan");
		json_object_put(l);
		json_object_put(nic);
	}
	cr_assert_eq(net_count_links("qv"), 3, "exactly the bridge and two TAPs");
	json_object_put(info);

	/* The collector reads each TAP's counters through netlink (vm.history
	 * "nics", the guest's view): g1's pings went out and came back. */
	json_object *nic = nic_of("g1", 0);
	int64_t tx = -1, rx = -1;
	for (int i = 0; i < 20 && (tx < 2 || rx < 2); i++) {
		json_object *h = net_call_ok(&qd, "vm.history", "{\"name\": \"g1\", \"max\": 1}");
		json_object *nics, *n0;
		if (json_object_object_get_ex(h, "nics", &nics) && json_object_array_length(nics) == 1) {
			n0 = json_object_array_get_idx(nics, 0);
			cr_assert_str_eq(jstr_at(n0, "name"), jstr_at(nic, "tap"));
			tx = jint_at(n0, "tx_packets"), rx = jint_at(n0, "rx_packets");
		}
		json_object_put(h);
		if (tx < 2 || rx < 2)
			qvt_sleep_ms(500);
	}
	cr_assert(tx >= 2 && rx >= 2, "g1's TAP counters: tx %lld rx %lld packets", (long long)tx,
		  (long long)rx);
	json_object_put(nic);

	/* Teardown leaves nothing. */
	net_stop_vm(&qd, "g1");
	net_stop_vm(&qd, "g2");
	cr_assert_eq(net_count_links("qv") , 1, "TAPs left after vm.stop");
	json_object_put(net_call_ok(&qd, "vm.undefine", "{\"name\": \"g1\"}"));
	json_object_put(net_call_ok(&qd, "vm.undefine", "{\"name\": \"g2\"}"));
	json_object_put(net_call_ok(&qd, "net.undefine", "{\"name\": \"lan\"}"));
	cr_assert_eq(net_count_links("qv"), 0, "links left after net.undefine");
	json_object *links = net_ip_links();
	cr_assert_eq(json_object_array_length(links), 1, "only lo may remain");
	json_object_put(links);
}

Test(net_guests, dhcp_lease_from_network_dnsmasq, .fini = fini, .timeout = 240)
{
	char line[256], ip[64] = "";

	QVT_REQUIRE_GUEST();
	net_setup(&qd);
	json_object_put(net_call_ok(&qd, "net.define",
				    "{\"spec\": {\"name\": \"dh\", \"bridge\": \"qvbr-dh\", "
				    "\"address\": \"10.7.0.1/24\", \"dhcp\": {\"start\": "
				    "\"10.7.0.100\", \"end\": \"10.7.0.150\"}}}"));
	json_object *info = net_call_ok(&qd, "net.info", "{\"name\": \"dh\"}");
	json_object *dm = NULL, *v = NULL;
	cr_assert(json_object_object_get_ex(info, "dnsmasq", &dm));
	cr_assert(json_object_object_get_ex(dm, "running", &v) && json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(dm, "pid", &v) && json_object_get_int(v) > 0);
	json_object_put(info);

	net_define_vm(&qd, "d1", "qv.dhcp=eth0", "[{\"network\": \"dh\"}]");
	start_vm("d1");
	wait_serial("d1", "QVISOR-DHCP eth0 ");
	const char *log = qvt_serial_log(&qd, "d1");
	cr_assert_eq(net_grep(log, "QVISOR-DHCP eth0 ", line, sizeof(line)), 0);
	sscanf(line, "QVISOR-DHCP eth0 %63s", ip);
	cr_assert(strncmp(ip, "10.7.0.1", 8) == 0 && strlen(ip) == 10, "lease %s outside range",
		  ip);

	json_object *nic = nic_of("d1", 0);
	info = net_call_ok(&qd, "net.info", "{\"name\": \"dh\"}");
	json_object *leases = NULL;
	bool found = false;
	cr_assert(json_object_object_get_ex(info, "leases", &leases));
	for (size_t i = 0; i < json_object_array_length(leases); i++) {
		json_object *l = json_object_array_get_idx(leases, i);
		if (streq(jstr_at(l, "mac"), jstr_at(nic, "mac")) && streq(jstr_at(l, "ip"), ip))
			found = true;
	}
	cr_assert(found, "no lease %s for %s in net.info: %s", ip, jstr_at(nic, "mac"),
		  json_object_to_json_string(leases));
	json_object_put(info);
	json_object_put(nic);

	net_stop_vm(&qd, "d1");
	json_object_put(net_call_ok(&qd, "vm.undefine", "{\"name\": \"d1\"}"));
	json_object_put(net_call_ok(&qd, "net.undefine", "{\"name\": \"dh\"}"));
	cr_assert_eq(net_count_links("qv"), 0);
}

Test(net_guests, nic_hotplug_add_and_remove, .fini = fini, .timeout = 240)
{
	QVT_REQUIRE_GUEST();
	net_setup(&qd);
	json_object_put(net_call_ok(&qd, "net.define",
				    "{\"spec\": {\"name\": \"hp\", \"bridge\": \"qvbr-hp\", "
				    "\"address\": \"10.8.0.1/24\"}}"));
	net_define_vm(&qd, "h1", "", "[{\"network\": \"hp\"}]");
	start_vm("h1");
	const char *log = qvt_serial_log(&qd, "h1");
	cr_assert_eq(net_wait_line_after(log, 0, "QVISOR-NETIFS eth0 lo", NULL, NET_DEADLINE_MS),
		     0, "guest did not list eth0");

	/* Add: a MAC used by another NIC is refused first. */
	json_object *nic0 = nic_of("h1", 0);
	char p[256];
	snprintf(p, sizeof(p), "{\"name\": \"h1\", \"nic\": {\"network\": \"hp\", \"mac\": \"%s\"}}",
		 jstr_at(nic0, "mac"));
	net_call_fails(&qd, "vm.nic-add", p, "conflict", "already used");
	net_call_fails(&qd, "vm.nic-add", "{\"name\": \"h1\", \"nic\": {\"network\": \"nope\"}}",
		       "not-found", "network nope is not defined");
	cr_assert_eq(net_count_links("qv"), 2, "a refused hotplug left a TAP");
	json_object_put(nic0);

	long off = file_size(log);
	json_object *added = net_call_ok(&qd, "vm.nic-add",
					 "{\"name\": \"h1\", \"nic\": {\"network\": \"hp\", "
					 "\"mac\": \"52:54:00:12:34:56\"}}");
	const char *tap = jstr_at(added, "tap");
	cr_assert_not_null(tap);
	json_object *l = qvt_ip_link(tap);
	cr_assert_not_null(l, "hot-plugged TAP %s missing", tap);
	cr_assert_str_eq(qvt_link_master(l), "qvbr-hp");
	json_object_put(l);
	cr_assert_eq(net_wait_line_after(log, off, "QVISOR-NETIFS eth0 eth1 lo", NULL,
					 NET_DEADLINE_MS), 0, "guest never saw eth1");
	json_object *n1 = nic_of("h1", 1);
	cr_assert_str_eq(jstr_at(n1, "mac"), "52:54:00:12:34:56");
	json_object_put(n1);

	/* Remove by MAC: the guest loses eth1, the TAP goes. */
	off = file_size(log);
	json_object_put(net_call_ok(&qd, "vm.nic-remove",
				    "{\"name\": \"h1\", \"mac\": \"52:54:00:12:34:56\"}"));
	cr_assert_eq(net_wait_line_after(log, off, "QVISOR-NETIFS eth0 lo", NULL,
					 NET_DEADLINE_MS), 0, "guest still has eth1");
	cr_assert_null(qvt_ip_link(tap), "TAP %s left after nic-remove", tap);
	net_call_fails(&qd, "vm.nic-remove", "{\"name\": \"h1\", \"mac\": \"52:54:00:12:34:56\"}",
		       "not-found", "no hot-plugged NIC");
	json_object_put(added);

	/* A daemon crash and restart keeps the running VM's TAPs (reconciliation
	 * removes only TAPs of VMs without QEMU) and re-adopts a hot-plugged
	 * NIC from QEMU and netlink, so it can still be listed and removed. */
	off = file_size(log);
	added = net_call_ok(&qd, "vm.nic-add",
			    "{\"name\": \"h1\", \"nic\": {\"network\": \"hp\", "
			    "\"mac\": \"52:54:00:ab:cd:ef\"}}");
	cr_assert_eq(net_wait_line_after(log, off, "QVISOR-NETIFS eth0 eth1 lo", NULL,
					 NET_DEADLINE_MS), 0, "guest never saw the second eth1");
	json_object *nic = nic_of("h1", 0);
	cr_assert_eq(qvt_daemon_stop(&qd, SIGKILL), 0);
	cr_assert_eq(qvt_daemon_start(&qd), 0, "restart failed (log %s)", qd.log);
	json_object *vm = net_call_ok(&qd, "vm.info", "{\"name\": \"h1\"}");
	cr_assert_str_eq(jstr_at(vm, "state"), "running");
	json_object_put(vm);
	l = qvt_ip_link(jstr_at(nic, "tap"));
	cr_assert_not_null(l, "running VM's TAP removed at daemon start");
	cr_assert_str_eq(qvt_link_master(l), "qvbr-hp");
	json_object_put(l);
	json_object_put(nic);

	n1 = nic_of("h1", 1);
	cr_assert_not_null(n1, "hot-plugged NIC not listed after the restart");
	cr_assert_str_eq(jstr_at(n1, "mac"), "52:54:00:ab:cd:ef");
	cr_assert_str_eq(jstr_at(n1, "tap"), jstr_at(added, "tap"));
	cr_assert_str_eq(jstr_at(n1, "id"), jstr_at(added, "id"));
	cr_assert_str_eq(jstr_at(n1, "network"), "hp");
	cr_assert_str_eq(jstr_at(n1, "bridge"), "qvbr-hp");
	json_object_put(n1);
	off = file_size(log);
	snprintf(p, sizeof(p), "{\"name\": \"h1\", \"id\": \"%s\"}", jstr_at(added, "id"));
	json_object_put(net_call_ok(&qd, "vm.nic-remove", p));
	cr_assert_eq(net_wait_line_after(log, off, "QVISOR-NETIFS eth0 lo", NULL,
					 NET_DEADLINE_MS), 0, "guest still has eth1 after removal");
	cr_assert_null(qvt_ip_link(jstr_at(added, "tap")), "re-adopted TAP left after removal");
	json_object_put(added);

	net_stop_vm(&qd, "h1");
	json_object_put(net_call_ok(&qd, "vm.undefine", "{\"name\": \"h1\"}"));
	json_object_put(net_call_ok(&qd, "net.undefine", "{\"name\": \"hp\"}"));
	cr_assert_eq(net_count_links("qv"), 0);
}
