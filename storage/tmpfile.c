/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "storage/tmpfile.h"

int qv_path_split(const char *path, char **ret_dir, char **ret_base)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	_cleanup_free_ char *dir = NULL, *b = NULL;

	if (!*base || streq(base, ".") || streq(base, ".."))
		return -EINVAL;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, slash - path);
	b = strdup(base);
	if (!dir || !b)
		return -ENOMEM;
	*ret_dir = TAKE_PTR(dir);
	*ret_base = TAKE_PTR(b);
	return 0;
}

static int tmpname_make(const char *name, char **ret)
{
	uint32_t rnd;
	char *s;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)&rnd;
	if (asprintf(&s, ".%s.%08x", name, rnd) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

static int open_named_tmp(int dirfd, const char *name, int flags, mode_t mode,
			  char **ret_tmpname, int *ret_fd)
{
	for (int tries = 0; tries < 100; tries++) {
		_cleanup_free_ char *tn = NULL;
		int r = tmpname_make(name, &tn);
		if (r < 0)
			return r;
		int fd = openat(dirfd, tn, flags | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			return -errno;
		}
		*ret_tmpname = TAKE_PTR(tn);
		*ret_fd = fd;
		return 0;
	}
	return -EEXIST;
}

int qv_tmpname_create(int dirfd, const char *name, char **ret_tmpname)
{
	char *tn = NULL;
	int fd = -1;
	int r = open_named_tmp(dirfd, name, O_WRONLY, 0600, &tn, &fd);
	if (r < 0)
		return r;
	close(fd);
	*ret_tmpname = tn;
	return 0;
}

static int open_tmp(struct qv_tmpfile *t, int flags, mode_t mode)
{
	int fd = openat(t->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC | flags, mode);
	if (fd >= 0) {
		t->fd = fd;
		return 0;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT)
		return -errno;
	/* No O_TMPFILE here: a dot-file that never matches a valid name. */
	int r = open_named_tmp(t->dirfd, t->name, O_RDWR | flags, mode, &t->tmpname, &t->fd);
	if (r < 0)
		return r;
	if (fchmod(t->fd, mode) < 0)
		return -errno;
	return 0;
}

int qv_tmpfile_open(struct qv_tmpfile *t, const char *path, mode_t mode, bool direct)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	r = qv_path_split(path, &dir, &t->name);
	if (r < 0)
		return r;
	t->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0)
		return -errno;
	r = open_tmp(t, 0, mode);
	if (r < 0 || !direct)
		return r;
	/* Switched on after the open: a named temporary file created by an
	 * O_DIRECT open that the filesystem then refuses would be left behind.
	 * Where O_DIRECT is refused, buffered io it is. */
	int fl = fcntl(t->fd, F_GETFL);
	t->direct = fl >= 0 && fcntl(t->fd, F_SETFL, fl | O_DIRECT) == 0;
	return 0;
}

static int fsync_dir(int dirfd)
{
	/* Some filesystems cannot fsync directories; the rename is then as
	 * durable as they make it. */
	if (fsync(dirfd) < 0 && errno != EINVAL && errno != EROFS)
		return -errno;
	return 0;
}

static int link_tmpfile(struct qv_tmpfile *t, const char *target)
{
	char proc[64];

	if (linkat(t->fd, "", t->dirfd, target, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -errno;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc does not. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
	if (linkat(AT_FDCWD, proc, t->dirfd, target, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	return 0;
}

int qv_tmpfile_commit(struct qv_tmpfile *t, bool no_replace)
{
	int r;

	if (fsync(t->fd) < 0)
		return -errno;
	if (!t->tmpname) {
		if (no_replace) {
			/* Atomic, and EEXIST if the name is taken. */
			r = link_tmpfile(t, t->name);
			if (r < 0)
				return r;
			goto done;
		}
		for (int tries = 0;; tries++) {
			r = tmpname_make(t->name, &t->tmpname);
			if (r < 0)
				return r;
			r = link_tmpfile(t, t->tmpname);
			if (r == 0)
				break;
			t->tmpname = (free(t->tmpname), NULL);
			if (r != -EEXIST || tries > 100)
				return r;
		}
	}
	if (no_replace) {
		if (linkat(t->dirfd, t->tmpname, t->dirfd, t->name, 0) < 0)
			return -errno;
		(void)unlinkat(t->dirfd, t->tmpname, 0);
	} else if (renameat(t->dirfd, t->tmpname, t->dirfd, t->name) < 0) {
		return -errno;
	}
	t->tmpname = (free(t->tmpname), NULL);
done:
	r = fsync_dir(t->dirfd);
	t->fd = (close(t->fd), -1);
	t->dirfd = (close(t->dirfd), -1);
	t->name = (free(t->name), NULL);
	return r;
}

void qv_tmpfile_discard(struct qv_tmpfile *t)
{
	if (t->tmpname && t->dirfd >= 0)
		(void)unlinkat(t->dirfd, t->tmpname, 0);
	t->tmpname = (free(t->tmpname), NULL);
	if (t->fd >= 0)
		t->fd = (close(t->fd), -1);
	if (t->dirfd >= 0)
		t->dirfd = (close(t->dirfd), -1);
	t->name = (free(t->name), NULL);
}
