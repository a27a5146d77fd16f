/* SPDX-License-Identifier: MIT */
#pragma once

/* vm->nic_state, shared by daemon/vm-nics.c and daemon/vm-nics-hotplug.c. */

#include <net/if.h>

#include "daemon/netreg.h"
#include "net/link.h"
#include "qemu/argv.h"

/* Hot-plugged NICs get ids net<HP_IDX_BASE + slot>, so they never collide
 * with boot NICs (net0..net7). */
#define HP_IDX_BASE 100
#define HP_SLOTS 8

struct hp_nic {
	bool used;
	unsigned idx;            /* netdev "net<idx>", device "net<idx>-dev", TAP index */
	int port;                /* q35: hotplug port hp<port>; -1 on pc */
	char tap[IFNAMSIZ];
	char mac[18];
	char *network;           /* NULL for a direct bridge */
	char bridge[IFNAMSIZ];
	bool removing;
	bool plugging;           /* vm_nic_plug_async in flight: slot and port reserved */
};

struct vm_nics {
	int *fds;                /* the daemon's TAP fds until QEMU has its copies */
	size_t n_fds;
	char (*taps)[IFNAMSIZ];  /* boot NIC TAP names */
	size_t n_taps;
	struct hp_nic hp[HP_SLOTS];
};

/* vm->nic_state, allocated on demand (NULL on ENOMEM). */
struct vm_nics *vm_nics_get(struct qv_vm *vm);
void vm_nics_free(struct qv_vm *vm);
bool vm_is_q35(const struct qv_vm *vm);
/* Create TAP idx of vm on bridge; *ret_fd is the queue fd. Nothing left on
 * failure. */
int vm_tap_open(struct qv_vm *vm, unsigned idx, const char *bridge, int *ret_fd,
		char ret_name[IFNAMSIZ], struct qv_error *errp);
/* After a daemon restart: tap (one of links[0..n)) belongs to active vm and
 * has a hot-plug index; rebuild its record from QEMU (MAC, port) and
 * netlink (bridge, network), or finish a removal the guest had completed. */
void vm_nics_adopt_hotplugged(struct qv_vm *vm, const struct qv_link_info *tap,
			      const struct qv_link_info *links, size_t n);

/* daemon/vm-nics-plug.c: plug h (its idx, mac, port, tap and bridge filled)
 * into vm's QEMU asynchronously and answer call; takes fd. The slot is
 * reserved until then and released on failure. */
void vm_nic_plug_async(struct qv_vm *vm, struct hp_nic *h, int fd, qv_rpc_call *call);
/* daemon/vm-nics-hotplug.c: the NIC as vm.nic-add answers it. */
json_object *vm_hp_json(const struct hp_nic *h);
