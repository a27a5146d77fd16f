/* SPDX-License-Identifier: MIT */
/* Root's qemu-img opens exactly the image it is given (storage/image.c,
 * storage/image-crypt.c): never the backing file or external data file a
 * header names, since a guest's QEMU can rewrite that header. Real qemu-img. */
#include <criterion/criterion.h>
#include <endian.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/macro.h"
#include "storage/image-crypt.h"
#include "storage/image.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qv-imgpin-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

TestSuite(image_pin, .init = setup, .fini = teardown, .timeout = 60);

static void sh(const char *fmt)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), fmt, dir, dir, dir);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(image_pin, resize_does_not_open_the_backing_file)
{
	char p[128];
	struct qv_error err = {};

	sh("qemu-img create -q -f qcow2 %s/b.qcow2 1M && "
	   "qemu-img create -q -f qcow2 -b %s/b.qcow2 -F qcow2 %s/o.qcow2");
	/* the named backing file is gone (or would be another file): resizing
	 * the overlay never needed it */
	sh("rm %s/b.qcow2");
	snprintf(p, sizeof(p), "%s/o.qcow2", dir);
	cr_assert_eq(qv_image_resize(p, QV_IMAGE_QCOW2, 2 << 20, false, &err), 0, "%s",
		     err.message);
}

Test(image_pin, external_data_file_is_refused)
{
	char p[128];
	struct qv_error err = {};
	struct qv_image_info info = { 0 };

	sh("qemu-img create -q -f qcow2 -o data_file=%s/d.raw %s/e.qcow2 1M");
	snprintf(p, sizeof(p), "%s/e.qcow2", dir);
	cr_assert_lt(qv_image_info(p, QV_IMAGE_QCOW2, &info, &err), 0);
	cr_assert(strstr(err.message, "external data file"), "%s", err.message);
}

Test(image_pin, encrypted_image_naming_a_backing_file_is_refused)
{
	char p[128];
	struct qv_error err = {};
	_cleanup_(qv_secret_freep) struct qv_secret *key = NULL;

	cr_assert_eq(qv_secret_new("pin-test-passphrase", 19, &key, &err), 0);
	snprintf(p, sizeof(p), "%s/luks.qcow2", dir);
	cr_assert_eq(qv_image_create_luks(p, 1 << 20, key, 10, &err), 0, "%s", err.message);
	cr_assert_eq(qv_image_check_key(p, key, &err), 0, "%s", err.message);

	/* what a compromised QEMU could write: a backing file name in the
	 * header (offset 8: its offset, 16: its length) */
	int fd = open(p, O_RDWR | O_CLOEXEC);
	uint64_t off = htobe64(4000);
	uint32_t len = htobe32(11);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "/etc/passwd", 11, 4000), 11);
	cr_assert_eq(pwrite(fd, &off, 8, 8), 8);
	cr_assert_eq(pwrite(fd, &len, 4, 16), 4);
	close(fd);

	cr_assert_lt(qv_image_check_key(p, key, &err), 0);
	cr_assert(strstr(err.message, "backing file") && strstr(err.message, "/etc/passwd"), "%s",
		  err.message);
	qv_error_clear(&err);
	cr_assert_lt(qv_image_resize_luks(p, 2 << 20, false, key, &err), 0);
	cr_assert(strstr(err.message, "backing file"), "%s", err.message);
}
