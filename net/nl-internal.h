/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the net module's .c files only: libnl types stay out of the public headers. */

#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "net/nl.h"

struct qv_netlink {
	struct nl_sock *sk;
	int last_errno;       /* raw errno from the last NLMSG_ERROR, 0 if none */
	char last_msg[160];   /* kernel extended-ACK message, "" if none */
};

/* Call before each request: forgets the previous kernel error. */
void qv_nl_begin(qv_netlink *nl);
/* -errno for a libnl return code, preferring the kernel's own errno. */
int qv_nl_errno(qv_netlink *nl, int nlerr);
/* Fill errp with "<what>: <strerror>[ (kernel: <extack>)]"; reason NULL
 * means derived from the errno. Returns -errno. */
int qv_nl_error(qv_netlink *nl, int nlerr, struct qv_error *errp, const char *reason,
		const char *fmt, ...) _printf_(5, 6);

/* One RTM_GETLINK dump: a calloc'd array of elem-sized slots, fill()ed
 * from each link (qv_link_dump, qv_link_stats_dump). */
typedef void (*qv_nl_link_fill_fn)(struct rtnl_link *l, void *slot);
int qv_nl_dump_links(qv_netlink *nl, size_t elem, qv_nl_link_fill_fn fill, void **ret,
		     size_t *ret_n, struct qv_error *errp);

/* RTM_GETLINK by name. 0, -ENODEV (errp: not-found "link NAME does not
 * exist"), or another -errno. */
int qv_nl_get_link(qv_netlink *nl, const char *name, struct rtnl_link **ret,
		   struct qv_error *errp);

static inline void rtnl_link_putp(struct rtnl_link **l)
{
	if (*l)
		rtnl_link_put(*l);
}
#define _cleanup_rtnl_link_ _cleanup_(rtnl_link_putp)
static inline void nl_cache_freep(struct nl_cache **c)
{
	if (*c)
		nl_cache_free(*c);
}
#define _cleanup_nl_cache_ _cleanup_(nl_cache_freep)

/* One RTM_SETLINK addressed by IFLA_IFNAME (no lookup round trip). Fields
 * left at QV_SETLINK_INIT values are not sent. Returns a libnl code. */
struct qv_setlink {
	unsigned mtu;    /* 0: unchanged */
	int master;      /* -1: unchanged, 0: nomaster, >0: ifindex */
	int up;          /* -1: unchanged, 0: down, 1: up */
	int ns_fd;       /* -1: unchanged */
	pid_t ns_pid;    /* 0: unchanged */
	uint32_t group;  /* 0: unchanged */
};
#define QV_SETLINK_INIT { .mtu = 0, .master = -1, .up = -1, .ns_fd = -1, .ns_pid = 0, .group = 0 }
int qv_nl_setlink(qv_netlink *nl, const char *name, const struct qv_setlink *req);

/* RTM_DELLINK of every link whose IFLA_GROUP is `group` (!= 0): the kernel
 * unregisters them as one batch. Returns a libnl code. */
int qv_nl_dellink_group(qv_netlink *nl, uint32_t group);
