/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/macro.h"
#include "storage/qemu-img.h"

#include <json-c/json.h>

#define OUT_MAX (1u << 20)
#define ERR_MAX 4096u

struct sink {
	char *buf;
	size_t len, cap;
};

static int sink_read(int fd, struct sink *s, bool *eof)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0) {
		*eof = true;
		return 0;
	}
	size_t keep = (size_t)n;
	if (s->len + keep > s->cap)
		keep = s->cap - s->len; /* drop the excess, keep reading */
	memcpy(s->buf + s->len, tmp, keep);
	s->len += keep;
	return 0;
}

static void child(char *const argv[], int out, int err, const int *keep, size_t n_keep)
{
	const char *bin = getenv("QV_QEMU_IMG");
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

	/* Secrets reach qemu-img as /proc/self/fd/N, never on its argv. */
	for (size_t i = 0; i < n_keep; i++)
		if (fcntl(keep[i], F_SETFD, 0) < 0)
			_exit(127);
	if (!bin || !*bin)
		bin = "qemu-img";
	if (nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(127);
	((char **)argv)[0] = (char *)bin;
	execvp(bin, argv);
	dprintf(2, "exec %s: %m\n", bin);
	_exit(127);
}

static const char *last_line(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *nl = strrchr(s, '\n');
	return nl ? nl + 1 : s;
}

int qv_qemu_img_run(char *const argv[], char **ret_out, struct qv_error *errp)
{
	return qv_qemu_img_run_fds(argv, NULL, 0, ret_out, errp);
}

int qv_qemu_img_run_fds(char *const argv[], const int *keep_fds, size_t n_keep, char **ret_out,
			struct qv_error *errp)
{
	_cleanup_free_ char *obuf = calloc(1, OUT_MAX + 1), *ebuf = calloc(1, ERR_MAX + 1);
	struct sink so = { obuf, 0, OUT_MAX }, se = { ebuf, 0, ERR_MAX };
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, status, r = 0;
	bool oeof = false, eeof = false;
	pid_t pid;

	if (!obuf || !ebuf)
		return -ENOMEM;
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0)
		child(argv, po[1], pe[1], keep_fds, n_keep);
	po[1] = (close(po[1]), -1);
	pe[1] = (close(pe[1]), -1);
	while (!oeof || !eeof) {
		struct pollfd pfd[2] = { { oeof ? -1 : po[0], POLLIN, 0 },
					 { eeof ? -1 : pe[0], POLLIN, 0 } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (!oeof && pfd[0].revents && (r = sink_read(po[0], &so, &oeof)) < 0)
			break;
		if (!eeof && pfd[1].revents && (r = sink_read(pe[0], &se, &eeof)) < 0)
			break;
	}
	if (r < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			r = r < 0 ? r : -errno;
			goto out;
		}
	if (r < 0)
		goto out;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_debug("qemu-img %s failed: %s", argv[1], ebuf);
		r = qv_error_set(errp, EIO, QV_REASON_QEMU_ERROR, "qemu-img %s: %s", argv[1],
				 se.len ? last_line(ebuf) : "failed");
		goto out;
	}
	if (ret_out)
		*ret_out = TAKE_PTR(obuf);
out:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return r;
}

char *qv_qemu_img_json_name(const char *path, const char *secret_id)
{
	json_object *o = json_object_new_object(), *file = json_object_new_object();
	char *s = NULL;

	if (!o || !file) {
		json_object_put(o);
		json_object_put(file);
		return NULL;
	}
	json_object_object_add(file, "driver", json_object_new_string("file"));
	json_object_object_add(file, "filename", json_object_new_string(path));
	json_object_object_add(o, "driver", json_object_new_string("qcow2"));
	json_object_object_add(o, "file", file);
	json_object_object_add(o, "backing", NULL);
	if (secret_id)
		json_object_object_add(o, "encrypt.key-secret", json_object_new_string(secret_id));
	if (asprintf(&s, "json:%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		s = NULL;
	json_object_put(o);
	return s;
}
