/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/vm.h"
#include "qemu/argv.h"
#include "qemu/instance.h"

/* What the daemon opens for a VM's QEMU, so that QEMU needs no path access
 * and root never follows a name QEMU's user could change:
 *   <run-dir>/vms/<name>/        root 0700: qemu.log (QEMU's stderr),
 *                                qmp.sock and serial.sock (bound here and
 *                                passed as listening fds), serial.log (a
 *                                symlink to the state copy below)
 *   <state-dir>/vms/<name>/      root 0700: serial.log (+ serial.log.1),
 *                                passed as /dev/fdset, size-capped
 *   disks                        opened here (with their backing chain,
 *                                checked: docs/security.md) and passed as
 *                                /dev/fdset; images stay root 0600.
 * Typed state per VM in struct qv_vm_files (daemon/vm-files.c). */

#define QV_SERIAL_LOG_MAX_DEFAULT (1024 * 1024)
/* In the run dir: the mount point of QEMU's tmpfs root (0700), and a
 * directory QEMU sees at the same path (root 0711) for files the daemon
 * hands it by name later (TLS credentials, daemon/migrate-tls.c). */
#define QV_VM_ROOT_DIR "root"
#define QV_VM_SHARE_DIR "share"

/* Open everything and fill argv opts (fds) and cfg (log fd, QMP socket).
 * On failure nothing stays open. */
int qv_vm_files_prepare(struct qv_vm *vm, struct qemu_argv_opts *o,
			struct qemu_instance_config *cfg, struct qv_error *errp);
/* QEMU holds its copies: close ours, except the serial log (capped). */
void qv_vm_files_started(struct qv_vm *vm);
/* A QEMU found running at daemon start: resume capping its serial log. */
void qv_vm_files_attached(struct qv_vm *vm);
/* QEMU is gone (or never started): close everything. */
void qv_vm_files_release(struct qv_vm *vm);
/* Undefine: remove the VM's run dir and its logs in the state dir. */
void qv_vm_files_remove(struct qv_vm *vm);
