/* SPDX-License-Identifier: MIT */
#pragma once

#include <net/if.h>

#include "common/error.h"
#include "net/mac.h"
#include "net/nl.h"

enum qv_link_kind {
	QV_LINK_OTHER = 0,
	QV_LINK_BRIDGE,
	QV_LINK_TUN, /* TUN or TAP (kernel kind "tun") */
	QV_LINK_VETH,
};

/* A snapshot of one link, for reconciliation and checks. */
struct qv_link_info {
	char name[IFNAMSIZ];
	int ifindex;
	enum qv_link_kind kind;
	char kind_name[16]; /* the kernel's IFLA_INFO_KIND, "" if none (e.g. lo) */
	int master;         /* ifindex of the master (bridge), 0 if none */
	unsigned mtu;
	bool up;            /* IFF_UP (administratively up) */
	bool has_mac;
	struct qv_mac mac;
};

const char *qv_link_kind_to_string(enum qv_link_kind kind);

/* 0; -ENODEV with errp "not-found" when absent; -errno otherwise. */
int qv_link_lookup(qv_netlink *nl, const char *name, struct qv_link_info *ret,
		   struct qv_error *errp);
/* All links of the current netns; *ret is malloc'd (free()), may be NULL
 * when *ret_n is 0. */
int qv_link_dump(qv_netlink *nl, struct qv_link_info **ret, size_t *ret_n,
		 struct qv_error *errp);

/* Generic link actions (any kind). Deleting a missing link gives -ENODEV,
 * reason "not-found". */
int qv_link_delete(qv_netlink *nl, const char *name, struct qv_error *errp);
int qv_link_set_mtu(qv_netlink *nl, const char *name, unsigned mtu, struct qv_error *errp);
int qv_link_set_up(qv_netlink *nl, const char *name, bool up, struct qv_error *errp);
/* master NULL detaches ("nomaster"). */
int qv_link_set_master(qv_netlink *nl, const char *name, const char *master,
		       struct qv_error *errp);

/* Traffic counters of one link, as the kernel counts them on the host side
 * (for a TAP, rx is what the guest sent). */
struct qv_link_stats {
	char name[IFNAMSIZ];
	int ifindex;
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets, rx_dropped, tx_dropped;
};
/* Counters of every link of the current netns in one RTM_GETLINK dump
 * (net/link-stats.c); *ret is malloc'd (free()), NULL when *ret_n is 0. */
int qv_link_stats_dump(qv_netlink *nl, struct qv_link_stats **ret, size_t *ret_n,
		       struct qv_error *errp);
