/* SPDX-License-Identifier: MIT */
/* Guest agent client: one command per connection, bounded and strict. */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/macro.h"
#include "qemu/qga.h"

enum qga_state { QGA_WAIT_DELIM, QGA_WAIT_SYNC, QGA_WAIT_REPLY };

struct qga_call {
	qv_loop *loop;
	int fd;
	qv_source *io, *timer;
	enum qga_state state;
	bool no_reply, done;
	int64_t sync_id;
	size_t msg_bytes;      /* bytes of the current message (or discarded) */
	json_tokener *tok;
	qga_done_fn fn;
	void *userdata;
};

qga_call *qga_call_cancel(qga_call *c)
{
	if (!c)
		return NULL;
	qv_source_remove(c->io);
	qv_source_remove(c->timer);
	if (c->fd >= 0)
		close(c->fd);
	if (c->tok)
		json_tokener_free(c->tok);
	free(c);
	return NULL;
}

static void finish(qga_call *c, json_object *result, int error, const char *reason,
		   bool misbehaved, const char *fmt, ...) _printf_(6, 7);
static void finish(qga_call *c, json_object *result, int error, const char *reason,
		   bool misbehaved, const char *fmt, ...)
{
	struct qv_error err = {};

	if (fmt) {
		char msg[400];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		qv_error_set(&err, error, reason, "%s", msg);
	}
	c->done = true;
	c->fn(result, fmt ? &err : NULL, misbehaved, c->userdata);
	qga_call_cancel(c);
}

#define MISBEHAVED(c, ...) finish(c, NULL, EPROTO, QV_REASON_INVALID_ARGUMENT, true, __VA_ARGS__)

/* A complete JSON value from the agent. Returns true when the call ended. */
static bool on_message(qga_call *c, json_object *o)
{
	json_object *ret, *e;

	if (!json_object_is_type(o, json_type_object)) {
		MISBEHAVED(c, "guest agent sent a non-object JSON value");
		return true;
	}
	if (c->state == QGA_WAIT_SYNC) {
		if (!json_object_object_get_ex(o, "return", &ret) || !json_object_is_type(ret, json_type_int) ||
		    json_object_get_int64(ret) != c->sync_id) {
			MISBEHAVED(c, "guest agent answered the sync with something else");
			return true;
		}
		c->state = QGA_WAIT_REPLY;
		if (c->no_reply) {
			finish(c, NULL, 0, NULL, false, NULL);
			return true;
		}
		return false;
	}
	if (json_object_object_get_ex(o, "return", &ret) && json_object_object_length(o) == 1) {
		finish(c, ret, 0, NULL, false, NULL);
	} else if (json_object_object_get_ex(o, "error", &e) && json_object_object_length(o) == 1 &&
		   json_object_is_type(e, json_type_object)) {
		json_object *cls = NULL, *desc = NULL;
		json_object_object_get_ex(e, "class", &cls);
		json_object_object_get_ex(e, "desc", &desc);
		finish(c, NULL, EIO, QV_REASON_QEMU_ERROR, false, "guest agent: %.40s: %.300s",
		       cls ? json_object_get_string(cls) : "error",
		       desc ? json_object_get_string(desc) : "(no description)");
	} else
		MISBEHAVED(c, "guest agent reply has neither \"return\" nor \"error\"");
	return true;
}

/* Feed bytes; true when the call ended. */
static bool feed(qga_call *c, const char *buf, size_t n)
{
	while (n) {
		if (c->state == QGA_WAIT_DELIM) {
			const char *d = memchr(buf, 0xff, n);
			size_t skip = d ? (size_t)(d - buf) + 1 : n;
			if ((c->msg_bytes += skip) > QGA_MAX_REPLY) {
				MISBEHAVED(c, "guest agent sent more than %d bytes without a sync delimiter",
					   QGA_MAX_REPLY);
				return true;
			}
			buf += skip, n -= skip;
			if (d)
				c->state = QGA_WAIT_SYNC, c->msg_bytes = 0;
			continue;
		}
		/* whitespace between messages */
		if (c->msg_bytes == 0 && strchr(" \t\r\n", *buf)) {
			buf++, n--;
			continue;
		}
		size_t take = n < QGA_MAX_REPLY ? n : QGA_MAX_REPLY;
		json_object *o = json_tokener_parse_ex(c->tok, buf, (int)take);
		enum json_tokener_error e = json_tokener_get_error(c->tok);
		size_t used = e == json_tokener_continue ? take : json_tokener_get_parse_end(c->tok);
		if ((c->msg_bytes += used) > QGA_MAX_REPLY) {
			json_object_put(o);
			MISBEHAVED(c, "guest agent reply larger than %d bytes", QGA_MAX_REPLY);
			return true;
		}
		buf += used, n -= used;
		if (e == json_tokener_continue)
			continue;
		if (e != json_tokener_success || !o) {
			MISBEHAVED(c, "guest agent sent malformed JSON: %s", json_tokener_error_desc(e));
			return true;
		}
		json_tokener_reset(c->tok);
		c->msg_bytes = 0;
		bool ended = on_message(c, o);
		json_object_put(o);
		if (ended)
			return true;
	}
	return false;
}

static void on_io(qv_source *s, int fd, uint32_t revents, void *ud)
{
	qga_call *c = ud;
	char buf[8192];

	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0)
			return finish(c, NULL, ECONNRESET, QV_REASON_UNAVAILABLE, false,
				      "guest agent channel closed%s", r < 0 ? " with an error" : "");
		if (feed(c, buf, (size_t)r))
			return;
	}
}

static void on_timeout(qv_source *s, void *ud)
{
	qga_call *c = ud;

	c->timer = NULL;
	finish(c, NULL, ETIMEDOUT, QV_REASON_TIMEOUT, false,
	       "guest agent did not answer in time (is qemu-ga running in the guest?)");
}

static int send_request(qga_call *c, const char *command, json_object *args)
{
	_cleanup_json_ json_object *sync = json_object_new_object(), *sa = json_object_new_object();
	_cleanup_json_ json_object *cmd = json_object_new_object();
	_cleanup_free_ char *text = NULL;

	json_object_object_add(sa, "id", json_object_new_int64(c->sync_id));
	json_object_object_add(sync, "execute", json_object_new_string("guest-sync-delimited"));
	json_object_object_add(sync, "arguments", json_object_get(sa));
	json_object_object_add(cmd, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(cmd, "arguments", json_object_get(args));
	/* 0xFF first: the agent drops any partial input from an earlier client */
	int len = asprintf(&text, "\xff%s\n%s\n",
			   json_object_to_json_string_ext(sync, JSON_C_TO_STRING_PLAIN),
			   json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN));
	if (len < 0)
		return -ENOMEM;
	ssize_t w = send(c->fd, text, (size_t)len, MSG_NOSIGNAL);
	return w == len ? 0 : w < 0 ? -errno : -EAGAIN;
}

int qga_call_start(qv_loop *loop, const char *path, const char *command, json_object *args,
		   bool no_reply, uint64_t timeout_ms, qga_done_fn fn, void *userdata,
		   qga_call **ret_call)
{
	_cleanup_json_ json_object *a = args;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint32_t rnd = 0;
	qga_call *c;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	*c = (struct qga_call){ .loop = loop, .fd = -1, .no_reply = no_reply, .fn = fn,
				.userdata = userdata };
	(void)getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK);
	c->sync_id = (int64_t)(rnd & 0x7fffffff) + 1;
	c->tok = json_tokener_new_ex(32);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!c->tok || c->fd < 0) {
		r = c->fd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	/* strict, but a reply may be followed by the next one in the same read */
	json_tokener_set_flags(c->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	/* a unix connect completes at once or fails (no agent socket) */
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = send_request(c, command, a)) < 0 ||
	    (r = qv_loop_add_io(loop, c->fd, EPOLLIN, on_io, c, &c->io)) < 0 ||
	    (r = qv_loop_add_timer(loop, timeout_ms ? timeout_ms : QGA_DEFAULT_TIMEOUT_MS,
				   on_timeout, c, &c->timer)) < 0)
		goto fail;
	*ret_call = c;
	return 0;
fail:
	qga_call_cancel(c);
	return r;
}
