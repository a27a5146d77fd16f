/* SPDX-License-Identifier: MIT */
/* JSON-RPC server: listening socket, clients, line framing, output queues.
 * Calls and responses live in rpc-call.c, parsing in rpc-parse.c. */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/log.h"
#include "daemon/rpc-internal.h"

#define READ_CHUNK (64 * 1024)
#define READS_PER_WAKEUP 16

/* --- clients ------------------------------------------------------------- */

qv_rpc_client *qv_rpc_client_ref(qv_rpc_client *c)
{
	if (c)
		c->ref++;
	return c;
}

qv_rpc_client *qv_rpc_client_unref(qv_rpc_client *c)
{
	if (!c || --c->ref > 0)
		return NULL;
	free(c->in);
	free(c->out);
	free(c);
	return NULL;
}

const struct qv_rpc_peer *qv_rpc_client_peer(qv_rpc_client *c)
{
	return &c->peer;
}

unsigned qv_rpc_client_id(qv_rpc_client *c)
{
	return c->id;
}

bool qv_rpc_client_is_connected(qv_rpc_client *c)
{
	return c && c->connected;
}

void qv_rpc_client_subscribe(qv_rpc_client *c, bool subscribe)
{
	c->subscribed = subscribe;
}

bool qv_rpc_client_is_subscribed(qv_rpc_client *c)
{
	return c->subscribed;
}

void rpc_client_close(qv_rpc_client *c)
{
	qv_rpc_server *s = c->server;

	bool handshaking = c->handshaking;

	if (!c->connected)
		return;
	log_debug("rpc: client %u (pid %d) disconnected", c->id, (int)c->peer.pid);
	c->connected = false;
	c->src = qv_source_remove(c->src);
	rpc_tls_client_close(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->out_off = c->out_len = 0;
	if (s) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->clients = c->next;
		if (c->next)
			c->next->prev = c->prev;
		if (handshaking)
			s->n_handshaking--;
		else
			s->n_clients--;
	}
	c->prev = c->next = NULL;
	c->server = NULL;
	qv_rpc_client_unref(c); /* the server list's reference */
}

void rpc_client_update(qv_rpc_client *c)
{
	uint32_t ev = 0;
	size_t queued;

	if (!c->connected || c->handshaking)
		return;
	queued = c->out_len - c->out_off;
	if (c->read_eof && queued == 0 && c->pending_calls == 0) {
		rpc_client_close(c);
		return;
	}
	if (!c->read_eof && queued < QV_RPC_OUTPUT_HIGH)
		ev |= EPOLLIN;
	if (queued > 0)
		ev |= EPOLLOUT;
	if (ev != c->events) {
		if (qv_source_set_events(c->src, ev) < 0) {
			rpc_client_close(c);
			return;
		}
		c->events = ev;
	}
}

/* Write as much queued output as the socket takes. */
static void client_flush(qv_rpc_client *c)
{
	while (c->connected && c->out_off < c->out_len) {
		ssize_t n = rpc_client_send(c, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_debug_errno(errno, "rpc: client %u: write failed: %m", c->id);
			rpc_client_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
}

int rpc_client_queue(qv_rpc_client *c, const char *msg, size_t len)
{
	size_t need;

	if (!c->connected)
		return -ENOTCONN;
	if (c->out_len - c->out_off + len + 1 > QV_RPC_OUTPUT_MAX) {
		log_debug("rpc: client %u does not read its output, disconnecting", c->id);
		rpc_client_close(c);
		return -ENOBUFS;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	need = c->out_len + len + 1;
	if (need > c->out_cap && c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
		need = c->out_len + len + 1;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < need)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p) {
			rpc_client_close(c);
			return -ENOMEM;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, msg, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
	if (!(c->events & EPOLLOUT))
		client_flush(c);
	rpc_client_update(c);
	return c->connected ? 0 : -ENOTCONN;
}

static bool all_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static void process_line(qv_rpc_client *c, const char *line, size_t len)
{
	struct qv_rpc_request req;
	struct qv_error err = {};
	int r;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (all_space(line, len))
		return;
	r = qv_rpc_parse_request(line, len, &req, &err);
	if (r < 0) {
		log_debug("rpc: client %u: %s", c->id, err.message);
		rpc_send_error(c, req.id, qv_rpc_code_for_parse_error(r), err.message, err.reason,
			       NULL);
		qv_rpc_request_done(&req);
		return;
	}
	rpc_dispatch(c, &req); /* takes req */
}

static void too_long(qv_rpc_client *c)
{
	rpc_send_error(c, NULL, QV_RPC_INVALID_REQUEST, "message exceeds 1 MiB",
		       QV_REASON_INVALID_ARGUMENT, NULL);
}

static int in_append(qv_rpc_client *c, const char *p, size_t n)
{
	if (c->in_len + n > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 4096;
		while (cap < c->in_len + n)
			cap *= 2;
		if (cap > QV_RPC_MAX_MESSAGE)
			cap = QV_RPC_MAX_MESSAGE;
		char *q = realloc(c->in, cap);
		if (!q)
			return -ENOMEM;
		c->in = q;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	return 0;
}

/* Split received bytes into lines; never buffer more than one message. */
static void feed(qv_rpc_client *c, const char *p, size_t n)
{
	while (n > 0 && c->connected) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n;
		size_t skip = nl ? seg + 1 : n;

		if (c->discarding) {
			if (nl)
				c->discarding = false;
		} else if (c->in_len + seg > QV_RPC_MAX_MESSAGE) {
			c->in_len = 0;
			c->discarding = !nl;
			too_long(c);
		} else if (nl && c->in_len == 0) {
			process_line(c, p, seg); /* whole line in this chunk: no copy */
		} else {
			if (in_append(c, p, seg) < 0) {
				rpc_client_close(c);
				return;
			}
			if (nl) {
				process_line(c, c->in, c->in_len);
				c->in_len = 0;
			}
		}
		p += skip;
		n -= skip;
	}
}

static void on_eof(qv_rpc_client *c)
{
	c->read_eof = true;
	/* An unterminated last message is still served. */
	if (!c->discarding && c->in_len > 0) {
		size_t len = c->in_len;
		c->in_len = 0;
		process_line(c, c->in, len);
	}
}

static void client_read(qv_rpc_client *c, bool hup)
{
	char buf[READ_CHUNK];

	for (unsigned i = 0; c->connected && !c->read_eof; i++) {
		if (!hup && (i >= READS_PER_WAKEUP ||
			     c->out_len - c->out_off >= QV_RPC_OUTPUT_HIGH))
			break;
		ssize_t n = rpc_client_recv(c, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				rpc_client_close(c);
			break;
		}
		if (n == 0) {
			on_eof(c);
			break;
		}
		feed(c, buf, (size_t)n);
	}
	rpc_tls_schedule_read(c);
}

void rpc_client_read_more(qv_rpc_client *c)
{
	qv_rpc_client_ref(c);
	if (c->connected && !c->read_eof)
		client_read(c, false); /* stops by itself while output is high */
	rpc_client_update(c);
	qv_rpc_client_unref(c);
}

static void on_client_io(qv_source *src, int fd, uint32_t revents, void *userdata)
{
	qv_rpc_client *c = qv_rpc_client_ref(userdata);

	if (c->handshaking && !(revents & EPOLLERR)) {
		rpc_tls_handshake_step(c);
		qv_rpc_client_unref(c);
		return;
	}
	if (revents & EPOLLERR)
		rpc_client_close(c);
	if (c->connected && (revents & EPOLLOUT))
		client_flush(c);
	if (c->connected && (revents & (EPOLLIN | EPOLLHUP)))
		client_read(c, revents & EPOLLHUP);
	/* Peer gone in both directions: nothing more can be delivered. */
	if (revents & EPOLLHUP)
		rpc_client_close(c);
	rpc_client_update(c);
	qv_rpc_client_unref(c);
}

/* --- accepting ----------------------------------------------------------- */

static void reject_client(int fd)
{
	static const char msg[] =
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32003,"
		"\"message\":\"too many clients\",\"data\":{\"reason\":\"unavailable\"}}}\n";

	(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

void rpc_add_client(qv_rpc_server *s, int fd, bool tcp, qv_tls *tls)
{
	struct ucred cred = {};
	socklen_t sl = sizeof(cred);
	qv_rpc_client *c;

	/* A TLS client counts against the client cap once verified
	 * (rpc_tls_handshake_step); until then against the handshake cap. */
	if (!tls && s->n_clients >= s->max_clients) {
		log_debug("rpc: client limit (%u) reached, rejecting a connection", s->max_clients);
		reject_client(fd);
		return;
	}
	if (tls)
		rpc_tls_make_room(s);
	c = calloc(1, sizeof(*c));
	if (!c) {
		qv_tls_free(tls);
		close(fd);
		return;
	}
	if (tcp || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0)
		cred = (struct ucred){ .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	c->ref = 1;
	c->fd = fd;
	c->server = s;
	c->id = ++s->next_client_id;
	c->peer = (struct qv_rpc_peer){ .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
	c->events = EPOLLIN;
	c->tls = tls;
	c->tcp = tcp;
	c->handshaking = tls != NULL;
	if (qv_loop_add_io(s->loop, fd, c->events, on_client_io, c, &c->src) < 0) {
		qv_tls_free(tls);
		close(fd);
		free(c);
		return;
	}
	c->connected = true;
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	if (c->handshaking)
		s->n_handshaking++;
	else
		s->n_clients++;
	log_debug("rpc: client %u connected: pid=%d uid=%u gid=%u", c->id, (int)cred.pid,
		  (unsigned)cred.uid, (unsigned)cred.gid);
	if (c->handshaking) {
		if (rpc_tls_client_start(c) < 0)
			rpc_client_close(c);
		return; /* connect_fn once the peer is verified */
	}
	if (s->connect_fn)
		s->connect_fn(c, &c->peer, s->connect_ud);
}

static void on_listen(qv_source *src, int fd, uint32_t revents, void *userdata)
{
	qv_rpc_server *s = userdata;

	for (unsigned i = 0; i < 64; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_debug_errno(errno, "rpc: accept failed: %m");
			return;
		}
		rpc_add_client(s, cfd, false, NULL);
	}
}

/* --- server -------------------------------------------------------------- */

/* If something sits at path: a live listener -> -EADDRINUSE; a stale socket
 * -> unlinked; another kind of file -> -EEXIST. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, struct qv_error *errp)
{
	_cleanup_close_ int fd = -1;
	struct stat sb;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : qv_error_set(errp, errno, NULL, "cannot stat %s: %s",
							  path, strerror(errno));
	if (!S_ISSOCK(sb.st_mode))
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "%s exists and is not a socket; refusing to replace it", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return qv_error_set(errp, errno, NULL, "socket: %s", strerror(errno));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		return qv_error_set(errp, EADDRINUSE, QV_REASON_CONFLICT,
				    "another daemon is already listening on %s", path);
	if (errno != ECONNREFUSED)
		return qv_error_set(errp, errno, NULL, "cannot probe %s: %s", path,
				    strerror(errno));
	log_debug("rpc: removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return qv_error_set(errp, errno, NULL, "cannot remove stale socket %s: %s", path,
				    strerror(errno));
	return 0;
}

int qv_rpc_server_new(qv_loop *loop, const char *socket_path, mode_t mode,
		      qv_rpc_server **ret_server, struct qv_error *errp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	qv_rpc_server *s;
	struct stat sb;
	int r;

	if (!loop || !socket_path || !ret_server)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "bad arguments");
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return qv_error_set(errp, ENAMETOOLONG, QV_REASON_INVALID_ARGUMENT,
				    "socket path %s is too long", socket_path);
	strcpy(sa.sun_path, socket_path);

	r = clear_stale(socket_path, &sa, errp);
	if (r < 0)
		return r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return qv_error_set(errp, ENOMEM, NULL, "out of memory");
	s->loop = loop;
	s->tcp_fd = -1;
	s->max_clients = QV_RPC_DEFAULT_MAX_CLIENTS;
	s->path = strdup(socket_path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (!s->path || s->listen_fd < 0) {
		r = qv_error_set(errp, s->path ? errno : ENOMEM, NULL, "socket: %s",
				 strerror(s->path ? errno : ENOMEM));
		goto fail;
	}
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = qv_error_set(errp, errno, errno == EADDRINUSE ? QV_REASON_CONFLICT : NULL,
				 "cannot bind %s: %s", socket_path, strerror(errno));
		goto fail;
	}
	/* Nobody can connect before listen(), so chmod here has no race. */
	if (chmod(socket_path, mode) < 0 || lstat(socket_path, &sb) < 0) {
		r = qv_error_set(errp, errno, NULL, "cannot chmod %s: %s", socket_path,
				 strerror(errno));
		unlink(socket_path);
		goto fail;
	}
	s->sock_dev = sb.st_dev;
	s->sock_ino = sb.st_ino;
	if (listen(s->listen_fd, 128) < 0) {
		r = qv_error_set(errp, errno, NULL, "listen on %s: %s", socket_path,
				 strerror(errno));
		unlink(socket_path);
		goto fail;
	}
	r = qv_loop_add_io(loop, s->listen_fd, EPOLLIN, on_listen, s, &s->listen_src);
	if (r < 0) {
		qv_error_set(errp, r, NULL, "cannot watch %s", socket_path);
		unlink(socket_path);
		goto fail;
	}
	log_debug("rpc: listening on %s", socket_path);
	*ret_server = s;
	return 0;
fail:
	s->sock_ino = 0;
	qv_rpc_server_free(s);
	return r;
}

int qv_rpc_server_new_fd(qv_loop *loop, int fd, const char *socket_path,
			 qv_rpc_server **ret_server, struct qv_error *errp)
{
	qv_rpc_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		close(fd);
		return qv_error_set(errp, ENOMEM, NULL, "out of memory");
	}
	s->loop = loop;
	s->tcp_fd = -1;
	s->max_clients = QV_RPC_DEFAULT_MAX_CLIENTS;
	s->listen_fd = fd;
	s->path = strdup(socket_path); /* sock_ino stays 0: never unlinked */
	r = s->path ? qv_loop_add_io(loop, fd, EPOLLIN, on_listen, s, &s->listen_src) : -ENOMEM;
	if (r < 0) {
		qv_error_set(errp, -r, NULL, "cannot watch %s", socket_path);
		qv_rpc_server_free(s);
		return r;
	}
	log_debug("rpc: serving on the socket passed for %s", socket_path);
	*ret_server = s;
	return 0;
}

qv_rpc_server *qv_rpc_server_free(qv_rpc_server *s)
{
	struct stat sb;

	if (!s)
		return NULL;
	while (s->clients)
		rpc_client_close(s->clients);
	rpc_tls_server_free(s);
	s->listen_src = qv_source_remove(s->listen_src);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	/* Unlink only our own socket, not one a newer daemon bound since. */
	if (s->path && s->sock_ino && lstat(s->path, &sb) == 0 && sb.st_ino == s->sock_ino &&
	    sb.st_dev == s->sock_dev)
		unlink(s->path);
	free(s->path);
	free(s->methods);
	free(s);
	return NULL;
}

void qv_rpc_server_freep(qv_rpc_server **s)
{
	*s = qv_rpc_server_free(*s);
}

void qv_rpc_server_set_max_clients(qv_rpc_server *s, unsigned max_clients)
{
	s->max_clients = max_clients;
}

unsigned qv_rpc_server_client_count(qv_rpc_server *s)
{
	return s->n_clients;
}

void qv_rpc_server_set_connect_fn(qv_rpc_server *s, qv_rpc_connect_fn fn, void *userdata)
{
	s->connect_fn = fn;
	s->connect_ud = userdata;
}

void qv_rpc_server_set_observer(qv_rpc_server *s, qv_rpc_observe_fn fn, void *userdata)
{
	s->observe_fn = fn;
	s->observe_ud = userdata;
}

int qv_rpc_server_add_methods(qv_rpc_server *s, const struct qv_rpc_method *methods, size_t n,
			      void *userdata)
{
	struct rpc_method_entry *e;

	for (size_t i = 0; i < n; i++) {
		if (!methods[i].name || !methods[i].fn)
			return -EINVAL;
		for (size_t j = 0; j < s->n_methods; j++)
			if (streq(s->methods[j].m->name, methods[i].name))
				return -EEXIST;
		for (size_t j = 0; j < i; j++)
			if (streq(methods[j].name, methods[i].name))
				return -EEXIST;
	}
	e = realloc(s->methods, (s->n_methods + n) * sizeof(*e));
	if (!e)
		return -ENOMEM;
	s->methods = e;
	for (size_t i = 0; i < n; i++)
		s->methods[s->n_methods++] = (struct rpc_method_entry){ &methods[i], userdata };
	return 0;
}
