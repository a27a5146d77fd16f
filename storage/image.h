/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Single image files, by path (storage/pool.h adds names and containment).
 * qcow2 work goes through qemu-img, run with fork+exec and always with an
 * explicit -f: the format of an image is never guessed from its content. */

enum qv_image_format {
	QV_IMAGE_RAW,
	QV_IMAGE_QCOW2,
	_QV_IMAGE_FORMAT_MAX,
	QV_IMAGE_AUTO = -1, /* import only: sniff the qcow2 magic */
};

#define QV_IMAGE_NAME_MAX 63

struct qv_image_info {
	char name[QV_IMAGE_NAME_MAX + 1]; /* filled by the pool */
	enum qv_image_format format;
	uint64_t virtual_size;
	uint64_t allocated_size;          /* bytes on disk */
	char *backing;                    /* qcow2 backing file, or NULL */
	enum qv_image_format backing_format;
	bool encrypted;                   /* qcow2 with LUKS encryption */
	unsigned key_slots;               /* active LUKS keyslots */
};

/* [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}: the VM name grammar. */
bool qv_image_name_valid(const char *name);
const char *qv_image_format_to_string(enum qv_image_format f);
/* "raw"/"qcow2" -> 0, else -EINVAL. */
int qv_image_format_from_string(const char *s, enum qv_image_format *ret);
/* Sniff: qcow2 magic -> QCOW2, anything else -> RAW. Only for files the
 * operator vouches for (import), never for guest-writable images. */
int qv_image_sniff_format(const char *path, enum qv_image_format *ret, struct qv_error *errp);

/* Create a new image (fails with -EEXIST if path exists). raw: sparse via
 * ftruncate; qcow2: qemu-img create. */
int qv_image_create(const char *path, enum qv_image_format fmt, uint64_t size,
		    struct qv_error *errp);
/* qcow2 overlay on an absolute backing path of the given format. */
int qv_image_create_linked(const char *path, const char *backing,
			   enum qv_image_format backing_fmt, struct qv_error *errp);
int qv_image_info(const char *path, enum qv_image_format fmt, struct qv_image_info *ret,
		  struct qv_error *errp);
void qv_image_info_clear(struct qv_image_info *info);
/* Grow (or, with shrink, also shrink) the virtual size. */
int qv_image_resize(const char *path, enum qv_image_format fmt, uint64_t size, bool shrink,
		    struct qv_error *errp);
