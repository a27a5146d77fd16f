/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/macro.h"
#include "qemu/runfiles.h"

int qemu_runfiles_open_dir(int parent_fd, const char *name, mode_t mode, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (mkdirat(parent_fd, name, mode) < 0 && errno != EEXIST)
		return negative_errno();
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? -ELOOP : negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (st.st_uid != geteuid() || st.st_gid != getegid())
		if (fchown(fd, geteuid(), getegid()) < 0)
			return negative_errno();
	if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
		return negative_errno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* A log we may append to: our own regular file with a single link. */
static bool log_is_sane(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
	       st.st_uid == geteuid();
}

int qemu_runfiles_open_log(int dir_fd, const char *name, int *ret_fd)
{
	/* O_NONBLOCK: a planted FIFO must not block us (ENXIO without reader). */
	int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK;

	for (int attempt = 0; attempt < 3; attempt++) {
		_cleanup_close_ int fd = openat(dir_fd, name, flags | O_CREAT, 0600);

		if (fd >= 0 && log_is_sane(fd)) {
			if (fcntl(fd, F_SETFL, O_APPEND) < 0)
				return negative_errno();
			*ret_fd = TAKE_FD(fd);
			return 0;
		}
		if (fd < 0 && errno != ELOOP && errno != ENXIO && errno != EISDIR &&
		    errno != EACCES && errno != EPERM)
			return negative_errno();
		/* Not ours (symlink, hard link, FIFO, foreign file): replace it. */
		if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT &&
		    !(errno == EISDIR && unlinkat(dir_fd, name, AT_REMOVEDIR) == 0))
			return negative_errno();
		flags |= O_EXCL;
	}
	return -EEXIST;
}

int qemu_runfiles_listen(int dir_fd, const char *name, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	int n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dir_fd, name);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path) || strchr(name, '/'))
		return -ENAMETOOLONG;
	if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
		return negative_errno();
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	/* umask 077 in the daemon makes the socket 0600 from the start. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return negative_errno();
	if (fchmodat(dir_fd, name, 0600, 0) < 0 || listen(fd, 8) < 0)
		return negative_errno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int qemu_runfiles_remove_dir(int parent_fd, const char *name)
{
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir;

	if (fd < 0)
		return negative_errno();
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -ENOMEM;
	}
	for (struct dirent *de; (de = readdir(dir));) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) < 0 && errno == EISDIR)
			(void)unlinkat(dirfd(dir), de->d_name, AT_REMOVEDIR); /* empty ones only */
	}
	closedir(dir);
	return unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 ? negative_errno() : 0;
}
