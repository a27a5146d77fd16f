/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's network registry (d->net_state): defined networks (bridge,
 * address, MTU, supervised dnsmasq) and the one rtnetlink socket the daemon
 * uses. Shared by daemon/netreg.c (networks, reconciliation),
 * daemon/vm-nics.c (TAPs of VMs, hotplug) and daemon/methods-net.c (RPC). */

#include <net/if.h>

#include "common/loop.h"
#include "daemon/daemon.h"
#include "daemon/vm.h"
#include "net/dnsmasq.h"
#include "net/nl.h"

struct qv_network {
	struct qv_network *next;
	struct qv_netreg *reg;
	char *name;
	char bridge[IFNAMSIZ];
	char *address;      /* "10.0.0.1/24" or NULL */
	unsigned mtu;       /* 0: kernel default */
	char *dhcp_start;   /* both NULL when no DHCP */
	char *dhcp_end;
	char *run_dir;      /* <run_dir>/net/<name> */
	qv_dnsmasq *dnsmasq;
	qv_source *dnsmasq_watch;
	qv_source *dnsmasq_retry;
	char last_error[256]; /* last setup failure ("" if none) */
};

struct qv_netreg {
	struct qv_daemon *d;
	qv_netlink *nl;
	struct qv_network *nets;
};

/* d->net_state, created on first use (opens netlink). NULL + errp on failure. */
struct qv_netreg *qv_netreg_get(struct qv_daemon *d, struct qv_error *errp);
struct qv_network *qv_network_find(struct qv_daemon *d, const char *name);

/* Parse and strictly validate a network spec into a detached network (not
 * registered, nothing created). */
int qv_network_parse(json_object *spec, struct qv_network **ret, struct qv_error *errp);
struct qv_network *qv_network_free(struct qv_network *net);
json_object *qv_network_spec_json(const struct qv_network *net);

/* net.define: validate, persist, create the bridge, address, dnsmasq. On
 * failure nothing is left (row, bridge, dnsmasq). Takes net. */
int qv_network_define(struct qv_daemon *d, struct qv_network *net, struct qv_error *errp);
/* net.undefine: refuses a network used by a defined VM ("conflict"). */
int qv_network_undefine(struct qv_daemon *d, const char *name, struct qv_error *errp);
json_object *qv_network_json(struct qv_daemon *d, struct qv_network *net, bool detail);

/* Names of defined VMs with a NIC on network `name` (spec NICs, and
 * hot-plugged NICs of running VMs), comma separated; NULL if none. */
char *qv_network_users(struct qv_daemon *d, const char *name);

/* --- NICs (daemon/vm-nics.c) ----------------------------------------------- */

/* Deterministic TAP name of NIC `idx` of vm (qv_ifname_tap(uuid, idx)). */
int qv_vm_tap_name(const struct qv_vm *vm, unsigned idx, char ret[IFNAMSIZ]);
/* Bridge for a NIC given by network or direct bridge: the network must be
 * defined ("not-found"); a direct bridge must exist and be a bridge. */
int qv_nic_resolve_bridge(struct qv_daemon *d, const char *network, const char *bridge,
			  char ret[IFNAMSIZ], struct qv_error *errp);
/* Refuse a MAC used by another NIC: spec NICs of every defined VM other
 * than `self` (NULL: all), and hot-plugged NICs of running VMs. */
int qv_nic_check_mac(struct qv_daemon *d, const struct qv_vm *self, const char *mac,
		     struct qv_error *errp);
/* Spec-level check usable at vm.define time: networks exist, bridges valid,
 * MACs unique. self is the VM being (re)defined or NULL. */
int qv_net_check_spec(struct qv_daemon *d, const struct vm_spec *spec, const struct qv_vm *self,
		      struct qv_error *errp);
/* Free vm->nic_state without touching any TAP (for vm_free() at daemon
 * exit, where running VMs keep their TAPs). */
void qv_vm_nics_forget(struct qv_vm *vm);
/* true if a TAP name belongs to vm (same "qvXXXXXXXX" prefix). */
bool qv_vm_owns_tap(const struct qv_vm *vm, const char *tap);
/* Hot-plugged NICs of a running VM (runtime only), as JSON, for info. */
json_object *qv_vm_nics_json(struct qv_vm *vm);

/* vm.nic-add / vm.nic-remove / vm.nic-list handlers (userdata: daemon). */
int qv_m_vm_nic_add(qv_rpc_call *call, json_object *params, void *ud);
int qv_m_vm_nic_remove(qv_rpc_call *call, json_object *params, void *ud);
int qv_m_vm_nic_list(qv_rpc_call *call, json_object *params, void *ud);

/* Reconcile qv* TAPs at start: delete those of VMs without QEMU. */
void qv_net_reconcile_taps(struct qv_daemon *d);
/* A VM re-attached after a daemon restart: re-adopt its hot-plugged NICs
 * from QEMU and netlink (skipped at reconciliation while it was attaching)
 * and put them under the firewall. */
void qv_vm_nics_adopt_after_attach(struct qv_vm *vm);
