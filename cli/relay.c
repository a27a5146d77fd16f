/* SPDX-License-Identifier: MIT */
/* Byte relay between a local (in, out) pair and a socket: used by `console`
 * and `rpc-stdio`. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cli/cli.h"
#include "common/loop.h"

int cli_connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = negative_errno();
		close(fd);
		return r;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pf = { .fd = fd, .events = POLLOUT };
				poll(&pf, 1, 1000);
				continue;
			}
			return negative_errno();
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Returns 0 at EOF/detach, -errno on error. */
int cli_relay(int in_fd, int out_fd, int sock, int escape, int linger_ms)
{
	char buf[65536];
	bool in_open = true;
	uint64_t quiet_since = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN },
				       { .fd = in_open ? in_fd : -1, .events = POLLIN } };
		int timeout = -1;

		if (!in_open && linger_ms >= 0) {
			uint64_t now = qv_now_ms();
			if (now - quiet_since >= (uint64_t)linger_ms)
				return 0;
			timeout = (int)((uint64_t)linger_ms - (now - quiet_since));
		}
		int r = poll(p, 2, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		if (r == 0)
			continue; /* linger check at the top */
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return negative_errno();
			if (n == 0)
				return 0;
			if (n > 0) {
				quiet_since = qv_now_ms();
				if ((r = write_all(out_fd, buf, (size_t)n)) < 0)
					return r;
			}
		}
		if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(in_fd, buf, sizeof(buf));
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return negative_errno();
			if (n == 0) {
				in_open = false;
				quiet_since = qv_now_ms();
				shutdown(sock, SHUT_WR);
				continue;
			}
			if (n > 0) {
				char *esc = escape >= 0 ? memchr(buf, escape, (size_t)n) : NULL;
				size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
				if ((r = write_all(sock, buf, len)) < 0)
					return r;
				if (esc)
					return 0;
			}
		}
	}
}
