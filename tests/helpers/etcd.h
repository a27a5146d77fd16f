/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* A real etcd member for a test (Debian etcd-server 3.4): private data dir
 * under /tmp/qve-XXXXXX, its log there, ports chosen free on the host
 * address, optionally inside another network namespace and with mutual
 * TLS (the qvisor PKI: server-cert.pem for clients, client certificate
 * required, CA ca-cert.pem). Peers talk plain HTTP (test only). */
struct qvt_etcd {
	pid_t pid;
	char dir[64];
	char name[32];
	char client_url[96];
	char peer_url[96];
	char log[128];
};

struct qvt_etcd_opts {
	const char *name;            /* default "e0" */
	const char *host;            /* default 127.0.0.1 */
	int client_port, peer_port;  /* 0: a free port (host namespace only) */
	const char *pki_dir;         /* NULL: plain http */
	const char *initial_cluster; /* "n=http://h:p,..."; NULL: just this one */
	pid_t netns_pid;             /* 0: ours */
	const char *token;           /* --initial-cluster-token: the same for
				      * every member; NULL: the data dir's name */
};

/* /usr/bin/etcd present? else NULL-terminated reason for cr_skip_test. */
const char *qvt_etcd_missing(void);
/* Start it (does not wait). 0 or -errno. */
int qvt_etcd_start(struct qvt_etcd *e, const struct qvt_etcd_opts *o);
/* Restart a stopped member with its old data dir and flags. */
int qvt_etcd_restart(struct qvt_etcd *e);
/* Poll a range on client_url (with pki_dir's client cert) until it answers:
 * 0, or -ETIMEDOUT. Works from our namespace only when the member is
 * reachable from it; netns_pid runs the probe there. */
int qvt_etcd_wait(const struct qvt_etcd *e, const char *pki_dir, int timeout_ms);
/* SIGKILL and reap (keeps the data dir). */
void qvt_etcd_kill(struct qvt_etcd *e);
/* Kill, remove the data dir (kept if $QVT_KEEP), reset *e. */
void qvt_etcd_cleanup(struct qvt_etcd *e);
/* A free TCP port on 127.0.0.1 (bound and released). */
int qvt_free_port(void);
