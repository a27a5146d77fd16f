/* SPDX-License-Identifier: MIT */
/* systemd socket activation (qvisord.socket): the real qvisord started the
 * way systemd starts it, with a listening socket on fd 3 and LISTEN_PID /
 * LISTEN_FDS set (daemon/activate.c). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers/qvisord.h"

static struct qvt_daemon D;

static void setup(void)
{
	snprintf(D.dir, sizeof(D.dir), "/tmp/qvt-act-XXXXXX");
	cr_assert_not_null(mkdtemp(D.dir));
	snprintf(D.state_dir, sizeof(D.state_dir), "%s/state", D.dir);
	snprintf(D.run_dir, sizeof(D.run_dir), "%s/run", D.dir);
	snprintf(D.socket, sizeof(D.socket), "%s/run/qvisord.sock", D.dir);
	snprintf(D.log, sizeof(D.log), "%s/qvisord.log", D.dir);
	cr_assert_eq(mkdir(D.run_dir, 0755), 0);
}

static void teardown(void)
{
	char cmd[160];

	if (D.pid > 0) {
		kill(D.pid, SIGKILL);
		waitpid(D.pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", D.dir);
	if (!getenv("QVT_KEEP"))
		(void)system(cmd);
	memset(&D, 0, sizeof(D));
}

/* What systemd does for a .socket unit: bind and listen before the service. */
static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %m", path);
	cr_assert_eq(listen(fd, 16), 0);
	return fd;
}

/* Fork qvisord with lfd as fd 3 and the LISTEN_* variables (lfd < 0: a
 * plain start), and $NOTIFY_SOCKET when notify is set. */
static pid_t spawn_daemon(int lfd, const char *socket_path, const char *notify)
{
	const char *bin = qvt_daemon_binary();
	pid_t pid;

	if (access(bin, X_OK) != 0)
		cr_skip_test("qvisord binary not built (%s)", bin);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char spid[16];
		int log = open(D.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 || (lfd >= 0 && dup2(lfd, 3) < 0))
			_exit(127);
		snprintf(spid, sizeof(spid), "%d", (int)getpid());
		if (lfd >= 0) {
			setenv("LISTEN_PID", spid, 1);
			setenv("LISTEN_FDS", "1", 1);
		}
		if (notify)
			setenv("NOTIFY_SOCKET", notify, 1);
		execl(bin, bin, "--state-dir", D.state_dir, "--run-dir", D.run_dir, "--cache-dir",
		      D.dir, "--socket", socket_path, "--no-kvm-probe", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static bool log_has(const char *needle)
{
	char buf[8192] = "";
	FILE *f = fopen(D.log, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

TestSuite(activation, .init = setup, .fini = teardown, .timeout = 60);

Test(activation, serves_on_the_passed_socket_and_leaves_it_in_place)
{
	struct qv_error err = {};
	struct stat before, after;
	char fdinfo[64], line[128];
	unsigned flags = 0;
	int lfd = listen_on(D.socket);

	cr_assert_eq(stat(D.socket, &before), 0);
	D.pid = spawn_daemon(lfd, D.socket, NULL);
	close(lfd);
	/* The socket was listening before the daemon: this call queues in the
	 * backlog and is answered once it serves. */
	json_object *r = qvt_call(&D, "host.info", NULL, &err);
	cr_assert_not_null(r, "host.info over the passed socket: %s", err.message);
	json_object_put(r);

	/* The daemon made the passed fd close-on-exec: no QEMU or dnsmasq
	 * inherits the RPC socket. */
	snprintf(fdinfo, sizeof(fdinfo), "/proc/%d/fdinfo/3", (int)D.pid);
	FILE *f = fopen(fdinfo, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "flags: %o", &flags) == 1)
			break;
	fclose(f);
	cr_assert(flags & O_CLOEXEC, "fd 3 flags %o lack O_CLOEXEC", flags);

	/* systemd owns the path: a stopping daemon must not unlink it. */
	cr_assert_eq(qvt_daemon_stop(&D, SIGTERM), 0);
	cr_assert_eq(stat(D.socket, &after), 0, "the daemon removed systemd's socket");
	cr_assert_eq(after.st_ino, before.st_ino);
}

Test(activation, a_socket_on_another_path_is_refused_clearly)
{
	char other[128];
	int status = 0;

	snprintf(other, sizeof(other), "%s/other.sock", D.dir);
	int lfd = listen_on(other);
	D.pid = spawn_daemon(lfd, D.socket, NULL);
	close(lfd);
	cr_assert_eq(waitpid(D.pid, &status, 0), D.pid);
	D.pid = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "status %#x", status);
	cr_assert(log_has("ListenStream= and --socket must agree"), "log lacks the reason");
	cr_assert_neq(access(D.socket, F_OK), 0, "nothing may listen on %s", D.socket);
}

/* Type=notify: READY=1 arrives once the daemon serves its socket. */
Test(activation, ready_notification_once_serving)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 30 };
	struct qv_error err = {};
	char buf[128];
	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(nfd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", D.dir);
	cr_assert_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	D.pid = spawn_daemon(-1, D.socket, sa.sun_path);
	ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, 0, "no notification within 30 s: %m");
	buf[n] = '\0';
	cr_assert_str_eq(buf, "READY=1");
	/* Ready means serving: no retry needed. */
	cr_assert_eq(access(D.socket, F_OK), 0);
	json_object *r = qvt_call(&D, "host.info", NULL, &err);
	cr_assert_not_null(r, "%s", err.message);
	json_object_put(r);
	close(nfd);
}
