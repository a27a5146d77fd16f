/* SPDX-License-Identifier: MIT */
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>

#include "net/bridge.h"
#include "net/ifname.h"
#include "net/link.h"
#include "net/nl-internal.h"

static int not_a_bridge(const char *name, const char *kind, struct qv_error *errp)
{
	return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
			    "bridge %s exists and is not a bridge (kind %s)", name,
			    kind && *kind ? kind : "none");
}

/* 0 if `name` is an existing bridge, -ENODEV if absent (errp untouched),
 * -EEXIST conflict if it is something else. */
static int check_bridge(qv_netlink *nl, const char *name, struct qv_link_info *ret,
			struct qv_error *errp)
{
	struct qv_error local = {};
	int r;

	r = qv_link_lookup(nl, name, ret, &local);
	if (r == -ENODEV)
		return r;
	if (r < 0) {
		if (errp && !errp->set)
			*errp = local;
		return r;
	}
	if (ret->kind != QV_LINK_BRIDGE)
		return not_a_bridge(name, ret->kind_name, errp);
	return 0;
}

int qv_bridge_create(qv_netlink *nl, const char *name, struct qv_error *errp)
{
	struct qv_link_info info;
	int r;

	r = qv_ifname_check(name, "bridge name", errp);
	if (r < 0)
		return r;
	r = check_bridge(nl, name, &info, errp);
	if (r != -ENODEV)
		return r; /* 0: already a bridge; or conflict/error */
	qv_nl_begin(nl);
	r = rtnl_link_bridge_add(nl->sk, name);
	if (r < 0) {
		if (qv_nl_errno(nl, r) == -EEXIST) {
			/* Lost a race: someone created it meanwhile. Re-check its kind. */
			r = check_bridge(nl, name, &info, errp);
			if (r == -ENODEV)
				return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
						    "bridge %s: name taken and released concurrently", name);
			return r;
		}
		return qv_nl_error(nl, r, errp, NULL, "cannot create bridge %s", name);
	}
	return 0;
}

static int require_bridge(qv_netlink *nl, const char *name, struct qv_link_info *info,
			  struct qv_error *errp)
{
	int r;

	r = qv_ifname_check(name, "bridge name", errp);
	if (r < 0)
		return r;
	r = check_bridge(nl, name, info, errp);
	if (r == -ENODEV)
		return qv_error_set(errp, ENODEV, QV_REASON_NOT_FOUND, "bridge %s does not exist",
				    name);
	return r;
}

int qv_bridge_delete(qv_netlink *nl, const char *name, struct qv_error *errp)
{
	struct qv_link_info info;
	int r;

	r = require_bridge(nl, name, &info, errp);
	if (r < 0)
		return r;
	return qv_link_delete(nl, name, errp);
}

int qv_bridge_set_mtu(qv_netlink *nl, const char *name, unsigned mtu, struct qv_error *errp)
{
	struct qv_link_info info;
	int r;

	r = require_bridge(nl, name, &info, errp);
	if (r < 0)
		return r;
	return qv_link_set_mtu(nl, name, mtu, errp);
}

int qv_bridge_set_up(qv_netlink *nl, const char *name, bool up, struct qv_error *errp)
{
	struct qv_link_info info;
	int r;

	r = require_bridge(nl, name, &info, errp);
	if (r < 0)
		return r;
	return qv_link_set_up(nl, name, up, errp);
}

int qv_bridge_get_mtu(qv_netlink *nl, const char *name, unsigned *ret_mtu,
		      struct qv_error *errp)
{
	struct qv_link_info info;
	int r;

	r = require_bridge(nl, name, &info, errp);
	if (r < 0)
		return r;
	*ret_mtu = info.mtu;
	return 0;
}
