/* SPDX-License-Identifier: MIT */
/* Per-link traffic counters for the collector: one netlink dump. */
#include <netlink/route/link.h>

#include "net/link.h"
#include "net/nl-internal.h"

static void fill_stats(struct rtnl_link *l, void *slot)
{
	struct qv_link_stats *s = slot;

	snprintf(s->name, sizeof(s->name), "%s", rtnl_link_get_name(l) ?: "");
	s->ifindex = rtnl_link_get_ifindex(l);
	s->rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES);
	s->tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES);
	s->rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
	s->tx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS);
	s->rx_dropped = rtnl_link_get_stat(l, RTNL_LINK_RX_DROPPED);
	s->tx_dropped = rtnl_link_get_stat(l, RTNL_LINK_TX_DROPPED);
}

int qv_link_stats_dump(qv_netlink *nl, struct qv_link_stats **ret, size_t *ret_n,
		       struct qv_error *errp)
{
	*ret = NULL, *ret_n = 0;
	return qv_nl_dump_links(nl, sizeof(**ret), fill_stats, (void **)ret, ret_n, errp);
}
