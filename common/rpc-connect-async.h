/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"
#include "common/loop.h"
#include "common/rpc-client.h"
#include "common/tls.h"

/* Connecting to a peer daemon without blocking the caller's loop.
 *
 * qv_rpc_connect() resolves the host, connects and (tls://) runs the whole
 * GnuTLS handshake before it returns: up to QV_TLS_HANDSHAKE_TIMEOUT_MS
 * against a peer that accepts and then says nothing. A daemon must not
 * wait for that on its loop, so qv_rpc_connect_async() runs the same
 * qv_rpc_connect_timeout() on a short-lived detached thread and hands the
 * connected qv_rpc_conn back to the loop through an eventfd
 * (docs/design.md, "Connecting to a peer").
 *
 * The callback runs on the loop, never from inside qv_rpc_connect_async(),
 * exactly once unless qv_rpc_connect_cancel() came first. On success
 * error is 0 and conn is the caller's (free it with qv_rpc_conn_free);
 * otherwise conn is NULL and errp says why: "unavailable" (refused,
 * unresolvable, TLS failure), "permission" (certificate refused) or
 * "timeout" (the peer did not answer within timeout_ms). The handle is
 * freed after the callback returns. */

typedef struct qv_rpc_connecting qv_rpc_connecting;
typedef void (*qv_rpc_connected_fn)(int error, qv_rpc_conn *conn, const struct qv_error *errp,
				    void *userdata);

/* Default deadline for a daemon dialling a peer (connect + handshake). */
#define QV_RPC_CONNECT_TIMEOUT_MS QV_TLS_HANDSHAKE_TIMEOUT_MS

/* qv_rpc_connect() with every step (TCP connect, TLS handshake) bounded by
 * one deadline of timeout_ms; blocking, safe to call from any thread. */
int qv_rpc_connect_timeout(const char *uri, unsigned timeout_ms, qv_rpc_conn **ret_conn,
			   struct qv_error *errp);

/* Start connecting to uri; *ret_connecting identifies the attempt until the
 * callback runs. 0, or -errno with errp filled (no callback then). */
int qv_rpc_connect_async(qv_loop *loop, const char *uri, unsigned timeout_ms,
			 qv_rpc_connected_fn fn, void *userdata,
			 qv_rpc_connecting **ret_connecting, struct qv_error *errp);
/* Give up: the callback will not run; a connection the worker still makes
 * is closed by it. NULL is fine. Returns NULL. */
qv_rpc_connecting *qv_rpc_connect_cancel(qv_rpc_connecting *c);
