/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "common/macro.h"
#include "common/secret.h"

int qv_secret_new(const void *data, size_t len, struct qv_secret **ret, struct qv_error *errp)
{
	struct qv_secret *s;

	if (len < 1 || len > QV_SECRET_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "a passphrase must be 1 to %d bytes long (got %zu)",
				    QV_SECRET_MAX, len);
	if (memchr(data, '\0', len))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "a passphrase must not contain NUL bytes");
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->data, data, len);
	s->len = len;
	*ret = s;
	return 0;
}

int qv_secret_generate(struct qv_secret **ret)
{
	unsigned char raw[32];
	size_t got = 0;
	int r;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	char *b64 = qv_base64_encode(raw, sizeof(raw));
	explicit_bzero(raw, sizeof(raw));
	if (!b64)
		return -ENOMEM;
	r = qv_secret_new(b64, strlen(b64), ret, NULL);
	explicit_bzero(b64, strlen(b64));
	free(b64);
	return r;
}

struct qv_secret *qv_secret_free(struct qv_secret *s)
{
	if (s) {
		explicit_bzero(s, sizeof(*s));
		free(s);
	}
	return NULL;
}

bool qv_secret_equal(const struct qv_secret *a, const struct qv_secret *b)
{
	unsigned char diff = 0;

	if (!a || !b || a->len != b->len)
		return false;
	for (size_t i = 0; i < a->len; i++)
		diff |= a->data[i] ^ b->data[i];
	return diff == 0;
}

int qv_memfd_secret(const char *name, const void *data, size_t len, int *ret_fd)
{
	_cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	const char *p = data;
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			off += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}
