/* SPDX-License-Identifier: MIT */
#pragma once

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"

/* What a qcow2 header makes QEMU open besides the image itself: a backing
 * file and an external data file (incompatible feature bit 2, name in the
 * header extension 0x44415441). Read from an fd, so the check applies to
 * the very file that is copied or handed to QEMU. */

struct qv_qcow2_refs {
	bool is_qcow2;        /* magic "QFI\xfb"; false: no references at all */
	char *backing;        /* backing file name, or NULL */
	bool external_data;   /* the image keeps its data in another file */
	char *data_file;      /* that file's name from the header, or NULL */
	uint32_t crypt_method; /* qcow2: QV_QCOW2_CRYPT_* (header offset 32) */
	bool raw_luks;        /* not qcow2: a LUKS header ("LUKS\xba\xbe") */
};
#define QV_QCOW2_CRYPT_NONE 0
#define QV_QCOW2_CRYPT_AES 1  /* legacy, broken: refused */
#define QV_QCOW2_CRYPT_LUKS 2

/* 0 and *ret filled (free with qv_qcow2_refs_clear), or -errno with errp
 * (a truncated or inconsistent header is -EINVAL, reason invalid-argument). */
int qv_qcow2_read_refs(int fd, struct qv_qcow2_refs *ret, struct qv_error *errp);
void qv_qcow2_refs_clear(struct qv_qcow2_refs *refs);

/* Refuse an image that names another file: 0, or -EINVAL with a message
 * naming `what` and the reference ("... has an external data file
 * \"/dev/sda\"; qvisor does not import images that read other files"). */
int qv_qcow2_check_self_contained(int fd, const char *what, struct qv_error *errp);

/* Big-endian fields of a qcow2 header or table, read from a byte buffer. */
static inline uint32_t qv_be32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}

static inline uint64_t qv_be64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}
