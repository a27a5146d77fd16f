/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Files the daemon (root) creates for a QEMU it runs under another uid.
 * Everything is opened relative to a directory fd the caller owns, with
 * O_NOFOLLOW: root never follows a name QEMU's user could have planted.
 * QEMU gets fds (stderr, listening sockets, /dev/fdset), never write access
 * to these directories, so nothing in them can be replaced behind our back;
 * the checks below also repair what an older layout (a run dir owned by the
 * QEMU user) may have left: symlinks, hard links, FIFOs, foreign owners. */

/* Open directory `name` in parent_fd (created with mode if missing). It
 * must be a real directory; if not owned by us, or with other mode bits, it
 * is re-owned (fchown on the opened fd, never by path) and chmod'ed to mode.
 * 0 and *ret_fd (O_DIRECTORY|O_CLOEXEC), or -errno (-ELOOP: a symlink). */
int qemu_runfiles_open_dir(int parent_fd, const char *name, mode_t mode, int *ret_fd);

/* Open `name` in dir_fd for appending (created 0600): a regular file with
 * one link, owned by us. Anything else under that name (a symlink, a hard
 * link to another file, a FIFO, a device, another owner's file) is unlinked
 * and a fresh file created. 0 and *ret_fd (O_WRONLY|O_APPEND|O_CLOEXEC). */
int qemu_runfiles_open_log(int dir_fd, const char *name, int *ret_fd);

/* Unlink whatever is at `name` in dir_fd and bind + listen a unix stream
 * socket there (mode 0600). The path is resolved through dir_fd
 * (/proc/self/fd/N/name), not through the directory's path. 0 and *ret_fd
 * (SOCK_CLOEXEC). */
int qemu_runfiles_listen(int dir_fd, const char *name, int *ret_fd);

/* Remove `name` (a directory in parent_fd) with the regular files, sockets,
 * symlinks and empty directories directly inside it (never following them).
 * -ENOENT if absent; -ENOTEMPTY if it holds a non-empty subdirectory. */
int qemu_runfiles_remove_dir(int parent_fd, const char *name);
