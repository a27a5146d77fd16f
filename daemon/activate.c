/* SPDX-License-Identifier: MIT */
/* systemd socket activation for the RPC socket (see daemon/activate.h). */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/activate.h"

#define LISTEN_FDS_START 3

static int check_socket(int fd, const char *socket_path, struct qv_error *errp)
{
	struct sockaddr_un sa = {};
	socklen_t len = sizeof(sa);
	int type = 0, listening = 0;
	socklen_t ol = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol) < 0 || type != SOCK_STREAM)
		return qv_error_set(errp, ENOTSOCK, QV_REASON_INVALID_ARGUMENT,
				    "the socket passed by systemd is not a stream socket");
	ol = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) < 0 || !listening)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "the socket passed by systemd is not listening");
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX ||
	    len <= offsetof(struct sockaddr_un, sun_path))
		return qv_error_set(errp, EAFNOSUPPORT, QV_REASON_INVALID_ARGUMENT,
				    "the socket passed by systemd is not a unix socket with a path");
	sa.sun_path[sizeof(sa.sun_path) - 1] = '\0';
	if (!streq(sa.sun_path, socket_path))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "systemd passed a socket on %s but the RPC socket is %s "
				    "(ListenStream= and --socket must agree)",
				    sa.sun_path, socket_path);
	return 0;
}

int qv_activation_listen_fd(const char *socket_path, int *ret_fd, struct qv_error *errp)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	char *end = NULL;
	long pid = pid_s ? strtol(pid_s, &end, 10) : 0;
	bool ours = pid_s && *pid_s && end && !*end && pid == (long)getpid();
	long n = ours && fds_s ? strtol(fds_s, &end, 10) : 0;
	int r;

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (!ours || n == 0)
		return 0;
	if (*end || n != 1)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "systemd passed %s sockets; qvisord serves exactly one "
				    "(one ListenStream= in qvisord.socket)", fds_s);
	r = check_socket(LISTEN_FDS_START, socket_path, errp);
	if (r < 0)
		return r;
	if (fcntl(LISTEN_FDS_START, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(LISTEN_FDS_START, F_SETFL, fcntl(LISTEN_FDS_START, F_GETFL) | O_NONBLOCK) < 0)
		return qv_error_set(errp, errno, NULL, "cannot set up the passed socket: %m");
	*ret_fd = LISTEN_FDS_START;
	return 1;
}

static struct sockaddr_un notify_addr;
static socklen_t notify_len;

void qv_notify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t n = e ? strlen(e) : 0;

	if (n >= 2 && n < sizeof(notify_addr.sun_path) && (e[0] == '/' || e[0] == '@')) {
		notify_addr.sun_family = AF_UNIX;
		memcpy(notify_addr.sun_path, e, n);
		if (e[0] == '@')
			notify_addr.sun_path[0] = '\0'; /* abstract namespace */
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	unsetenv("NOTIFY_SOCKET");
}

void qv_notify(const char *state)
{
	_cleanup_close_ int fd = -1;

	if (!notify_len)
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL,
			     (const struct sockaddr *)&notify_addr, notify_len) < 0)
		log_debug_errno(errno, "sd_notify %s failed: %m, ignoring", state);
}
