/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

#include "common/error.h"
#include "common/loop.h"

/* JSON-RPC 2.0 server on a unix stream socket, driven by a qv_loop.
 *
 * Framing: one JSON message per line ('\n'); a message may be at most
 * QV_RPC_MAX_MESSAGE bytes (not counting the newline, a trailing '\r' is
 * dropped). A longer line gets an error response (-32600, data.reason
 * "invalid-argument", id null), the rest of that line is discarded without
 * buffering, and the connection keeps being served. Blank lines are ignored.
 *
 * Batch requests (a JSON array) are NOT supported: they get -32600 with
 * message "batch requests are not supported".
 *
 * Errors carry data.reason (common/error.h reasons); the JSON-RPC code is
 * qv_rpc_code_for_reason(). Protocol-level codes: -32700 parse error,
 * -32600 invalid request, -32601 unknown method (reason "not-found"),
 * -32602 invalid params (reason "invalid-argument").
 *
 * Responses larger than QV_RPC_MAX_MESSAGE are replaced by an error
 * (-32603, reason "internal"). Each client has an output queue; while it
 * holds more than QV_RPC_OUTPUT_HIGH bytes the server stops reading that
 * client's requests; a client whose queue exceeds QV_RPC_OUTPUT_MAX (a
 * subscriber that does not read its events) is disconnected. */

#define QV_RPC_MAX_MESSAGE (1024 * 1024)
#define QV_RPC_DEFAULT_MAX_CLIENTS 64
/* TCP/TLS clients still in their handshake do not count against the
 * client cap: they have their own, small one. When it is full the oldest
 * handshake is dropped for the newest, and a handshake must end within
 * QV_RPC_HANDSHAKE_TIMEOUT_MS, so idle connects (a slowloris) can neither
 * fill the client cap nor hold a real client's handshake out for long. */
#define QV_RPC_MAX_HANDSHAKES 16
#define QV_RPC_HANDSHAKE_TIMEOUT_MS 5000
#define QV_RPC_OUTPUT_HIGH (4 * 1024 * 1024)
#define QV_RPC_OUTPUT_MAX (16 * 1024 * 1024)

/* JSON-RPC 2.0 reserved codes. */
#define QV_RPC_PARSE_ERROR -32700
#define QV_RPC_INVALID_REQUEST -32600
#define QV_RPC_METHOD_NOT_FOUND -32601
#define QV_RPC_INVALID_PARAMS -32602
#define QV_RPC_INTERNAL_ERROR -32603
/* Application errors: -32000 (generic) and -32001.. per reason. */
#define QV_RPC_APP_ERROR -32000

typedef struct qv_rpc_server qv_rpc_server;
typedef struct qv_rpc_client qv_rpc_client;
typedef struct qv_rpc_call qv_rpc_call;

/* SO_PEERCRED of the connecting process, taken at accept time. */
struct qv_rpc_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* --- parsing (pure; also the fuzz entry point) --------------------------- */

struct qv_rpc_request {
	json_object *msg;    /* the parsed message; owns everything below */
	json_object *id;     /* borrowed; NULL for a notification and for "id":null
			      * (json-c's null), tell them apart by is_notification */
	bool is_notification;
	const char *method;  /* borrowed from msg */
	json_object *params; /* borrowed; NULL if absent; an object or an array */
};

/* Parse and validate one message (line without its '\n'; need not be NUL
 * terminated, embedded NULs are a parse error). Returns 0 and fills *ret,
 * or:
 *   -EMSGSIZE  longer than QV_RPC_MAX_MESSAGE      (-32600)
 *   -EBADMSG   not JSON                            (-32700)
 *   -EINVAL    not a valid JSON-RPC 2.0 request    (-32600)
 * with errp filled (reason "invalid-argument"). On -EINVAL ret->id holds a
 * reference to the request's id when it was a valid id (for echoing), all
 * other fields NULL; call qv_rpc_request_done() in every case. */
int qv_rpc_parse_request(const char *line, size_t len, struct qv_rpc_request *ret,
			 struct qv_error *errp);
void qv_rpc_request_done(struct qv_rpc_request *req);
/* JSON-RPC code for a qv_parse_request() return value. */
int qv_rpc_code_for_parse_error(int r);
/* JSON-RPC code for a data.reason. */
int qv_rpc_code_for_reason(const char *reason);

/* --- server -------------------------------------------------------------- */

/* A handler owns `call` once invoked. It must finish it exactly once with
 * qv_rpc_call_reply() or qv_rpc_call_error() — before returning, or later
 * from any loop callback (asynchronous completion) — and then return 0.
 * Returning < 0 without finishing the call makes the server answer with that
 * errno (reason from qv_reason_from_errno()); returning < 0 after finishing
 * it is harmless (ignored). params is NULL when absent; it
 * is owned by the call (take a json_object_get() to keep it past the call).
 * For a notification the reply is discarded, but the call must still be
 * finished. If the client goes away first, the reply is dropped safely. */
typedef int (*qv_rpc_handler_fn)(qv_rpc_call *call, json_object *params, void *userdata);

struct qv_rpc_method {
	const char *name; /* "noun.verb" */
	qv_rpc_handler_fn fn;
};

/* Bind socket_path (mode applied before listen), listen, and serve on loop.
 * A stale socket (nothing accepts on it) is replaced; a live one is refused
 * with -EADDRINUSE; a non-socket file at the path is refused with -EEXIST. */
int qv_rpc_server_new(qv_loop *loop, const char *socket_path, mode_t mode,
		      qv_rpc_server **ret_server, struct qv_error *errp);
/* Serve on fd, a socket already listening on socket_path (systemd socket
 * activation, daemon/activate.h). The server owns fd; the path belongs to
 * whoever bound it and is never unlinked. */
int qv_rpc_server_new_fd(qv_loop *loop, int fd, const char *socket_path,
			 qv_rpc_server **ret_server, struct qv_error *errp);
/* Also listen on TCP host:port (daemon/rpc-tls.c). With creds (borrowed,
 * must outlive the server) every client must complete a mutual-TLS
 * handshake with a certificate signed by the CA within
 * QV_RPC_HANDSHAKE_TIMEOUT_MS before anything is read (at most
 * QV_RPC_MAX_HANDSHAKES at once, outside the client cap); the handshake is
 * driven by the loop and never blocks it. creds NULL: plain TCP (only with
 * qvisord --insecure). TCP clients have no peer credentials (pid 0,
 * uid/gid -1). */
struct qv_tls_creds;
int qv_rpc_server_listen_tcp(qv_rpc_server *server, const char *host, int port,
			     const struct qv_tls_creds *creds, struct qv_error *errp);
/* The verified certificate DN of a TLS client, else NULL. */
const char *qv_rpc_client_tls_dn(qv_rpc_client *client);
/* A TCP client's local address (the one the peer reached us at), numeric.
 * -ENOTCONN for a unix-socket client. */
int qv_rpc_client_local_addr(qv_rpc_client *client, char *buf, size_t size);

/* Close every client and the listening socket, unlink socket_path. Calls
 * still held by handlers stay valid; finishing them drops the reply. */
qv_rpc_server *qv_rpc_server_free(qv_rpc_server *server);
void qv_rpc_server_freep(qv_rpc_server **server);

/* Default QV_RPC_DEFAULT_MAX_CLIENTS. Clients over the cap get one error line
 * (reason "unavailable") and are closed. */
void qv_rpc_server_set_max_clients(qv_rpc_server *server, unsigned max_clients);
unsigned qv_rpc_server_client_count(qv_rpc_server *server);

/* Register n methods (the table is borrowed, must outlive the server).
 * -EEXIST if a name is already registered. */
int qv_rpc_server_add_methods(qv_rpc_server *server, const struct qv_rpc_method *methods,
			      size_t n, void *userdata);

/* Optional: called (at debug level in the library) for every accepted client,
 * so the daemon can log the peer credentials at info level. */
typedef void (*qv_rpc_connect_fn)(qv_rpc_client *client, const struct qv_rpc_peer *peer,
				  void *userdata);
void qv_rpc_server_set_connect_fn(qv_rpc_server *server, qv_rpc_connect_fn fn, void *userdata);
/* Optional: called when a call finishes (reply or error, also when finished
 * later, asynchronously) with its duration since dispatch. */
typedef void (*qv_rpc_observe_fn)(const char *method, uint64_t duration_ms, bool ok,
				  void *userdata);
void qv_rpc_server_set_observer(qv_rpc_server *server, qv_rpc_observe_fn fn, void *userdata);

/* Optional: asked before each call is dispatched. false -> the caller gets
 * an error with data.reason "permission-denied" and the handler never runs
 * (the hook logs what it denies). */
typedef bool (*qv_rpc_access_fn)(const struct qv_rpc_peer *peer, const char *method,
				 void *userdata);
void qv_rpc_server_set_access_fn(qv_rpc_server *server, qv_rpc_access_fn fn, void *userdata);

/* Optional: asked with the call's method and params (borrowed, may be NULL)
 * after the access check. false -> the call is answered with *errp (set it)
 * and the handler never runs (e.g. "unavailable" while a VM re-attaches). */
typedef bool (*qv_rpc_gate_fn)(const char *method, json_object *params, struct qv_error *errp,
			       void *userdata);
void qv_rpc_server_set_gate_fn(qv_rpc_server *server, qv_rpc_gate_fn fn, void *userdata);

/* Send {"jsonrpc":"2.0","method":method,"params":params} to every subscribed
 * client. params is borrowed (may be NULL). Returns the number of clients it
 * was queued for. */
int qv_rpc_server_broadcast(qv_rpc_server *server, const char *method, json_object *params);

/* --- calls --------------------------------------------------------------- */

/* Finish the call with a result (stolen reference; NULL means json null). */
int qv_rpc_call_reply(qv_rpc_call *call, json_object *result);
/* Finish the call with an error: code from err->reason, message, data.reason.
 * err NULL or unset -> internal error. */
int qv_rpc_call_error(qv_rpc_call *call, const struct qv_error *err);
/* Same, with extra members merged into "data" (stolen; may be NULL). */
int qv_rpc_call_error_data(qv_rpc_call *call, const struct qv_error *err, json_object *data);
/* Both finish functions return 0 if the response was queued, 0 for a
 * notification, -ENOTCONN if the client is gone (response dropped). */

const char *qv_rpc_call_method(qv_rpc_call *call);
/* The request id (borrowed); NULL for a notification or "id":null. */
json_object *qv_rpc_call_id(qv_rpc_call *call);
bool qv_rpc_call_is_notification(qv_rpc_call *call);
const struct qv_rpc_peer *qv_rpc_call_peer(qv_rpc_call *call);
/* The client that sent the call, valid while the call is unfinished (take
 * qv_rpc_client_ref() to keep it longer). */
qv_rpc_client *qv_rpc_call_client(qv_rpc_call *call);
/* True once the client has disconnected (a reply would be dropped). */
bool qv_rpc_call_client_gone(qv_rpc_call *call);

/* --- clients ------------------------------------------------------------- */

qv_rpc_client *qv_rpc_client_ref(qv_rpc_client *client);
qv_rpc_client *qv_rpc_client_unref(qv_rpc_client *client);
const struct qv_rpc_peer *qv_rpc_client_peer(qv_rpc_client *client);
/* The server it connected to; NULL once disconnected. */
qv_rpc_server *qv_rpc_client_server(qv_rpc_client *client);
/* Unique per server, increasing; for log lines. */
unsigned qv_rpc_client_id(qv_rpc_client *client);
bool qv_rpc_client_is_connected(qv_rpc_client *client);
/* Enable/disable receiving broadcasts. */
void qv_rpc_client_subscribe(qv_rpc_client *client, bool subscribe);
bool qv_rpc_client_is_subscribed(qv_rpc_client *client);
/* Send one notification to this client only. -ENOTCONN if gone. */
int qv_rpc_client_notify(qv_rpc_client *client, const char *method, json_object *params);
