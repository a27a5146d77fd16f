/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>

#include "common/error.h"
#include "common/loop.h"

/* QMP client. Non-blocking at its core so one daemon loop can drive many
 * QEMUs; a synchronous wrapper exists for simple callers and tests. Every
 * command carries a timeout: a silent QEMU never hangs the caller.
 *
 * Replies are matched by "id". Events are queued in arrival order and handed
 * to the event callback; replies and events interleave freely on the wire. */

typedef struct qmp_client qmp_client;

#define QMP_MAX_MESSAGE (1024 * 1024) /* bytes per message, then the link is dropped */
#define QMP_DEFAULT_TIMEOUT_MS 10000

/* event: {"event": NAME, "data": {...}, "timestamp": {...}} (borrowed). */
typedef void (*qmp_event_fn)(qmp_client *c, const char *name, json_object *event,
			     void *userdata);
/* Completion: error == 0 and `ret` holds "return" (borrowed), or error < 0
 * with errp describing it:
 *   QEMU error reply  -EIO (-EOPNOTSUPP for CommandNotFound, -ENODEV for
 *                     DeviceNotFound), reason "qemu-error",
 *                     message "<command>: <desc> (<class>)";
 *   no reply in time  -ETIMEDOUT, reason "timeout" (a late reply is dropped);
 *   connection lost   -ECONNRESET (EOF/reset), -EMSGSIZE (oversized message)
 *                     or -EPROTO (garbage), reason "unavailable",
 *                     message "QEMU closed the QMP connection during <command>";
 *   client freed      -ECANCELED, reason "cancelled".
 * Called exactly once per accepted command. */
typedef void (*qmp_reply_fn)(qmp_client *c, int error, json_object *ret,
			     const struct qv_error *errp, void *userdata);
/* The connection closed or failed; every pending command completes first.
 * Called once; error is 0 for an orderly EOF with no command in flight (e.g.
 * after "quit"), else -errno as above. Not called by qmp_client_free(). The
 * handler may free the client. */
typedef void (*qmp_closed_fn)(qmp_client *c, int error, void *userdata);

/* Connect to a unix socket, read the greeting and run qmp_capabilities,
 * waiting at most timeout_ms. Blocking. Retries ENOENT/ECONNREFUSED until the
 * deadline (QEMU creates the socket shortly after it starts). */
int qmp_client_connect(const char *path, int timeout_ms, qmp_client **ret_client,
		       struct qv_error *errp);
/* Same over an already connected fd (takes ownership). */
int qmp_client_connect_fd(int fd, int timeout_ms, qmp_client **ret_client,
			  struct qv_error *errp);

/* Asynchronous handshake over an already connected fd (takes ownership, even
 * on failure): the client is attached to loop at once; the greeting and
 * qmp_capabilities then run on the loop, and fn runs exactly once, never
 * before this returns: error 0 and the client ready, or error < 0 with errp
 * (reasons as for a command; no greeting in time is -ETIMEDOUT "timeout").
 * The caller owns *ret_client in every case and frees it after a failure;
 * freeing it before fn ran cancels the handshake without calling fn.
 * Event and closed handlers set by the caller apply once fn reported 0. */
typedef void (*qmp_handshake_fn)(qmp_client *c, int error, const struct qv_error *errp,
				 void *userdata);
int qmp_client_handshake_async(qv_loop *loop, int fd, int timeout_ms, qmp_handshake_fn fn,
			       void *userdata, qmp_client **ret_client);
/* Completes pending commands with -ECANCELED, detaches from the loop, closes
 * the socket. Safe to call from any callback of this client. Free clients
 * before the loop they are attached to. */
qmp_client *qmp_client_free(qmp_client *c);
void qmp_client_freep(qmp_client **c);

/* -1 once the connection is closed. */
int qmp_client_fd(qmp_client *c);
/* QEMU version from the greeting, e.g. "7.2.22". */
const char *qmp_client_version(qmp_client *c);
void qmp_client_set_event_handler(qmp_client *c, qmp_event_fn fn, void *userdata);
/* Asked with an event's name BEFORE its message is parsed, when the raw
 * bytes allow it (QEMU writes one message per line, the event key before
 * the guest-influenced "data"): false drops the event unparsed, so a guest
 * that makes QEMU emit events in a loop costs a line scan per event, not a
 * JSON parse. Events a waiter waits for are never offered to the filter.
 * Events the scan cannot name are parsed and delivered as usual. */
typedef bool (*qmp_event_filter_fn)(qmp_client *c, const char *name, void *userdata);
void qmp_client_set_event_filter(qmp_client *c, qmp_event_filter_fn fn, void *userdata);
void qmp_client_set_closed_handler(qmp_client *c, qmp_closed_fn fn, void *userdata);

/* Attach to a loop: the client then reads on readiness, writes queued output
 * on EPOLLOUT and arms one loop timer per command. -EBUSY if already attached.
 * Without a loop, call qmp_client_process() when the fd is readable (it also
 * flushes queued output and drains input a blocking call left buffered) and
 * qmp_client_check_timeouts() periodically. process returns 0, or -errno once
 * the link is down. */
int qmp_client_attach(qmp_client *c, qv_loop *loop);
int qmp_client_process(qmp_client *c);
void qmp_client_check_timeouts(qmp_client *c);

/* Send a command. args is a JSON object or NULL; it is BORROWED (serialized
 * at once, the caller keeps its reference). The fds (at most 16) are sent
 * with SCM_RIGHTS on the sendmsg carrying this command's first byte (for
 * getfd/add-fd); the client dups them, the caller keeps its own copies.
 * timeout_ms <= 0 means QMP_DEFAULT_TIMEOUT_MS. Returns 0 when accepted (fn
 * then runs exactly once; if the link fails while sending it may run before
 * this returns), or -EINVAL / -ENOTCONN / -ENOMEM and fn is never called. */
int qmp_client_execute_async(qmp_client *c, const char *command, json_object *args,
			     const int *fds, size_t n_fds, int timeout_ms,
			     qmp_reply_fn fn, void *userdata);

/* Blocking: send and wait for the matching reply, dispatching events that
 * arrive meanwhile. *ret_return (may be NULL) gets a new reference on success.
 * Never blocks past timeout_ms. Returns as soon as the reply is parsed:
 * messages behind it stay buffered for the next call (or the loop, if
 * attached), so execute("stop") then wait_event("STOP") cannot miss it.
 * A closed client fails fast with -ENOTCONN. */
int qmp_client_execute(qmp_client *c, const char *command, json_object *args,
		       int timeout_ms, json_object **ret_return, struct qv_error *errp);
int qmp_client_execute_fds(qmp_client *c, const char *command, json_object *args,
			   const int *fds, size_t n_fds, int timeout_ms,
			   json_object **ret_return, struct qv_error *errp);

/* Blocking: wait until an event named `name` arrives (earlier events are
 * still dispatched to the handler). *ret_event gets a new reference. */
int qmp_client_wait_event(qmp_client *c, const char *name, int timeout_ms,
			  json_object **ret_event, struct qv_error *errp);

/* Blocking: wait until QEMU closes the connection (e.g. after "quit"),
 * dispatching events meanwhile. 0 once closed, -ETIMEDOUT otherwise. */
int qmp_client_wait_closed(qmp_client *c, int timeout_ms, struct qv_error *errp);

/* Connection is still open. */
bool qmp_client_is_open(qmp_client *c);
