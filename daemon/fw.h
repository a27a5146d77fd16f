/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's firewall (docs/firewall.md): owns the nftables table
 * `bridge qvisor` of its network namespace. Security groups live in the
 * state store (fw_groups); a VM's rules come from its spec. Every operation
 * is one nft transaction; the table exists only while a VM with a NIC runs. */

#include <json-c/json.h>

#include "daemon/daemon.h"
#include "daemon/vm.h"

/* Load groups, probe the kernel, reconcile the table with the running VMs
 * (after the VM and network registries). A failure is logged, not fatal:
 * VM starts then fail with the reason. */
int qv_fw_load(struct qv_daemon *d);
void qv_fw_free(struct qv_daemon *d);

/* Every group a spec names exists (vm.define, vm.start, migration prepare). */
int qv_fw_check_spec(struct qv_daemon *d, const struct vm_spec *spec, struct qv_error *errp);
/* Install the VM's NIC chains (before QEMU runs). On failure the VM must
 * not start: nothing of it is left in nft. */
int qv_fw_vm_start(struct qv_vm *vm, struct qv_error *errp);
/* Remove them (QEMU gone); the table goes with the last NIC. Idempotent. */
void qv_fw_vm_stop(struct qv_vm *vm);
/* A hot-plugged NIC: default filtering (anti-spoofing of its MAC, and of
 * its lease on a DHCP network), installed before QEMU gets the TAP. */
int qv_fw_nic_add(struct qv_vm *vm, const char *tap, const char *mac, const char *network,
		  struct qv_error *errp);
void qv_fw_nic_remove(struct qv_vm *vm, const char *tap);

extern const struct qv_rpc_method qv_fw_methods[];
extern const size_t qv_fw_methods_count;
