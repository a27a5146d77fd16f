/* SPDX-License-Identifier: MIT */
/* ISO 9660 writer and the cidata seed: read the image back by the standard
 * (PVD, root directory records), check blkid recognises it. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "common/macro.h"
#include "storage/cidata.h"
#include "storage/iso9660.h"

static uint32_t le32_at(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Find "NAME;1" in the root directory; returns its bytes or NULL. */
static const uint8_t *find_file(const uint8_t *img, size_t size, const char *id, uint32_t *ret_len)
{
	const uint8_t *pvd = img + 16 * ISO_SECTOR, *root = pvd + 156;
	uint32_t lba = le32_at(root + 2), len = le32_at(root + 10);

	cr_assert_leq((size_t)(lba + 1) * ISO_SECTOR, size);
	for (uint32_t off = 0; off < len && img[lba * ISO_SECTOR + off];) {
		const uint8_t *r = img + lba * ISO_SECTOR + off;
		if (r[32] == strlen(id) && !memcmp(r + 33, id, r[32])) {
			*ret_len = le32_at(r + 10);
			cr_assert_leq((size_t)le32_at(r + 2) * ISO_SECTOR + *ret_len, size);
			return img + (size_t)le32_at(r + 2) * ISO_SECTOR;
		}
		off += r[0];
	}
	return NULL;
}

Test(iso9660, files_read_back_by_the_standard)
{
	struct iso_file f[] = { { "user-data", "#cloud-config\n", 14 },
				{ "empty", "", 0 },
				{ "big", NULL, 5000 } };
	_cleanup_free_ char *big = malloc(5000);
	uint8_t *img;
	size_t size;
	uint32_t len;

	memset(big, 'x', 5000);
	f[2].data = big;
	cr_assert_eq(iso9660_build("cidata", f, 3, 1577836800, &img, &size), 0);
	cr_assert_eq(size % ISO_SECTOR, 0);
	cr_assert_eq(memcmp(img + 16 * ISO_SECTOR + 1, "CD001", 5), 0);
	cr_assert_eq(memcmp(img + 16 * ISO_SECTOR + 40, "cidata ", 7), 0);
	cr_assert_eq(le32_at(img + 16 * ISO_SECTOR + 80) * (size_t)ISO_SECTOR, size);
	cr_assert_eq(img[17 * ISO_SECTOR], 255); /* terminator */
	const uint8_t *d = find_file(img, size, "USER-DATA;1", &len);
	cr_assert_not_null(d);
	cr_assert_eq(len, 14);
	cr_assert_eq(memcmp(d, "#cloud-config\n", 14), 0);
	d = find_file(img, size, "BIG;1", &len);
	cr_assert_eq(len, 5000);
	cr_assert_eq(memcmp(d, big, 5000), 0);
	cr_assert(find_file(img, size, "EMPTY;1", &len) && len == 0);
	free(img);
}

Test(iso9660, refuses_bad_names_and_volume_ids)
{
	struct iso_file ok = { "a", "x", 1 }, bad[] = { { "A", "", 0 }, { "a/b", "", 0 }, { "", "", 0 },
							 { ".hidden", "", 0 } };
	struct iso_file dup[] = { ok, ok };
	uint8_t *img = NULL;
	size_t size;

	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(iso9660_build("cidata", &bad[i], 1, 0, &img, &size), -EINVAL);
	cr_assert_eq(iso9660_build("cidata", dup, 2, 0, &img, &size), -EINVAL);
	cr_assert_eq(iso9660_build("bad label", &ok, 1, 0, &img, &size), -EINVAL);
	cr_assert_eq(iso9660_build("", &ok, 1, 0, &img, &size), -EINVAL);
	cr_assert_null(img);
}

Test(cidata, seed_has_instance_id_and_is_a_cidata_filesystem)
{
	struct cidata_docs docs = { .instance_id = "0b6c1a4e-1111-4222-8333-444455556666",
				    .hostname = "web1", .user_data = "#cloud-config\nqvisor_marker: m1\n",
				    .meta_data = "foo: bar" };
	uint8_t *img, *img2;
	size_t size, size2;
	uint32_t len;

	cr_assert_eq(cidata_build(&docs, &img, &size), 0);
	const uint8_t *md = find_file(img, size, "META-DATA;1", &len);
	cr_assert_not_null(md);
	const char want[] = "instance-id: 0b6c1a4e-1111-4222-8333-444455556666\n"
			    "local-hostname: web1\nfoo: bar\n";
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(memcmp(md, want, len), 0);
	cr_assert_null(find_file(img, size, "NETWORK-CONFIG;1", &len));
	/* the same documents give the same bytes */
	cr_assert_eq(cidata_build(&docs, &img2, &size2), 0);
	cr_assert(size == size2 && !memcmp(img, img2, size));
	free(img2);

	char path[] = "/tmp/qvt-iso-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, img, size), (ssize_t)size);
	close(fd);
	free(img);
	char cmd[128], out[512] = "";
	snprintf(cmd, sizeof(cmd), "blkid -p -o export %s 2>/dev/null", path);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
	out[n] = 0;
	int st = p ? pclose(p) : -1;
	unlink(path);
	if (st != 0 && !*out)
		cr_skip_test("blkid not available");
	cr_assert(strstr(out, "TYPE=iso9660"), "%s", out);
	cr_assert(strstr(out, "LABEL=cidata"), "%s", out);
}
