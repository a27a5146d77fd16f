/* SPDX-License-Identifier: MIT */
/* QMP socket I/O: bounded incremental parsing, message dispatch, the output
 * queue with SCM_RIGHTS, and tearing the link down. */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "common/log.h"
#include "qemu/qmp-internal.h"

#define QMP_MAX_FDS 16

static void handle_greeting(qmp_client *c, json_object *msg)
{
	json_object *qmp, *ver, *qemu, *v;
	int major = -1, minor = -1, micro = -1;

	if (!json_object_object_get_ex(msg, "QMP", &qmp) ||
	    !json_object_is_type(qmp, json_type_object)) {
		qmp_fail(c, -EPROTO, "QEMU sent no QMP greeting");
		return;
	}
	if (json_object_object_get_ex(qmp, "version", &ver) &&
	    json_object_object_get_ex(ver, "qemu", &qemu) &&
	    json_object_is_type(qemu, json_type_object)) {
		if (json_object_object_get_ex(qemu, "major", &v))
			major = json_object_get_int(v);
		if (json_object_object_get_ex(qemu, "minor", &v))
			minor = json_object_get_int(v);
		if (json_object_object_get_ex(qemu, "micro", &v))
			micro = json_object_get_int(v);
	}
	free(c->version);
	if (major >= 0 && minor >= 0 && micro >= 0) {
		if (asprintf(&c->version, "%d.%d.%d", major, minor, micro) < 0)
			c->version = NULL;
	} else {
		c->version = strdup("unknown");
	}
	c->greeted = true;
	log_debug("QMP greeting: QEMU %s", c->version ? c->version : "?");
	if (c->handshake)
		qmp_handshake_greeted(c);
}

static void dispatch_event(qmp_client *c, json_object *msg, const char *name)
{
	if (c->event_fn) {
		c->event_fn(c, name, msg, c->event_userdata);
		if (qmp_client_gone(c))
			return;
	}
	for (struct qmp_event_waiter *w = c->waiters; w; w = w->next) {
		if (!w->done && streq(w->name, name)) {
			w->event = json_object_get(msg);
			w->done = true;
			break;
		}
	}
}

static void dispatch_message(qmp_client *c, json_object *msg)
{
	json_object *ev;

	if (!json_object_is_type(msg, json_type_object)) {
		qmp_fail(c, -EPROTO, "QEMU sent a QMP message that is not a JSON object");
		return;
	}
	if (!c->greeted) {
		handle_greeting(c, msg);
		return;
	}
	if (json_object_object_get_ex(msg, "event", &ev)) {
		if (!json_object_is_type(ev, json_type_string)) {
			log_debug("QMP: event without a name, ignoring");
			return;
		}
		dispatch_event(c, msg, json_object_get_string(ev));
		return;
	}
	if (json_object_object_get_ex(msg, "return", NULL) ||
	    json_object_object_get_ex(msg, "error", NULL)) {
		qmp_dispatch_reply(c, msg);
		return;
	}
	log_debug("QMP: unknown message, ignoring");
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* An event line as QEMU writes it: {"timestamp": {...}, "event": "NAME", ...}
 * followed by a newline. Copies NAME; false when the line does not have
 * that shape (then it is parsed normally). */
static bool scan_event_name(const char *line, size_t len, char *name, size_t name_size)
{
	static const char head[] = "{\"timestamp\": {";
	static const char key[] = "\"event\": \"";
	const char *k, *end;

	if (len < sizeof(head) || memcmp(line, head, sizeof(head) - 1) != 0)
		return false;
	/* The timestamp holds only numbers, so the first key match is the
	 * real one; guest-influenced strings come later, in "data". */
	k = memmem(line, len, key, sizeof(key) - 1);
	if (!k)
		return false;
	k += sizeof(key) - 1;
	end = memchr(k, '"', len - (size_t)(k - line));
	if (!end || end == k || (size_t)(end - k) >= name_size)
		return false;
	for (const char *p = k; p < end; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	memcpy(name, k, (size_t)(end - k));
	name[end - k] = '\0';
	return true;
}

static bool has_waiter(qmp_client *c, const char *name)
{
	for (struct qmp_event_waiter *w = c->waiters; w; w = w->next)
		if (!w->done && streq(w->name, name))
			return true;
	return false;
}

/* At a message boundary: if the next complete line is an event the filter
 * refuses, skip it unparsed. true when a line was skipped. */
static bool filter_next_line(qmp_client *c)
{
	const char *line = c->inbuf + c->in_start;
	size_t avail = c->in_end - c->in_start;
	const char *nl;
	char name[64];

	if (!c->event_filter || !c->greeted)
		return false;
	nl = memchr(line, '\n', avail);
	if (!nl || !scan_event_name(line, (size_t)(nl - line), name, sizeof(name)))
		return false;
	if (has_waiter(c, name) || c->event_filter(c, name, c->event_filter_userdata))
		return false;
	c->in_start += (size_t)(nl - line) + 1;
	return true;
}

int qmp_parse_buffered(qmp_client *c, const bool *stop)
{
	int r = 0;

	qmp_client_ref(c);
	while (!qmp_client_gone(c) && c->in_start < c->in_end && !(stop && *stop)) {
		size_t room, feed;
		json_object *obj;

		/* Whitespace between messages does not count against the limit. */
		if (c->msg_bytes == 0 && is_space(c->inbuf[c->in_start])) {
			c->in_start++;
			continue;
		}
		if (c->msg_bytes == 0 && filter_next_line(c))
			continue;
		room = QMP_MAX_MESSAGE - c->msg_bytes;
		feed = c->in_end - c->in_start;
		if (feed > room)
			feed = room;
		obj = json_tokener_parse_ex(c->tok, c->inbuf + c->in_start, (int)feed);
		size_t used = json_tokener_get_parse_end(c->tok);
		c->in_start += used;
		c->msg_bytes += used;
		if (obj) {
			c->msg_bytes = 0;
			dispatch_message(c, obj);
			json_object_put(obj);
			continue;
		}
		enum json_tokener_error jerr = json_tokener_get_error(c->tok);
		if (jerr != json_tokener_continue) {
			qmp_fail(c, -EPROTO, "QEMU sent malformed QMP data (%s)",
				 json_tokener_error_desc(jerr));
			break;
		}
		if (c->msg_bytes >= QMP_MAX_MESSAGE) {
			qmp_fail(c, -EMSGSIZE,
				 "QEMU sent a QMP message larger than %d bytes, connection dropped",
				 QMP_MAX_MESSAGE);
			break;
		}
	}
	if (c->closed)
		r = c->close_error ? c->close_error : -ECONNRESET;
	qmp_client_unref(c);
	return r;
}

int qmp_read_and_parse(qmp_client *c, const bool *stop)
{
	ssize_t n;

	if (qmp_client_gone(c))
		return -ENOTCONN;
	if (c->in_start < c->in_end)
		return qmp_parse_buffered(c, stop);
	n = recv(c->fd, c->inbuf, QMP_READ_CHUNK, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		int r = -errno;
		qmp_fail(c, r == -ECONNRESET ? 0 : r, "Reading from the QMP socket failed: %s",
			 strerror(-r));
		return r;
	}
	if (n == 0) {
		qmp_fail(c, 0, "QEMU closed the QMP connection");
		return -ECONNRESET;
	}
	c->in_start = 0;
	c->in_end = (size_t)n;
	return qmp_parse_buffered(c, stop);
}

void qmp_update_io_events(qmp_client *c)
{
	uint32_t want = EPOLLIN | (c->out ? EPOLLOUT : 0);

	if (!c->io || want == c->io_events)
		return;
	if (qv_source_set_events(c->io, want) >= 0)
		c->io_events = want;
}

static void out_free(struct qmp_out *o)
{
	for (size_t i = 0; i < o->n_fds; i++)
		close(o->fds[i]);
	free(o->fds);
	free(o->buf);
	free(o);
}

void qmp_out_free_all(qmp_client *c)
{
	while (c->out) {
		struct qmp_out *o = c->out;
		c->out = o->next;
		out_free(o);
	}
	c->out_tail = &c->out;
}

int qmp_queue_output(qmp_client *c, char *buf, size_t len, const int *fds, size_t n_fds)
{
	struct qmp_out *o;

	if (n_fds > QMP_MAX_FDS)
		return -EINVAL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	if (n_fds > 0) {
		o->fds = calloc(n_fds, sizeof(int));
		if (!o->fds) {
			free(o);
			return -ENOMEM;
		}
		for (; o->n_fds < n_fds; o->n_fds++) {
			int fd = fcntl(fds[o->n_fds], F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				int r = -errno;
				out_free(o);
				return r;
			}
			o->fds[o->n_fds] = fd;
		}
	}
	o->buf = buf;
	o->len = len;
	*c->out_tail = o;
	c->out_tail = &o->next;
	return 0;
}

static ssize_t send_one(int fd, struct qmp_out *o)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * QMP_MAX_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { .iov_base = o->buf + o->off, .iov_len = o->len - o->off };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (o->n_fds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * o->n_fds);
		struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * o->n_fds);
		memcpy(CMSG_DATA(cmsg), o->fds, sizeof(int) * o->n_fds);
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int qmp_flush(qmp_client *c)
{
	if (qmp_client_gone(c))
		return -ENOTCONN;
	while (c->out) {
		struct qmp_out *o = c->out;
		ssize_t n = send_one(c->fd, o);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			int r = -errno;
			if (r == -EPIPE || r == -ECONNRESET)
				qmp_fail(c, 0, "QEMU closed the QMP connection");
			else
				qmp_fail(c, r, "Writing to the QMP socket failed: %s", strerror(-r));
			return r;
		}
		/* The fds travel with the first byte sent. */
		for (size_t i = 0; i < o->n_fds; i++)
			close(o->fds[i]);
		o->n_fds = 0;
		o->off += (size_t)n;
		if (o->off == o->len) {
			c->out = o->next;
			if (!c->out)
				c->out_tail = &c->out;
			out_free(o);
		}
	}
	qmp_update_io_events(c);
	return 0;
}

void qmp_fail(qmp_client *c, int error, const char *fmt, ...)
{
	va_list ap;
	int closed_error;

	if (c->closed)
		return;
	qmp_client_ref(c);
	c->closed = true;
	va_start(ap, fmt);
	vsnprintf(c->close_msg, sizeof(c->close_msg), fmt, ap);
	va_end(ap);
	log_debug("QMP: %s", c->close_msg);

	/* An EOF with nothing in flight is an orderly close (e.g. after "quit"). */
	closed_error = error;
	if (error == 0 && c->pending)
		closed_error = -ECONNRESET;
	c->close_error = error ? error : -ECONNRESET;

	c->io = qv_source_remove(c->io);
	c->resume = qv_source_remove(c->resume);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in_start = c->in_end = 0;
	qmp_out_free_all(c);

	/* A failed handshake is reported to its callback, not as a close. */
	bool in_handshake = c->handshake != NULL;
	qmp_fail_pending(c, error ? error : -ECONNRESET, QV_REASON_UNAVAILABLE, c->close_msg);
	if (in_handshake) {
		if (c->handshake)
			qmp_handshake_failed(c);
	} else if (c->closed_fn && !c->freed)
		c->closed_fn(c, closed_error, c->closed_userdata);
	qmp_client_unref(c);
}
