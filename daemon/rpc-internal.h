/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/tls.h"
#include "daemon/rpc.h"

struct rpc_method_entry {
	const struct qv_rpc_method *m;
	void *userdata;
};

struct qv_rpc_server {
	qv_loop *loop;
	int listen_fd;
	qv_source *listen_src;
	char *path;
	dev_t sock_dev;
	ino_t sock_ino;

	struct rpc_method_entry *methods;
	size_t n_methods;

	qv_rpc_client *clients; /* connected clients */
	unsigned n_clients;     /* connected, past any TLS handshake */
	unsigned max_clients;
	unsigned n_handshaking; /* TLS handshakes in progress (their own cap) */
	unsigned next_client_id;

	qv_rpc_connect_fn connect_fn;
	void *connect_ud;
	qv_rpc_access_fn access_fn;
	void *access_ud;
	qv_rpc_gate_fn gate_fn;       /* per-call admission (daemon/vm-attach.c) */
	void *gate_ud;
	qv_rpc_observe_fn observe_fn; /* each finished call's duration (metrics) */
	void *observe_ud;

	/* TCP listener (rpc-tls.c): TLS unless tcp_creds is NULL (--insecure) */
	int tcp_fd;
	qv_source *tcp_src;
	const qv_tls_creds *tcp_creds;
};

struct qv_rpc_client {
	unsigned ref;
	qv_rpc_server *server; /* NULL once disconnected */
	qv_rpc_client *prev, *next;
	int fd;
	qv_source *src;
	uint32_t events; /* current epoll mask */
	unsigned id;
	struct qv_rpc_peer peer;

	bool connected;
	bool subscribed;
	bool read_eof;
	bool discarding; /* inside an over-long line */
	bool tcp;        /* accepted on the TCP listener */
	bool handshaking; /* TLS handshake not done: no requests yet */
	qv_tls *tls;
	qv_source *tls_timer; /* handshake deadline, then buffered-input wakeups */
	unsigned pending_calls; /* unfinished calls */

	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_off, out_len, out_cap; /* queued bytes: out[out_off..out_len) */
};

struct qv_rpc_call {
	unsigned ref;
	bool finished;
	uint64_t start_ms;     /* dispatch time, for the observer */
	qv_rpc_client *client; /* holds a ref */
	struct qv_rpc_request req;
};

/* rpc.c */
void rpc_client_close(qv_rpc_client *c);
/* Re-evaluate epoll interest and half-closed shutdown. */
void rpc_client_update(qv_rpc_client *c);
/* Queue one serialized message (+ '\n') and try to send it. */
int rpc_client_queue(qv_rpc_client *c, const char *msg, size_t len);

/* Read what a TLS session already holds (from a timer). */
void rpc_client_read_more(qv_rpc_client *c);
/* Take over an accepted fd (with its TLS session, or NULL). */
void rpc_add_client(qv_rpc_server *s, int fd, bool tcp, qv_tls *tls);

/* rpc-tls.c: I/O through the client's TLS session when it has one. */
ssize_t rpc_client_recv(qv_rpc_client *c, void *buf, size_t len);
ssize_t rpc_client_send(qv_rpc_client *c, const void *buf, size_t len);
/* Drive the handshake from a loop event; connects the client once done. */
void rpc_tls_handshake_step(qv_rpc_client *c);
/* Room for one more handshake: drops the oldest one when the cap is full. */
void rpc_tls_make_room(qv_rpc_server *s);
/* Arm the handshake deadline for a new TLS client. */
int rpc_tls_client_start(qv_rpc_client *c);
/* Input decrypted but not yet consumed: read again from a 0 ms timer. */
void rpc_tls_schedule_read(qv_rpc_client *c);
void rpc_tls_client_close(qv_rpc_client *c);
void rpc_tls_server_free(qv_rpc_server *s);

/* rpc-call.c */
void rpc_dispatch(qv_rpc_client *c, struct qv_rpc_request *req);
/* Send an error response (id borrowed, may be NULL -> null). */
int rpc_send_error(qv_rpc_client *c, json_object *id, int code, const char *message,
		   const char *reason, json_object *extra_data);
