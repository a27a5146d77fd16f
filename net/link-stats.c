/* SPDX-License-Identifier: MIT */
/* Per-link traffic counters for the collector: one netlink dump. */
#include <netlink/route/link.h>

#include "net/link.h"
#include "net/nl-internal.h"

int qv_link_stats_dump(qv_netlink *nl, struct qv_link_stats **ret, size_t *ret_n,
		       struct qv_error *errp)
{
	_cleanup_nl_cache_ struct nl_cache *cache = NULL;
	_cleanup_free_ struct qv_link_stats *v = NULL;
	size_t n = 0, cap;
	int r;

	*ret = NULL, *ret_n = 0;
	qv_nl_begin(nl);
	r = rtnl_link_alloc_cache(nl->sk, AF_UNSPEC, &cache);
	if (r < 0)
		return qv_nl_error(nl, r, errp, NULL, "cannot dump links");
	cap = (size_t)nl_cache_nitems(cache);
	if (cap && !(v = calloc(cap, sizeof(*v))))
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	for (struct nl_object *o = nl_cache_get_first(cache); o && n < cap;
	     o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		struct qv_link_stats *s = &v[n++];
		snprintf(s->name, sizeof(s->name), "%s", rtnl_link_get_name(l) ?: "");
		s->ifindex = rtnl_link_get_ifindex(l);
		s->rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES);
		s->tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES);
		s->rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
		s->tx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS);
		s->rx_dropped = rtnl_link_get_stat(l, RTNL_LINK_RX_DROPPED);
		s->tx_dropped = rtnl_link_get_stat(l, RTNL_LINK_TX_DROPPED);
	}
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}
