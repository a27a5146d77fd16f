/* SPDX-License-Identifier: MIT */
#include <netlink/route/link.h>

#include "net/ifname.h"
#include "net/link.h"
#include "net/nl-internal.h"

const char *qv_link_kind_to_string(enum qv_link_kind kind)
{
	switch (kind) {
	case QV_LINK_BRIDGE: return "bridge";
	case QV_LINK_TUN: return "tun";
	case QV_LINK_VETH: return "veth";
	default: return "other";
	}
}

static void fill_info(struct rtnl_link *l, struct qv_link_info *out)
{
	const char *kind = rtnl_link_get_type(l);
	struct nl_addr *a = rtnl_link_get_addr(l);

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", rtnl_link_get_name(l) ?: "");
	out->ifindex = rtnl_link_get_ifindex(l);
	snprintf(out->kind_name, sizeof(out->kind_name), "%s", kind ?: "");
	if (kind && streq(kind, "bridge"))
		out->kind = QV_LINK_BRIDGE;
	else if (kind && streq(kind, "tun"))
		out->kind = QV_LINK_TUN;
	else if (kind && streq(kind, "veth"))
		out->kind = QV_LINK_VETH;
	else
		out->kind = QV_LINK_OTHER;
	out->master = rtnl_link_get_master(l);
	out->mtu = rtnl_link_get_mtu(l);
	out->up = rtnl_link_get_flags(l) & IFF_UP;
	if (a && nl_addr_get_len(a) == 6) {
		out->has_mac = true;
		memcpy(out->mac.b, nl_addr_get_binary_addr(a), 6);
	}
}

int qv_link_lookup(qv_netlink *nl, const char *name, struct qv_link_info *ret,
		   struct qv_error *errp)
{
	_cleanup_rtnl_link_ struct rtnl_link *l = NULL;
	int r;

	r = qv_ifname_check(name, NULL, errp);
	if (r < 0)
		return r;
	r = qv_nl_get_link(nl, name, &l, errp);
	if (r < 0)
		return r;
	fill_info(l, ret);
	return 0;
}

int qv_nl_dump_links(qv_netlink *nl, size_t elem, qv_nl_link_fill_fn fill, void **ret,
		     size_t *ret_n, struct qv_error *errp)
{
	_cleanup_nl_cache_ struct nl_cache *cache = NULL;
	_cleanup_free_ char *v = NULL;
	size_t n = 0, cap;
	int r;

	qv_nl_begin(nl);
	r = rtnl_link_alloc_cache(nl->sk, AF_UNSPEC, &cache);
	if (r < 0)
		return qv_nl_error(nl, r, errp, NULL, "cannot dump links");
	cap = (size_t)nl_cache_nitems(cache);
	if (cap && !(v = calloc(cap, elem)))
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	for (struct nl_object *o = nl_cache_get_first(cache); o && n < cap;
	     o = nl_cache_get_next(o))
		fill((struct rtnl_link *)o, v + elem * n++);
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

static void fill_info_slot(struct rtnl_link *l, void *slot)
{
	fill_info(l, slot);
}

int qv_link_dump(qv_netlink *nl, struct qv_link_info **ret, size_t *ret_n,
		 struct qv_error *errp)
{
	return qv_nl_dump_links(nl, sizeof(**ret), fill_info_slot, (void **)ret, ret_n, errp);
}

static int change_error(qv_netlink *nl, int nlerr, const char *name, struct qv_error *errp,
			const char *what)
{
	int r = qv_nl_errno(nl, nlerr);

	if (r == -ENODEV)
		return qv_error_set(errp, ENODEV, QV_REASON_NOT_FOUND, "link %s does not exist",
				    name);
	return qv_nl_error(nl, nlerr, errp, NULL, "cannot %s", what);
}

int qv_link_delete(qv_netlink *nl, const char *name, struct qv_error *errp)
{
	_cleanup_rtnl_link_ struct rtnl_link *l = NULL;
	char what[64];
	int r;

	r = qv_ifname_check(name, NULL, errp);
	if (r < 0)
		return r;
	l = rtnl_link_alloc();
	if (!l)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	rtnl_link_set_name(l, name);
	qv_nl_begin(nl);
	r = rtnl_link_delete(nl->sk, l);
	if (r < 0) {
		snprintf(what, sizeof(what), "delete link %s", name);
		return change_error(nl, r, name, errp, what);
	}
	return 0;
}

int qv_link_set_mtu(qv_netlink *nl, const char *name, unsigned mtu, struct qv_error *errp)
{
	struct qv_setlink req = QV_SETLINK_INIT;
	char what[80];
	int r;

	r = qv_ifname_check(name, NULL, errp);
	if (r < 0)
		return r;
	if (mtu < 68 || mtu > 65535)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "MTU %u for %s is out of range (68..65535)", mtu, name);
	req.mtu = mtu;
	r = qv_nl_setlink(nl, name, &req);
	if (r < 0) {
		snprintf(what, sizeof(what), "set MTU %u on %s", mtu, name);
		return change_error(nl, r, name, errp, what);
	}
	return 0;
}

int qv_link_set_up(qv_netlink *nl, const char *name, bool up, struct qv_error *errp)
{
	struct qv_setlink req = QV_SETLINK_INIT;
	char what[64];
	int r;

	r = qv_ifname_check(name, NULL, errp);
	if (r < 0)
		return r;
	req.up = up;
	r = qv_nl_setlink(nl, name, &req);
	if (r < 0) {
		snprintf(what, sizeof(what), "set %s %s", name, up ? "up" : "down");
		return change_error(nl, r, name, errp, what);
	}
	return 0;
}

int qv_link_set_master(qv_netlink *nl, const char *name, const char *master,
		       struct qv_error *errp)
{
	_cleanup_rtnl_link_ struct rtnl_link *m = NULL;
	struct qv_setlink req = QV_SETLINK_INIT;
	char what[64];
	int r;

	r = qv_ifname_check(name, NULL, errp);
	if (r < 0)
		return r;
	if (master) {
		r = qv_ifname_check(master, "master name", errp);
		if (r < 0)
			return r;
		r = qv_nl_get_link(nl, master, &m, errp);
		if (r < 0)
			return r;
	}
	req.master = m ? rtnl_link_get_ifindex(m) : 0;
	r = qv_nl_setlink(nl, name, &req);
	if (r < 0) {
		snprintf(what, sizeof(what), "attach %s to %s", name, master ?: "(none)");
		return change_error(nl, r, name, errp, what);
	}
	return 0;
}
