/* SPDX-License-Identifier: MIT */
/* ISO 9660 image writer (ECMA-119): system area, primary volume descriptor,
 * terminator, L and M path tables, the root directory, then file data. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/iso9660.h"

#define ISO_MAX_IMAGE (16u << 20)
#define LBA_PVD 16
#define LBA_TERM 17
#define LBA_LPATH 18
#define LBA_MPATH 19
#define LBA_ROOT 20
#define LBA_DATA 21

static void le16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static void be32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[3 - i] = v >> (8 * i); }
static void both16(uint8_t *p, uint16_t v) { le16(p, v); be16(p + 2, v); }
static void both32(uint8_t *p, uint32_t v) { le32(p, v); be32(p + 4, v); }

static void pad(uint8_t *p, const char *s, size_t width)
{
	size_t l = strlen(s);

	memset(p, ' ', width);
	memcpy(p, s, l < width ? l : width);
}

/* 17-byte "YYYYMMDDHHMMSScc" + UTC offset, for the volume descriptor. */
static void date17(uint8_t *p, const struct tm *t)
{
	char buf[18];

	snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02d00", t->tm_year + 1900, t->tm_mon + 1,
		 t->tm_mday, t->tm_hour, t->tm_min, t->tm_sec);
	memcpy(p, buf, 16);
	p[16] = 0;
}

static void date7(uint8_t *p, const struct tm *t)
{
	p[0] = t->tm_year, p[1] = t->tm_mon + 1, p[2] = t->tm_mday;
	p[3] = t->tm_hour, p[4] = t->tm_min, p[5] = t->tm_sec, p[6] = 0;
}

/* One directory record at p; returns its length. */
static size_t dir_record(uint8_t *p, const uint8_t *id, size_t id_len, uint32_t lba,
			 uint32_t size, bool dir, const struct tm *t)
{
	size_t len = 33 + id_len + ((id_len % 2) ? 0 : 1);

	memset(p, 0, len);
	p[0] = (uint8_t)len;
	both32(p + 2, lba);
	both32(p + 10, size);
	date7(p + 18, t);
	p[25] = dir ? 2 : 0;
	both16(p + 28, 1);
	p[32] = (uint8_t)id_len;
	memcpy(p + 33, id, id_len);
	return len;
}

static bool name_ok(const char *n)
{
	size_t l = strlen(n);

	if (!l || l > ISO_NAME_MAX || n[0] == '.')
		return false;
	for (const char *p = n; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && !strchr("_.-", *p))
			return false;
	return true;
}

static bool volid_ok(const char *v)
{
	size_t l = strlen(v);

	if (!l || l > 32)
		return false;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

static void write_pvd(uint8_t *p, const char *volid, uint32_t total, const uint8_t *root_rec,
		      const struct tm *t)
{
	p[0] = 1;
	memcpy(p + 1, "CD001", 5);
	p[6] = 1;
	pad(p + 8, "LINUX", 32);
	pad(p + 40, volid, 32);
	both32(p + 80, total);
	both16(p + 120, 1);
	both16(p + 124, 1);
	both16(p + 128, ISO_SECTOR);
	both32(p + 132, 10); /* path table: the root only */
	le32(p + 140, LBA_LPATH);
	be32(p + 148, LBA_MPATH);
	memcpy(p + 156, root_rec, 34);
	pad(p + 190, "", 128);
	pad(p + 318, "", 128);
	pad(p + 446, "QVISOR", 128);
	pad(p + 574, "QVISOR CIDATA", 128);
	pad(p + 702, "", 37 * 3);
	date17(p + 813, t);
	date17(p + 830, t);
	memset(p + 847, '0', 16);
	memset(p + 864, '0', 16);
	p[881] = 1;
}

static void write_path_tables(uint8_t *img)
{
	uint8_t *l = img + LBA_LPATH * ISO_SECTOR, *m = img + LBA_MPATH * ISO_SECTOR;

	l[0] = m[0] = 1;        /* name length: the root's 0x00 */
	le32(l + 2, LBA_ROOT);
	be32(m + 2, LBA_ROOT);
	le16(l + 6, 1);         /* parent: itself */
	be16(m + 6, 1);
}

int iso9660_build(const char *volid, const struct iso_file *files, size_t n, int64_t mtime,
		  uint8_t **ret_buf, size_t *ret_size)
{
	time_t tt = (time_t)mtime;
	struct tm t;
	uint32_t lba = LBA_DATA, lbas[ISO_MAX_FILES];

	if (!volid_ok(volid) || n > ISO_MAX_FILES || !gmtime_r(&tt, &t))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!name_ok(files[i].name) || files[i].size > ISO_MAX_IMAGE)
			return -EINVAL;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(files[i].name, files[k].name))
				return -EINVAL;
		lbas[i] = lba;
		lba += (uint32_t)((files[i].size + ISO_SECTOR - 1) / ISO_SECTOR);
		if ((uint64_t)lba * ISO_SECTOR > ISO_MAX_IMAGE)
			return -EFBIG;
	}
	size_t size = (size_t)lba * ISO_SECTOR;
	uint8_t *img = calloc(1, size), root[34], *d = img + LBA_ROOT * ISO_SECTOR;
	if (!img)
		return -ENOMEM;
	const uint8_t self = 0, parent = 1;
	dir_record(root, &self, 1, LBA_ROOT, ISO_SECTOR, true, &t);
	size_t off = dir_record(d, &self, 1, LBA_ROOT, ISO_SECTOR, true, &t);
	off += dir_record(d + off, &parent, 1, LBA_ROOT, ISO_SECTOR, true, &t);
	for (size_t i = 0; i < n; i++) {
		char id[ISO_NAME_MAX + 3];
		size_t l = strlen(files[i].name);
		for (size_t k = 0; k < l; k++)
			id[k] = (char)toupper((unsigned char)files[i].name[k]);
		memcpy(id + l, ";1", 2);
		off += dir_record(d + off, (const uint8_t *)id, l + 2, lbas[i], (uint32_t)files[i].size,
				  false, &t);
		if (files[i].size)
			memcpy(img + (size_t)lbas[i] * ISO_SECTOR, files[i].data, files[i].size);
	}
	write_pvd(img + LBA_PVD * ISO_SECTOR, volid, lba, root, &t);
	uint8_t *term = img + LBA_TERM * ISO_SECTOR;
	term[0] = 255;
	memcpy(term + 1, "CD001", 5);
	term[6] = 1;
	write_path_tables(img);
	*ret_buf = img;
	*ret_size = size;
	return 0;
}
