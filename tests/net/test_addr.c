/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <sys/socket.h>

#include "helpers/netns.h"
#include "net/addr.h"
#include "net/bridge.h"
#include "net/nl.h"

Test(addr, add_and_flush_v4_v6)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = NULL;
	struct qv_error err = {};
	json_object *a;

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_create(nl, "br-lab", &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_set_up(nl, "br-lab", true, &err), 0, "%s", err.message);
	cr_assert_eq(qv_addr_add(nl, "br-lab", "10.77.0.1/24", &err), 0, "%s", err.message);
	cr_assert_eq(qv_addr_add(nl, "br-lab", "10.78.0.1/16", &err), 0, "%s", err.message);
	cr_assert_eq(qv_addr_add(nl, "br-lab", "fd00:77::1/64", &err), 0, "%s", err.message);

	a = qvt_ip_addrs("br-lab");
	cr_assert(qvt_addrs_have(a, "10.77.0.1", 24));
	cr_assert(qvt_addrs_have(a, "10.78.0.1", 16));
	cr_assert(qvt_addrs_have(a, "fd00:77::1", 64));
	json_object_put(a);

	cr_assert_eq(qv_addr_add(nl, "br-lab", "10.77.0.1/24", &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");
	qv_error_clear(&err);

	cr_assert_eq(qv_addr_flush(nl, "br-lab", AF_INET, &err), 0, "%s", err.message);
	a = qvt_ip_addrs("br-lab");
	cr_assert_not(qvt_addrs_have(a, "10.77.0.1", 24));
	cr_assert_not(qvt_addrs_have(a, "10.78.0.1", 16));
	cr_assert(qvt_addrs_have(a, "fd00:77::1", 64), "v4 flush removed v6");
	json_object_put(a);

	cr_assert_eq(qv_addr_flush(nl, "br-lab", AF_UNSPEC, &err), 0, "%s", err.message);
	a = qvt_ip_addrs("br-lab");
	cr_assert_not(qvt_addrs_have(a, "fd00:77::1", 64));
	json_object_put(a);
}

Test(addr, bad_input)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = NULL;
	struct qv_error err = {};

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	cr_assert_eq(qv_addr_add(nl, "lo", "10.0.0.1", &err), -EINVAL, "prefix is required");
	qv_error_clear(&err);
	cr_assert_eq(qv_addr_add(nl, "lo", "10.0.0.1/33", &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_addr_add(nl, "lo", "banana/8", &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_addr_add(nl, "nothere", "10.0.0.1/8", &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");
}
