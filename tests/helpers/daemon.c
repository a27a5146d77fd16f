/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "helpers/daemon.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *qvtd_qvisord_path(void)
{
	static char path[PATH_MAX];
	const char *dir = getenv("QV_BUILD_DIR");
	char tmp[PATH_MAX];

	if (!dir || !*dir)
		dir = "./build";
	snprintf(tmp, sizeof(tmp), "%s/qvisord", dir);
	if (!realpath(tmp, path) || access(path, X_OK) < 0)
		return NULL;
	return path;
}

static int socket_ready(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static void print_log_tail(struct qvtd *qd)
{
	char path[PATH_MAX], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/qvisord.log", qd->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		fprintf(stderr, "--- qvisord.log (tail) ---\n%s\n---\n", buf);
	}
}

static int spawn(struct qvtd *qd, const char *const *extra, int timeout_ms)
{
	const char *bin = qvtd_qvisord_path();
	char logpath[PATH_MAX];
	const char *argv[32];
	size_t n = 0;
	struct qv_error err = { 0 };
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int status;
	pid_t pid;

	if (!bin)
		return -ENOENT;
	argv[n++] = bin;
	argv[n++] = "--state-dir";
	argv[n++] = qd->state_dir;
	argv[n++] = "--run-dir";
	argv[n++] = qd->run_dir;
	argv[n++] = "--socket";
	argv[n++] = qd->socket;
	argv[n++] = "--cache-dir";
	argv[n++] = qd->dir;
	argv[n++] = "--no-kvm-probe";
	for (size_t i = 0; extra && extra[i] && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	snprintf(logpath, sizeof(logpath), "%s/qvisord.log", qd->dir);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0 || nul < 0)
			_exit(127);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	qd->pid = pid;
	while (socket_ready(qd->socket) < 0) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			qd->pid = 0;
			fprintf(stderr, "qvisord exited at start (status 0x%x)\n", status);
			print_log_tail(qd);
			return -ECHILD;
		}
		if (now_ms() >= deadline) {
			print_log_tail(qd);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	if (qv_rpc_connect(qd->socket, &qd->conn, &err) < 0) {
		fprintf(stderr, "connect %s: %s\n", qd->socket, err.message);
		return -ECONNREFUSED;
	}
	return 0;
}

int qvtd_start(struct qvtd *qd, const char *tag, const char *const *extra_args,
		     int timeout_ms)
{
	char tmpl[PATH_MAX];

	memset(qd, 0, sizeof(*qd));
	snprintf(tmpl, sizeof(tmpl), "/tmp/qvd-%s-XXXXXX", tag);
	if (!mkdtemp(tmpl))
		return -errno;
	/* QEMU may run under its own uid: it needs search access to run/vms/. */
	if (chmod(tmpl, 0711) < 0)
		return -errno;
	qd->dir = strdup(tmpl);
	if (!qd->dir || asprintf(&qd->state_dir, "%s/state", tmpl) < 0 ||
	    asprintf(&qd->run_dir, "%s/run", tmpl) < 0 ||
	    asprintf(&qd->socket, "%s/run/qvisord.sock", tmpl) < 0)
		return -ENOMEM;
	return spawn(qd, extra_args, timeout_ms);
}

int qvtd_restart(struct qvtd *qd, int timeout_ms)
{
	qd->conn = qv_rpc_conn_free(qd->conn);
	if (qd->pid > 0)
		return -EBUSY;
	return spawn(qd, NULL, timeout_ms);
}

static int reap(struct qvtd *qd, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int status = 0;

	while (waitpid(qd->pid, &status, WNOHANG) == 0) {
		if (now_ms() >= deadline) {
			kill(qd->pid, SIGKILL);
			waitpid(qd->pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	qd->pid = 0;
	return status;
}

int qvtd_stop(struct qvtd *qd, int timeout_ms)
{
	qd->conn = qv_rpc_conn_free(qd->conn);
	if (qd->pid <= 0)
		return 0;
	kill(qd->pid, SIGTERM);
	return reap(qd, timeout_ms > 0 ? timeout_ms : 10000);
}

int qvtd_kill9(struct qvtd *qd)
{
	qd->conn = qv_rpc_conn_free(qd->conn);
	if (qd->pid <= 0)
		return 0;
	kill(qd->pid, SIGKILL);
	return reap(qd, 10000);
}

/* dnsmasq runs in its own session and outlives the daemon by design. */
static void kill_dnsmasqs(struct qvtd *qd)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/net", qd->run_dir);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		long pid = 0;
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/net/%s/dnsmasq.pid", qd->run_dir, de->d_name);
		f = fopen(path, "re");
		if (f && fscanf(f, "%ld", &pid) == 1 && pid > 1)
			kill((pid_t)pid, SIGKILL);
		if (f)
			fclose(f);
	}
	closedir(d);
}

static void rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (lstat(path, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	d = opendir(path);
	while (d && (de = readdir(d))) {
		char sub[PATH_MAX];
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

void qvtd_cleanup(struct qvtd *qd)
{
	if (!qd->dir)
		return;
	qvtd_stop(qd, 5000);
	kill_dnsmasqs(qd);
	if (!getenv("QVT_KEEP"))
		rm_rf(qd->dir);
	free(qd->dir);
	free(qd->state_dir);
	free(qd->run_dir);
	free(qd->socket);
	memset(qd, 0, sizeof(*qd));
}

int qvtd_call(struct qvtd *qd, const char *method, json_object *params, int timeout_ms,
	     json_object **ret, struct qv_error *err)
{
	if (!qd->conn)
		return qv_error_set(err, ENOTCONN, QV_REASON_UNAVAILABLE, "not connected");
	return qv_rpc_invoke(qd->conn, method, params, timeout_ms > 0 ? timeout_ms : 60000, ret,
			     err);
}

int qvtd_callf(struct qvtd *qd, const char *method, json_object **ret,
	      struct qv_error *err, const char *fmt, ...)
{
	char *text = NULL;
	json_object *params;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	params = json_tokener_parse(text);
	if (!params) {
		r = qv_error_set(err, EINVAL, QV_REASON_INVALID_ARGUMENT, "bad test JSON: %s", text);
		free(text);
		return r;
	}
	free(text);
	return qvtd_call(qd, method, params, 0, ret, err);
}

char *qvtd_serial_log(struct qvtd *qd, const char *vm)
{
	char *p;

	if (asprintf(&p, "%s/vms/%s/serial.log", qd->run_dir, vm) < 0)
		return NULL;
	return p;
}
