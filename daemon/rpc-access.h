/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/daemon.h"

/* Who may call what (docs/security.md "Socket access"):
 *  - qvisord.sock (0660, group QV_RPC_GROUP): root and members of the group
 *    call every method; anyone else who reaches it (an fd passed on) only
 *    the read-only ones;
 *  - qvisord-ro.sock (0666): the read-only methods, whoever calls (vm.info
 *    there hides the kernel command line, which may carry secrets).
 * Denied calls get "permission-denied" and are logged with the peer. */

#define QV_RPC_GROUP "qvisor"

bool qv_rpc_method_is_read_only(const char *method);
/* "<dir>/<base>-ro.sock" for "<dir>/<base>.sock" (else "<path>-ro"). */
char *qv_rpc_ro_socket_path(const char *socket_path);
/* Give the main socket to group QV_RPC_GROUP (warns if the group is
 * missing: then only root can use it) and serve the read-only socket. */
int qv_rpc_access_setup(struct qv_daemon *d, struct qv_error *errp);
/* The call came in on the read-only socket. */
bool qv_rpc_call_is_read_only(struct qv_daemon *d, qv_rpc_call *call);

/* What a vm.info answer hides from a read-only caller (cmdline,
 * cloud_init), also when another host answered it (daemon/methods-vm.c). */
void qv_vm_info_redact(json_object *info);
