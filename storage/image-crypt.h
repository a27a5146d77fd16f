/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "common/error.h"
#include "common/secret.h"

/* LUKS-encrypted qcow2 images (encrypt.format=luks) through qemu-img. The
 * passphrase goes to qemu-img as a sealed memfd it reads as
 * --object secret,file=/proc/self/fd/N: never on its argv or in a file.
 * iter_time_ms: the LUKS PBKDF time per keyslot (0: QEMU's 2000 ms). */

int qv_image_create_luks(const char *path, uint64_t size, const struct qv_secret *key,
			 unsigned iter_time_ms, struct qv_error *errp);
/* Open the image with key (qemu-img check): 0, or -EIO with qemu-img's
 * reason ("Invalid password, cannot unlock any keyslot"). */
int qv_image_check_key(const char *path, const struct qv_secret *key, struct qv_error *errp);
/* Add a keyslot for new_key (opened with old_key), then erase every keyslot
 * old_key opens (opened with new_key). No data is copied; the volume key
 * stays, so the old passphrase stops working but data already read with it
 * was readable. */
int qv_image_rekey_add(const char *path, const struct qv_secret *old_key,
		       const struct qv_secret *new_key, unsigned iter_time_ms,
		       struct qv_error *errp);
int qv_image_rekey_drop(const char *path, const struct qv_secret *old_key,
			const struct qv_secret *new_key, struct qv_error *errp);
int qv_image_resize_luks(const char *path, uint64_t size, bool shrink,
			 const struct qv_secret *key, struct qv_error *errp);
