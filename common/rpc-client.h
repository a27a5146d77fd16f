/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "common/error.h"

/* JSON-RPC 2.0 client for qvisord: one message per line, at most
 * QV_RPC_MAX_MESSAGE bytes per received line.
 *
 * Transports:
 *   "unix:///run/qvisor/qvisord.sock" or a plain path ("/x.sock", "./x.sock");
 *   "ssh://[user@]host[:port][/remote/socket/path]": spawns
 *       ssh -T [-p port] -- [user@]host qvisor [--socket PATH] rpc-stdio
 *   (no shell on our side; $QVISOR_SSH overrides the ssh program and
 *   $QVISOR_REMOTE_QVISOR the remote command name);
 *   "tls://HOST[:PORT]" (default port QV_TLS_DEFAULT_PORT): TCP with mutual
 *   TLS (common/tls.h). The daemon's certificate must be signed by the CA in
 *   the PKI dir and name HOST; we present client-cert.pem. The PKI dir is
 *   qv_rpc_set_pki_dir(), else $QVISOR_PKI_DIR, else /etc/qvisor/pki.
 *   Connect and handshake are bounded by QV_TLS_HANDSHAKE_TIMEOUT_MS.
 *
 * Requests can be pipelined: qv_rpc_send() queues a request and never blocks;
 * responses are collected by id with qv_rpc_recv_response() or in arrival
 * order with qv_rpc_recv_any(). Output is flushed while waiting, and input is
 * read at the same time, so a long pipeline cannot deadlock.
 *
 * Notifications (messages with a method and no id) that arrive while waiting
 * go to the notification callback if one is set, in arrival order, from inside
 * the waiting call; otherwise they are queued (at most QV_RPC_MAX_QUEUED, the
 * oldest dropped) for qv_rpc_wait_notification().
 *
 * Return values: 0 on success;
 *   -EREMOTEIO  the daemon answered with an error: errp->reason is
 *               error.data.reason ("internal" when absent), errp->message is
 *               error.message;
 *   -ETIMEDOUT  nothing arrived in time (reason "timeout"); the request is
 *               abandoned and a late response is dropped;
 *   other       the connection is unusable (reason "unavailable" or
 *               "io-error"): refused, closed by the peer (-ECONNRESET),
 *               oversized line (-EMSGSIZE), malformed message (-EPROTO).
 * timeout_ms < 0 waits forever, 0 only looks at what is already there.
 *
 * A connection is not thread-safe: use one per thread. Writing to a closed
 * ssh pipe raises SIGPIPE; programs using ssh:// should ignore SIGPIPE
 * (sockets use MSG_NOSIGNAL). */

typedef struct qv_rpc_conn qv_rpc_conn;

#ifndef QV_RPC_MAX_MESSAGE /* daemon/rpc.h has the same limit */
#define QV_RPC_MAX_MESSAGE (1024 * 1024)
#endif
#define QV_RPC_MAX_QUEUED 4096
#define QV_RPC_DEFAULT_SOCKET "/run/qvisor/qvisord.sock"

/* params and the method are borrowed for the duration of the callback. The
 * callback must not call back into the same connection. */
typedef void (*qv_rpc_notify_fn)(qv_rpc_conn *c, const char *method, json_object *params,
				 void *userdata);

int qv_rpc_connect(const char *uri, qv_rpc_conn **ret_conn, struct qv_error *errp);
/* The PKI dir for tls:// (process-wide; copied; NULL restores the default). */
int qv_rpc_set_pki_dir(const char *dir);
const char *qv_rpc_pki_dir(void);
/* Wrap already connected fds (rfd may equal wfd); takes ownership of both. */
int qv_rpc_conn_new_fds(int rfd, int wfd, qv_rpc_conn **ret_conn);
/* Closes the fds; for ssh, waits briefly for the ssh child, then kills it. */
qv_rpc_conn *qv_rpc_conn_free(qv_rpc_conn *c);
void qv_rpc_conn_freep(qv_rpc_conn **c);
#define _cleanup_rpc_conn_ _cleanup_(qv_rpc_conn_freep)

/* The fd to poll for input (POLLIN) when integrating with a loop. With
 * tls:// the session may hold decrypted input poll cannot see: after
 * handling a readable fd, call the recv functions again while
 * qv_rpc_conn_buffered() is true. */
int qv_rpc_conn_fd(qv_rpc_conn *c);
bool qv_rpc_conn_buffered(qv_rpc_conn *c);
/* tls:// only: the server's verified certificate names `name` (see
 * qv_tls_peer_has_name); false on any other transport. */
bool qv_rpc_conn_peer_has_name(qv_rpc_conn *c, const char *name);
/* tls:// only: the server's certificate DN, else NULL. */
const char *qv_rpc_conn_peer_dn(qv_rpc_conn *c);
void qv_rpc_set_notify_handler(qv_rpc_conn *c, qv_rpc_notify_fn fn, void *userdata);

/* Synchronous call: send with a fresh id and wait for its response.
 * params may be NULL; a reference to it is taken over (put by the call).
 * *ret_result (may be NULL to discard) receives a new reference. */
int qv_rpc_invoke(qv_rpc_conn *c, const char *method, json_object *params, int timeout_ms,
		json_object **ret_result, struct qv_error *errp);

/* Pipelining. qv_rpc_send() takes over the params reference like qv_rpc_call
 * and stores the request id in *ret_id. */
int qv_rpc_send(qv_rpc_conn *c, const char *method, json_object *params, uint64_t *ret_id,
		struct qv_error *errp);
/* Wait for the response to request `id`. */
int qv_rpc_recv_response(qv_rpc_conn *c, int timeout_ms, uint64_t id,
			 json_object **ret_result, struct qv_error *errp);
/* Wait for the next response to any outstanding request, in arrival order.
 * *ret_id is set whenever a response was consumed, including an error
 * response (-EREMOTEIO). -ETIMEDOUT abandons nothing. -ENOMSG: nothing
 * outstanding. */
int qv_rpc_recv_any(qv_rpc_conn *c, int timeout_ms, uint64_t *ret_id,
		    json_object **ret_result, struct qv_error *errp);
/* Number of requests sent whose responses were not consumed yet. */
size_t qv_rpc_outstanding(qv_rpc_conn *c);

/* Next queued notification: *ret_method (malloc'd) and *ret_params (new
 * reference, may be NULL when the message had no params). */
int qv_rpc_wait_notification(qv_rpc_conn *c, int timeout_ms, char **ret_method,
			     json_object **ret_params, struct qv_error *errp);
