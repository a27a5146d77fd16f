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
/* (Re)start daemon i inside its namespace (reuses its dirs), with
 * --metrics-listen 127.0.0.1:QVT_TWOHOSTS_METRICS_PORT in that namespace
 * unless d[i].extra_args is set (qvt_http_get_netns(ns_pid[i], ...)).
 * 0 or -errno. */
#define QVT_TWOHOSTS_METRICS_PORT "9464"
int qvt_twohosts_start_daemon(struct qvt_twohosts *h, int i);
/* Stop VMs and daemons, remove dirs, release the namespaces. */
void qvt_twohosts_down(struct qvt_twohosts *h);
/* `ip link set dev veth[i] up|down` inside namespace i. 0 or -1. */
int qvt_twohosts_link(struct qvt_twohosts *h, int i, bool up);
/* Shape veth[i]'s egress with tc tbf to rate_mibps MiB/s. 0 or -1. */
int qvt_twohosts_shape(struct qvt_twohosts *h, int i, unsigned rate_mibps);
/* After migrate.finish of a dirtier guest (qvt_start_dirtier_guest) from
 * d[0] to d[1]: migrate.confirm on d[0], then assert the source definition
 * and its QEMU (src_pid) are gone and the guest runs and prints on d[1]. */
void qvt_twohosts_confirm_moved(struct qvt_twohosts *h, const char *name, int src_pid);
/* Wait up to timeout_ms for a "dirtier:" line in name's serial log on d[i].
 * 0 when it came; otherwise -ETIMEDOUT after printing to stderr what tells
 * a stopped guest from a silent one: the daemon's state of the VM, its
 * QEMU's CPU time over 3 s, and the ends of the serial, QEMU and daemon
 * logs. */
int qvt_twohosts_wait_dirtier(struct qvt_twohosts *h, int i, const char *name, int timeout_ms);

/* SIGKILL every process (QEMU left by a killed daemon, etcd) in nspid's
 * network namespace. */
void qvt_kill_netns_processes(pid_t nspid);

/* The suite fixture, one pair per test process (Criterion forks each test):
 * TestSuite(x, .init = qvt_twohosts_setup, .fini = qvt_twohosts_teardown).
 * setup brings qvt_hosts up when the test guest exists and sets
 * qvt_hosts_up (else prints the reason on stderr); QVT_REQUIRE_HOSTS()
 * skips a test when they are not up. */
extern struct qvt_twohosts qvt_hosts;
extern bool qvt_hosts_up;
void qvt_twohosts_setup(void);
void qvt_twohosts_teardown(void);
#define QVT_REQUIRE_HOSTS()                                                             \
	do {                                                                            \
		QVT_REQUIRE_GUEST();                                                    \
		if (!qvt_hosts_up)                                                      \
			cr_skip_test("two hosts (root, netns, veth, qvisord) unavailable"); \
	} while (0)
