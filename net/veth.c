/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <limits.h>

#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

#include "net/ifname.h"
#include "net/link.h"
#include "net/nl-internal.h"
#include "net/veth.h"

int qv_veth_create(qv_netlink *nl, const char *name, const char *peer, struct qv_error *errp)
{
	int r;

	r = qv_ifname_check(name, "veth name", errp);
	if (r < 0)
		return r;
	r = qv_ifname_check(peer, "veth peer name", errp);
	if (r < 0)
		return r;
	if (streq(name, peer))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "veth ends must have different names (both %s)", name);
	qv_nl_begin(nl);
	r = rtnl_link_veth_add(nl->sk, name, peer, getpid());
	if (r < 0) {
		if (qv_nl_errno(nl, r) == -EEXIST)
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "cannot create veth %s/%s: a link of that name exists",
					    name, peer);
		return qv_nl_error(nl, r, errp, NULL, "cannot create veth %s/%s", name, peer);
	}
	return 0;
}

int qv_veth_delete(qv_netlink *nl, const char *name, struct qv_error *errp)
{
	struct qv_link_info info;
	int r;

	r = qv_link_lookup(nl, name, &info, errp);
	if (r < 0)
		return r;
	if (info.kind != QV_LINK_VETH)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "%s is not a veth (kind %s), refusing to delete it", name,
				    info.kind_name[0] ? info.kind_name : "none");
	return qv_link_delete(nl, name, errp);
}

static int move(qv_netlink *nl, const char *name, pid_t pid, int nsfd, const char *target,
		struct qv_error *errp)
{
	struct qv_setlink req = QV_SETLINK_INIT;
	int r;

	r = qv_ifname_check(name, NULL, errp);
	if (r < 0)
		return r;
	if (nsfd >= 0)
		req.ns_fd = nsfd;
	else
		req.ns_pid = pid;
	r = qv_nl_setlink(nl, name, &req);
	if (r < 0) {
		r = qv_nl_errno(nl, r);
		if (r == -ENODEV)
			return qv_error_set(errp, ENODEV, QV_REASON_NOT_FOUND,
					    "link %s does not exist", name);
		if (r == -ESRCH)
			return qv_error_set(errp, ESRCH, QV_REASON_NOT_FOUND,
					    "cannot move %s: %s does not exist", name, target);
		return qv_nl_error(nl, r, errp, NULL, "cannot move %s to %s", name, target);
	}
	return 0;
}

int qv_link_move_to_netns_pid(qv_netlink *nl, const char *name, pid_t pid,
			      struct qv_error *errp)
{
	char target[32];

	if (pid <= 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid pid %d", (int)pid);
	snprintf(target, sizeof(target), "netns of pid %d", (int)pid);
	return move(nl, name, pid, -1, target, errp);
}

int qv_link_move_to_netns_fd(qv_netlink *nl, const char *name, int nsfd,
			     struct qv_error *errp)
{
	if (nsfd < 0)
		return qv_error_set(errp, EBADF, QV_REASON_INVALID_ARGUMENT, "invalid netns fd");
	return move(nl, name, 0, nsfd, "netns fd", errp);
}

int qv_link_move_to_netns_named(qv_netlink *nl, const char *name, const char *nsname,
				struct qv_error *errp)
{
	_cleanup_close_ int fd = -1;
	char path[PATH_MAX], target[300];
	int r;

	if (!nsname || !*nsname || strchr(nsname, '/') || streq(nsname, ".") ||
	    streq(nsname, "..") || strlen(nsname) > 255)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid netns name '%.64s'", nsname ?: "");
	snprintf(path, sizeof(path), "/var/run/netns/%s", nsname);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return qv_error_set(errp, r, r == -ENOENT ? QV_REASON_NOT_FOUND : NULL,
				    "cannot open netns %s (%s): %s", nsname, path, strerror(-r));
	}
	snprintf(target, sizeof(target), "netns %s", nsname);
	return move(nl, name, 0, fd, target, errp);
}
