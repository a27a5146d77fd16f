/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>

#include "helpers/netns.h"
#include "net/bridge.h"
#include "net/link.h"
#include "net/nl.h"
#include "net/tap.h"
#include "net/veth.h"

static const struct qv_link_info *find(const struct qv_link_info *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(v[i].name, name))
			return &v[i];
	return NULL;
}

Test(link, dump_reports_kind_master_mtu_state_mac)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = NULL;
	_cleanup_free_ struct qv_link_info *v = NULL;
	struct qv_error err = {};
	const struct qv_link_info *br, *tap, *ve, *lo;
	size_t n = 0;
	int fd = -1;

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_create(nl, "br-lab", &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_set_mtu(nl, "br-lab", 1400, &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_set_up(nl, "br-lab", true, &err), 0, "%s", err.message);
	cr_assert_eq(qv_tap_create("qvt0", 0, &fd, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(qv_tap_attach(nl, "qvt0", "br-lab", &err), 0, "%s", err.message);
	cr_assert_eq(qv_veth_create(nl, "ve0", "ve1", &err), 0, "%s", err.message);

	cr_assert_eq(qv_link_dump(nl, &v, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 5, "lo, br-lab, qvt0, ve0, ve1; got %zu", n);
	cr_assert_not_null(br = find(v, n, "br-lab"));
	cr_assert_not_null(tap = find(v, n, "qvt0"));
	cr_assert_not_null(ve = find(v, n, "ve1"));
	cr_assert_not_null(lo = find(v, n, "lo"));
	cr_assert_eq(br->kind, QV_LINK_BRIDGE);
	cr_assert_str_eq(qv_link_kind_to_string(br->kind), "bridge");
	cr_assert(br->up);
	cr_assert_eq(br->mtu, 1400);
	cr_assert_eq(tap->kind, QV_LINK_TUN);
	cr_assert_eq(tap->master, br->ifindex);
	cr_assert_eq(tap->mtu, 1400);
	cr_assert(tap->up);
	cr_assert_eq(ve->kind, QV_LINK_VETH);
	cr_assert_not(ve->up);
	cr_assert_eq(ve->master, 0);
	cr_assert_eq(lo->kind, QV_LINK_OTHER);
	cr_assert(ve->has_mac && qv_mac_is_valid_unicast(&ve->mac));

	/* the MAC matches what iproute2 reports */
	json_object *l = qvt_ip_link("ve1");
	char mac[QV_MAC_STRLEN];
	cr_assert_str_eq(json_object_get_string(json_object_object_get(l, "address")),
			 qv_mac_format(&ve->mac, mac));
	json_object_put(l);

	/* detach: nomaster */
	cr_assert_eq(qv_link_set_master(nl, "qvt0", NULL, &err), 0, "%s", err.message);
	l = qvt_ip_link("qvt0");
	cr_assert_null(qvt_link_master(l));
	json_object_put(l);
	close(fd);
}

Test(link, lookup_missing_and_invalid)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = NULL;
	struct qv_error err = {};
	struct qv_link_info info = { .ifindex = 4242 };

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_lookup(nl, "nothere", &info, &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert_eq(info.ifindex, 4242, "ret touched on failure");
	qv_error_clear(&err);
	cr_assert_eq(qv_link_set_mtu(nl, "lo", 10, &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_link_set_up(nl, "nothere", true, &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");
}
