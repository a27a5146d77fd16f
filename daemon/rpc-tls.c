/* SPDX-License-Identifier: MIT */
/* The RPC server's TCP listener: mutual TLS (common/tls.c) driven by the
 * loop. A handshake never blocks: it advances on the client's fd events
 * and is cut after QV_RPC_HANDSHAKE_TIMEOUT_MS; handshakes have their own
 * cap (QV_RPC_MAX_HANDSHAKES, oldest dropped first). Until it succeeds the
 * client sends no request and gets no event. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common/log.h"
#include "daemon/rpc-internal.h"

ssize_t rpc_client_recv(qv_rpc_client *c, void *buf, size_t len)
{
	ssize_t n;

	if (!c->tls)
		return read(c->fd, buf, len);
	n = qv_tls_read(c->tls, buf, len);
	if (n < 0) {
		errno = (int)-n;
		return -1;
	}
	return n;
}

ssize_t rpc_client_send(qv_rpc_client *c, const void *buf, size_t len)
{
	ssize_t n;

	if (!c->tls)
		return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	n = qv_tls_write(c->tls, buf, len);
	if (n < 0) {
		errno = (int)-n;
		return -1;
	}
	return n;
}

static void on_handshake_timeout(qv_source *src, void *ud)
{
	qv_rpc_client *c = ud;

	c->tls_timer = NULL;
	log_info("RPC client %u: TLS handshake not done within %d ms, disconnecting", c->id,
		 QV_RPC_HANDSHAKE_TIMEOUT_MS);
	rpc_client_close(c);
}

int rpc_tls_client_start(qv_rpc_client *c)
{
	return qv_loop_add_timer(c->server->loop, QV_RPC_HANDSHAKE_TIMEOUT_MS,
				 on_handshake_timeout, c, &c->tls_timer);
}

void rpc_tls_make_room(qv_rpc_server *s)
{
	qv_rpc_client *oldest = NULL;

	if (s->n_handshaking < QV_RPC_MAX_HANDSHAKES)
		return;
	/* New clients go to the list's head: the oldest handshake is last. */
	for (qv_rpc_client *c = s->clients; c; c = c->next)
		if (c->handshaking)
			oldest = c;
	if (!oldest)
		return;
	log_info("RPC client %u: %u TLS handshakes in progress, dropping the oldest for a new "
		 "connection", oldest->id, s->n_handshaking);
	rpc_client_close(oldest);
}

static void on_pending_input(qv_source *src, void *ud)
{
	qv_rpc_client *c = ud;

	c->tls_timer = NULL;
	rpc_client_read_more(c);
}

void rpc_tls_handshake_step(qv_rpc_client *c)
{
	qv_rpc_server *s = c->server;
	struct qv_error err = {};
	uint32_t ev;
	int r;

	r = qv_tls_handshake(c->tls, &err);
	if (r == -EAGAIN) {
		ev = qv_tls_want_write(c->tls) ? EPOLLOUT : EPOLLIN;
		if (ev != c->events && qv_source_set_events(c->src, ev) < 0)
			return rpc_client_close(c);
		c->events = ev;
		return;
	}
	if (r < 0) {
		log_info("RPC client %u refused: %s", c->id, err.message);
		return rpc_client_close(c);
	}
	c->tls_timer = qv_source_remove(c->tls_timer);
	if (s && s->n_clients >= s->max_clients) {
		/* Verified but no room: close (an error line would need a
		 * request id; the client sees its connection end). */
		log_info("RPC client %u (%s): client limit (%u) reached, disconnecting", c->id,
			 qv_tls_peer_dn(c->tls), s->max_clients);
		return rpc_client_close(c);
	}
	c->handshaking = false;
	if (s) {
		s->n_handshaking--;
		s->n_clients++;
	}
	log_debug("rpc: client %u verified: %s", c->id, qv_tls_peer_dn(c->tls));
	if (s && s->connect_fn)
		s->connect_fn(c, &c->peer, s->connect_ud);
	rpc_client_update(c);
	/* A request may have come with the client's last handshake flight. */
	if (c->connected && !c->tls_timer &&
	    qv_loop_add_timer(c->server->loop, 0, on_pending_input, c, &c->tls_timer) < 0)
		c->tls_timer = NULL;
}

void rpc_tls_schedule_read(qv_rpc_client *c)
{
	if (!c->tls || c->handshaking || !c->connected || c->read_eof || c->tls_timer ||
	    qv_tls_pending(c->tls) == 0)
		return;
	if (qv_loop_add_timer(c->server->loop, 0, on_pending_input, c, &c->tls_timer) < 0)
		c->tls_timer = NULL;
}

void rpc_tls_client_close(qv_rpc_client *c)
{
	c->tls_timer = qv_source_remove(c->tls_timer);
	c->tls = qv_tls_free(c->tls);
	c->handshaking = false;
}

static void on_tcp_listen(qv_source *src, int fd, uint32_t revents, void *userdata)
{
	qv_rpc_server *s = userdata;
	struct qv_error err = {};
	int one = 1;

	for (unsigned i = 0; i < 64; i++) {
		qv_tls *tls = NULL;
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_debug_errno(errno, "rpc: accept failed: %m");
			return;
		}
		(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (s->tcp_creds && qv_tls_new(s->tcp_creds, cfd, NULL, &tls, &err) < 0) {
			log_warning("RPC: cannot start a TLS session: %s", err.message);
			qv_error_clear(&err);
			close(cfd);
			continue;
		}
		rpc_add_client(s, cfd, true, tls);
	}
}

int qv_rpc_server_listen_tcp(qv_rpc_server *s, const char *host, int port,
			     const qv_tls_creds *creds, struct qv_error *errp)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE },
			*res = NULL;
	_cleanup_close_ int fd = -1;
	char ports[16];
	int one = 1, g, r;

	if (s->tcp_fd >= 0)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "already listening on TCP");
	snprintf(ports, sizeof(ports), "%d", port);
	g = getaddrinfo(host, ports, &hints, &res);
	if (g != 0)
		return qv_error_set(errp, EADDRNOTAVAIL, QV_REASON_INVALID_ARGUMENT,
				    "cannot resolve %s: %s", host, gai_strerror(g));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		r = qv_error_set(errp, errno, errno == EADDRINUSE ? QV_REASON_CONFLICT
								  : QV_REASON_UNAVAILABLE,
				 "cannot listen on %s:%d: %s", host, port, strerror(errno));
		freeaddrinfo(res);
		return r;
	}
	freeaddrinfo(res);
	r = qv_loop_add_io(s->loop, fd, EPOLLIN, on_tcp_listen, s, &s->tcp_src);
	if (r < 0)
		return qv_error_set(errp, r, QV_REASON_INTERNAL, "cannot watch the TCP listener");
	s->tcp_fd = TAKE_FD(fd);
	s->tcp_creds = creds;
	log_debug("rpc: listening on %s:%d (%s)", host, port, creds ? "TLS" : "plain TCP");
	return 0;
}

void rpc_tls_server_free(qv_rpc_server *s)
{
	s->tcp_src = qv_source_remove(s->tcp_src);
	if (s->tcp_fd >= 0)
		close(s->tcp_fd);
	s->tcp_fd = -1;
}

const char *qv_rpc_client_tls_dn(qv_rpc_client *c)
{
	return c && c->tls && !c->handshaking ? qv_tls_peer_dn(c->tls) : NULL;
}

int qv_rpc_client_local_addr(qv_rpc_client *c, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const void *a;

	if (!c || !c->tcp || c->fd < 0)
		return -ENOTCONN;
	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) < 0)
		return negative_errno();
	if (ss.ss_family == AF_INET)
		a = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	else
		return -EAFNOSUPPORT;
	return inet_ntop(ss.ss_family, a, buf, (socklen_t)size) ? 0 : negative_errno();
}
