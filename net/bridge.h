/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"
#include "net/nl.h"

/* Create bridge `name`. Idempotent: an existing bridge of that name is fine
 * (0). An existing link of another kind gives -EEXIST, reason "conflict",
 * "bridge NAME exists and is not a bridge", and that link is not touched. */
int qv_bridge_create(qv_netlink *nl, const char *name, struct qv_error *errp);
/* -ENODEV "not-found" if absent; -EEXIST "conflict" if `name` is not a
 * bridge (it is left alone). Ports are released by the kernel, not deleted. */
int qv_bridge_delete(qv_netlink *nl, const char *name, struct qv_error *errp);
int qv_bridge_set_mtu(qv_netlink *nl, const char *name, unsigned mtu, struct qv_error *errp);
int qv_bridge_set_up(qv_netlink *nl, const char *name, bool up, struct qv_error *errp);
/* 0 and *ret_mtu, or -ENODEV / -EEXIST (not a bridge) as above. */
int qv_bridge_get_mtu(qv_netlink *nl, const char *name, unsigned *ret_mtu,
		      struct qv_error *errp);
