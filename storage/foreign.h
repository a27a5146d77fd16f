/* SPDX-License-Identifier: MIT */
#pragma once

/* Foreign disk images (VMDK, VHDX, VDI, QED) into raw/qcow2 through
 * qemu-img, always with an explicit -f. A foreign image is refused when it
 * would make qemu-img read anything but the file itself: a backing file, a
 * VMDK extent elsewhere (a descriptor can name any host file), or a
 * non-file protocol. */

#include <stdint.h>

#include "common/error.h"
#include "storage/image.h"

enum qv_foreign_format {
	QV_FOREIGN_VMDK,
	QV_FOREIGN_VHDX,
	QV_FOREIGN_VDI,
	QV_FOREIGN_QED,
};

/* "vmdk", "vhdx", "vdi", "qed" -> 0 and *ret; else -EINVAL. */
int qv_foreign_format_from_string(const char *s, enum qv_foreign_format *ret);
const char *qv_foreign_format_to_string(enum qv_foreign_format f);

/* Check the qemu-img info JSON of path (opened as fmt): the format matches,
 * no backing file, every VMDK extent is path itself. *ret_virtual_size. */
int qv_foreign_check_info(const char *info_json, const char *path, enum qv_foreign_format fmt,
			  uint64_t *ret_virtual_size, struct qv_error *errp);
/* qemu-img info, then qv_foreign_check_info. */
int qv_foreign_inspect(const char *path, enum qv_foreign_format fmt, uint64_t *ret_virtual_size,
		       struct qv_error *errp);
/* qemu-img convert -f fmt -O dst_fmt src dst (dst must not exist). Blocking:
 * run it on a worker thread. */
int qv_foreign_convert(const char *src, enum qv_foreign_format fmt, const char *dst,
		       enum qv_image_format dst_fmt, struct qv_error *errp);
