/* SPDX-License-Identifier: MIT */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sys/random.h>

#include "common/macro.h"
#include "common/secret.h"
#include "qemu/secret.h"

#define IV_LEN 16

static int random_bytes(void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom((char *)buf + got, len - got, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

int qemu_master_key_new(struct qemu_master_key *ret)
{
	struct qemu_master_key k = { .fd = -1 };
	int r = random_bytes(k.key, sizeof(k.key));

	if (r >= 0)
		r = qv_memfd_secret("qv-master-key", k.key, sizeof(k.key), &k.fd);
	if (r < 0) {
		explicit_bzero(&k, sizeof(k));
		return r;
	}
	*ret = k;
	explicit_bzero(&k, sizeof(k));
	return 0;
}

void qemu_master_key_clear(struct qemu_master_key *k)
{
	if (k->fd >= 0)
		close(k->fd);
	explicit_bzero(k->key, sizeof(k->key));
	k->fd = -1;
}

int qemu_secret_encrypt(const struct qemu_master_key *k, const void *data, size_t len,
			char **ret_ct_b64, char **ret_iv_b64)
{
	unsigned char iv[IV_LEN];
	size_t padded = (len / 16 + 1) * 16;
	_cleanup_free_ unsigned char *buf = calloc(1, padded);
	gnutls_datum_t key = { (unsigned char *)k->key, sizeof(k->key) };
	gnutls_datum_t ivd = { iv, IV_LEN };
	gnutls_cipher_hd_t h;
	int r;

	if (!buf)
		return -ENOMEM;
	r = random_bytes(iv, sizeof(iv));
	if (r < 0)
		return r;
	memcpy(buf, data, len);
	memset(buf + len, (int)(padded - len), padded - len);
	if (gnutls_cipher_init(&h, GNUTLS_CIPHER_AES_256_CBC, &key, &ivd) < 0) {
		explicit_bzero(buf, padded);
		return -EIO;
	}
	r = gnutls_cipher_encrypt(h, buf, padded);
	gnutls_cipher_deinit(h);
	if (r < 0) {
		explicit_bzero(buf, padded);
		return -EIO;
	}
	char *ct = qv_base64_encode(buf, padded), *ivs = qv_base64_encode(iv, IV_LEN);
	if (!ct || !ivs) {
		free(ct);
		free(ivs);
		return -ENOMEM;
	}
	*ret_ct_b64 = ct;
	*ret_iv_b64 = ivs;
	return 0;
}
