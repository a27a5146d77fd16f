/* SPDX-License-Identifier: MIT */
/* QMP client against a real qemu-system-x86_64 (skipped when missing). */
#include "qmp-test-util.h"

/* ---- a real QEMU ------------------------------------------------------------------------ */

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/bin:/bin";
	for (const char *p = path; *p;) {
		const char *e = strchrnul(p, ':');
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)(e - p), p, prog);
		if (access(buf, X_OK) == 0)
			return true;
		p = *e ? e + 1 : e;
	}
	return false;
}

static pid_t qemu_pid;

/* Never leave a QEMU behind when an assertion fails mid-test. */
static void kill_qemu(void)
{
	if (qemu_pid > 0)
		kill(qemu_pid, SIGKILL);
}

Test(qmp_real, qemu_query_getfd_quit, .fini = kill_qemu)
{
	char dir[] = "/tmp/qv-qmp-XXXXXX", sock[256], opt[300], log[256];
	struct rec rec = {};
	struct qv_error err = {};
	json_object *ret = NULL, *v;
	qmp_client *c = NULL;
	int status;

	if (!in_path("qemu-system-x86_64"))
		cr_skip_test("qemu-system-x86_64 is not installed");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	snprintf(log, sizeof(log), "%s/qemu.log", dir);
	snprintf(opt, sizeof(opt), "unix:%s,server=on,wait=off", sock);

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		char *argv[] = { "qemu-system-x86_64", "-machine", "none", "-nodefaults",
				 "-display", "none", "-qmp", opt, NULL };
		execvp(argv[0], argv);
		_exit(127);
	}

	qemu_pid = pid;
	int r = qmp_client_connect(sock, 20000, &c, &err);
	if (r < 0)
		kill(pid, SIGKILL);
	cr_assert_eq(r, 0, "connect: %s", err.message);
	qmp_client_set_closed_handler(c, rec_closed, &rec);
	cr_assert_not_null(qmp_client_version(c));
	cr_assert_neq(strcmp(qmp_client_version(c), "unknown"), 0);

	cr_assert_eq(qmp_client_execute(c, "query-version", NULL, 10000, &ret, &err), 0, "%s",
		     err.message);
	json_object *qemu;
	cr_assert(json_object_object_get_ex(ret, "qemu", &qemu));
	cr_assert(json_object_object_get_ex(qemu, "major", &v));
	char ver[64];
	snprintf(ver, sizeof(ver), "%d.", json_object_get_int(v));
	cr_assert_eq(strncmp(qmp_client_version(c), ver, strlen(ver)), 0);
	json_object_put(ret);

	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 10000, &ret, &err), 0, "%s",
		     err.message);
	cr_assert(json_object_object_get_ex(ret, "status", &v));
	cr_assert(json_object_is_type(v, json_type_string));
	json_object_put(ret);

	int p[2];
	cr_assert_eq(pipe(p), 0);
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string("t1"));
	cr_assert_eq(qmp_client_execute_fds(c, "getfd", args, &p[1], 1, 10000, NULL, &err), 0,
		     "getfd: %s", err.message);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(qmp_client_execute(c, "closefd", args, 10000, NULL, &err), 0, "closefd: %s",
		     err.message);
	/* A second closefd proves QEMU really had it: now it is unknown. */
	cr_assert_eq(qmp_client_execute(c, "closefd", args, 10000, NULL, &err), -EIO);
	cr_assert_str_eq(err.reason, "qemu-error");
	cr_assert(strstr(err.message, "closefd: "), "%s", err.message);
	qv_error_clear(&err);

	cr_assert_eq(qmp_client_execute(c, "quit", NULL, 10000, NULL, &err), 0, "quit: %s",
		     err.message);
	cr_assert_eq(qmp_client_wait_closed(c, 20000, &err), 0, "%s", err.message);
	cr_assert_eq(rec.closed_calls, 1);
	cr_assert_eq(rec.closed_error, 0);
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 1000, NULL, NULL), -ENOTCONN);
	qmp_client_free(c);

	/* Bounded wait: a QEMU that ignores quit is killed, and the test fails. */
	pid_t w = 0;
	for (uint64_t t0 = qv_now_ms(); w == 0 && qv_now_ms() - t0 < 20000; usleep(10000))
		w = waitpid(pid, &status, WNOHANG);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	qemu_pid = 0;
	cr_assert_eq(w, pid, "QEMU did not exit after quit");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "qemu status %d", status);
	unlink(sock);
	unlink(log);
	rmdir(dir);
}
