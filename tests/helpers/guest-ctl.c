/* SPDX-License-Identifier: MIT */
#include "helpers/guest-ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers/guest.h"

struct qvt_ctl {
	int fd;
	unsigned next_id;
	char buf[8192]; /* unconsumed console output (only the tail is kept) */
	size_t len;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Look for "QVISOR-CTL <id> " at the start of a complete line; consume
 * through that line. 1 found, 0 not yet. */
static int take_answer(qvt_ctl *c, unsigned id, int *ret_status, char *value, size_t value_len)
{
	char tag[32];
	char *p, *eol;

	c->buf[c->len] = '\0';
	snprintf(tag, sizeof(tag), "QVISOR-CTL %u ", id);
	p = strstr(c->buf, tag);
	if (!p || !(eol = strchr(p, '\n')))
		return 0;
	*eol = '\0';
	if (eol > p && eol[-1] == '\r')
		eol[-1] = '\0';
	p += strlen(tag);
	*ret_status = strncmp(p, "OK", 2) == 0 ? 0 : -EIO;
	p += strncmp(p, "OK", 2) == 0 ? 2 : strncmp(p, "FAIL", 4) == 0 ? 4 : 0;
	while (*p == ' ')
		p++;
	if (value && value_len)
		snprintf(value, value_len, "%s", p);
	eol++;
	c->len -= (size_t)(eol - c->buf);
	memmove(c->buf, eol, c->len);
	return 1;
}

static int ctl_read_some(qvt_ctl *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	if (c->len >= sizeof(c->buf) - 1) { /* keep the newest half */
		memmove(c->buf, c->buf + sizeof(c->buf) / 2, c->len - sizeof(c->buf) / 2);
		c->len -= sizeof(c->buf) / 2;
	}
	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	c->len += (size_t)n;
	return 0;
}

int qvt_ctl_cmd(qvt_ctl *c, const char *cmd, int timeout_ms, char *ret_value, size_t value_len)
{
	long long deadline = now_ms() + timeout_ms;
	unsigned id = ++c->next_id;
	char line[512];
	int status = -ETIMEDOUT;
	int n = snprintf(line, sizeof(line), "%u %s\n", id, cmd);

	if (n < 0 || (size_t)n >= sizeof(line) || strchr(cmd, '\n'))
		return -EINVAL;
	if (write(c->fd, line, (size_t)n) != n)
		return -errno ? -errno : -EIO;
	while (now_ms() < deadline) {
		int r = ctl_read_some(c, 200);

		if (r < 0)
			return r;
		if (take_answer(c, id, &status, ret_value, value_len))
			return status;
	}
	return -ETIMEDOUT;
}

qvt_ctl *qvt_ctl_open(const char *serial_sock, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	qvt_ctl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	while (now_ms() < deadline && c->fd < 0) {
		c->fd = ctl_connect(serial_sock);
		if (c->fd < 0)
			qvt_sleep_ms(200);
	}
	/* A ping before the guest's loop starts is lost; retry every 2 s. */
	while (c->fd >= 0 && now_ms() < deadline) {
		char v[32];
		int r = qvt_ctl_cmd(c, "ping", 2000, v, sizeof(v));

		if (r == 0 && strcmp(v, "pong") == 0)
			return c;
		if (r == -ECONNRESET)
			break;
	}
	return qvt_ctl_close(c);
}

qvt_ctl *qvt_ctl_close(qvt_ctl *c)
{
	if (c) {
		if (c->fd >= 0)
			close(c->fd);
		free(c);
	}
	return NULL;
}
