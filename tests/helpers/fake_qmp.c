/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/helpers/fake_qmp.h"

#define FAKE_MAX_FDS 64
#define FAKE_WAIT_MS 10000

struct fake_qmp {
	int fd;
	pthread_t thread;
	bool started;
	fake_qmp_script_fn fn;
	void *userdata;
	char err[1024];
	bool failed;
	json_tokener *tok;
	char buf[65536];
	size_t buf_start, buf_end;
	int fds[FAKE_MAX_FDS];
	size_t n_fds;
};

void fake_qmp_fail(fake_qmp *f, const char *fmt, ...)
{
	va_list ap;

	if (f->failed)
		return;
	f->failed = true;
	va_start(ap, fmt);
	vsnprintf(f->err, sizeof(f->err), fmt, ap);
	va_end(ap);
}

bool fake_qmp_failed(fake_qmp *f)
{
	return f->failed;
}

const char *fake_qmp_error(fake_qmp *f)
{
	return f->failed ? f->err : "";
}

static void *script_thread(void *arg)
{
	fake_qmp *f = arg;

	f->fn(f, f->userdata);
	fake_qmp_close(f);
	return NULL;
}

int fake_qmp_start(fake_qmp_script_fn fn, void *userdata, fake_qmp **ret_fake,
		   int *ret_client_fd)
{
	fake_qmp *f = calloc(1, sizeof(*f));
	int sv[2];

	if (!f)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(f);
		return -errno;
	}
	f->fd = sv[1];
	f->fn = fn;
	f->userdata = userdata;
	f->tok = json_tokener_new();
	if (pthread_create(&f->thread, NULL, script_thread, f) != 0) {
		close(sv[0]);
		close(sv[1]);
		json_tokener_free(f->tok);
		free(f);
		return -EAGAIN;
	}
	f->started = true;
	*ret_fake = f;
	*ret_client_fd = sv[0];
	return 0;
}

int fake_qmp_join(fake_qmp *f)
{
	if (f->started) {
		pthread_join(f->thread, NULL);
		f->started = false;
	}
	return f->failed ? -1 : 0;
}

fake_qmp *fake_qmp_free(fake_qmp *f)
{
	if (!f)
		return NULL;
	fake_qmp_join(f);
	fake_qmp_close(f);
	for (size_t i = 0; i < f->n_fds; i++)
		close(f->fds[i]);
	json_tokener_free(f->tok);
	free(f);
	return NULL;
}

int fake_qmp_fd(fake_qmp *f)
{
	return f->fd;
}

void fake_qmp_close(fake_qmp *f)
{
	if (f->fd >= 0) {
		shutdown(f->fd, SHUT_RDWR);
		close(f->fd);
		f->fd = -1;
	}
}

int fake_qmp_send(fake_qmp *f, const char *text, size_t len)
{
	if (len == (size_t)-1)
		len = strlen(text);
	if (f->failed || f->fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = send(f->fd, text, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fake_qmp_fail(f, "fake server: send failed: %s", strerror(errno));
			return -1;
		}
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Wait (bounded) until the peer has read everything we sent, so the next
 * write reaches it as a separate read. SIOCOUTQ on an AF_UNIX socket counts
 * bytes not yet consumed by the peer. Then pause a little more. */
static void wait_consumed(fake_qmp *f, unsigned pause_us)
{
	for (int i = 0; i < 20000; i++) {
		int q = 0;
		if (ioctl(f->fd, SIOCOUTQ, &q) < 0 || q == 0)
			break;
		usleep(50);
	}
	usleep(pause_us);
}

int fake_qmp_send_split(fake_qmp *f, const char *text, size_t split, unsigned pause_us)
{
	size_t len = strlen(text);

	if (split > len)
		split = len;
	if (fake_qmp_send(f, text, split) < 0)
		return -1;
	wait_consumed(f, pause_us);
	return fake_qmp_send(f, text + split, len - split);
}

int fake_qmp_send_bytewise(fake_qmp *f, const char *text, unsigned pause_us)
{
	for (; *text; text++) {
		if (fake_qmp_send(f, text, 1) < 0)
			return -1;
		wait_consumed(f, pause_us);
	}
	return 0;
}

int fake_qmp_greeting(fake_qmp *f)
{
	return fake_qmp_send(f,
			     "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
			     "\"major\": 7}, \"package\": \"fake\"}, \"capabilities\": "
			     "[\"oob\"]}}\r\n",
			     (size_t)-1);
}

int fake_qmp_handshake(fake_qmp *f)
{
	json_object *cmd;
	int r;

	if (fake_qmp_greeting(f) < 0)
		return -1;
	cmd = fake_qmp_expect(f, "qmp_capabilities");
	if (!cmd)
		return -1;
	r = fake_qmp_reply(f, cmd, "{}");
	json_object_put(cmd);
	return r;
}

/* Read more bytes (and any fds) into buf; 0 on EOF, 1 on data, -1 on error. */
static int fill(fake_qmp *f, int wait_ms)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 32)];
		struct cmsghdr align;
	} cm;
	struct pollfd pfd = { .fd = f->fd, .events = POLLIN };
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (f->buf_start == f->buf_end)
		f->buf_start = f->buf_end = 0;
	if (f->buf_end == sizeof(f->buf)) {
		memmove(f->buf, f->buf + f->buf_start, f->buf_end - f->buf_start);
		f->buf_end -= f->buf_start;
		f->buf_start = 0;
	}
	int pr = poll(&pfd, 1, wait_ms);
	if (pr <= 0) {
		fake_qmp_fail(f, "fake server: nothing from the client within %d ms", wait_ms);
		return -1;
	}
	iov.iov_base = f->buf + f->buf_end;
	iov.iov_len = sizeof(f->buf) - f->buf_end;
	mh.msg_control = cm.b;
	mh.msg_controllen = sizeof(cm.b);
	n = recvmsg(f->fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno == ECONNRESET)
			return 0;
		fake_qmp_fail(f, "fake server: recvmsg: %s", strerror(errno));
		return -1;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < k; i++) {
			if (f->n_fds < FAKE_MAX_FDS)
				f->fds[f->n_fds++] = in[i];
			else
				close(in[i]);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		fake_qmp_fail(f, "fake server: control data truncated");
	f->buf_end += (size_t)n;
	return n == 0 ? 0 : 1;
}

json_object *fake_qmp_expect(fake_qmp *f, const char *command)
{
	json_object *ex;

	if (f->failed || f->fd < 0)
		return NULL;
	for (;;) {
		while (f->buf_start < f->buf_end) {
			json_object *o = json_tokener_parse_ex(f->tok, f->buf + f->buf_start,
							       (int)(f->buf_end - f->buf_start));
			f->buf_start += json_tokener_get_parse_end(f->tok);
			if (o) {
				if (!json_object_object_get_ex(o, "execute", &ex) ||
				    (command && strcmp(json_object_get_string(ex), command) != 0)) {
					fake_qmp_fail(f, "fake server: expected %s, got %s",
						      command ? command : "a command",
						      json_object_to_json_string(o));
					json_object_put(o);
					return NULL;
				}
				return o;
			}
			if (json_tokener_get_error(f->tok) != json_tokener_continue) {
				fake_qmp_fail(f, "fake server: client sent malformed JSON");
				return NULL;
			}
		}
		int r = fill(f, FAKE_WAIT_MS);
		if (r < 0)
			return NULL;
		if (r == 0) {
			fake_qmp_fail(f, "fake server: client closed while expecting %s",
				      command ? command : "a command");
			return NULL;
		}
	}
}

int fake_qmp_wait_eof(fake_qmp *f)
{
	if (f->fd < 0)
		return 0;
	for (;;) {
		f->buf_start = f->buf_end = 0;
		int r = fill(f, FAKE_WAIT_MS);
		if (r <= 0)
			return r;
	}
}

int fake_qmp_take_fd(fake_qmp *f)
{
	int fd;

	if (f->n_fds == 0)
		return -1;
	fd = f->fds[0];
	memmove(f->fds, f->fds + 1, (f->n_fds - 1) * sizeof(int));
	f->n_fds--;
	return fd;
}

size_t fake_qmp_n_fds(fake_qmp *f)
{
	return f->n_fds;
}

char *fake_qmp_format_reply(json_object *cmd, const char *json_text)
{
	json_object *id = NULL;
	char *s = NULL;

	json_object_object_get_ex(cmd, "id", &id);
	if (asprintf(&s, "{\"return\": %s, \"id\": %s}\r\n", json_text,
		     id ? json_object_to_json_string(id) : "null") < 0)
		return NULL;
	return s;
}

int fake_qmp_reply(fake_qmp *f, json_object *cmd, const char *json_text)
{
	char *s = fake_qmp_format_reply(cmd, json_text);
	int r = s ? fake_qmp_send(f, s, (size_t)-1) : -1;

	free(s);
	return r;
}

int fake_qmp_reply_error(fake_qmp *f, json_object *cmd, const char *class, const char *desc)
{
	json_object *id = NULL;
	char *s = NULL;
	int r;

	json_object_object_get_ex(cmd, "id", &id);
	if (asprintf(&s, "{\"error\": {\"class\": \"%s\", \"desc\": \"%s\"}, \"id\": %s}\r\n",
		     class, desc, id ? json_object_to_json_string(id) : "null") < 0)
		return -1;
	r = fake_qmp_send(f, s, (size_t)-1);
	free(s);
	return r;
}

char *fake_qmp_format_event(const char *name, const char *data_json)
{
	char *s = NULL;

	if (asprintf(&s,
		     "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1}, "
		     "\"event\": \"%s\", \"data\": %s}\r\n",
		     name, data_json ? data_json : "{}") < 0)
		return NULL;
	return s;
}

int fake_qmp_event(fake_qmp *f, const char *name, const char *data_json)
{
	char *s = fake_qmp_format_event(name, data_json);
	int r = s ? fake_qmp_send(f, s, (size_t)-1) : -1;

	free(s);
	return r;
}
