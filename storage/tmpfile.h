/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* A file being written in a directory that appears under its final name
 * only once complete (storage-internal). */
struct qv_tmpfile {
	int dirfd;        /* owned */
	int fd;           /* owned */
	char *name;       /* final name inside dirfd */
	char *tmpname;    /* ".<name>.XXXXXX" while linked, NULL for O_TMPFILE */
	bool direct;      /* fd was opened with O_DIRECT */
};
#define QV_TMPFILE_INIT { .dirfd = -1, .fd = -1 }

/* Split path into its directory and final component. */
int qv_path_split(const char *path, char **ret_dir, char **ret_base);

/* Open an unnamed file in the directory of path (O_TMPFILE, or a
 * ".<name>.XXXXXX" file where O_TMPFILE is unsupported). With direct,
 * O_DIRECT is switched on after the open (fcntl); where the filesystem
 * refuses it the file stays buffered (t->direct says). */
int qv_tmpfile_open(struct qv_tmpfile *t, const char *path, mode_t mode, bool direct);
/* fsync the file, give it its final name (no_replace: -EEXIST if taken,
 * otherwise atomically replacing), fsync the directory. */
int qv_tmpfile_commit(struct qv_tmpfile *t, bool no_replace);
/* Close and remove whatever is not committed. Safe to call twice. */
void qv_tmpfile_discard(struct qv_tmpfile *t);
/* Create a fresh unique ".<name>.XXXXXX" name (for external writers such as
 * qemu-img) inside dirfd, as an empty file. */
int qv_tmpname_create(int dirfd, const char *name, char **ret_tmpname);
