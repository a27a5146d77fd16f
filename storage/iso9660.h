/* SPDX-License-Identifier: MIT */
#pragma once

/* A minimal ISO 9660 writer: one root directory of small regular files,
 * enough for a cloud-init NoCloud seed ("cidata"). No Rock Ridge or Joliet:
 * names are stored as "NAME;1" in upper case, which Linux (map=normal) and
 * cloud-init read back in lower case. */

#include <stddef.h>
#include <stdint.h>

#define ISO_SECTOR 2048
#define ISO_MAX_FILES 8
#define ISO_NAME_MAX 30   /* level 2 allows 31 with ";1" counted separately */

struct iso_file {
	const char *name;    /* [a-z0-9_.-]{1,30}, unique */
	const void *data;
	size_t size;
};

/* The image in memory: *ret_buf (malloc'ed), *ret_size bytes. mtime (unix
 * seconds) dates the volume and the files, so the same input gives the same
 * bytes. -EINVAL for a bad volume id (d-characters, at most 32), name, or
 * too many files; -EFBIG past 16 MiB. */
int iso9660_build(const char *volume_id, const struct iso_file *files, size_t n, int64_t mtime,
		  uint8_t **ret_buf, size_t *ret_size);
