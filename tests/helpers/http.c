/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/http.h"

int qvt_http_get(unsigned port, const char *path, char *buf, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char req[512];
	size_t off = 0;
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return 0;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, req, strlen(req)) == (ssize_t)strlen(req))
		while (off + 1 < size && (n = read(fd, buf + off, size - 1 - off)) > 0)
			off += (size_t)n;
	buf[off] = '\0';
	close(fd);
	char *body = strstr(buf, "\r\n\r\n");
	if (!body || strncmp(buf, "HTTP/1.", 7) || sscanf(buf + 9, "%3d", &status) != 1) {
		buf[0] = '\0';
		return 0;
	}
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return status;
}

int qvt_http_get_netns(pid_t nspid, unsigned port, const char *path, char *buf, size_t size)
{
	int p[2], status = 0, ws;
	size_t off = 0;
	ssize_t n;
	pid_t pid;

	buf[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return 0;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return 0;
	}
	if (pid == 0) {
		char nspath[64];
		snprintf(nspath, sizeof(nspath), "/proc/%d/ns/net", (int)nspid);
		int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
			_exit(1);
		status = qvt_http_get(port, path, buf, size);
		if (write(p[1], &status, sizeof(status)) != sizeof(status) ||
		    write(p[1], buf, strlen(buf)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &status, sizeof(status)) != sizeof(status))
		status = 0;
	while (off + 1 < size && (n = read(p[0], buf + off, size - 1 - off)) > 0)
		off += (size_t)n;
	buf[off] = '\0';
	close(p[0]);
	waitpid(pid, &ws, 0);
	return status;
}
