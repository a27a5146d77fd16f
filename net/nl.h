/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"

/* One rtnetlink context per daemon: a connected NETLINK_ROUTE socket (libnl)
 * with extended-ACK enabled, so kernel error strings reach the user. Not
 * thread-safe; use it from the daemon's loop thread. Every net/ call takes it
 * and returns 0/-errno, filling errp with a readable message on failure. */
typedef struct qv_netlink qv_netlink;

int qv_netlink_open(qv_netlink **ret, struct qv_error *errp);
qv_netlink *qv_netlink_free(qv_netlink *nl);
static inline void qv_netlink_freep(qv_netlink **nl)
{
	if (*nl)
		qv_netlink_free(*nl);
}
#define _cleanup_netlink_ _cleanup_(qv_netlink_freep)

/* Map a libnl error code (negative NLE_*) to -errno. */
int qv_nlerr_to_errno(int nlerr);
