/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"
#include "net/nl.h"

/* Add "10.77.0.1/24" or "fd00:77::1/64" to link `ifname` (prefix length
 * required). An address that is already present gives -EEXIST "conflict". */
int qv_addr_add(qv_netlink *nl, const char *ifname, const char *cidr, struct qv_error *errp);
/* Remove every address of `family` (AF_INET, AF_INET6 or AF_UNSPEC for
 * both) from the link. IPv6 link-local addresses (fe80::/10) are kept. */
int qv_addr_flush(qv_netlink *nl, const char *ifname, int family, struct qv_error *errp);
