/* SPDX-License-Identifier: MIT */
#pragma once

#include <net/if.h>

#include "common/error.h"
#include "net/nl.h"

/* TAP devices for QEMU NICs.
 *
 * Lifetime: qv_tap_create() opens /dev/net/tun (O_CLOEXEC) and binds a TAP
 * with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR. Unless QV_TAP_PERSIST is given the
 * device is NOT persistent: it exists while at least one fd is attached and
 * the kernel removes it when the last one closes. The daemon keeps its fd
 * until QEMU has been spawned with a dup of it (-netdev tap,fd=N); from then
 * on QEMU's copy keeps the TAP alive, so a daemon restart does not take a
 * running VM's network down and a dead QEMU leaves no stale TAP behind. The
 * daemon may close its own copy right after the spawn, or keep it to hold the
 * name across a QEMU restart. See docs/networking.md. */

#define QV_TAP_PERSIST (1u << 0) /* TUNSETPERSIST: survive the last close */

/* name NULL or "" lets the kernel choose ("tap%d"); a name containing "%d"
 * is a template. On success *ret_fd is the queue fd and ret_name (may be
 * NULL) receives the actual name. -EEXIST "conflict" if a non-TAP link has
 * that name, -EBUSY "conflict" if the TAP is already attached elsewhere. */
int qv_tap_create(const char *name, unsigned flags, int *ret_fd, char *ret_name,
		  struct qv_error *errp);

/* One RTM_NEWLINK: master = bridge, MTU = the bridge's MTU, IFF_UP. The
 * bridge must exist and be a bridge ("not-found" / "conflict"). */
int qv_tap_attach(qv_netlink *nl, const char *tap, const char *bridge, struct qv_error *errp);

/* Delete a TAP by name (even while fds are open: they then see EBADFD/EIO).
 * -ENODEV "not-found"; -EEXIST "conflict" if `name` is not a tun/tap. */
int qv_tap_delete(qv_netlink *nl, const char *name, struct qv_error *errp);

/* Delete many TAPs as one kernel batch (teardown of a VM or a network):
 * every name must be a TAP (else -EEXIST "conflict" and nothing is deleted);
 * names already gone are skipped. The links are tagged with a free link
 * group and removed with one RTM_DELLINK, so the kernel pays its RCU grace
 * period once instead of once per device (~20 ms each here). Falls back to
 * one-by-one deletion if the kernel refuses group deletion. */
int qv_tap_delete_many(qv_netlink *nl, const char *const *names, size_t n,
		       struct qv_error *errp);

int qv_tap_set_mtu(qv_netlink *nl, const char *name, unsigned mtu, struct qv_error *errp);
