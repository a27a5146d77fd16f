/* SPDX-License-Identifier: MIT */
/* Transports for the JSON-RPC client: unix sockets, ssh:// via
 * `ssh host qvisor rpc-stdio`, and tls://host[:port] (mutual TLS). */
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/rpc-client-internal.h"

extern char **environ;

static int connect_unix(const char *path, qv_rpc_conn **ret_conn, struct qv_error *errp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid socket path \"%s\"", path);
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_UNAVAILABLE, "socket: %s",
				    strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return qv_error_set(errp, errno, QV_REASON_UNAVAILABLE, "cannot connect to %s: %s",
				    path, strerror(errno));
	int r = qv_rpc_conn_new_fds(fd, fd, ret_conn);
	TAKE_FD(fd);
	if (r < 0)
		return qv_error_set(errp, r, QV_REASON_INTERNAL, "out of memory");
	return 0;
}

static bool safe_chars(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
		      ('0' <= *s && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

/* ssh://[user@]host[:port][/path]: fills dest ("user@host"), port, path. */
static int parse_ssh_uri(const char *rest, char *dest, size_t dest_size, char *port,
			 size_t port_size, const char **ret_path, struct qv_error *errp)
{
	const char *slash = strchr(rest, '/');
	size_t auth_len = slash ? (size_t)(slash - rest) : strlen(rest);
	char auth[256], host[256];
	const char *at, *h, *colon;

	if (auth_len == 0 || auth_len >= sizeof(auth))
		goto bad;
	memcpy(auth, rest, auth_len);
	auth[auth_len] = '\0';
	at = strrchr(auth, '@');
	h = at ? at + 1 : auth;
	if (*h == '[') { /* [ipv6]:port */
		const char *close_br = strchr(h, ']');
		if (!close_br)
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(close_br - h - 1), h + 1);
		colon = close_br[1] == ':' ? close_br + 1 : NULL;
		if (close_br[1] && !colon)
			goto bad;
	} else {
		colon = strchr(h, ':');
		snprintf(host, sizeof(host), "%.*s", (int)(colon ? (size_t)(colon - h) : strlen(h)), h);
	}
	port[0] = '\0';
	if (colon) {
		if (!colon[1] || strlen(colon + 1) >= port_size || !safe_chars(colon + 1, ""))
			goto bad;
		snprintf(port, port_size, "%s", colon + 1);
	}
	if (!*host || host[0] == '-' || !safe_chars(host, ".-_:"))
		goto bad;
	if (at && (at == auth || auth[0] == '-'))
		goto bad;
	if (at) {
		char user[256];
		snprintf(user, sizeof(user), "%.*s", (int)(at - auth), auth);
		if (!safe_chars(user, ".-_"))
			goto bad;
		snprintf(dest, dest_size, "%s@%s", user, host);
	} else
		snprintf(dest, dest_size, "%s", host);
	*ret_path = slash && slash[1] ? slash : NULL;
	if (*ret_path && !safe_chars(*ret_path, "/._-+"))
		goto bad;
	return 0;
bad:
	return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "invalid ssh URI \"ssh://%s\"",
			    rest);
}

static int connect_ssh(const char *rest, qv_rpc_conn **ret_conn, struct qv_error *errp)
{
	char dest[520], port[16];
	const char *path = NULL, *argv[12];
	const char *ssh = getenv("QVISOR_SSH") ?: "ssh";
	const char *remote = getenv("QVISOR_REMOTE_QVISOR") ?: "qvisor";
	int to_child[2] = { -1, -1 }, from_child[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	size_t n = 0;
	pid_t pid;
	int r;

	r = parse_ssh_uri(rest, dest, sizeof(dest), port, sizeof(port), &path, errp);
	if (r < 0)
		return r;
	argv[n++] = ssh;
	argv[n++] = "-T";
	if (*port) {
		argv[n++] = "-p";
		argv[n++] = port;
	}
	argv[n++] = "--";
	argv[n++] = dest;
	argv[n++] = remote;
	if (path) {
		argv[n++] = "--socket";
		argv[n++] = path;
	}
	argv[n++] = "rpc-stdio";
	argv[n] = NULL;

	if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0) {
		r = negative_errno();
		goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to_child[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, from_child[1], STDOUT_FILENO);
	r = -posix_spawnp(&pid, ssh, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r < 0)
		goto fail;
	close(to_child[0]);
	close(from_child[1]);
	r = qv_rpc_conn_new_fds(from_child[0], to_child[1], ret_conn);
	if (r < 0) {
		qv_rpc_reap_child(pid);
		return qv_error_set(errp, r, QV_REASON_INTERNAL, "out of memory");
	}
	qv_rpc_conn_set_child(*ret_conn, pid);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (to_child[i] >= 0)
			close(to_child[i]);
		if (from_child[i] >= 0)
			close(from_child[i]);
	}
	return qv_error_set(errp, r, QV_REASON_UNAVAILABLE, "cannot run %s: %s", ssh,
			    strerror(-r));
}

static char *pki_dir;

int qv_rpc_set_pki_dir(const char *dir)
{
	char *p = dir ? strdup(dir) : NULL;

	if (dir && !p)
		return -ENOMEM;
	free(pki_dir);
	pki_dir = p;
	return 0;
}

const char *qv_rpc_pki_dir(void)
{
	const char *env = getenv("QVISOR_PKI_DIR");

	return pki_dir ? pki_dir : env && *env ? env : QV_PKI_DEFAULT_DIR;
}

/* Non-blocking connect to one address, bounded by timeout_ms. */
static int connect_addr(const struct addrinfo *ai, int timeout_ms)
{
	_cleanup_close_ int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct pollfd p = { .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0;

	if (fd < 0)
		return negative_errno();
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			return negative_errno();
		p.fd = fd;
		int r = poll(&p, 1, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return negative_errno();
		if (err)
			return -err;
	}
	return TAKE_FD(fd);
}

static int connect_tcp(const char *host, int port, struct qv_error *errp)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char ports[16];
	int fd = -EADDRNOTAVAIL, g;

	snprintf(ports, sizeof(ports), "%d", port);
	g = getaddrinfo(host, ports, &hints, &res);
	if (g != 0)
		return qv_error_set(errp, EHOSTUNREACH, QV_REASON_UNAVAILABLE,
				    "cannot resolve %s: %s", host, gai_strerror(g));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = connect_addr(ai, QV_TLS_HANDSHAKE_TIMEOUT_MS);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return qv_error_set(errp, -fd, QV_REASON_UNAVAILABLE, "cannot connect to %s:%d: %s",
				    host, port, strerror(-fd));
	return fd;
}

/* tls://HOST[:PORT]: TCP, then a handshake that verifies the daemon's
 * certificate against the CA and HOST and presents our client certificate. */
static int connect_tls(const char *rest, qv_rpc_conn **ret_conn, struct qv_error *errp)
{
	_cleanup_(qv_tls_creds_freep) qv_tls_creds *creds = NULL;
	_cleanup_(qv_tls_freep) qv_tls *tls = NULL;
	_cleanup_close_ int fd = -1;
	char host[256];
	int port, r;

	if (strchr(rest, '/') && strchr(rest, '/')[1])
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "tls:// takes no path: \"tls://%s\"", rest);
	char hp[300];
	snprintf(hp, sizeof(hp), "%.*s", (int)strcspn(rest, "/"), rest);
	r = qv_parse_host_port(hp, QV_TLS_DEFAULT_PORT, host, sizeof(host), &port, errp);
	if (r < 0)
		return r;
	r = qv_tls_creds_load(qv_rpc_pki_dir(), QV_TLS_CLIENT, &creds, errp);
	if (r < 0)
		return qv_error_prefix(errp, "client certificate"), r;
	fd = connect_tcp(host, port, errp);
	if (fd < 0)
		return fd;
	r = qv_tls_new(creds, fd, host, &tls, errp);
	if (r >= 0)
		r = qv_tls_handshake_wait(tls, QV_TLS_HANDSHAKE_TIMEOUT_MS, errp);
	if (r < 0)
		return qv_error_prefix(errp, "tls://%s:%d", host, port), r;
	r = qv_rpc_conn_new_fds(fd, fd, ret_conn);
	TAKE_FD(fd);
	if (r < 0)
		return qv_error_set(errp, r, QV_REASON_INTERNAL, "out of memory");
	qv_rpc_conn_set_tls(*ret_conn, TAKE_PTR(tls));
	return 0;
}

int qv_rpc_connect(const char *uri, qv_rpc_conn **ret_conn, struct qv_error *errp)
{
	if (!uri || !*uri)
		uri = QV_RPC_DEFAULT_SOCKET;
	if (strncmp(uri, "unix://", 7) == 0)
		return connect_unix(uri + 7, ret_conn, errp);
	if (strncmp(uri, "ssh://", 6) == 0)
		return connect_ssh(uri + 6, ret_conn, errp);
	if (strncmp(uri, "tls://", 6) == 0)
		return connect_tls(uri + 6, ret_conn, errp);
	if (strstr(uri, "://"))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "unsupported URI \"%s\" (use unix://, ssh:// or tls://)", uri);
	return connect_unix(uri, ret_conn, errp);
}
