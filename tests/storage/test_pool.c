/* SPDX-License-Identifier: MIT */
#include "storage/pool.h"
#include "storage/util.h"

static char *dir;
static qv_pool *pool;

static void setup(void)
{
	dir = scratch_dir();
	char *pd = path_in(dir, "images");
	struct qv_error err = { 0 };
	cr_assert_eq(qv_pool_open(pd, &pool, &err), 0, "%s", err.message);
	free(pd);
}
static void teardown(void)
{
	pool = qv_pool_free(pool);
	scratch_remove(dir);
	dir = NULL;
}
TestSuite(pool, .init = setup, .fini = teardown, .timeout = 120);

static void need_qemu_img(void)
{
	if (!have_prog("qemu-img") || !have_prog("qemu-io")) {
		teardown();
		cr_skip_test("qemu-img/qemu-io not installed (qemu-utils)");
	}
}

#define OK(expr)                                                                   \
	do {                                                                       \
		struct qv_error _e = { 0 };                                        \
		int _r = (expr);                                                   \
		(void)_e;                                                          \
		cr_assert_eq(_r, 0, "%s: %d", #expr, _r);                          \
	} while (0)

Test(pool, name_grammar)
{
	const char *good[] = { "a", "vm-1", "base.qcow2", "A_b.c-9",
			       "x23456789012345678901234567890123456789012345678901234567890123" };
	const char *bad[] = { "", ".hidden", "-x", "_x", "a/b", "..", "../etc", "a b", "é",
			      "x234567890123456789012345678901234567890123456789012345678901234" };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		cr_assert(qv_image_name_valid(good[i]), "%s", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_not(qv_image_name_valid(bad[i]), "%s", bad[i]);
}

Test(pool, create_list_delete)
{
	struct qv_error err = { 0 };
	struct qv_image_info *a = NULL;
	size_t n = 0;
	need_qemu_img();
	cr_assert_eq(qv_pool_create(pool, "disk1", QV_IMAGE_RAW, 1 * GiB, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pool_create(pool, "base", QV_IMAGE_QCOW2, 2 * GiB, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pool_create(pool, "disk1", QV_IMAGE_QCOW2, 1 * GiB, &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert_eq(qv_pool_list(pool, &a, &n, NULL), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(a[0].name, "base");
	cr_assert_eq(a[0].format, QV_IMAGE_QCOW2);
	cr_assert_eq(a[0].virtual_size, 2 * GiB);
	cr_assert_lt(a[0].allocated_size, 4 * MiB);
	cr_assert_null(a[0].backing);
	cr_assert_str_eq(a[1].name, "disk1");
	cr_assert_eq(a[1].format, QV_IMAGE_RAW);
	cr_assert_eq(a[1].virtual_size, 1 * GiB);
	cr_assert_eq(a[1].allocated_size, 0);
	qv_image_info_array_free(a, n);
	cr_assert_eq(dir_entries(qv_pool_dir(pool)), 2, "temp files left in the pool");
	cr_assert_eq(qv_pool_delete(pool, "disk1", NULL), 0);
	qv_error_clear(&err);
	cr_assert_eq(qv_pool_delete(pool, "disk1", &err), -ENOENT);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert_eq(qv_pool_list(pool, &a, &n, NULL), 0);
	cr_assert_eq(n, 1);
	qv_image_info_array_free(a, n);
}

Test(pool, containment)
{
	struct qv_error err = { 0 };
	char *evil = path_in(qv_pool_dir(pool), "evil.raw");
	cr_assert_eq(qv_pool_create(pool, "../escape", QV_IMAGE_RAW, MiB, &err), -EINVAL);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert_eq(qv_pool_create(pool, "a/b", QV_IMAGE_RAW, MiB, NULL), -EINVAL);
	cr_assert_eq(qv_pool_create(pool, ".x", QV_IMAGE_RAW, MiB, NULL), -EINVAL);
	cr_assert_eq(qv_pool_delete(pool, "..", NULL), -EINVAL);
	/* A symlink planted in the pool is never followed. */
	cr_assert_eq(symlink("/etc/hostname", evil), 0);
	cr_assert_eq(qv_pool_lookup(pool, "evil", NULL, NULL, NULL), -ELOOP);
	cr_assert_eq(qv_pool_delete(pool, "evil", NULL), -ELOOP);
	cr_assert_eq(qv_pool_resize(pool, "evil", GiB, false, NULL), -ELOOP);
	cr_assert_eq(access("/etc/hostname", F_OK), 0);
	free(evil);
}

Test(pool, import_and_full_clone)
{
	struct qv_error err = { 0 };
	struct qv_copy_stats st;
	char *src = path_in(dir, "ext.img"), *p1 = NULL, *p2 = NULL;
	enum qv_image_format fmt;
	make_sized(src, 64 * MiB);
	write_random(src, MiB, 5 * MiB, 17);
	cr_assert_eq(qv_pool_import(pool, src, "imported", QV_IMAGE_AUTO, NULL, &st, &err), 0,
		     "%s", err.message);
	cr_assert_eq(st.bytes_total, 64 * MiB);
	cr_assert_eq(qv_pool_lookup(pool, "imported", &p1, &fmt, NULL), 0);
	cr_assert_eq(fmt, QV_IMAGE_RAW);
	cr_assert(files_equal(src, p1));
	cr_assert_eq(qv_pool_import(pool, src, "imported", QV_IMAGE_RAW, NULL, NULL, NULL), -EEXIST);
	cr_assert_eq(qv_pool_clone(pool, "imported", "copy", QV_CLONE_FULL, NULL, &st, &err), 0,
		     "%s", err.message);
	cr_assert_eq(qv_pool_lookup(pool, "copy", &p2, NULL, NULL), 0);
	cr_assert(files_equal(p1, p2));
	/* independent: writing the clone leaves the source alone */
	write_random(p2, 0, 4096, 5);
	cr_assert(files_equal(src, p1));
	cr_assert_not(files_equal(p1, p2));
	cr_assert_eq(qv_pool_clone(pool, "nope", "x", QV_CLONE_FULL, NULL, NULL, NULL), -ENOENT);
	free(src);
	free(p1);
	free(p2);
}

Test(pool, import_qcow2_sniffed_and_backing_refused)
{
	char *q = path_in(dir, "ext.qcow2"), *ov = path_in(dir, "ov.qcow2");
	struct qv_error err = { 0 };
	struct qv_image_info info;
	need_qemu_img();
	cr_assert_eq(run("qemu-img create -q -f qcow2 '%s' 100M", q), 0);
	cr_assert_eq(qv_pool_import(pool, q, "tmpl", QV_IMAGE_AUTO, NULL, NULL, &err), 0, "%s",
		     err.message);
	cr_assert_eq(qv_pool_info(pool, "tmpl", &info, NULL), 0);
	cr_assert_eq(info.format, QV_IMAGE_QCOW2);
	cr_assert_eq(info.virtual_size, 100 * MiB);
	qv_image_info_clear(&info);
	cr_assert_eq(run("qemu-img create -q -f qcow2 -b '%s' -F qcow2 '%s'", q, ov), 0);
	qv_error_clear(&err);
	cr_assert_eq(qv_pool_import(pool, ov, "ov", QV_IMAGE_AUTO, NULL, NULL, &err), -EINVAL);
	cr_assert(strstr(err.message, "backing"), "%s", err.message);
	free(q);
	free(ov);
}

Test(pool, linked_clone_leaves_template_alone)
{
	struct qv_error err = { 0 };
	struct qv_image_info info;
	char *tmpl = NULL, *clone = NULL;
	uint64_t before, after, csum_clone;
	need_qemu_img();
	OK(qv_pool_create(pool, "tmpl", QV_IMAGE_QCOW2, 256 * MiB, NULL));
	cr_assert_eq(qv_pool_lookup(pool, "tmpl", &tmpl, NULL, NULL), 0);
	cr_assert_eq(run("qemu-io -f qcow2 -c 'write -P 0xab 0 1M' '%s' >/dev/null", tmpl), 0);
	cr_assert_eq(qv_copy_checksum_file(tmpl, &before, NULL), 0);
	cr_assert_eq(qv_pool_clone(pool, "tmpl", "vm1", QV_CLONE_LINKED, NULL, NULL, &err), 0,
		     "%s", err.message);
	cr_assert_eq(qv_pool_info(pool, "vm1", &info, NULL), 0);
	cr_assert_eq(info.format, QV_IMAGE_QCOW2);
	cr_assert_str_eq(info.backing, tmpl);
	cr_assert_eq(info.backing_format, QV_IMAGE_QCOW2);
	cr_assert_eq(info.virtual_size, 256 * MiB);
	qv_image_info_clear(&info);
	cr_assert_eq(qv_pool_lookup(pool, "vm1", &clone, NULL, NULL), 0);
	/* The clone sees the template's data and takes writes of its own. */
	cr_assert_eq(run("qemu-io -f qcow2 -c 'read -P 0xab 0 1M' '%s' | grep -q 'read 1048576'",
			 clone), 0);
	cr_assert_eq(run("qemu-io -f qcow2 -c 'write -P 0xcd 0 2M' '%s' >/dev/null", clone), 0);
	cr_assert_eq(qv_copy_checksum_file(tmpl, &after, NULL), 0);
	cr_assert_eq(before, after, "a write to the linked clone reached the template");
	cr_assert_eq(run("qemu-io -f qcow2 -c 'read -P 0xab 0 1M' '%s' | grep -q 'read 1048576'",
			 tmpl), 0);
	cr_assert_eq(qv_copy_checksum_file(clone, &csum_clone, NULL), 0);
	/* The template cannot go while the clone needs it. */
	qv_error_clear(&err);
	cr_assert_eq(qv_pool_delete(pool, "tmpl", &err), -EBUSY);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert_eq(qv_pool_delete(pool, "vm1", NULL), 0);
	cr_assert_eq(qv_pool_delete(pool, "tmpl", NULL), 0);
	free(tmpl);
	free(clone);
}

Test(pool, resize_raw_and_qcow2)
{
	struct qv_error err = { 0 };
	struct qv_image_info info;
	need_qemu_img();
	OK(qv_pool_create(pool, "r", QV_IMAGE_RAW, 64 * MiB, NULL));
	OK(qv_pool_create(pool, "q", QV_IMAGE_QCOW2, 64 * MiB, NULL));
	cr_assert_eq(qv_pool_resize(pool, "r", 128 * MiB, false, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pool_resize(pool, "q", 128 * MiB, false, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pool_info(pool, "r", &info, NULL), 0);
	cr_assert_eq(info.virtual_size, 128 * MiB);
	cr_assert_eq(qv_pool_info(pool, "q", &info, NULL), 0);
	cr_assert_eq(info.virtual_size, 128 * MiB);
	cr_assert_eq(qv_pool_resize(pool, "q", 32 * MiB, false, &err), -EINVAL);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert_eq(qv_pool_resize(pool, "q", 32 * MiB, true, NULL), 0);
	cr_assert_eq(qv_pool_info(pool, "q", &info, NULL), 0);
	cr_assert_eq(info.virtual_size, 32 * MiB);
}

static bool busy_hook(const char *name, const char *path, void *ud)
{
	return strcmp(name, ud) == 0;
}

Test(pool, in_use_hook)
{
	struct qv_error err = { 0 };
	OK(qv_pool_create(pool, "used", QV_IMAGE_RAW, MiB, NULL));
	OK(qv_pool_create(pool, "free", QV_IMAGE_RAW, MiB, NULL));
	qv_pool_set_in_use_hook(pool, busy_hook, "used");
	cr_assert_eq(qv_pool_delete(pool, "used", &err), -EBUSY);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert_eq(qv_pool_resize(pool, "used", 2 * MiB, false, NULL), -EBUSY);
	cr_assert_eq(qv_pool_delete(pool, "free", NULL), 0);
}

Test(pool, qemu_img_error_is_reported)
{
	struct qv_error err = { 0 };
	char *bogus = path_in(qv_pool_dir(pool), "bad.qcow2");
	need_qemu_img();
	/* a "qcow2" file that is not one */
	make_sized(bogus, 4096);
	cr_assert_lt(qv_pool_info(pool, "bad", &(struct qv_image_info){ 0 }, &err), 0);
	cr_assert_str_eq(err.reason, "qemu-error");
	cr_assert(strstr(err.message, "qemu-img info"), "%s", err.message);
	free(bogus);
}
