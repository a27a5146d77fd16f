/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/base64.h"

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* Secret bytes (disk passphrases, keys) in one heap block that is wiped when
 * freed. A secret never goes into a log line, an error message, an event or
 * an RPC answer: callers name the image, never the bytes. */

#define QV_SECRET_MAX 1024 /* bytes; LUKS passphrases are far shorter */

struct qv_secret {
	size_t len;
	unsigned char data[QV_SECRET_MAX];
};

/* Copy 1..QV_SECRET_MAX bytes without NUL (they travel as JSON strings).
 * -EINVAL with errp (no secret bytes in the message) otherwise. */
int qv_secret_new(const void *data, size_t len, struct qv_secret **ret, struct qv_error *errp);
/* 32 random bytes as base64 text (44 characters, 256 bits). */
int qv_secret_generate(struct qv_secret **ret);
/* Wipes and frees; NULL is fine. */
struct qv_secret *qv_secret_free(struct qv_secret *s);
bool qv_secret_equal(const struct qv_secret *a, const struct qv_secret *b);
static inline void qv_secret_freep(struct qv_secret **s)
{
	qv_secret_free(*s);
}
#define _cleanup_secret_ __attribute__((cleanup(qv_secret_freep)))


/* A sealed memfd (O_CLOEXEC) holding data, for a child that reads it as
 * /proc/self/fd/N: the bytes never appear on a command line or in a file
 * system. The memfd's mode lets the child's uid open it; only processes
 * that may ptrace the holder (root, the same uid) can reach it. */
int qv_memfd_secret(const char *name, const void *data, size_t len, int *ret_fd);
