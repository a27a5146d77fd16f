/* SPDX-License-Identifier: MIT */
/* Placeholder until networking is wired: VMs without NICs only. */
#include "daemon/hooks.h"

int qv_net_registry_load(struct qv_daemon *d)
{
	return 0;
}

void qv_net_registry_free(struct qv_daemon *d)
{
}

int qv_vm_nics_open(struct qv_vm *vm, int **ret_fds, size_t *ret_n, struct qv_error *errp)
{
	if (vm->spec->n_nics > 0)
		return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "VM %s has NICs but networking is not available", vm->name);
	*ret_fds = NULL;
	*ret_n = 0;
	return 0;
}

void qv_vm_nics_started(struct qv_vm *vm)
{
}

void qv_vm_nics_close(struct qv_vm *vm)
{
}

const struct qv_rpc_method qv_net_methods[] = { { NULL, NULL } };
const size_t qv_net_methods_count = 0;
