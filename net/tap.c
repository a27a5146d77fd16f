/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <netlink/route/link.h>

#include "net/ifname.h"
#include "net/link.h"
#include "net/nl-internal.h"
#include "net/tap.h"

int qv_tap_create(const char *name, unsigned flags, int *ret_fd, char *ret_name,
		  struct qv_error *errp)
{
	_cleanup_close_ int fd = -1;
	struct ifreq ifr = {};
	int r;

	if (name && *name) {
		r = qv_ifname_check(name, "TAP name", errp);
		if (r < 0)
			return r;
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return qv_error_set(errp, r, r == -ENOENT ? QV_REASON_UNAVAILABLE : NULL,
				    "cannot open /dev/net/tun: %s", strerror(-r));
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		if (r == -EINVAL && name && *name)
			/* the name exists and is not a TAP with compatible flags */
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "TAP %s: a link of that name exists and is not a "
					    "compatible TAP", name);
		if (r == -EBUSY)
			return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
					    "TAP %s is already attached to another process",
					    name ?: "");
		return qv_error_set(errp, r, NULL, "cannot create TAP %s: %s",
				    name && *name ? name : "(any)", strerror(-r));
	}
	if ((flags & QV_TAP_PERSIST) && ioctl(fd, TUNSETPERSIST, 1) < 0) {
		r = -errno;
		return qv_error_set(errp, r, NULL, "cannot make TAP %s persistent: %s",
				    ifr.ifr_name, strerror(-r));
	}
	if (ret_name)
		snprintf(ret_name, IFNAMSIZ, "%s", ifr.ifr_name);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int qv_tap_attach(qv_netlink *nl, const char *tap, const char *bridge, struct qv_error *errp)
{
	_cleanup_rtnl_link_ struct rtnl_link *br = NULL;
	struct qv_setlink req = QV_SETLINK_INIT;
	const char *kind;
	int r;

	r = qv_ifname_check(tap, "TAP name", errp);
	if (r < 0)
		return r;
	r = qv_ifname_check(bridge, "bridge name", errp);
	if (r < 0)
		return r;
	r = qv_nl_get_link(nl, bridge, &br, errp);
	if (r < 0)
		return r;
	kind = rtnl_link_get_type(br);
	if (!kind || !streq(kind, "bridge"))
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "bridge %s exists and is not a bridge (kind %s)", bridge,
				    kind ?: "none");
	req.master = rtnl_link_get_ifindex(br);
	req.mtu = rtnl_link_get_mtu(br);
	req.up = 1;
	r = qv_nl_setlink(nl, tap, &req);
	if (r < 0) {
		if (qv_nl_errno(nl, r) == -ENODEV)
			return qv_error_set(errp, ENODEV, QV_REASON_NOT_FOUND,
					    "TAP %s does not exist", tap);
		return qv_nl_error(nl, r, errp, NULL, "cannot attach %s to bridge %s", tap, bridge);
	}
	return 0;
}

int qv_tap_delete(qv_netlink *nl, const char *name, struct qv_error *errp)
{
	struct qv_link_info info;
	int r;

	r = qv_link_lookup(nl, name, &info, errp);
	if (r < 0)
		return r;
	if (info.kind != QV_LINK_TUN)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "%s is not a TAP (kind %s), refusing to delete it", name,
				    info.kind_name[0] ? info.kind_name : "none");
	return qv_link_delete(nl, name, errp);
}

static struct rtnl_link *cache_find(struct nl_cache *cache, const char *name)
{
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
		if (streq_ptr(rtnl_link_get_name((struct rtnl_link *)o), name))
			return (struct rtnl_link *)o;
	return NULL;
}

static bool group_in_use(struct nl_cache *cache, uint32_t group)
{
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
		if (rtnl_link_get_group((struct rtnl_link *)o) == group)
			return true;
	return false;
}

int qv_tap_delete_many(qv_netlink *nl, const char *const *names, size_t n,
		       struct qv_error *errp)
{
	_cleanup_nl_cache_ struct nl_cache *cache = NULL;
	struct qv_setlink req = QV_SETLINK_INIT;
	size_t present = 0;
	uint32_t group;
	int r;

	for (size_t i = 0; i < n; i++) {
		r = qv_ifname_check(names[i], "TAP name", errp);
		if (r < 0)
			return r;
	}
	qv_nl_begin(nl);
	r = rtnl_link_alloc_cache(nl->sk, AF_UNSPEC, &cache);
	if (r < 0)
		return qv_nl_error(nl, r, errp, NULL, "cannot dump links");
	for (size_t i = 0; i < n; i++) {
		struct rtnl_link *l = cache_find(cache, names[i]);
		const char *kind = l ? rtnl_link_get_type(l) : NULL;

		if (!l)
			continue;
		if (!kind || !streq(kind, "tun"))
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "%s is not a TAP (kind %s), refusing to delete it",
					    names[i], kind ?: "none");
		present++;
	}
	if (!present)
		return 0;
	/* A link group nobody uses; 0x7176 = "qv". */
	group = 0x71760000u | ((uint32_t)getpid() & 0xffffu);
	while (group_in_use(cache, group))
		group++;
	req.group = group;
	for (size_t i = 0; i < n; i++) {
		if (!cache_find(cache, names[i]))
			continue;
		r = qv_nl_setlink(nl, names[i], &req);
		if (r < 0 && qv_nl_errno(nl, r) != -ENODEV)
			return qv_nl_error(nl, r, errp, NULL, "cannot tag %s for deletion", names[i]);
	}
	r = qv_nl_dellink_group(nl, group);
	if (r >= 0 || qv_nl_errno(nl, r) == -ENODEV)
		return 0;
	if (qv_nl_errno(nl, r) != -EOPNOTSUPP)
		return qv_nl_error(nl, r, errp, NULL, "cannot delete %zu TAPs", present);
	for (size_t i = 0; i < n; i++) {
		struct qv_error e = {};

		r = qv_link_delete(nl, names[i], &e);
		if (r < 0 && r != -ENODEV) {
			if (errp && !errp->set)
				*errp = e;
			return r;
		}
	}
	return 0;
}

int qv_tap_set_mtu(qv_netlink *nl, const char *name, unsigned mtu, struct qv_error *errp)
{
	return qv_link_set_mtu(nl, name, mtu, errp);
}
