/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Acting inside a running test guest booted with "qv.ctl=1" (see
 * docs/test-guest.md, "Control channel"): the guest reads one command per
 * line from its serial console and answers "QVISOR-CTL ID OK [value]" or
 * "QVISOR-CTL ID FAIL reason".  The test connects to the VM's serial socket
 * (vm.console's "path"; QEMU accepts one client at a time). */

typedef struct qvt_ctl qvt_ctl;

/* Connect to the serial socket and wait until the guest answers a ping
 * (the guest may still be booting).  NULL on timeout or connect failure. */
qvt_ctl *qvt_ctl_open(const char *serial_sock, int timeout_ms);

/* Send one command ("blkwrite /dev/vda 8 4 seedA", "blkread /dev/vda 8 4",
 * "sync", "dirty 20 32:random", "undirty", "ping") and wait for its answer.
 * 0 with the value (may be empty) copied to ret_value; -EIO when the guest
 * answered FAIL (reason in ret_value); -ETIMEDOUT; -ECONNRESET when the
 * socket closed. */
int qvt_ctl_cmd(qvt_ctl *c, const char *cmd, int timeout_ms, char *ret_value,
		size_t value_len);

qvt_ctl *qvt_ctl_close(qvt_ctl *c);
