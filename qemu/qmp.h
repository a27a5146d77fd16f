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
 * with errp describing it (QEMU error class/desc, timeout, or connection loss). */
typedef void (*qmp_reply_fn)(qmp_client *c, int error, json_object *ret,
			     const struct qv_error *errp, void *userdata);
/* The connection closed or failed; every pending command completes first. */
typedef void (*qmp_closed_fn)(qmp_client *c, int error, void *userdata);

/* Connect to a unix socket, read the greeting and run qmp_capabilities,
 * waiting at most timeout_ms. Blocking. Retries ENOENT/ECONNREFUSED until the
 * deadline (QEMU creates the socket shortly after it starts). */
int qmp_client_connect(const char *path, int timeout_ms, qmp_client **ret_client,
		       struct qv_error *errp);
/* Same over an already connected fd (takes ownership). */
int qmp_client_connect_fd(int fd, int timeout_ms, qmp_client **ret_client,
			  struct qv_error *errp);
qmp_client *qmp_client_free(qmp_client *c);
void qmp_client_freep(qmp_client **c);

int qmp_client_fd(qmp_client *c);
/* QEMU version from the greeting, e.g. "7.2.22". */
const char *qmp_client_version(qmp_client *c);
void qmp_client_set_event_handler(qmp_client *c, qmp_event_fn fn, void *userdata);
void qmp_client_set_closed_handler(qmp_client *c, qmp_closed_fn fn, void *userdata);

/* Attach to a loop: the client then reads on readiness and fires timeouts by
 * itself. Without a loop, call qmp_client_process() when the fd is readable
 * and qmp_client_check_timeouts() periodically. */
int qmp_client_attach(qmp_client *c, qv_loop *loop);
int qmp_client_process(qmp_client *c);
void qmp_client_check_timeouts(qmp_client *c);

/* Send a command (args may be NULL; the client takes a reference). The
 * fds are sent with SCM_RIGHTS together with this command (for getfd/add-fd);
 * the caller keeps its own copies. */
int qmp_client_execute_async(qmp_client *c, const char *command, json_object *args,
			     const int *fds, size_t n_fds, int timeout_ms,
			     qmp_reply_fn fn, void *userdata);

/* Blocking: send and wait for the matching reply, dispatching events that
 * arrive meanwhile. *ret_return gets a new reference on success. */
int qmp_client_execute(qmp_client *c, const char *command, json_object *args,
		       int timeout_ms, json_object **ret_return, struct qv_error *errp);
int qmp_client_execute_fds(qmp_client *c, const char *command, json_object *args,
			   const int *fds, size_t n_fds, int timeout_ms,
			   json_object **ret_return, struct qv_error *errp);

/* Blocking: wait until an event named `name` arrives (earlier events are
 * still dispatched to the handler). *ret_event gets a new reference. */
int qmp_client_wait_event(qmp_client *c, const char *name, int timeout_ms,
			  json_object **ret_event, struct qv_error *errp);

/* Connection is still open. */
bool qmp_client_is_open(qmp_client *c);
