/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "storage/copy-internal.h"
#include "storage/copy.h"
#include "storage/csum.h"

#define VERIFY_BUF ((size_t)1 << 20)

static int sum_range(int fd, bool direct, uint8_t *buf, uint64_t off, uint64_t end,
		     uint64_t *sum)
{
	while (off < end) {
		uint64_t want = end - off < VERIFY_BUF ? end - off : VERIFY_BUF;
		size_t io = direct ? (want + QV_CSUM_UNIT - 1) & ~(size_t)(QV_CSUM_UNIT - 1) : want;
		ssize_t n = pread(fd, buf, io, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shrank */
		if ((uint64_t)n > want)
			n = (ssize_t)want;
		/* Keep the next read unit-aligned. */
		if ((uint64_t)n < want && n >= (ssize_t)QV_CSUM_UNIT)
			n &= ~(ssize_t)(QV_CSUM_UNIT - 1);
		*sum += qv_csum_data(off, buf, (size_t)n);
		off += (uint64_t)n;
	}
	return 0;
}

int qv_copy_checksum_fd(int fd, bool direct, uint64_t *ret)
{
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	uint64_t sum = 0, cur = 0, total;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	total = (uint64_t)st.st_size;
	if (posix_memalign((void **)&buf, QV_CSUM_UNIT, VERIFY_BUF) != 0)
		return -ENOMEM;
	while (cur < total) {
		off_t d = lseek(fd, (off_t)cur, SEEK_DATA);
		if (d < 0) {
			if (errno != ENXIO)
				return -errno;
			d = (off_t)total;
		}
		uint64_t data = (uint64_t)d & ~(uint64_t)(QV_CSUM_UNIT - 1);
		if (data > total)
			data = total;
		if (data > cur) {
			sum += qv_csum_zeroes(cur, data - cur);
			cur = data;
		}
		if (cur >= total)
			break;
		off_t h = lseek(fd, (off_t)cur, SEEK_HOLE);
		if (h < 0)
			return -errno;
		uint64_t end = ((uint64_t)h + QV_CSUM_UNIT - 1) & ~(uint64_t)(QV_CSUM_UNIT - 1);
		if (end > total || end <= cur)
			end = total;
		r = sum_range(fd, direct, buf, cur, end, &sum);
		if (r < 0)
			return r;
		cur = end;
	}
	*ret = sum;
	return 0;
}

int qv_copy_checksum_file(const char *path, uint64_t *ret, struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, NULL, "open %s: %m", path);
	r = qv_copy_checksum_fd(fd, false, ret);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "checksum %s: %s", path,
				    strerror(-r));
	return 0;
}
