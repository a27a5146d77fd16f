/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by daemon/fw.c and daemon/methods-fw.c. */

#include <net/if.h>

#include "common/loop.h"
#include "daemon/fw.h"
#include "net/fw.h"

struct fw_group {
	struct fw_group *next;
	char *name;
	struct vm_fw_rule *rules;
	size_t n_rules;
};

/* A NIC whose chains are installed. */
struct fw_nic {
	char vm[VM_NAME_MAX + 1];
	char tap[IFNAMSIZ];
	unsigned idx;         /* spec NIC index (boot NICs) */
	bool hot;             /* hot-plugged: default filtering, mac/network below */
	char mac[18];
	char network[VM_NAME_MAX + 1];
	char learned[16];     /* DHCP-leased IPv4, "" if none */
	char *undo;           /* removes its elements of the shared sets (qv_fw_emit_nic_undo
			       * of what is installed); NULL before the first emission */
};

struct qv_fwd {
	struct qv_daemon *d;
	qv_nft *nft;
	struct qv_fw_opts opts;
	struct fw_group *groups;
	struct fw_nic *nics;
	size_t n_nics;
	bool table_up;        /* the table exists (some NIC is installed) */
	qv_source *lease_timer;
};

/* d->fw_state, created on first use. NULL + errp when libnftables fails. */
struct qv_fwd *qv_fwd_get(struct qv_daemon *d, struct qv_error *errp);
struct fw_group *qv_fwd_group(struct qv_fwd *f, const char *name);
/* {name, rules} -> group (validated with the spec's rule grammar). */
int qv_fwd_group_parse(json_object *spec, struct fw_group **ret, struct qv_error *errp);
json_object *qv_fwd_group_json(const struct fw_group *g);
void qv_fwd_group_free(struct fw_group *g);
int qv_fwd_resync(struct qv_fwd *f, struct qv_error *errp);
int qv_fwd_apply(struct qv_fwd *f, const qv_fw_batch *b, struct qv_error *errp);
void qv_fwd_lease_watch(struct qv_fwd *f);
/* daemon/fw-lease.c: the lease dnsmasq gave mac on network ("" if none);
 * whether network serves DHCP; where an installed NIC's MAC, network and
 * rules come from (the spec, or the record of a hot-plugged NIC). */
void qv_fwd_lease_of(struct qv_daemon *d, const char *network, const char *mac, char ret[16]);
bool qv_fwd_net_has_dhcp(struct qv_daemon *d, const char *network);
int qv_fwd_nic_source(struct qv_fwd *f, const struct fw_nic *in, const char **ret_mac,
		      const char **ret_network, const struct vm_fw **ret_fw);
/* Emit installed NIC x (chains, rule maps; its shared-set elements only
 * when they changed) and keep its new undo. */
int qv_fwd_emit_installed(struct qv_fwd *f, struct fw_nic *x, qv_fw_batch *b,
			  struct qv_error *errp);
/* Refill the chains of vm's spec NIC idx if it is installed (one
 * transaction); 0 when it is not running. */
int qv_fwd_nic_refresh(struct qv_fwd *f, struct qv_vm *vm, size_t idx, struct qv_error *errp);
