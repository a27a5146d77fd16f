/* SPDX-License-Identifier: MIT */
/* net.* through a real qvisord in a private netns: every bad input is a
 * clear error (data.reason + message) and leaves nothing behind. */
#include "net-util.h"

static struct qvt_daemon qd;

static void fini(void)
{
	qvt_daemon_cleanup(&qd);
}

/* No stored row, no link. */
static void assert_no_network(const char *name, const char *bridge)
{
	char p[128];

	snprintf(p, sizeof(p), "{\"name\": \"%s\"}", name);
	net_call_fails(&qd, "net.info", p, "not-found", name);
	if (bridge) {
		json_object *l = qvt_ip_link(bridge);
		cr_assert_null(l, "link %s left behind", bridge);
	}
}

Test(net_define, bad_input_leaves_nothing, .fini = fini, .timeout = 120)
{
	net_setup(&qd);

	/* 16-character bridge name. */
	net_call_fails(&qd, "net.define",
		       "{\"spec\": {\"name\": \"n1\", \"bridge\": \"br-0123456789abc\"}}",
		       "invalid-argument", "16 characters");
	assert_no_network("n1", NULL);
	cr_assert_eq(net_count_links("br-"), 0);

	/* Unknown field. */
	net_call_fails(&qd, "net.define",
		       "{\"spec\": {\"name\": \"n1\", \"bridge\": \"brx\", \"colour\": 1}}",
		       "invalid-argument", "colour");
	assert_no_network("n1", "brx");

	/* Bad network name, bad address, DHCP range outside the subnet. */
	net_call_fails(&qd, "net.define", "{\"spec\": {\"name\": \"a/b\", \"bridge\": \"brx\"}}",
		       "invalid-argument", "network name");
	net_call_fails(&qd, "net.define",
		       "{\"spec\": {\"name\": \"n1\", \"bridge\": \"brx\", \"address\": \"10.0.0.1\"}}",
		       "invalid-argument", "prefix");
	net_call_fails(&qd, "net.define",
		       "{\"spec\": {\"name\": \"n1\", \"bridge\": \"brx\", \"address\": \"10.0.0.1/24\","
		       " \"dhcp\": {\"start\": \"10.0.1.10\", \"end\": \"10.0.1.20\"}}}",
		       "invalid-argument", "outside");
	assert_no_network("n1", "brx");

	/* Bridge name taken by a non-bridge link (a veth): conflict, veth untouched. */
	char *veth[] = { "ip", "link", "add", "vbusy", "type", "veth", "peer", "name", "vbusy-p",
			 NULL };
	cr_assert_eq(qvt_run(veth, NULL), 0);
	net_call_fails(&qd, "net.define",
		       "{\"spec\": {\"name\": \"n2\", \"bridge\": \"vbusy\", \"address\": \"10.9.0.1/24\"}}",
		       "conflict", "not a bridge");
	assert_no_network("n2", NULL);
	json_object *v = qvt_ip_link("vbusy");
	cr_assert_not_null(v);
	cr_assert_str_eq(qvt_link_kind(v), "veth");
	json_object *va = qvt_ip_addrs("vbusy");
	cr_assert_not(qvt_addrs_have(va, "10.9.0.1", 24), "address added to the foreign link");
	json_object_put(va);
	json_object_put(v);

	/* A good network, then a second one on the same bridge. */
	json_object_put(net_call_ok(&qd, "net.define",
				    "{\"spec\": {\"name\": \"lan\", \"bridge\": \"qvbr0\", "
				    "\"address\": \"10.0.0.1/24\", \"mtu\": 1400}}"));
	net_call_fails(&qd, "net.define",
		       "{\"spec\": {\"name\": \"lan2\", \"bridge\": \"qvbr0\"}}", "conflict",
		       "already used by network lan");
	net_call_fails(&qd, "net.define", "{\"spec\": {\"name\": \"lan\", \"bridge\": \"qvbr9\"}}",
		       "conflict", "already defined");
	assert_no_network("lan2", "qvbr9");
	json_object *res = net_call_ok(&qd, "net.list", "{}");
	json_object *arr = NULL;
	cr_assert(json_object_object_get_ex(res, "networks", &arr));
	cr_assert_eq(json_object_array_length(arr), 1);
	json_object_put(res);

	/* NICs: an undefined network, a direct bridge that is not a bridge, and
	 * a duplicated MAC. Each is refused at vm.define: no VM, no TAP. */
	QVT_REQUIRE_GUEST();
	net_define_vm_fails(&qd, "ghost", "[{\"network\": \"nowhere\"}]", "not-found",
			    "network nowhere is not defined");
	net_define_vm_fails(&qd, "direct", "[{\"bridge\": \"vbusy\"}]", "conflict",
			    "not a bridge");
	net_define_vm(&qd, "a", "", "[{\"network\": \"lan\", \"mac\": \"52:54:00:aa:bb:01\"}]");
	net_define_vm_fails(&qd, "b", "[{\"network\": \"lan\", \"mac\": \"52:54:00:AA:BB:01\"}]",
			    "conflict", "MAC 52:54:00:aa:bb:01 is already used by NIC 0 of VM a");
	cr_assert_eq(net_count_links("qv"), 1, "only the bridge qvbr0 may exist, no TAP");
	struct qv_error err = { 0 };
	cr_assert_lt(qvt_callf(&qd, "vm.info", NULL, &err, "{\"name\": \"b\"}"), 0);
	cr_assert_str_eq(err.reason, "not-found", "a refused define left VM b behind");

	/* In use: refused, message names the VM; nothing torn down. */
	net_call_fails(&qd, "net.undefine", "{\"name\": \"lan\"}", "conflict", "VM(s) a");
	json_object *br = qvt_ip_link("qvbr0");
	cr_assert_not_null(br, "bridge removed although the network is in use");
	cr_assert_eq(qvt_link_mtu(br), 1400);
	json_object_put(br);

	/* Once the VMs are gone it can be undefined, and nothing is left. */
	json_object_put(net_call_ok(&qd, "vm.undefine", "{\"name\": \"a\"}"));
	json_object_put(net_call_ok(&qd, "net.undefine", "{\"name\": \"lan\"}"));
	assert_no_network("lan", "qvbr0");
	cr_assert_eq(net_count_links("qv"), 0);
}

Test(net_define, restart_restores_bridge_and_removes_stale_taps, .fini = fini, .timeout = 120)
{
	net_setup(&qd);
	json_object_put(net_call_ok(&qd, "net.define",
				    "{\"spec\": {\"name\": \"lan\", \"bridge\": \"qvbr1\", "
				    "\"address\": \"10.1.0.1/24\", \"mtu\": 1450}}"));
	cr_assert_eq(qvt_daemon_stop(&qd, SIGKILL), 0);
	/* The bridge disappears behind the daemon's back; a stale qv TAP appears. */
	char *del[] = { "ip", "link", "del", "qvbr1", NULL };
	char *tap[] = { "ip", "tuntap", "add", "qv0badf00dn0", "mode", "tap", NULL };
	cr_assert_eq(qvt_run(del, NULL), 0);
	cr_assert_eq(qvt_run(tap, NULL), 0);
	cr_assert_eq(qvt_daemon_start(&qd), 0, "restart failed (log %s)", qd.log);
	json_object *br = qvt_ip_link("qvbr1");
	cr_assert_not_null(br, "bridge not recreated at start");
	cr_assert_str_eq(qvt_link_kind(br), "bridge");
	cr_assert_eq(qvt_link_mtu(br), 1450);
	json_object_put(br);
	json_object *addrs = qvt_ip_addrs("qvbr1");
	cr_assert(qvt_addrs_have(addrs, "10.1.0.1", 24));
	json_object_put(addrs);
	cr_assert_null(qvt_ip_link("qv0badf00dn0"), "stale TAP not removed");
	json_object *info = net_call_ok(&qd, "net.info", "{\"name\": \"lan\"}");
	cr_assert_str_eq(jstr_at(info, "state"), "active");
	json_object_put(info);
	json_object_put(net_call_ok(&qd, "net.undefine", "{\"name\": \"lan\"}"));
	cr_assert_eq(net_count_links("qv"), 0);
}
