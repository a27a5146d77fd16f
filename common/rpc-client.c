/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "common/json.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/rpc-client-internal.h"
#include "common/tls.h"

#define READ_CHUNK (64 * 1024)

struct rpc_response {
	struct rpc_response *next;
	uint64_t id;
	json_object *msg;
};

struct rpc_notification {
	struct rpc_notification *next;
	char *method;
	json_object *params;
};

struct qv_rpc_conn {
	int rfd, wfd;
	pid_t child;
	qv_tls *tls; /* tls:// (rfd == wfd) */
	uint64_t next_id;

	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;

	int broken; /* 0, or -errno once the link is unusable */
	char broken_msg[200];

	uint64_t *pending; /* ids sent, response not consumed */
	size_t n_pending, cap_pending;
	struct rpc_response *resp_head, *resp_tail;
	struct rpc_notification *notif_head, *notif_tail;
	size_t n_notif;

	qv_rpc_notify_fn notify_fn;
	void *notify_ud;
};

/* --- small helpers --------------------------------------------------------- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return negative_errno();
	return 0;
}

static void conn_break(qv_rpc_conn *c, int error, const char *msg)
{
	if (c->broken)
		return;
	c->broken = error < 0 ? error : -error;
	snprintf(c->broken_msg, sizeof(c->broken_msg), "%s", msg);
	log_debug("rpc: connection unusable: %s", msg);
}

static int broken_error(qv_rpc_conn *c, struct qv_error *errp)
{
	const char *reason = (c->broken == -EMSGSIZE || c->broken == -EPROTO)
				     ? QV_REASON_IO_ERROR
				     : QV_REASON_UNAVAILABLE;
	return qv_error_set(errp, c->broken, reason, "%s", c->broken_msg);
}

static bool pending_remove(qv_rpc_conn *c, uint64_t id)
{
	for (size_t i = 0; i < c->n_pending; i++)
		if (c->pending[i] == id) {
			c->pending[i] = c->pending[--c->n_pending];
			return true;
		}
	return false;
}

static bool pending_has(qv_rpc_conn *c, uint64_t id)
{
	for (size_t i = 0; i < c->n_pending; i++)
		if (c->pending[i] == id)
			return true;
	return false;
}

static void notification_free(struct rpc_notification *n)
{
	if (!n)
		return;
	free(n->method);
	if (n->params)
		json_object_put(n->params);
	free(n);
}

/* --- incoming messages ----------------------------------------------------- */

static void handle_notification(qv_rpc_conn *c, const char *method, json_object *params)
{
	struct rpc_notification *n;

	if (c->notify_fn) {
		c->notify_fn(c, method, params, c->notify_ud);
		return;
	}
	if (c->n_notif >= QV_RPC_MAX_QUEUED) {
		n = c->notif_head;
		c->notif_head = n->next;
		if (!c->notif_head)
			c->notif_tail = NULL;
		c->n_notif--;
		log_debug("rpc: notification queue full, dropping oldest \"%s\"", n->method);
		notification_free(n);
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->method = strdup(method))) {
		free(n);
		log_debug("rpc: out of memory, dropping notification \"%s\"", method);
		return;
	}
	n->params = params ? json_object_get(params) : NULL;
	if (c->notif_tail)
		c->notif_tail->next = n;
	else
		c->notif_head = n;
	c->notif_tail = n;
	c->n_notif++;
}

static void handle_line(qv_rpc_conn *c, char *line, size_t len)
{
	_cleanup_json_ json_object *msg = NULL;
	json_tokener *tok;
	json_object *v, *id;
	size_t i;

	for (i = 0; i < len && strchr(" \t\r", line[i]); i++)
		;
	if (i == len)
		return;
	tok = json_tokener_new();
	if (!tok)
		return conn_break(c, -ENOMEM, "out of memory");
	msg = json_tokener_parse_ex(tok, line, (int)len);
	bool bad = !msg || json_tokener_get_error(tok) != json_tokener_success;
	json_tokener_free(tok);
	if (bad || !json_object_is_type(msg, json_type_object))
		return conn_break(c, -EPROTO, "malformed message from the daemon");

	bool has_id = json_object_object_get_ex(msg, "id", &id) &&
		      !json_object_is_type(id, json_type_null);
	if (json_object_object_get_ex(msg, "method", &v)) {
		if (has_id || !json_object_is_type(v, json_type_string)) {
			log_debug("rpc: ignoring request from the daemon");
			return;
		}
		json_object *params = NULL;
		json_object_object_get_ex(msg, "params", &params);
		handle_notification(c, json_object_get_string(v), params);
		return;
	}
	if (!has_id || !json_object_is_type(id, json_type_int)) {
		log_debug("rpc: ignoring response without a usable id");
		return;
	}
	uint64_t n = (uint64_t)json_object_get_int64(id);
	if (!pending_has(c, n)) {
		log_debug("rpc: dropping response to abandoned request %" PRIu64, n);
		return;
	}
	struct rpc_response *r = calloc(1, sizeof(*r));
	if (!r)
		return conn_break(c, -ENOMEM, "out of memory");
	r->id = n;
	r->msg = TAKE_PTR(msg);
	if (c->resp_tail)
		c->resp_tail->next = r;
	else
		c->resp_head = r;
	c->resp_tail = r;
}

static void process_input(qv_rpc_conn *c)
{
	size_t start = 0;
	char *nl;

	while (!c->broken && (nl = memchr(c->in + start, '\n', c->in_len - start))) {
		size_t len = (size_t)(nl - (c->in + start));
		if (len > QV_RPC_MAX_MESSAGE)
			return conn_break(c, -EMSGSIZE, "message from the daemon exceeds 1 MiB");
		*nl = '\0';
		handle_line(c, c->in + start, len);
		start += len + 1;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->in_len > QV_RPC_MAX_MESSAGE)
		conn_break(c, -EMSGSIZE, "message from the daemon exceeds 1 MiB");
}

static int do_read(qv_rpc_conn *c)
{
	if (c->in_cap - c->in_len < READ_CHUNK + 1) {
		size_t cap = c->in_len + READ_CHUNK + 1;
		char *p = realloc(c->in, cap);
		if (!p)
			return -ENOMEM;
		c->in = p;
		c->in_cap = cap;
	}
	ssize_t n;
	if (c->tls) {
		n = qv_tls_read(c->tls, c->in + c->in_len, READ_CHUNK);
		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			conn_break(c, (int)n, n == -EACCES ? "the daemon ended the TLS session "
							     "(our client certificate refused?)"
							   : "TLS connection to the daemon failed");
			return (int)n;
		}
	} else {
		n = read(c->rfd, c->in + c->in_len, READ_CHUNK);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
	}
	if (n == 0) {
		process_input(c);
		conn_break(c, -ECONNRESET, "connection closed by the daemon");
		return -ECONNRESET;
	}
	c->in_len += (size_t)n;
	process_input(c);
	return 0;
}

static int do_write(qv_rpc_conn *c)
{
	while (c->out_off < c->out_len) {
		const char *p = c->out + c->out_off;
		size_t len = c->out_len - c->out_off;
		ssize_t n;
		if (c->tls) {
			n = qv_tls_write(c->tls, p, len);
			if (n < 0) {
				errno = n == -EAGAIN ? EAGAIN : (int)-n;
				n = -1;
			}
		} else
			n = send(c->wfd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = write(c->wfd, p, len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			int r = negative_errno();
			conn_break(c, r, "connection to the daemon lost");
			return r;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

/* One poll round: flush output, read input. 0 or -ETIMEDOUT or -errno. */
static int conn_pump(qv_rpc_conn *c, int64_t deadline)
{
	struct pollfd p[2] = { { .fd = c->rfd, .events = POLLIN } };
	nfds_t n = 1;
	int timeout = -1;

	/* Decrypted data waiting inside the TLS session: poll cannot see it. */
	if (c->tls && qv_tls_pending(c->tls) > 0) {
		if (c->out_len > c->out_off)
			do_write(c);
		do_read(c);
		return c->broken;
	}

	if (c->out_len > c->out_off) {
		if (c->wfd == c->rfd)
			p[0].events |= POLLOUT;
		else
			p[n++] = (struct pollfd){ .fd = c->wfd, .events = POLLOUT };
	}
	if (deadline >= 0) {
		int64_t left = deadline - (int64_t)qv_now_ms();
		timeout = left > 0 ? (int)(left > INT32_MAX ? INT32_MAX : left) : 0;
	}
	int r = poll(p, n, timeout);
	if (r < 0)
		return errno == EINTR ? 0 : negative_errno();
	if (r == 0)
		return -ETIMEDOUT;
	for (nfds_t i = 0; i < n; i++) {
		if ((p[i].revents & (POLLOUT | POLLERR)) && p[i].fd == c->wfd &&
		    c->out_len > c->out_off)
			do_write(c);
		if (p[i].fd == c->rfd && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
			do_read(c);
	}
	return c->broken;
}

static int64_t deadline_from(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : (int64_t)qv_now_ms() + timeout_ms;
}

/* --- responses ------------------------------------------------------------- */

static int decode_response(json_object *msg, json_object **ret_result, struct qv_error *errp)
{
	json_object *err, *res, *v, *data;

	if (json_object_object_get_ex(msg, "error", &err) &&
	    !json_object_is_type(err, json_type_null)) {
		const char *reason = QV_REASON_INTERNAL, *message = "unknown error";
		if (json_object_object_get_ex(err, "message", &v) &&
		    json_object_is_type(v, json_type_string))
			message = json_object_get_string(v);
		if (json_object_object_get_ex(err, "data", &data) &&
		    json_object_object_get_ex(data, "reason", &v) &&
		    json_object_is_type(v, json_type_string) && *json_object_get_string(v))
			reason = json_object_get_string(v);
		return qv_error_set(errp, EREMOTEIO, reason, "%s", message);
	}
	if (!json_object_object_get_ex(msg, "result", &res))
		return qv_error_set(errp, EPROTO, QV_REASON_IO_ERROR,
				    "response from the daemon has neither result nor error");
	if (ret_result)
		*ret_result = res ? json_object_get(res) : NULL;
	return 0;
}

static struct rpc_response *take_response(qv_rpc_conn *c, bool any, uint64_t id)
{
	struct rpc_response **pp, *prev = NULL;

	for (pp = &c->resp_head; *pp; prev = *pp, pp = &(*pp)->next) {
		struct rpc_response *r = *pp;
		if (!any && r->id != id)
			continue;
		*pp = r->next;
		if (c->resp_tail == r)
			c->resp_tail = prev;
		pending_remove(c, r->id);
		return r;
	}
	return NULL;
}

static int finish_response(struct rpc_response *r, uint64_t *ret_id, json_object **ret_result,
			   struct qv_error *errp)
{
	int ret = decode_response(r->msg, ret_result, errp);
	if (ret_id)
		*ret_id = r->id;
	json_object_put(r->msg);
	free(r);
	return ret;
}

int qv_rpc_recv_response(qv_rpc_conn *c, int timeout_ms, uint64_t id,
			 json_object **ret_result, struct qv_error *errp)
{
	int64_t deadline = deadline_from(timeout_ms);

	for (;;) {
		struct rpc_response *r = take_response(c, false, id);
		if (r)
			return finish_response(r, NULL, ret_result, errp);
		if (!pending_has(c, id))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "no outstanding request with id %" PRIu64, id);
		if (c->broken) {
			pending_remove(c, id);
			return broken_error(c, errp);
		}
		int r2 = conn_pump(c, deadline);
		if (r2 == -ETIMEDOUT) {
			if ((r = take_response(c, false, id)))
				return finish_response(r, NULL, ret_result, errp);
			pending_remove(c, id);
			return qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
					    "no response from the daemon within %d ms", timeout_ms);
		}
		if (r2 < 0 && !c->broken)
			conn_break(c, r2, "connection to the daemon failed");
	}
}

int qv_rpc_recv_any(qv_rpc_conn *c, int timeout_ms, uint64_t *ret_id,
		    json_object **ret_result, struct qv_error *errp)
{
	int64_t deadline = deadline_from(timeout_ms);

	for (;;) {
		struct rpc_response *r = take_response(c, true, 0);
		if (r)
			return finish_response(r, ret_id, ret_result, errp);
		if (c->n_pending == 0)
			return qv_error_set(errp, ENOMSG, QV_REASON_INVALID_ARGUMENT,
					    "no outstanding request");
		if (c->broken)
			return broken_error(c, errp);
		int r2 = conn_pump(c, deadline);
		if (r2 == -ETIMEDOUT) {
			if ((r = take_response(c, true, 0)))
				return finish_response(r, ret_id, ret_result, errp);
			return qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
					    "no response from the daemon within %d ms", timeout_ms);
		}
		if (r2 < 0 && !c->broken)
			conn_break(c, r2, "connection to the daemon failed");
	}
}

size_t qv_rpc_outstanding(qv_rpc_conn *c)
{
	return c ? c->n_pending : 0;
}

int qv_rpc_send(qv_rpc_conn *c, const char *method, json_object *params, uint64_t *ret_id,
		struct qv_error *errp)
{
	_cleanup_json_ json_object *p = params;
	_cleanup_json_ json_object *req = NULL;
	const char *s;
	size_t len;

	if (c->broken)
		return broken_error(c, errp);
	req = json_object_new_object();
	if (!req)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	uint64_t id = c->next_id++;
	json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(req, "id", json_object_new_int64((int64_t)id));
	json_object_object_add(req, "method", json_object_new_string(method));
	if (p)
		json_object_object_add(req, "params", TAKE_PTR(p));
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(s);
	if (c->n_pending == c->cap_pending) {
		size_t cap = c->cap_pending ? c->cap_pending * 2 : 16;
		uint64_t *np = realloc(c->pending, cap * sizeof(*np));
		if (!np)
			return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		c->pending = np;
		c->cap_pending = cap;
	}
	if (c->out_cap - c->out_len < len + 1) {
		size_t cap = (c->out_len + len + 1) * 2;
		char *np = realloc(c->out, cap);
		if (!np)
			return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		c->out = np;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
	c->pending[c->n_pending++] = id;
	do_write(c); /* opportunistic; the rest goes out while waiting */
	if (ret_id)
		*ret_id = id;
	return 0;
}

int qv_rpc_invoke(qv_rpc_conn *c, const char *method, json_object *params, int timeout_ms,
		json_object **ret_result, struct qv_error *errp)
{
	uint64_t id;
	int r = qv_rpc_send(c, method, params, &id, errp);

	if (r < 0)
		return r;
	return qv_rpc_recv_response(c, timeout_ms, id, ret_result, errp);
}

int qv_rpc_wait_notification(qv_rpc_conn *c, int timeout_ms, char **ret_method,
			     json_object **ret_params, struct qv_error *errp)
{
	int64_t deadline = deadline_from(timeout_ms);

	for (;;) {
		struct rpc_notification *n = c->notif_head;
		if (n) {
			c->notif_head = n->next;
			if (!c->notif_head)
				c->notif_tail = NULL;
			c->n_notif--;
			*ret_method = TAKE_PTR(n->method);
			if (ret_params)
				*ret_params = TAKE_PTR(n->params);
			notification_free(n);
			return 0;
		}
		if (c->broken)
			return broken_error(c, errp);
		int r = conn_pump(c, deadline);
		if (r == -ETIMEDOUT && !c->notif_head)
			return qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
					    "no notification within %d ms", timeout_ms);
		if (r < 0 && r != -ETIMEDOUT && !c->broken)
			conn_break(c, r, "connection to the daemon failed");
	}
}

/* --- lifetime and transports ----------------------------------------------- */

int qv_rpc_conn_new_fds(int rfd, int wfd, qv_rpc_conn **ret_conn)
{
	qv_rpc_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(rfd);
		if (wfd != rfd)
			close(wfd);
		return -ENOMEM;
	}
	c->rfd = rfd;
	c->wfd = wfd;
	c->child = -1;
	c->next_id = 1;
	set_nonblock(rfd);
	if (wfd != rfd)
		set_nonblock(wfd);
	*ret_conn = c;
	return 0;
}

void qv_rpc_reap_child(pid_t pid)
{
	for (int i = 0; i < 200; i++) { /* about 2 s */
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		usleep(10 * 1000);
	}
	kill(pid, SIGTERM);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

qv_rpc_conn *qv_rpc_conn_free(qv_rpc_conn *c)
{
	if (!c)
		return NULL;
	c->tls = qv_tls_free(c->tls);
	if (c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->child > 0)
		qv_rpc_reap_child(c->child);
	while (c->resp_head) {
		struct rpc_response *r = c->resp_head;
		c->resp_head = r->next;
		json_object_put(r->msg);
		free(r);
	}
	while (c->notif_head) {
		struct rpc_notification *n = c->notif_head;
		c->notif_head = n->next;
		notification_free(n);
	}
	free(c->pending);
	free(c->in);
	free(c->out);
	free(c);
	return NULL;
}

void qv_rpc_conn_freep(qv_rpc_conn **c)
{
	*c = qv_rpc_conn_free(*c);
}

int qv_rpc_conn_fd(qv_rpc_conn *c)
{
	return c->rfd;
}

bool qv_rpc_conn_buffered(qv_rpc_conn *c)
{
	return c->tls && qv_tls_pending(c->tls) > 0;
}

void qv_rpc_set_notify_handler(qv_rpc_conn *c, qv_rpc_notify_fn fn, void *userdata)
{
	c->notify_fn = fn;
	c->notify_ud = userdata;
}

void qv_rpc_conn_set_child(qv_rpc_conn *c, pid_t pid)
{
	c->child = pid;
}

void qv_rpc_conn_set_tls(qv_rpc_conn *c, qv_tls *tls)
{
	c->tls = tls;
}

bool qv_rpc_conn_peer_has_name(qv_rpc_conn *c, const char *name)
{
	return c && c->tls && qv_tls_peer_has_name(c->tls, name);
}

const char *qv_rpc_conn_peer_dn(qv_rpc_conn *c)
{
	return c && c->tls ? qv_tls_peer_dn(c->tls) : NULL;
}
