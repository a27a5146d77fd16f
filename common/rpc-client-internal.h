/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

#include "common/rpc-client.h"
#include "common/tls.h"

/* Shared between rpc-client.c (protocol) and rpc-connect.c (transports). */

/* The connection owns an ssh child: reaped (then killed) on free. */
void qv_rpc_conn_set_child(qv_rpc_conn *c, pid_t pid);
/* Wait about 2 s for pid to exit, then SIGTERM it and reap it. */
void qv_rpc_reap_child(pid_t pid);
/* The connection reads and writes through tls (taken; freed with it). */
void qv_rpc_conn_set_tls(qv_rpc_conn *c, qv_tls *tls);
