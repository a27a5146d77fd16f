/* SPDX-License-Identifier: MIT */
/* An empty qcow2 image written directly (storage/qcow2-create.h). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "storage/qcow2-create.h"

#define CSIZE ((uint64_t)1 << QV_QCOW2_CLUSTER_BITS)

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

int qv_qcow2_create_empty(int fd, uint64_t vsize, struct qv_error *errp)
{
	/* one L2 table maps CSIZE / 8 clusters; one refcount block (16-bit
	 * entries) counts CSIZE / 2 clusters, which covers the metadata here
	 * for any disk up to 2^50 bytes (L1 of 256 clusters at most) */
	uint64_t l2_span = CSIZE / 8 * CSIZE;
	uint64_t l1_size = (vsize + l2_span - 1) / l2_span;
	uint64_t l1_clusters = (l1_size * 8 + CSIZE - 1) / CSIZE;
	uint64_t n_clusters = 3 + (l1_clusters ? l1_clusters : 1), len = n_clusters * CSIZE;

	if (vsize == 0 || vsize > (1ULL << 50) || vsize % 512)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "qcow2: bad virtual size %llu", (unsigned long long)vsize);
	_cleanup_free_ uint8_t *buf = calloc(1, (size_t)len);
	if (!buf)
		return -ENOMEM;
	uint8_t *h = buf, *rt = buf + CSIZE, *rb = buf + 2 * CSIZE;
	memcpy(h, "QFI\xfb", 4);
	put32(h + 4, 3);                     /* version */
	put32(h + 20, QV_QCOW2_CLUSTER_BITS); /* cluster_bits */
	put64(h + 24, vsize);
	put32(h + 36, (uint32_t)l1_size);
	put64(h + 40, 3 * CSIZE);            /* l1_table_offset */
	put64(h + 48, CSIZE);                /* refcount_table_offset */
	put32(h + 56, 1);                    /* refcount_table_clusters */
	put32(h + 96, 4);                    /* refcount_order: 16 bits */
	put32(h + 100, 104);                 /* header_length; extensions end at 104 */
	put64(rt, 2 * CSIZE);                /* the one refcount block */
	for (uint64_t c = 0; c < n_clusters; c++) {
		uint16_t one = htobe16(1);
		memcpy(rb + 2 * c, &one, 2);
	}
	for (uint64_t off = 0; off < len;) {
		ssize_t n = pwrite(fd, buf + off, (size_t)(len - off), (off_t)off);
		if (n < 0)
			return qv_error_set(errp, errno, errno == ENOSPC ? QV_REASON_NO_SPACE
									 : QV_REASON_IO_ERROR,
					    "qcow2: writing the header: %m");
		off += (uint64_t)n;
	}
	return 0;
}
