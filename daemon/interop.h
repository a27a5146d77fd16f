/* SPDX-License-Identifier: MIT */
#pragma once

/* Interoperability RPC methods (daemon/methods-interop.c):
 * vm.import-libvirt, vm.dump-libvirt. */
#include "daemon/rpc.h"

extern const struct qv_rpc_method qv_interop_methods[];
extern const size_t qv_interop_methods_count;
