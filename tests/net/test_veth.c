/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <fcntl.h>

#include "helpers/netns.h"
#include "net/link.h"
#include "net/nl.h"
#include "net/veth.h"

Test(veth, create_move_to_pid_netns_delete)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = NULL;
	struct qv_error err = {};
	json_object *l;
	int release = -1;

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	cr_assert_eq(qv_veth_create(nl, "va0", "vb0", &err), 0, "%s", err.message);
	cr_assert_not_null(l = qvt_ip_link("va0"));
	cr_assert_str_eq(qvt_link_kind(l), "veth");
	json_object_put(l);
	cr_assert_not_null(l = qvt_ip_link("vb0"));
	json_object_put(l);

	pid_t child = qvt_netns_child(&release);
	cr_assert_gt(child, 0);
	cr_assert_eq(qv_link_move_to_netns_pid(nl, "vb0", child, &err), 0, "%s", err.message);
	cr_assert_null(qvt_ip_link("vb0"), "vb0 still in the test netns");
	char *show[] = { "ip", "link", "show", "dev", "vb0", NULL };
	cr_assert_eq(qvt_run_netns(child, show, NULL), 0, "vb0 not in the child netns");

	/* moving it again from here: it is gone */
	cr_assert_eq(qv_link_move_to_netns_pid(nl, "vb0", child, &err), -ENODEV);
	cr_assert_str_eq(err.reason, "not-found");

	qv_error_clear(&err);
	cr_assert_eq(qv_veth_delete(nl, "va0", &err), 0, "%s", err.message);
	cr_assert_null(qvt_ip_link("va0"));
	cr_assert_neq(qvt_run_netns(child, show, NULL), 0, "peer survived veth delete");
	qvt_netns_child_release(child, release);
}

Test(veth, move_by_fd_and_named_netns)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = NULL;
	struct qv_error err = {};
	int release = -1;
	char path[64];

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	pid_t child = qvt_netns_child(&release);
	cr_assert_gt(child, 0);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)child);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(qv_veth_create(nl, "vx0", "vy0", &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_move_to_netns_fd(nl, "vy0", fd, &err), 0, "%s", err.message);
	close(fd);
	char *show[] = { "ip", "link", "show", "dev", "vy0", NULL };
	cr_assert_eq(qvt_run_netns(child, show, NULL), 0);

	/* named netns that does not exist / bad name */
	cr_assert_eq(qv_link_move_to_netns_named(nl, "vx0", "qvt-no-such-ns", &err), -ENOENT);
	cr_assert_str_eq(err.reason, "not-found");
	qv_error_clear(&err);
	cr_assert_eq(qv_link_move_to_netns_named(nl, "vx0", "../etc", &err), -EINVAL);
	qvt_netns_child_release(child, release);
}

Test(veth, conflicts_and_bad_names)
{
	QVT_REQUIRE_NETNS();
	_cleanup_netlink_ qv_netlink *nl = NULL;
	struct qv_error err = {};

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	cr_assert_eq(qv_veth_create(nl, "va0", "vb0", &err), 0, "%s", err.message);
	cr_assert_eq(qv_veth_create(nl, "va0", "vc0", &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");
	qv_error_clear(&err);
	cr_assert_eq(qv_veth_create(nl, "a/b", "vc0", &err), -EINVAL);
	cr_assert(strstr(err.message, "forbidden character"), "%s", err.message);
	qv_error_clear(&err);
	cr_assert_eq(qv_veth_delete(nl, "lo", &err), -EEXIST, "must refuse to delete lo");
	qv_error_clear(&err);
	cr_assert_eq(qv_veth_delete(nl, "nothere", &err), -ENODEV);
}
