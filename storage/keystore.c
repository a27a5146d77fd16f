/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "storage/image.h"
#include "storage/keystore.h"

#define MAGIC "QVK1"
#define HDR_LEN 8
#define KIND_PLAIN 0
#define KIND_WRAPPED 1
#define NONCE_LEN 12
#define TAG_LEN 16
#define FILE_MAX (HDR_LEN + NONCE_LEN + QV_SECRET_MAX + TAG_LEN)

struct qv_keystore {
	char *dir;
	int dirfd;
	bool wrapped;
	unsigned char master[32];
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 32 raw bytes, or 64 hex digits and an optional newline. */
static int load_master(qv_keystore *ks, const char *path, struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	unsigned char buf[80];
	struct stat st;
	ssize_t n;
	int r = 0;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND,
				    "cannot open the master key file %s: %m", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "master key file %s is not a regular file", path);
	if (st.st_mode & 077)
		return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
				    "master key file %s is readable by group or others (mode %04o): "
				    "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "read %s: %m", path);
	if (n == 32) {
		memcpy(ks->master, buf, 32);
	} else if (n == 64 || (n == 65 && buf[64] == '\n')) {
		for (int i = 0; i < 32 && r == 0; i++) {
			int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
			if (hi < 0 || lo < 0)
				r = -EINVAL;
			ks->master[i] = (unsigned char)(hi << 4 | lo);
		}
	} else {
		r = -EINVAL;
	}
	explicit_bzero(buf, sizeof(buf));
	if (r < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "master key file %s must hold 32 random bytes or 64 hex digits "
				    "(head -c 32 /dev/urandom > %s)", path, path);
	ks->wrapped = true;
	return 0;
}

static void qv_keystore_freep_(qv_keystore **ks)
{
	qv_keystore_free(*ks);
}

int qv_keystore_open(const char *dir, const char *master_key_file, qv_keystore **ret,
		     struct qv_error *errp)
{
	_cleanup_(qv_keystore_freep_) qv_keystore *ks = NULL;
	struct stat st;
	int r;

	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return -ENOMEM;
	ks->dirfd = -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "create keystore %s: %m", dir);
	ks->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ks->dirfd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "open keystore %s: %m", dir);
	if (fstat(ks->dirfd, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "stat %s: %m", dir);
	if (st.st_uid != geteuid())
		return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
				    "keystore %s is owned by uid %u, not by us", dir,
				    (unsigned)st.st_uid);
	if ((st.st_mode & 07777) != 0700 && fchmod(ks->dirfd, 0700) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "chmod 0700 %s: %m", dir);
	ks->dir = strdup(dir);
	if (!ks->dir)
		return -ENOMEM;
	if (master_key_file && (r = load_master(ks, master_key_file, errp)) < 0)
		return r;
	*ret = TAKE_PTR(ks);
	return 0;
}

qv_keystore *qv_keystore_free(qv_keystore *ks)
{
	if (!ks)
		return NULL;
	if (ks->dirfd >= 0)
		close(ks->dirfd);
	free(ks->dir);
	explicit_bzero(ks, sizeof(*ks));
	free(ks);
	return NULL;
}

bool qv_keystore_wrapped(const qv_keystore *ks)
{
	return ks->wrapped;
}

const char *qv_keystore_dir(const qv_keystore *ks)
{
	return ks->dir;
}

static int key_file(const char *name, char buf[static QV_IMAGE_NAME_MAX + 8],
		    struct qv_error *errp)
{
	if (!qv_image_name_valid(name))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid image name \"%.80s\" for a key", name ? name : "");
	snprintf(buf, QV_IMAGE_NAME_MAX + 8, "%s.key", name);
	return 0;
}

/* AES-256-GCM over the secret; AAD = header + image name. */
static int aead(qv_keystore *ks, bool enc, const unsigned char *hdr, const char *name,
		const unsigned char *nonce, const void *in, size_t in_len, void *out,
		size_t *out_len)
{
	gnutls_datum_t key = { ks->master, sizeof(ks->master) };
	gnutls_aead_cipher_hd_t h;
	unsigned char aad[HDR_LEN + QV_IMAGE_NAME_MAX];
	size_t nl = strlen(name);
	int r;

	memcpy(aad, hdr, HDR_LEN);
	memcpy(aad + HDR_LEN, name, nl);
	if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &key) < 0)
		return -EIO;
	if (enc)
		r = gnutls_aead_cipher_encrypt(h, nonce, NONCE_LEN, aad, HDR_LEN + nl, TAG_LEN, in,
					       in_len, out, out_len);
	else
		r = gnutls_aead_cipher_decrypt(h, nonce, NONCE_LEN, aad, HDR_LEN + nl, TAG_LEN, in,
					       in_len, out, out_len);
	gnutls_aead_cipher_deinit(h);
	explicit_bzero(aad, sizeof(aad));
	if (r == GNUTLS_E_DECRYPTION_FAILED)
		return -EKEYREJECTED;
	return r < 0 ? -EIO : 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A fresh ".<file>.XXXXXX" in the keystore, 0600. */
static int open_tmp(qv_keystore *ks, const char *file, char tmp[static NAME_MAX + 1])
{
	for (int tries = 0; tries < 100; tries++) {
		unsigned rnd;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			return -EIO;
		snprintf(tmp, NAME_MAX + 1, ".%s.%06x", file, rnd & 0xffffff);
		int fd = openat(ks->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

int qv_keystore_put(qv_keystore *ks, const char *name, const struct qv_secret *s,
		    struct qv_error *errp)
{
	_cleanup_free_ unsigned char *buf = calloc(1, FILE_MAX);
	_cleanup_close_ int fd = -1;
	char file[QV_IMAGE_NAME_MAX + 8], tmp[NAME_MAX + 1];
	size_t len = HDR_LEN;
	int r = key_file(name, file, errp);

	if (r < 0)
		return r;
	if (!buf)
		return -ENOMEM;
	if (!s || s->len < 1 || s->len > QV_SECRET_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "no secret to store");
	memcpy(buf, MAGIC, 4);
	buf[4] = ks->wrapped ? KIND_WRAPPED : KIND_PLAIN;
	if (ks->wrapped) {
		size_t out = s->len + TAG_LEN;
		if (getrandom(buf + HDR_LEN, NONCE_LEN, 0) != NONCE_LEN)
			return qv_error_set(errp, EIO, QV_REASON_INTERNAL, "getrandom failed");
		r = aead(ks, true, buf, name, buf + HDR_LEN, s->data, s->len,
			 buf + HDR_LEN + NONCE_LEN, &out);
		if (r < 0)
			return qv_error_set(errp, -r, QV_REASON_INTERNAL,
					    "cannot wrap the key of image %s", name);
		len += NONCE_LEN + out;
	} else {
		memcpy(buf + HDR_LEN, s->data, s->len);
		len += s->len;
	}
	fd = open_tmp(ks, file, tmp);
	if (fd < 0)
		r = fd;
	else if ((r = write_all(fd, buf, len)) >= 0 && fsync(fd) < 0)
		r = -errno;
	explicit_bzero(buf, FILE_MAX);
	if (r >= 0 && renameat(ks->dirfd, tmp, ks->dirfd, file) < 0)
		r = -errno;
	if (r < 0) {
		if (fd >= 0)
			(void)unlinkat(ks->dirfd, tmp, 0);
		return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "cannot write %s/%s: %s",
				    ks->dir, file, strerror(-r));
	}
	(void)fsync(ks->dirfd);
	return 0;
}

static int damaged(qv_keystore *ks, const char *file, struct qv_error *errp)
{
	return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
			    "key file %s/%s is damaged (not a qvisor key)", ks->dir, file);
}

int qv_keystore_get(qv_keystore *ks, const char *name, struct qv_secret **ret,
		    struct qv_error *errp)
{
	_cleanup_free_ unsigned char *buf = calloc(1, FILE_MAX + 1);
	_cleanup_secret_ struct qv_secret *s = calloc(1, sizeof(*s));
	_cleanup_close_ int fd = -1;
	char file[QV_IMAGE_NAME_MAX + 8];
	struct stat st;
	size_t len = 0;
	int r = key_file(name, file, errp);

	if (r < 0)
		return r;
	if (!buf || !s)
		return -ENOMEM;
	fd = openat(ks->dirfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
				    "no key for image %s in the keystore %s", name, ks->dir);
	if (fd < 0 || fstat(fd, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "open %s/%s: %m", ks->dir,
				    file);
	if (!S_ISREG(st.st_mode))
		return damaged(ks, file, errp);
	for (ssize_t n; len <= FILE_MAX && (n = read(fd, buf + len, FILE_MAX + 1 - len)) != 0;) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "read %s/%s: %m",
					    ks->dir, file);
		len += (size_t)n;
	}
	if (len < HDR_LEN + 1 || len > FILE_MAX || memcmp(buf, MAGIC, 4) != 0)
		return damaged(ks, file, errp);
	if (buf[4] == KIND_PLAIN) {
		r = qv_secret_new(buf + HDR_LEN, len - HDR_LEN, ret, NULL);
		explicit_bzero(buf, FILE_MAX);
		return r < 0 ? damaged(ks, file, errp) : 0;
	}
	if (buf[4] != KIND_WRAPPED || len < HDR_LEN + NONCE_LEN + TAG_LEN + 1)
		return damaged(ks, file, errp);
	if (!ks->wrapped)
		return qv_error_set(errp, ENOKEY, QV_REASON_UNAVAILABLE,
				    "the key of image %s is wrapped by a host master key: start "
				    "qvisord with --master-key-file", name);
	size_t out = QV_SECRET_MAX;
	r = aead(ks, false, buf, name, buf + HDR_LEN, buf + HDR_LEN + NONCE_LEN,
		 len - HDR_LEN - NONCE_LEN, s->data, &out);
	explicit_bzero(buf, FILE_MAX);
	if (r == -EKEYREJECTED)
		return qv_error_set(errp, EKEYREJECTED, QV_REASON_PERMISSION,
				    "the key of image %s does not unwrap with this host's master key "
				    "(wrong --master-key-file, or %s/%s was altered)", name, ks->dir,
				    file);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot unwrap the key of image %s",
				    name);
	s->len = out;
	*ret = TAKE_PTR(s);
	return 0;
}

bool qv_keystore_has(qv_keystore *ks, const char *name)
{
	char file[QV_IMAGE_NAME_MAX + 8];
	struct stat st;

	return key_file(name, file, NULL) == 0 &&
	       fstatat(ks->dirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

int qv_keystore_remove(qv_keystore *ks, const char *name, struct qv_error *errp)
{
	char file[QV_IMAGE_NAME_MAX + 8];
	int r = key_file(name, file, errp);

	if (r < 0)
		return r;
	if (unlinkat(ks->dirfd, file, 0) < 0 && errno != ENOENT)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "remove %s/%s: %m", ks->dir,
				    file);
	(void)fsync(ks->dirfd);
	return 0;
}
