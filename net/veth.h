/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

#include "common/error.h"
#include "net/nl.h"

/* Create a veth pair name <-> peer in the current netns. -EEXIST "conflict"
 * if either name is taken. */
int qv_veth_create(qv_netlink *nl, const char *name, const char *peer, struct qv_error *errp);
/* Delete one end (the kernel removes both). -ENODEV "not-found";
 * -EEXIST "conflict" if `name` is not a veth. */
int qv_veth_delete(qv_netlink *nl, const char *name, struct qv_error *errp);

/* Move link `name` into another network namespace: that of process `pid`,
 * the one `nsfd` refers to, or the named netns /var/run/netns/NSNAME. */
int qv_link_move_to_netns_pid(qv_netlink *nl, const char *name, pid_t pid,
			      struct qv_error *errp);
int qv_link_move_to_netns_fd(qv_netlink *nl, const char *name, int nsfd,
			     struct qv_error *errp);
int qv_link_move_to_netns_named(qv_netlink *nl, const char *name, const char *nsname,
				struct qv_error *errp);
