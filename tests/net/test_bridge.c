/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>

#include "helpers/netns.h"
#include "net/bridge.h"
#include "net/link.h"
#include "net/nl.h"
#include "net/veth.h"

static qv_netlink *open_nl(void)
{
	struct qv_error err = {};
	qv_netlink *nl = NULL;

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	return nl;
}

Test(bridge, create_mtu_up_delete)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};
	json_object *l;

	cr_assert_eq(qv_bridge_create(nl, "br-lab", &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_set_mtu(nl, "br-lab", 1400, &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_set_up(nl, "br-lab", true, &err), 0, "%s", err.message);

	l = qvt_ip_link("br-lab");
	cr_assert_not_null(l, "ip link show br-lab found nothing");
	cr_assert_str_eq(qvt_link_kind(l), "bridge");
	cr_assert_eq(qvt_link_mtu(l), 1400);
	cr_assert(qvt_link_has_flag(l, "UP"));
	json_object_put(l);

	unsigned mtu = 0;
	cr_assert_eq(qv_bridge_get_mtu(nl, "br-lab", &mtu, &err), 0);
	cr_assert_eq(mtu, 1400);

	cr_assert_eq(qv_bridge_set_up(nl, "br-lab", false, &err), 0, "%s", err.message);
	l = qvt_ip_link("br-lab");
	cr_assert_not(qvt_link_has_flag(l, "UP"));
	json_object_put(l);

	cr_assert_eq(qv_bridge_delete(nl, "br-lab", &err), 0, "%s", err.message);
	cr_assert_null(qvt_ip_link("br-lab"), "bridge still present after delete");
	cr_assert_not(err.set);
}

Test(bridge, create_is_idempotent)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};
	struct qv_link_info a, b;

	cr_assert_eq(qv_bridge_create(nl, "br0", &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_lookup(nl, "br0", &a, &err), 0);
	cr_assert_eq(qv_bridge_create(nl, "br0", &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_lookup(nl, "br0", &b, &err), 0);
	cr_assert_eq(a.ifindex, b.ifindex, "second create replaced the bridge");
	cr_assert_eq(a.kind, QV_LINK_BRIDGE);
}

Test(bridge, name_of_16_chars_is_rejected)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};

	cr_assert_eq(qv_bridge_create(nl, "br-0123456789abc", &err), -EINVAL);
	cr_assert(err.set);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert(strstr(err.message, "16 characters"), "message: %s", err.message);
	cr_assert(strstr(err.message, "at most 15"), "message: %s", err.message);
	cr_assert_null(qvt_ip_link("br-0123456789ab"));
}

Test(bridge, existing_non_bridge_is_a_conflict)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};
	json_object *before, *after;

	cr_assert_eq(qv_veth_create(nl, "br-lab", "br-lab-peer", &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_set_mtu(nl, "br-lab", 1300, &err), 0, "%s", err.message);
	before = qvt_ip_link("br-lab");
	cr_assert_not_null(before);

	cr_assert_eq(qv_bridge_create(nl, "br-lab", &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert(strstr(err.message, "bridge br-lab exists and is not a bridge"), "message: %s",
		  err.message);

	/* The veth is untouched: same kind, ifindex and MTU. */
	after = qvt_ip_link("br-lab");
	cr_assert_not_null(after);
	cr_assert_str_eq(qvt_link_kind(after), "veth");
	cr_assert_eq(qvt_link_mtu(after), 1300);
	cr_assert_eq(json_object_get_int(json_object_object_get(after, "ifindex")),
		     json_object_get_int(json_object_object_get(before, "ifindex")));

	/* delete/set_mtu through the bridge API refuse it too */
	qv_error_clear(&err);
	cr_assert_eq(qv_bridge_delete(nl, "br-lab", &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");
	json_object_put(after);
	cr_assert_not_null(after = qvt_ip_link("br-lab"));
	json_object_put(before);
	json_object_put(after);
}

Test(bridge, delete_missing_is_not_found)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};

	cr_assert_eq(qv_bridge_delete(nl, "br-nope", &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert(strstr(err.message, "br-nope"), "message: %s", err.message);

	qv_error_clear(&err);
	cr_assert_eq(qv_link_delete(nl, "nope0", &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");
}
