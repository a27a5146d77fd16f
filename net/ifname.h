/* SPDX-License-Identifier: MIT */
#pragma once

#include <net/if.h>

#include "common/error.h"

/* Interface-name grammar: 1..15 bytes of [A-Za-z0-9_.-], not "." or ".."
 * (a subset of the kernel's dev_valid_name(): names reach dnsmasq's argv,
 * where a ',' would be parsed as a second interface). */
#define QV_IFNAME_MAX (IFNAMSIZ - 1)

bool qv_ifname_valid(const char *name);

/* 0, or -EINVAL with errp filled ("invalid-argument"). `what` names the field
 * in the message ("bridge name"); NULL means "interface name". */
int qv_ifname_check(const char *name, const char *what, struct qv_error *errp);

/* The TAP naming scheme: "qv" + 8 hex digits of a 32-bit FNV-1a hash of
 * vm_id + "n" + NIC index, e.g. "qv1a2b3c4dn0" (at most 15 bytes for
 * idx <= 9999). Returns 0 or -EINVAL (idx > 9999 or vm_id NULL/empty). */
int qv_ifname_tap(const char *vm_id, unsigned idx, char ret[IFNAMSIZ]);
