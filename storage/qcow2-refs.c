/* SPDX-License-Identifier: MIT */
/* qcow2 header fields that name other files (QEMU docs/interop/qcow2.txt). */
#include <endian.h>
#include <stdint.h>
#include <unistd.h>

#include "common/macro.h"
#include "storage/qcow2-refs.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_EXT_DATA_FILE 0x44415441u
#define QCOW2_EXT_END 0u
#define HEADER_MAX 65536 /* extensions live in the first cluster; 64 KiB covers the default */

#define BAD(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)


static int read_name(int fd, uint64_t off, uint32_t len, char **ret, struct qv_error *errp)
{
	char *s;

	if (len == 0 || len > 1023)
		return BAD(errp, "qcow2 header: file name length %u out of range", len);
	s = calloc(1, len + 1);
	if (!s)
		return -ENOMEM;
	if (pread(fd, s, len, (off_t)off) != (ssize_t)len) {
		free(s);
		return BAD(errp, "qcow2 header: file name beyond the end of the image");
	}
	*ret = s;
	return 0;
}

/* Walk the header extensions in buf[start, n) for the data-file name. */
static int scan_extensions(const uint8_t *buf, size_t n, size_t start, struct qv_qcow2_refs *r,
			   struct qv_error *errp)
{
	for (size_t off = start; off + 8 <= n;) {
		uint32_t type = qv_be32_at(buf + off), len = qv_be32_at(buf + off + 4);

		if (type == QCOW2_EXT_END)
			return 0;
		if (len > n - off - 8)
			return BAD(errp, "qcow2 header: extension 0x%08x overruns the header", type);
		if (type == QCOW2_EXT_DATA_FILE && !r->data_file) {
			r->data_file = strndup((const char *)buf + off + 8, len);
			if (!r->data_file)
				return -ENOMEM;
		}
		off += 8 + (((size_t)len + 7) & ~(size_t)7);
	}
	return 0;
}

int qv_qcow2_read_refs(int fd, struct qv_qcow2_refs *ret, struct qv_error *errp)
{
	struct qv_qcow2_refs r = { 0 };
	_cleanup_free_ uint8_t *buf = malloc(HEADER_MAX);
	uint32_t version, header_len = 72, blen;
	uint64_t boff, incompat = 0;
	ssize_t n;
	int e;

	if (!buf)
		return -ENOMEM;
	n = pread(fd, buf, HEADER_MAX, 0);
	if (n < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot read the image: %m");
	if (n < 4 || qv_be32_at(buf) != QCOW2_MAGIC) {
		r.raw_luks = n >= 6 && memcmp(buf, "LUKS\xba\xbe", 6) == 0;
		*ret = r;
		return 0;
	}
	r.is_qcow2 = true;
	if (n < 72)
		return BAD(errp, "qcow2 header truncated (%zd bytes)", n);
	version = qv_be32_at(buf + 4);
	if (version != 2 && version != 3)
		return BAD(errp, "qcow2 version %u is not supported", version);
	boff = qv_be64_at(buf + 8);
	blen = qv_be32_at(buf + 16);
	r.crypt_method = qv_be32_at(buf + 32);
	if (version == 3) {
		if (n < 104)
			return BAD(errp, "qcow2 v3 header truncated");
		incompat = qv_be64_at(buf + 72);
		header_len = qv_be32_at(buf + 100);
		if (header_len < 104 || header_len > (uint32_t)n)
			return BAD(errp, "qcow2 header length %u out of range", header_len);
	}
	r.external_data = incompat & QCOW2_INCOMPAT_DATA_FILE;
	e = boff ? read_name(fd, boff, blen, &r.backing, errp) : 0;
	if (e >= 0)
		e = scan_extensions(buf, (size_t)n, header_len, &r, errp);
	if (e < 0) {
		qv_qcow2_refs_clear(&r);
		return e;
	}
	*ret = r;
	return 0;
}

void qv_qcow2_refs_clear(struct qv_qcow2_refs *refs)
{
	free(refs->backing);
	free(refs->data_file);
	*refs = (struct qv_qcow2_refs){ 0 };
}

int qv_qcow2_check_self_contained(int fd, const char *what, struct qv_error *errp)
{
	struct qv_qcow2_refs r;
	int e = qv_qcow2_read_refs(fd, &r, errp);

	if (e < 0)
		return qv_error_prefix(errp, "%s", what), e;
	if (r.external_data || r.data_file)
		e = BAD(errp, "%s has an external data file \"%.200s\": qvisor refuses images "
			"whose data lives in another file (qemu-img convert -O qcow2 makes a "
			"self-contained copy)", what, r.data_file ? r.data_file : "?");
	else if (r.backing)
		e = BAD(errp, "%s has a backing file \"%.200s\": flatten it first "
			"(qemu-img convert -O qcow2)", what, r.backing);
	qv_qcow2_refs_clear(&r);
	return e;
}
