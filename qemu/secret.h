/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Disk secrets for QEMU without plaintext on its command line (the scheme
 * libvirt uses): a random per-start AES-256 master key reaches QEMU as a
 * sealed memfd it reads as /proc/self/fd/N (-object secret,id=qv-master,
 * format=raw,file=...), and each disk secret is on argv only AES-256-CBC
 * encrypted with it (-object secret,data=<ct>,keyid=qv-master,iv=<iv>,
 * format=base64). QEMU decrypts in memory. docs/security.md "Encrypted
 * disks". */

#define QEMU_SECRET_MASTER_ID "qv-master"
#define QEMU_SECRET_KEY_LEN 32

struct qemu_master_key {
	int fd; /* sealed memfd with the key; -1 when unset */
	unsigned char key[QEMU_SECRET_KEY_LEN];
};

/* A fresh random key and its memfd (O_CLOEXEC; the spawner keeps it). */
int qemu_master_key_new(struct qemu_master_key *ret);
/* Close the fd and wipe the key. */
void qemu_master_key_clear(struct qemu_master_key *k);

/* AES-256-CBC with PKCS#7 padding and a random IV, as QEMU's secret object
 * decrypts it; ciphertext and IV base64. 0 or -errno. */
int qemu_secret_encrypt(const struct qemu_master_key *k, const void *data, size_t len,
			char **ret_ct_b64, char **ret_iv_b64);
