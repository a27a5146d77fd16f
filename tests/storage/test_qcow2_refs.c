/* SPDX-License-Identifier: MIT */
/* qcow2 header references (storage/qcow2-refs.c) on images made by the real
 * qemu-img, plus handcrafted bad headers. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>

#include "common/macro.h"
#include "storage/qcow2-refs.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qv-qcow2refs-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

static int sh(const char *fmt, const char *a, const char *b)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), fmt, dir, a, b, dir);
	return system(cmd);
}

static int open_img(const char *name)
{
	char p[128];
	int fd;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s", p);
	return fd;
}

TestSuite(qcow2_refs, .init = setup, .fini = teardown);

Test(qcow2_refs, plain_raw_backing_and_data_file)
{
	struct qv_qcow2_refs r;
	struct qv_error err = {};
	_cleanup_close_ int plain = -1, raw = -1, back = -1, data = -1;

	cr_assert_eq(sh("cd %s && qemu-img create -q -f qcow2 %s 1M && truncate -s 1M %s", "p.qcow2",
			"r.raw"), 0);
	cr_assert_eq(sh("cd %s && qemu-img create -q -f qcow2 -b p.qcow2 -F qcow2 %s 1M && "
			"qemu-img create -q -f qcow2 -o data_file=d.raw %s 1M", "b.qcow2",
			"d.qcow2"), 0);
	plain = open_img("p.qcow2");
	cr_assert_eq(qv_qcow2_read_refs(plain, &r, &err), 0, "%s", err.message);
	cr_assert(r.is_qcow2 && !r.backing && !r.external_data && !r.data_file);
	qv_qcow2_refs_clear(&r);
	cr_assert_eq(qv_qcow2_check_self_contained(plain, "p", &err), 0);

	raw = open_img("r.raw");
	cr_assert_eq(qv_qcow2_read_refs(raw, &r, &err), 0);
	cr_assert_not(r.is_qcow2);
	cr_assert_eq(qv_qcow2_check_self_contained(raw, "r", &err), 0);

	back = open_img("b.qcow2");
	cr_assert_eq(qv_qcow2_read_refs(back, &r, &err), 0);
	cr_assert_str_eq(r.backing, "p.qcow2");
	qv_qcow2_refs_clear(&r);
	cr_assert_lt(qv_qcow2_check_self_contained(back, "b", &err), 0);
	cr_assert(strstr(err.message, "backing file \"p.qcow2\""), "%s", err.message);

	data = open_img("d.qcow2");
	cr_assert_eq(qv_qcow2_read_refs(data, &r, &err), 0);
	cr_assert(r.external_data);
	cr_assert_str_eq(r.data_file, "d.raw");
	qv_qcow2_refs_clear(&r);
	qv_error_clear(&err);
	cr_assert_lt(qv_qcow2_check_self_contained(data, "d", &err), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert(strstr(err.message, "external data file \"d.raw\""), "%s", err.message);
}

Test(qcow2_refs, broken_headers_are_errors)
{
	static const unsigned char magic_only[] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
	unsigned char hdr[104] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 2 };
	struct qv_qcow2_refs r;
	struct qv_error err = {};
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/short", dir);
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_eq(write(fd, magic_only, sizeof(magic_only)), (ssize_t)sizeof(magic_only));
	cr_assert_lt(qv_qcow2_read_refs(fd, &r, &err), 0);
	cr_assert(strstr(err.message, "truncated"), "%s", err.message);
	close(fd);

	/* v2, backing name offset far past the end of the file. */
	hdr[8 + 7] = 0xf0;
	hdr[8 + 6] = 0xff;
	hdr[19] = 16;
	snprintf(p, sizeof(p), "%s/far", dir);
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_eq(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	qv_error_clear(&err);
	cr_assert_lt(qv_qcow2_read_refs(fd, &r, &err), 0);
	cr_assert(strstr(err.message, "beyond the end"), "%s", err.message);
	close(fd);
}
