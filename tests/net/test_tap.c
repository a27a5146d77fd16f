/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <fcntl.h>

#include "helpers/netns.h"
#include "net/bridge.h"
#include "net/ifname.h"
#include "net/link.h"
#include "net/nl.h"
#include "net/tap.h"
#include "net/veth.h"

static qv_netlink *open_nl(void)
{
	struct qv_error err = {};
	qv_netlink *nl = NULL;

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	return nl;
}

Test(tap, create_attach_up_delete)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};
	char name[IFNAMSIZ];
	int fd = -1;
	json_object *l;

	cr_assert_eq(qv_bridge_create(nl, "br-lab", &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_set_mtu(nl, "br-lab", 1450, &err), 0, "%s", err.message);
	cr_assert_eq(qv_tap_create("qvtest0", 0, &fd, name, &err), 0, "%s", err.message);
	cr_assert_geq(fd, 0);
	cr_assert_str_eq(name, "qvtest0");
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "TAP fd must be O_CLOEXEC");

	cr_assert_eq(qv_tap_attach(nl, "qvtest0", "br-lab", &err), 0, "%s", err.message);
	l = qvt_ip_link("qvtest0");
	cr_assert_not_null(l);
	cr_assert_str_eq(qvt_link_kind(l), "tun");
	cr_assert_str_eq(qvt_link_master(l), "br-lab");
	cr_assert_eq(qvt_link_mtu(l), 1450, "TAP MTU should match the bridge");
	cr_assert(qvt_link_has_flag(l, "UP"));
	json_object_put(l);

	struct qv_link_info info;
	cr_assert_eq(qv_link_lookup(nl, "qvtest0", &info, &err), 0);
	cr_assert_eq(info.kind, QV_LINK_TUN);
	cr_assert(info.up);
	cr_assert_eq(info.mtu, 1450);
	cr_assert(info.has_mac && qv_mac_is_valid_unicast(&info.mac));

	cr_assert_eq(qv_tap_set_mtu(nl, "qvtest0", 1400, &err), 0, "%s", err.message);
	l = qvt_ip_link("qvtest0");
	cr_assert_eq(qvt_link_mtu(l), 1400);
	json_object_put(l);

	cr_assert_eq(qv_tap_delete(nl, "qvtest0", &err), 0, "%s", err.message);
	cr_assert_null(qvt_ip_link("qvtest0"));
	close(fd);
	cr_assert_eq(qv_tap_delete(nl, "qvtest0", &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");
}

Test(tap, non_persistent_tap_goes_with_last_fd)
{
	QVT_REQUIRE_NETNS();
	struct qv_error err = {};
	char name[IFNAMSIZ];
	json_object *l;
	int fd = -1;

	cr_assert_eq(qv_tap_create(NULL, 0, &fd, name, &err), 0, "%s", err.message);
	cr_assert(qv_ifname_valid(name), "kernel-chosen name '%s'", name);
	cr_assert_not_null(l = qvt_ip_link(name));
	json_object_put(l);
	close(fd);
	cr_assert_null(qvt_ip_link(name), "non-persistent TAP %s survived its fd", name);
}

Test(tap, persistent_tap_survives_close)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};
	json_object *l;
	int fd = -1;

	cr_assert_eq(qv_tap_create("qvpersist0", QV_TAP_PERSIST, &fd, NULL, &err), 0, "%s",
		     err.message);
	close(fd);
	cr_assert_not_null(l = qvt_ip_link("qvpersist0"));
	json_object_put(l);
	cr_assert_eq(qv_tap_delete(nl, "qvpersist0", &err), 0, "%s", err.message);
	cr_assert_null(qvt_ip_link("qvpersist0"));
}

Test(tap, bad_input)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};
	int fd = -1;

	cr_assert_eq(qv_tap_create("qv0123456789abcd", 0, &fd, NULL, &err), -EINVAL);
	cr_assert_eq(fd, -1, "ret_fd touched on failure");
	cr_assert(strstr(err.message, "16 characters"), "%s", err.message);

	/* attach to a bridge that does not exist / is not a bridge */
	qv_error_clear(&err);
	cr_assert_eq(qv_tap_create("qvt1", 0, &fd, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(qv_tap_attach(nl, "qvt1", "br-none", &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");
	qv_error_clear(&err);
	cr_assert_eq(qv_veth_create(nl, "v0", "v1", &err), 0, "%s", err.message);
	cr_assert_eq(qv_tap_attach(nl, "qvt1", "v0", &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");

	/* tap_delete refuses a veth */
	qv_error_clear(&err);
	cr_assert_eq(qv_tap_delete(nl, "v0", &err), -EEXIST);
	json_object *l = qvt_ip_link("v0");
	cr_assert_not_null(l);
	json_object_put(l);
	close(fd);
}

Test(tap, delete_many_in_one_batch)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = open_nl();
	struct qv_error err = {};
	const char *names[] = { "qvm0", "qvm1", "qvm2", "qvgone" };
	int fds[3];
	json_object *l;

	cr_assert_eq(qv_bridge_create(nl, "br-lab", &err), 0, "%s", err.message);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(qv_tap_create(names[i], 0, &fds[i], NULL, &err), 0, "%s", err.message);
		cr_assert_eq(qv_tap_attach(nl, names[i], "br-lab", &err), 0, "%s", err.message);
	}
	cr_assert_eq(qv_veth_create(nl, "v0", "v1", &err), 0, "%s", err.message);

	/* a non-TAP in the list: refused, nothing deleted */
	const char *bad[] = { "qvm0", "v0" };
	cr_assert_eq(qv_tap_delete_many(nl, bad, 2, &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert_not_null(l = qvt_ip_link("qvm0"));
	json_object_put(l);
	qv_error_clear(&err);

	/* the missing "qvgone" is skipped */
	cr_assert_eq(qv_tap_delete_many(nl, names, 4, &err), 0, "%s", err.message);
	for (int i = 0; i < 3; i++) {
		cr_assert_null(qvt_ip_link(names[i]), "%s survived", names[i]);
		close(fds[i]);
	}
	cr_assert_not_null(l = qvt_ip_link("v0"), "veth was deleted too");
	json_object_put(l);
	cr_assert_not_null(l = qvt_ip_link("br-lab"));
	json_object_put(l);
}
