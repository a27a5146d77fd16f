/* SPDX-License-Identifier: MIT */
/* Daemon-side run files (qemu/runfiles.c): what a hostile uid could plant
 * is replaced, never followed. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/macro.h"
#include "qemu/runfiles.h"

static char dir[64];
static int dfd = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qv-runfiles-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd, 0);
}

static void teardown(void)
{
	char cmd[128];
	close(dfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

TestSuite(runfiles, .init = setup, .fini = teardown);

static void victim(const char *name)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_eq(write(fd, "secret", 6), 6);
	close(fd);
}

static off_t size_at(const char *name)
{
	struct stat st;
	cr_assert_eq(fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW), 0, "%s", name);
	return st.st_size;
}

Test(runfiles, log_replaces_symlink_hardlink_and_fifo)
{
	_cleanup_close_ int sub = -1;
	int fd;
	struct stat st;

	cr_assert_eq(qemu_runfiles_open_dir(dfd, "vm", 0700, &sub), 0);
	victim("v1");
	victim("v2");
	char target[128];
	snprintf(target, sizeof(target), "%s/v1", dir);
	cr_assert_eq(symlinkat(target, sub, "qemu.log"), 0);
	cr_assert_eq(qemu_runfiles_open_log(sub, "qemu.log", &fd), 0);
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
	cr_assert_eq(size_at("v1"), 6, "the symlink target was written");

	cr_assert_eq(unlinkat(sub, "qemu.log", 0), 0);
	cr_assert_eq(linkat(dfd, "v2", sub, "qemu.log", 0), 0);
	cr_assert_eq(qemu_runfiles_open_log(sub, "qemu.log", &fd), 0);
	cr_assert_eq(write(fd, "x", 1), 1);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_nlink, 1);
	close(fd);
	cr_assert_eq(size_at("v2"), 6, "the hard-linked file was written");

	cr_assert_eq(unlinkat(sub, "qemu.log", 0), 0);
	cr_assert_eq(mkfifoat(sub, "qemu.log", 0666), 0);
	cr_assert_eq(qemu_runfiles_open_log(sub, "qemu.log", &fd), 0); /* no hang */
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	close(fd);
}

Test(runfiles, dir_refuses_symlink_and_reowns)
{
	_cleanup_close_ int sub = -1;
	char target[128];
	struct stat st;

	snprintf(target, sizeof(target), "%s", dir);
	cr_assert_eq(symlinkat(target, dfd, "link"), 0);
	cr_assert_eq(qemu_runfiles_open_dir(dfd, "link", 0700, &sub), -ELOOP);
	cr_assert_eq(mkdirat(dfd, "foreign", 0777), 0);
	cr_assert_eq(fchownat(dfd, "foreign", 65534, 65534, 0), 0);
	cr_assert_eq(qemu_runfiles_open_dir(dfd, "foreign", 0700, &sub), 0);
	cr_assert_eq(fstat(sub, &st), 0);
	cr_assert_eq(st.st_uid, geteuid());
	cr_assert_eq(st.st_mode & 07777, 0700);
}

Test(runfiles, listen_through_the_dir_fd_and_remove)
{
	_cleanup_close_ int sub = -1, ls = -1, c = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	cr_assert_eq(qemu_runfiles_open_dir(dfd, "vm", 0700, &sub), 0);
	victim("v");
	cr_assert_eq(linkat(dfd, "v", sub, "qmp.sock", 0), 0); /* a planted file */
	cr_assert_eq(qemu_runfiles_listen(sub, "qmp.sock", &ls), 0);
	cr_assert_eq(size_at("v"), 6);
	cr_assert_eq(fstatat(sub, "qmp.sock", &st, 0), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vm/qmp.sock", dir);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(qemu_runfiles_remove_dir(dfd, "vm"), 0);
	cr_assert_eq(fstatat(dfd, "vm", &st, 0), -1);
	cr_assert_eq(size_at("v"), 6);
}
