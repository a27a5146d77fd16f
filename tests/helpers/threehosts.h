/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "helpers/etcd.h"
#include "helpers/qvisord.h"

/* A three-host cluster for tests: three network namespaces joined by a
 * bridge (in a fourth namespace; 10.233.0.1-3/24), one PKI (a CA and a
 * certificate per host), in each host a member of one 3-member etcd
 * cluster (https on ADDR:2379, mutual TLS; peers on ADDR:2380) and one
 * qvisord (--listen tls://ADDR:16515, --cluster-host hN, labels
 * zone=zN, --cluster-ttl 3). The daemons' unix sockets are on the shared
 * file system, so the test talks to each of them. */
#define QVT_NHOSTS 3
#define QVT_CLUSTER_TTL "3"

struct qvt_threehosts {
	pid_t br_pid;
	int br_release;
	pid_t ns_pid[QVT_NHOSTS];
	int ns_release[QVT_NHOSTS];
	char addr[QVT_NHOSTS][16];
	char name[QVT_NHOSTS][8];
	char zone[QVT_NHOSTS][16];
	char pki_root[64];           /* CA; per host pki_root/hN */
	char endpoints[256];
	char listen_addr[QVT_NHOSTS][32];
	struct qvt_etcd etcd[QVT_NHOSTS];
	struct qvt_daemon d[QVT_NHOSTS];
	/* Set before qvt_threehosts_up() (or given to qvt_threehosts_up_args()):
	 * more qvisord options for every host (NULL-terminated), e.g.
	 * "--cluster-fence-timeout", "2". */
	const char *more_args[12];
};

/* NULL on success, else the reason to skip. Waits until d[0] lists all
 * three hosts. On failure after partial setup everything is undone. */
const char *qvt_threehosts_up(struct qvt_threehosts *h);
/* The same with more qvisord options for every daemon (NULL-terminated,
 * at most 11; the strings must outlive h). */
const char *qvt_threehosts_up_args(struct qvt_threehosts *h, const char *const *more);
/* (Re)start daemon i in its namespace (reuses its dirs). 0 or -errno. */
int qvt_threehosts_start_daemon(struct qvt_threehosts *h, int i);
void qvt_threehosts_down(struct qvt_threehosts *h);
/* cluster.hosts on d[via]: the number of live hosts, -1 on error. */
int qvt_cluster_nhosts(struct qvt_threehosts *h, int via);
/* Index of the host named name (h->name[i]), -1 if none. */
int qvt_threehosts_index(const struct qvt_threehosts *h, const char *name);
/* cluster.vms on d[via]: the owner of VM name into owner ("" if none). */
int qvt_cluster_owner(struct qvt_threehosts *h, int via, const char *name, char *owner,
		      size_t size);
/* A suite's .init: true when the test guest and the three hosts are up
 * (more: further qvisord options for every host, NULL-terminated, or
 * NULL); false (why printed after tag) and the tests skip. */
bool qvt_threehosts_fixture_up(struct qvt_threehosts *h, const char *tag, const char *const *more);
