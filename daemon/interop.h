/* SPDX-License-Identifier: MIT */
#pragma once

/* Interoperability RPC methods (daemon/methods-interop.c):
 * vm.import-libvirt, vm.dump-libvirt. */
#include "daemon/rpc.h"

extern const struct qv_rpc_method qv_interop_methods[];
extern const size_t qv_interop_methods_count;
/* daemon/vm-agent.c: vm.agent-info, vm.agent-fsfreeze. */
extern const struct qv_rpc_method qv_agent_methods[];
extern const size_t qv_agent_methods_count;

/* Stop through the guest agent first (daemon/vm-agent.c): for a running VM
 * with a usable agent, send guest-shutdown and wait up to half of
 * timeout_ms (at most 10 s) for QEMU to exit; then fn(vm, exited). Returns
 * false (fn not called) when there is no usable agent. */
struct qv_vm;
typedef void (*qv_vm_agent_stop_fn)(struct qv_vm *vm, bool exited, void *userdata);
bool qv_vm_agent_stop(struct qv_vm *vm, int timeout_ms, qv_vm_agent_stop_fn fn, void *userdata);
