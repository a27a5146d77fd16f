/* SPDX-License-Identifier: MIT */
/* Placeholder until the cgroup controller is wired: no limits. */
#include "daemon/hooks.h"

int qv_cgroup_registry_load(struct qv_daemon *d)
{
	return 0;
}

void qv_cgroup_registry_free(struct qv_daemon *d)
{
}

int qv_vm_sandbox_prepare(struct qv_vm *vm, struct qemu_argv_opts *argv_opts,
			  struct qemu_proc_opts *opts, struct qv_error *errp)
{
	if (vm->spec->has_limits)
		return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "VM %s requests resource limits but the cgroup controller "
				    "is not available", vm->name);
	return 0;
}

void qv_vm_sandbox_release(struct qv_vm *vm)
{
}

const struct qv_rpc_method qv_cgroup_methods[] = { { NULL, NULL } };
const size_t qv_cgroup_methods_count = 0;
