/* SPDX-License-Identifier: MIT */
/* Snapshot images: name grammar, virtual size, overlay creation. */
#include <endian.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "storage/image.h"
#include "storage/qemu-img.h"
#include "storage/snapshot.h"

bool qv_snapshot_name_valid(const char *name)
{
	return qv_image_name_valid(name) && strlen(name) <= QV_SNAPSHOT_NAME_MAX;
}

int qv_snapshot_image_size(int fd, bool qcow2, uint64_t *ret_size, struct qv_error *errp)
{
	struct stat st;
	uint64_t be, size;

	if (qcow2) {
		if (pread(fd, &be, sizeof(be), 24) != (ssize_t)sizeof(be))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "qcow2 header too short");
		size = be64toh(be);
	} else if (fstat(fd, &st) < 0) {
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "fstat: %m");
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "BLKGETSIZE64: %m");
	} else {
		size = (uint64_t)st.st_size;
	}
	if (size == 0 || size > (UINT64_C(1) << 56))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "implausible virtual size %" PRIu64, size);
	*ret_size = size;
	return 0;
}

int qv_snapshot_overlay_create(const char *path, const char *backing, const char *backing_fmt,
			       uint64_t size, struct qv_error *errp)
{
	char sz[32];

	if (!backing || backing[0] != '/' || !backing_fmt)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "an overlay needs an absolute backing path and a format");
	if (access(path, F_OK) == 0)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "%s already exists", path);
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", (char *)backing,
			 "-F", (char *)backing_fmt, (char *)path, sz, NULL };
	return qv_qemu_img_run(argv, NULL, errp);
}
