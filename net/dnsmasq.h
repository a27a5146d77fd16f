/* SPDX-License-Identifier: MIT */
#pragma once

#include <netinet/in.h>
#include <sys/types.h>

#include "common/error.h"
#include "net/mac.h"

/* One supervised dnsmasq (DHCP, optionally DNS) per network, libvirt-style:
 * a generated config file in a per-network run dir, started with
 * --conf-file=RUN/dnsmasq.conf --keep-in-foreground, fork/exec without a
 * shell in its own session (so a daemon restart does not kill it), stdout
 * and stderr appended to RUN/dnsmasq.log. Files in run_dir:
 *   dnsmasq.conf  dnsmasq.pid  leases  dnsmasq.log */
typedef struct qv_dnsmasq qv_dnsmasq;

struct qv_dnsmasq_config {
	const char *network;     /* name for messages, e.g. "lab" */
	const char *bridge;      /* interface to serve (must exist, have an address) */
	const char *run_dir;     /* absolute; created (0755) if missing */
	const char *range_start; /* e.g. "10.77.0.100" */
	const char *range_end;   /* e.g. "10.77.0.200" (same family) */
	const char *lease_time;  /* NULL: "12h"; else digits + optional s/m/h/d, or "infinite" */
	const char *binary;      /* NULL: /usr/sbin/dnsmasq */
	bool dns;                /* false: port=0 (DHCP only) */
	unsigned start_timeout_ms; /* 0: 5000 */
};

/* Validate, write the config, spawn and wait until dnsmasq has written its
 * pid file (sockets bound) or died. On early death errp carries the last
 * line dnsmasq printed (reason "unavailable"). */
int qv_dnsmasq_start(const struct qv_dnsmasq_config *cfg, qv_dnsmasq **ret,
		     struct qv_error *errp);
/* SIGTERM, wait up to timeout_ms (0: 3000), then SIGKILL; reaps. 0 if it was
 * already gone. The handle stays valid (restart or free it). */
int qv_dnsmasq_stop(qv_dnsmasq *d, unsigned timeout_ms);
/* Stop if running, then start again with the same config. */
int qv_dnsmasq_restart(qv_dnsmasq *d, struct qv_error *errp);
/* Frees the handle only; a still-running dnsmasq keeps running. */
qv_dnsmasq *qv_dnsmasq_free(qv_dnsmasq *d);
static inline void qv_dnsmasq_freep(qv_dnsmasq **d)
{
	if (*d)
		qv_dnsmasq_free(*d);
}

pid_t qv_dnsmasq_pid(const qv_dnsmasq *d);
/* pidfd (readable when dnsmasq exits), for the daemon's event loop; -1 if
 * not running. Owned by the handle. */
int qv_dnsmasq_pidfd(const qv_dnsmasq *d);
/* Reap without blocking. true while running; after exit false and
 * *ret_status (if non-NULL) is the wait status. */
bool qv_dnsmasq_running(qv_dnsmasq *d, int *ret_status);
const char *qv_dnsmasq_leases_path(const qv_dnsmasq *d);

struct qv_lease {
	struct qv_mac mac;
	char ip[INET6_ADDRSTRLEN];
	char hostname[64]; /* "" if the client sent none */
	int64_t expiry;    /* unix time; 0 = infinite */
};

/* Parse a dnsmasq leases file. A missing file is 0 leases. *ret is
 * malloc'd (may be NULL when *ret_n is 0). DHCPv6 lines are skipped. */
int qv_dnsmasq_read_leases(const char *path, struct qv_lease **ret, size_t *ret_n,
			   struct qv_error *errp);
