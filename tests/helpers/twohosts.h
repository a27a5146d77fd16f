/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "helpers/qvisord.h"

/* Two "hosts" for migration tests: two network namespaces joined by a veth
 * pair (10.231.0.1/24 <-> 10.231.0.2/24), one real qvisord inside each.
 * The daemons' unix sockets live on the shared file system, so the test
 * process talks to both; QEMU's RAM stream crosses the veth over TCP. */
struct qvt_twohosts {
	pid_t ns_pid[2];
	int ns_release[2];
	char veth[2][16];
	char addr[2][16];
	struct qvt_daemon d[2]; /* d[0] source, d[1] destination */
};

/* NULL on success, else the reason to skip (not root, no netns, no daemon
 * binary). On failure after partial setup everything is undone. */
const char *qvt_twohosts_up(struct qvt_twohosts *h);
/* (Re)start daemon i inside its namespace (reuses its dirs). 0 or -errno. */
int qvt_twohosts_start_daemon(struct qvt_twohosts *h, int i);
/* Stop VMs and daemons, remove dirs, release the namespaces. */
void qvt_twohosts_down(struct qvt_twohosts *h);
/* `ip link set dev veth[i] up|down` inside namespace i. 0 or -1. */
int qvt_twohosts_link(struct qvt_twohosts *h, int i, bool up);
/* Shape veth[i]'s egress with tc tbf to rate_mibps MiB/s. 0 or -1. */
int qvt_twohosts_shape(struct qvt_twohosts *h, int i, unsigned rate_mibps);
