/* SPDX-License-Identifier: MIT */
/* qemu/secret.c: the master key memfd and AES-256-CBC as QEMU's secret
 * object decrypts it (checked by decrypting with GnuTLS here; the real
 * QEMU path is in tests/integration/test_encrypt.c). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "common/macro.h"
#include "qemu/secret.h"

static size_t b64dec(const char *s, unsigned char *out)
{
	gnutls_datum_t in = { (unsigned char *)s, (unsigned)strlen(s) }, res;
	cr_assert_eq(gnutls_base64_decode2(&in, &res), 0, "bad base64 %s", s);
	memcpy(out, res.data, res.size);
	size_t n = res.size;
	gnutls_free(res.data);
	return n;
}

Test(secret, master_key_memfd_and_cbc_roundtrip)
{
	struct qemu_master_key k;
	unsigned char fromfd[64], ct[128], iv[32];
	const char *pass = "correct horse battery staple, 32b";
	char *ct64 = NULL, *iv64 = NULL, path[64];

	cr_assert_eq(qemu_master_key_new(&k), 0);
	cr_assert_geq(k.fd, 0);
	/* Readable through /proc/self/fd (how QEMU opens it), sealed. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", k.fd);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, fromfd, sizeof(fromfd)), QEMU_SECRET_KEY_LEN);
	close(fd);
	cr_assert_eq(memcmp(fromfd, k.key, QEMU_SECRET_KEY_LEN), 0);
	cr_assert_lt(write(k.fd, "x", 1), 0, "the memfd is writable");
	cr_assert_eq(fcntl(k.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

	cr_assert_eq(qemu_secret_encrypt(&k, pass, strlen(pass), &ct64, &iv64), 0);
	cr_assert_null(strstr(ct64, "horse"));
	size_t n = b64dec(ct64, ct), ivn = b64dec(iv64, iv);
	cr_assert_eq(ivn, 16);
	cr_assert_eq(n % 16, 0);
	cr_assert_gt(n, strlen(pass));
	gnutls_datum_t key = { k.key, QEMU_SECRET_KEY_LEN }, ivd = { iv, 16 };
	gnutls_cipher_hd_t h;
	cr_assert_eq(gnutls_cipher_init(&h, GNUTLS_CIPHER_AES_256_CBC, &key, &ivd), 0);
	cr_assert_eq(gnutls_cipher_decrypt(h, ct, n), 0);
	gnutls_cipher_deinit(h);
	unsigned pad = ct[n - 1];
	cr_assert(pad >= 1 && pad <= 16, "PKCS#7 padding %u", pad);
	cr_assert_eq(n - pad, strlen(pass));
	cr_assert_eq(memcmp(ct, pass, strlen(pass)), 0);
	/* A fresh IV every time. */
	char *ct2 = NULL, *iv2 = NULL;
	cr_assert_eq(qemu_secret_encrypt(&k, pass, strlen(pass), &ct2, &iv2), 0);
	cr_assert_str_neq(iv2, iv64);
	cr_assert_str_neq(ct2, ct64);
	free(ct64);
	free(iv64);
	free(ct2);
	free(iv2);
	qemu_master_key_clear(&k);
	cr_assert_eq(k.fd, -1);
}
