/* SPDX-License-Identifier: MIT */
/* Shared helpers for the storage tests (header-only, static). */
#pragma once

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define MiB (1024ull * 1024)
#define GiB (1024 * MiB)

/* Scratch directory on the same disk as the build (not tmpfs). */
static inline char *scratch_dir(void)
{
	char *d = strdup("/var/tmp/qv-storage-XXXXXX");
	cr_assert(d && mkdtemp(d), "mkdtemp");
	return d;
}

static inline void scratch_remove(char *d)
{
	char cmd[512];
	if (!d)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	(void)!system(cmd);
	free(d);
}

static inline char *path_in(const char *dir, const char *name)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* Deterministic pseudo-random bytes (xorshift64*), fast enough for GiBs. */
static inline void fill_random(void *buf, size_t len, uint64_t *state)
{
	uint64_t *p = buf, x = *state;
	for (size_t i = 0; i < len / 8; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = x * 0x2545F4914F6CDD1DULL;
	}
	*state = x;
}

/* Write len random bytes at off (file must exist). */
static inline void write_random(const char *path, uint64_t off, uint64_t len, uint64_t seed)
{
	size_t bs = 4 * MiB;
	void *buf = malloc(bs);
	int fd = open(path, O_WRONLY);
	uint64_t st = seed | 1;
	cr_assert(buf && fd >= 0);
	while (len) {
		size_t n = len < bs ? len : bs;
		fill_random(buf, bs, &st);
		cr_assert_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
		off += n;
		len -= n;
	}
	close(fd);
	free(buf);
}

static inline void make_sized(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static inline bool files_equal(const char *a, const char *b)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

static inline int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Number of directory entries other than . and .. (leftover temp files). */
static inline int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	cr_assert(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static inline bool have_prog(const char *name)
{
	return run("command -v %s >/dev/null 2>&1", name) == 0;
}
