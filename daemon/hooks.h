/* SPDX-License-Identifier: MIT */
#pragma once

/* Per-subsystem hooks the VM lifecycle calls (daemon/vm.c). Each subsystem
 * keeps its own state behind the opaque pointers in struct qv_daemon
 * (net_state, cgroup_state) and struct qv_vm (nic_state, cgroup_state). */

#include "daemon/vm.h"
#include "qemu/argv.h"
#include "qemu/proc.h"

/* --- networking (daemon/vm-nics.c, daemon/netreg.c) ----------------------- */

/* Load networks, ensure bridges and dnsmasq, reconcile TAPs against the
 * registry. Called once at start after qv_vm_registry_load(). */
int qv_net_registry_load(struct qv_daemon *d);
void qv_net_registry_free(struct qv_daemon *d);
/* Create and attach one TAP per spec NIC; *ret_fds (malloc'ed, n entries)
 * are handed to QEMU. On failure nothing is left behind. */
int qv_vm_nics_open(struct qv_vm *vm, int **ret_fds, size_t *ret_n, struct qv_error *errp);
/* QEMU has its copies: the daemon closes its TAP fds (the TAPs live as
 * long as QEMU holds them). */
void qv_vm_nics_started(struct qv_vm *vm);
/* QEMU is gone (or never started): remove whatever is left. */
void qv_vm_nics_close(struct qv_vm *vm);
extern const struct qv_rpc_method qv_net_methods[];
extern const size_t qv_net_methods_count;

/* --- cgroups and sandbox (daemon/vm-cgroup.c) ----------------------------- */

int qv_cgroup_registry_load(struct qv_daemon *d);
void qv_cgroup_registry_free(struct qv_daemon *d);
/* Fill the spawn options: cgroup fd, uid/gid, no_new_privs, seccomp hook.
 * Refuses (with the reason) a spec with limits the host cannot enforce. */
int qv_vm_sandbox_prepare(struct qv_vm *vm, struct qemu_argv_opts *argv_opts,
			  struct qemu_proc_opts *opts, struct qv_error *errp);
/* The QEMU process is gone: remove its cgroup. */
void qv_vm_sandbox_release(struct qv_vm *vm);
/* The VM's record goes away while its QEMU may still run (daemon exit):
 * drop the per-VM state, leave the cgroup in place. */
void qv_vm_sandbox_forget(struct qv_vm *vm);
extern const struct qv_rpc_method qv_cgroup_methods[];
extern const size_t qv_cgroup_methods_count;

/* --- storage (daemon/methods-image.c) -------------------------------------- */

int qv_image_registry_load(struct qv_daemon *d);
void qv_image_registry_free(struct qv_daemon *d);
/* The op id of a copy in flight that reads one of vm's disks, or NULL. */
const char *qv_image_vm_disk_busy(struct qv_daemon *d, const struct qv_vm *vm);
/* The LUKS passphrase of a disk (opened as fd) from the keystore: *ret NULL
 * when the disk is not encrypted; an error naming the disk when it is and
 * no key is known, or its encryption is not supported. */
struct qv_secret;
int qv_image_disk_key(struct qv_daemon *d, const char *path, int fd,
		      struct qv_secret **ret, struct qv_error *errp);
/* The first of vm's qcow2 disks that is encrypted (LUKS), or NULL.
 * Snapshots and backups refuse such VMs: their overlays, RAM state and
 * backup files would hold the guest's data in clear (docs/security.md). */
const char *qv_image_vm_encrypted_disk(const struct qv_vm *vm);
extern const struct qv_rpc_method qv_image_methods[];
extern const size_t qv_image_methods_count;
