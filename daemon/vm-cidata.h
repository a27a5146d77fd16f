/* SPDX-License-Identifier: MIT */
#pragma once

/* The cloud-init seed of a VM with spec.cloud_init (daemon/vm-cidata.c):
 * written to <run_dir>/cidata.iso at every start (so it always matches the
 * spec), readable only by the VM's QEMU user, removed with the VM. */

#include "daemon/vm.h"
#include "qemu/argv.h"
#include "qemu/proc.h"

/* No-op without spec.cloud_init. Otherwise writes the seed and points
 * opts->cidata_path at *ret_path (malloc'ed; keep it until QEMU started). */
int qv_vm_cidata_prepare(struct qv_vm *vm, const struct qemu_proc_opts *proc,
			 struct qemu_argv_opts *opts, char **ret_path, struct qv_error *errp);
/* The VM is being undefined: remove its seed, if any. */
void qv_vm_cidata_remove(struct qv_vm *vm);
