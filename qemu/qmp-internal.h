/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between qemu/qmp.c (lifecycle, blocking waits), qemu/qmp-io.c
 * (socket reads/writes, parsing, dispatch) and qemu/qmp-command.c (pending
 * commands, timeouts). */

#include <inttypes.h>

#include "qemu/qmp.h"

#define QMP_READ_CHUNK 65536
#define QMP_MAX_DEPTH 64

struct qmp_pending {
	uint64_t id;
	char *command;
	int timeout_ms;
	uint64_t deadline_ms;
	qmp_reply_fn fn;
	void *userdata;
	qv_source *timer; /* loop timer while attached, else NULL */
	qmp_client *client;
	struct qmp_pending *next;
};

/* One serialized command waiting to be written, with the fds to attach to
 * its first byte (our own dups, closed once sent). */
struct qmp_out {
	char *buf;
	size_t len, off;
	int *fds;
	size_t n_fds;
	struct qmp_out *next;
};

/* A blocking wait for an event (qmp_client_wait_event). */
struct qmp_event_waiter {
	const char *name;
	json_object *event; /* new reference once matched */
	bool done;
	struct qmp_event_waiter *next;
};

struct qmp_client {
	unsigned n_ref;
	int fd;
	bool greeted;     /* greeting received */
	bool closed;      /* connection lost: fd closed, pending failed */
	bool freed;       /* qmp_client_free() called while callbacks were running */
	int close_error;  /* -errno the link failed with */
	char close_msg[256];
	char *version;

	json_tokener *tok;
	size_t msg_bytes; /* bytes of the message being parsed so far */
	char *inbuf;      /* QMP_READ_CHUNK bytes; [in_start, in_end) not yet parsed */
	size_t in_start, in_end;

	uint64_t next_id;
	struct qmp_pending *pending, **pending_tail; /* in send order */
	struct qmp_out *out, **out_tail;
	struct qmp_event_waiter *waiters;

	qmp_event_fn event_fn;
	void *event_userdata;
	qmp_event_filter_fn event_filter;
	void *event_filter_userdata;
	qmp_closed_fn closed_fn;
	void *closed_userdata;

	/* qmp_client_handshake_async() in progress (qmp-handshake.c) */
	struct qmp_handshake *handshake;

	qv_loop *loop;
	qv_source *io;
	uint32_t io_events;
	qv_source *resume; /* 0 ms timer: parse input left buffered by a blocking wait */
};

qmp_client *qmp_client_ref(qmp_client *c);
void qmp_client_unref(qmp_client *c);
/* true once the client can no longer be used from inside a callback loop. */
static inline bool qmp_client_gone(qmp_client *c)
{
	return c->closed || c->freed;
}

/* qmp.c */
int qmp_client_new(int fd, qmp_client **ret);

/* qmp-handshake.c: the greeting arrived (c->greeted is set). */
void qmp_handshake_greeted(qmp_client *c);
/* The link failed during the handshake (before the closed handler). */
void qmp_handshake_failed(qmp_client *c);
/* The client is being freed: drop the handshake without calling back. */
void qmp_handshake_cancel(qmp_client *c);

/* qmp-io.c */
/* Parse buffered input; stop early once *stop turns true (may be NULL).
 * Returns 0 or -errno after the connection failed. */
int qmp_parse_buffered(qmp_client *c, const bool *stop);
/* Read one chunk (buffer must be empty) and parse it. 0 on EAGAIN. */
int qmp_read_and_parse(qmp_client *c, const bool *stop);
/* Write as much queued output as the socket takes. 0 or -errno. */
int qmp_flush(qmp_client *c);
int qmp_queue_output(qmp_client *c, char *buf, size_t len, const int *fds, size_t n_fds);
void qmp_out_free_all(qmp_client *c);
/* Tear down the link: close fd, fail pending commands, call closed handler. */
void qmp_fail(qmp_client *c, int error, const char *fmt, ...) _printf_(3, 4);
void qmp_update_io_events(qmp_client *c);

/* qmp-command.c */
void qmp_dispatch_reply(qmp_client *c, json_object *msg);
/* Complete every pending command with `error` (message built per command). */
void qmp_fail_pending(qmp_client *c, int error, const char *reason, const char *why);
int qmp_arm_timer(qmp_client *c, struct qmp_pending *p);
/* Earliest pending deadline, or UINT64_MAX. */
uint64_t qmp_next_deadline(qmp_client *c);
/* Drop a pending command without calling its callback. */
void qmp_cancel_pending(qmp_client *c, uint64_t id);
int qmp_execute_internal(qmp_client *c, const char *command, json_object *args, const int *fds,
			 size_t n_fds, int timeout_ms, qmp_reply_fn fn, void *userdata,
			 uint64_t *ret_id);
