/* SPDX-License-Identifier: MIT */
#include <linux/fs.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>

#include "storage/copy.h"
#include "storage/util.h"

static char *dir;
static void setup(void)
{
	dir = scratch_dir();
}
static void teardown(void)
{
	scratch_remove(dir);
	dir = NULL;
}
TestSuite(copy, .init = setup, .fini = teardown, .timeout = 300);

/* Data/hole map of a file as a list of (data start, hole start) pairs. */
static void same_extent_map(const char *a, const char *b)
{
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
	struct stat sa, sb;
	off_t off = 0;
	cr_assert(fa >= 0 && fb >= 0);
	fstat(fa, &sa);
	fstat(fb, &sb);
	cr_assert_eq(sa.st_size, sb.st_size);
	while (off < sa.st_size) {
		off_t da = lseek(fa, off, SEEK_DATA), db = lseek(fb, off, SEEK_DATA);
		cr_assert_eq(da, db, "data at %lld vs %lld", (long long)da, (long long)db);
		if (da < 0)
			break;
		off_t ha = lseek(fa, da, SEEK_HOLE), hb = lseek(fb, db, SEEK_HOLE);
		cr_assert_eq(ha, hb, "hole at %lld vs %lld", (long long)ha, (long long)hb);
		off = ha;
	}
	/* Allocation comparable: the copy never takes more than the source. */
	cr_assert_leq(sb.st_blocks, sa.st_blocks + 64, "blocks %lld vs %lld",
		      (long long)sb.st_blocks, (long long)sa.st_blocks);
	close(fa);
	close(fb);
}

static void copy_ok(const char *src, const char *dst, const struct qv_copy_opts *o,
		    struct qv_copy_stats *st)
{
	struct qv_error err = { 0 };
	int r = qv_copy_file(src, dst, o, st, &err);
	cr_assert_eq(r, 0, "copy failed: %d %s: %s", r, err.reason, err.message);
	cr_assert_not(err.set);
}

/* Whether files in d can be opened with O_DIRECT. */
static bool dir_allows_direct(const char *d)
{
	char *p = path_in(d, ".direct-probe");
	int fd = open(p, O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		unlink(p);
	}
	free(p);
	return fd >= 0;
}

Test(copy, dense_1g_identical)
{
	char *src = path_in(dir, "dense"), *dst = path_in(dir, "dense.copy");
	struct qv_copy_stats st;
	make_sized(src, 0);
	write_random(src, 0, 1 * GiB, 1);
	copy_ok(src, dst, NULL, &st);
	/* The default bypasses the page cache wherever the filesystem allows. */
	if (!st.used_reflink)
		cr_assert_eq(st.used_direct, dir_allows_direct(dir));
	cr_assert_not(st.used_kernel_copy && st.used_direct);
	cr_assert_eq(st.bytes_total, 1 * GiB);
	cr_assert_eq(st.bytes_copied + (st.used_reflink ? 1 * GiB : 0), 1 * GiB);
	cr_assert_eq(st.holes_skipped, 0);
	cr_assert(files_equal(src, dst));
	cr_assert_eq(dir_entries(dir), 2, "leftover temp file");
	free(src);
	free(dst);
}

Test(copy, sparse_1g_identical_holes_kept)
{
	char *src = path_in(dir, "sparse"), *dst = path_in(dir, "sparse.copy");
	struct qv_copy_stats st;
	make_sized(src, 1 * GiB);
	for (int i = 0; i < 10; i++) /* 10% data in 10 extents */
		write_random(src, i * 100 * MiB + (i ? 12345 * 4096ull : 0), 10 * MiB, i + 7);
	copy_ok(src, dst, NULL, &st);
	cr_assert(files_equal(src, dst));
	cr_assert_eq(st.bytes_copied, 100 * MiB);
	cr_assert_eq(st.holes_skipped, 1 * GiB - 100 * MiB);
	same_extent_map(src, dst);
	free(src);
	free(dst);
}

Test(copy, buffered_kernel_copy_keeps_holes)
{
	char *src = path_in(dir, "kc"), *dst = path_in(dir, "kc.copy");
	struct qv_copy_opts o;
	struct qv_copy_stats st;
	make_sized(src, 256 * MiB);
	write_random(src, 0, 3 * MiB, 21);
	write_random(src, 100 * MiB + 8192, 17 * MiB + 4096, 22);
	qv_copy_opts_init(&o);
	o.direct = false;
	copy_ok(src, dst, &o, &st);
	cr_assert_not(st.used_direct);
	if (!st.used_reflink)
		cr_assert(st.used_kernel_copy, "copy_file_range was not used");
	cr_assert(files_equal(src, dst));
	same_extent_map(src, dst);
	free(src);
	free(dst);
}

Test(copy, empty_1g_stays_empty)
{
	char *src = path_in(dir, "empty"), *dst = path_in(dir, "empty.copy");
	struct qv_copy_stats st;
	struct stat s;
	make_sized(src, 1 * GiB);
	copy_ok(src, dst, NULL, &st);
	cr_assert_eq(stat(dst, &s), 0);
	cr_assert_eq(s.st_size, (off_t)GiB);
	cr_assert_eq(s.st_blocks, 0);
	cr_assert_eq(st.bytes_copied, 0);
	cr_assert(files_equal(src, dst));
	free(src);
	free(dst);
}

Test(copy, zero_length_and_unaligned_tail)
{
	char *src = path_in(dir, "z"), *dst = path_in(dir, "z.copy");
	make_sized(src, 0);
	copy_ok(src, dst, NULL, NULL);
	cr_assert(files_equal(src, dst));
	/* A size that is not a multiple of 4096, dense and O_DIRECT. */
	write_random(src, 0, 3 * MiB + 777, 3);
	struct qv_copy_opts o;
	qv_copy_opts_init(&o);
	o.direct = true;
	o.verify = true;
	copy_ok(src, dst, &o, NULL);
	cr_assert(files_equal(src, dst));
	free(src);
	free(dst);
}

Test(copy, direct_and_small_blocks)
{
	char *src = path_in(dir, "d"), *dst = path_in(dir, "d.copy");
	struct qv_copy_opts o;
	struct qv_copy_stats st;
	make_sized(src, 64 * MiB);
	write_random(src, 4096, 20 * MiB, 11);
	qv_copy_opts_init(&o);
	o.direct = true;
	o.queue_depth = 3;
	o.block_size = 12288;
	copy_ok(src, dst, &o, &st);
	cr_log_info("O_DIRECT used: %d", st.used_direct);
	cr_assert(files_equal(src, dst));
	same_extent_map(src, dst);
	free(src);
	free(dst);
}

Test(copy, verify_mode)
{
	char *src = path_in(dir, "v"), *dst = path_in(dir, "v.copy");
	struct qv_copy_opts o;
	struct qv_copy_stats st;
	uint64_t sum_src, sum_dst;
	make_sized(src, 256 * MiB);
	write_random(src, 10 * MiB, 30 * MiB, 5);
	write_random(src, 200 * MiB, 1 * MiB + 100, 6);
	qv_copy_opts_init(&o);
	o.verify = true;
	copy_ok(src, dst, &o, &st);
	cr_assert(st.verified);
	cr_assert_eq(qv_copy_checksum_file(src, &sum_src, NULL), 0);
	cr_assert_eq(qv_copy_checksum_file(dst, &sum_dst, NULL), 0);
	cr_assert_eq(st.checksum, sum_src);
	cr_assert_eq(sum_dst, sum_src);
	/* The checksum sees content: one flipped byte changes it. */
	int fd = open(dst, O_WRONLY);
	cr_assert_eq(pwrite(fd, "x", 1, 20 * MiB), 1);
	close(fd);
	cr_assert_eq(qv_copy_checksum_file(dst, &sum_dst, NULL), 0);
	cr_assert_neq(sum_dst, sum_src);
	free(src);
	free(dst);
}

Test(copy, skip_zeroes_makes_holes)
{
	char *src = path_in(dir, "zz"), *dst = path_in(dir, "zz.copy");
	struct qv_copy_opts o;
	struct qv_copy_stats st;
	struct stat s;
	cr_assert_eq(run("dd if=/dev/zero of='%s' bs=1M count=32 status=none", src), 0);
	write_random(src, 0, 1 * MiB, 9);
	qv_copy_opts_init(&o);
	o.skip_zeroes = true;
	copy_ok(src, dst, &o, &st);
	cr_assert(files_equal(src, dst));
	cr_assert_eq(st.zeroes_skipped, 31 * MiB);
	cr_assert_eq(stat(dst, &s), 0);
	cr_assert_lt((uint64_t)s.st_blocks * 512, 2 * MiB);
	free(src);
	free(dst);
}

struct prog {
	atomic_bool cancel;
	int calls;
	uint64_t last_done, total;
};

static void on_progress_cancel(uint64_t done, uint64_t total, uint64_t rate, void *ud)
{
	struct prog *p = ud;
	p->calls++;
	p->last_done = done;
	p->total = total;
	atomic_store(&p->cancel, true);
}

Test(copy, cancel_from_progress_callback)
{
	char *src = path_in(dir, "c"), *dst = path_in(dir, "c.copy");
	struct qv_copy_opts o;
	struct qv_error err = { 0 };
	struct prog p = { 0 };
	make_sized(src, 0);
	write_random(src, 0, 512 * MiB, 2);
	qv_copy_opts_init(&o);
	o.queue_depth = 1;
	o.block_size = 4096; /* slow enough to outlast the progress interval */
	o.reflink = false;
	o.progress = on_progress_cancel;
	o.userdata = &p;
	o.cancel = &p.cancel;
	cr_assert_eq(qv_copy_file(src, dst, &o, NULL, &err), -ECANCELED);
	cr_assert_str_eq(err.reason, "cancelled");
	cr_assert_geq(p.calls, 1);
	cr_assert_lt(p.last_done, 512 * MiB);
	cr_assert_eq(p.total, 512 * MiB);
	cr_assert_eq(access(dst, F_OK), -1);
	cr_assert_eq(dir_entries(dir), 1, "temp file left behind");
	free(src);
	free(dst);
}

Test(copy, cancel_preset_flag)
{
	char *src = path_in(dir, "c"), *dst = path_in(dir, "c.copy");
	struct qv_copy_opts o;
	atomic_bool cancel = true;
	make_sized(src, 0);
	write_random(src, 0, 8 * MiB, 2);
	qv_copy_opts_init(&o);
	o.cancel = &cancel;
	o.reflink = false;
	cr_assert_eq(qv_copy_file(src, dst, &o, NULL, NULL), -ECANCELED);
	cr_assert_eq(access(dst, F_OK), -1);
	cr_assert_eq(dir_entries(dir), 1);
	free(src);
	free(dst);
}

static void count_progress(uint64_t done, uint64_t total, uint64_t rate, void *ud)
{
	struct prog *p = ud;
	cr_assert_geq(done, p->last_done, "progress went backwards");
	cr_assert_leq(done, total);
	p->calls++;
	p->last_done = done;
	p->total = total;
}

Test(copy, progress_reaches_total)
{
	char *src = path_in(dir, "p"), *dst = path_in(dir, "p.copy");
	struct qv_copy_opts o;
	struct prog p = { 0 };
	make_sized(src, 128 * MiB);
	write_random(src, 0, 16 * MiB, 4);
	qv_copy_opts_init(&o);
	o.progress = count_progress;
	o.userdata = &p;
	copy_ok(src, dst, &o, NULL);
	cr_assert_geq(p.calls, 1);
	cr_assert_eq(p.last_done, 128 * MiB);
	cr_assert_eq(p.total, 128 * MiB);
	free(src);
	free(dst);
}

Test(copy, no_replace_and_replace)
{
	char *src = path_in(dir, "a"), *dst = path_in(dir, "b");
	struct qv_copy_opts o;
	struct qv_error err = { 0 };
	make_sized(src, 0);
	write_random(src, 0, 1 * MiB, 1);
	make_sized(dst, 0);
	write_random(dst, 0, 4096, 99);
	qv_copy_opts_init(&o);
	o.no_replace = true;
	cr_assert_eq(qv_copy_file(src, dst, &o, NULL, &err), -EEXIST);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert_not(files_equal(src, dst));
	o.no_replace = false;
	copy_ok(src, dst, &o, NULL);
	cr_assert(files_equal(src, dst));
	cr_assert_eq(dir_entries(dir), 2);
	/* Same file as source and destination is refused. */
	cr_assert_eq(qv_copy_file(src, src, NULL, NULL, NULL), -EINVAL);
	free(src);
	free(dst);
}

Test(copy, bad_options_and_missing_source)
{
	struct qv_copy_opts o;
	struct qv_error err = { 0 };
	char *src = path_in(dir, "missing"), *dst = path_in(dir, "out");
	qv_copy_opts_init(&o);
	o.block_size = 1000;
	cr_assert_eq(qv_copy_file(src, dst, &o, NULL, &err), -EINVAL);
	cr_assert_str_eq(err.reason, "invalid-argument");
	qv_error_clear(&err);
	cr_assert_eq(qv_copy_file(src, dst, NULL, NULL, &err), -ENOENT);
	cr_assert(err.set);
	cr_assert_eq(qv_copy_file("/proc/self", dst, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(dir_entries(dir), 0);
	free(src);
	free(dst);
}

Test(copy, enospc_on_small_tmpfs)
{
	char *src = path_in(dir, "big"), *mnt = path_in(dir, "mnt"), *dst = path_in(mnt, "big.img");
	struct qv_error err = { 0 };
	uint64_t before, after;
	if (unshare(CLONE_NEWNS) < 0) {
		teardown();
		cr_skip_test("unshare(CLONE_NEWNS): %s (needs root)", strerror(errno));
	}
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=16m"), 0, "mount: %m");
	make_sized(src, 0);
	write_random(src, 0, 64 * MiB, 21);
	cr_assert_eq(qv_copy_checksum_file(src, &before, NULL), 0);
	int r = qv_copy_file(src, dst, NULL, NULL, &err);
	cr_assert_eq(r, -ENOSPC, "got %d: %s", r, err.message);
	cr_assert_str_eq(err.reason, "no-space");
	cr_assert(strstr(err.message, dst), "message does not name the destination: %s",
		  err.message);
	cr_assert_eq(access(dst, F_OK), -1);
	cr_assert_eq(dir_entries(mnt), 0, "temp file left on the full filesystem");
	cr_assert_eq(qv_copy_checksum_file(src, &after, NULL), 0);
	cr_assert_eq(before, after);
	cr_assert_eq(umount2(mnt, MNT_DETACH), 0, "umount: %m");
	free(src);
	free(mnt);
	free(dst);
}

Test(copy, reflink_fast_path)
{
	char *src = path_in(dir, "r"), *probe = path_in(dir, "probe"), *dst = path_in(dir, "r.copy");
	struct qv_copy_stats st;
	make_sized(src, 0);
	write_random(src, 0, 8 * MiB, 8);
	int s = open(src, O_RDONLY), d = open(probe, O_WRONLY | O_CREAT, 0644);
	cr_assert(s >= 0 && d >= 0);
	int r = ioctl(d, FICLONE, s);
	int e = errno;
	close(s);
	close(d);
	if (r < 0) {
		teardown(); /* criterion skips .fini after cr_skip_test */
		cr_skip_test("filesystem of /var/tmp has no reflink (FICLONE: %s)", strerror(e));
	}
	copy_ok(src, dst, NULL, &st);
	cr_assert(st.used_reflink);
	cr_assert(files_equal(src, dst));
	free(src);
	free(probe);
	free(dst);
}

Test(copy, reflink_fallback_is_silent)
{
	char *src = path_in(dir, "r"), *dst = path_in(dir, "r.copy");
	struct qv_copy_stats st;
	struct qv_error err = { 0 };
	make_sized(src, 0);
	write_random(src, 0, 2 * MiB, 8);
	cr_assert_eq(qv_copy_file(src, dst, NULL, &st, &err), 0);
	cr_assert_not(err.set);
	cr_assert(files_equal(src, dst));
	cr_assert(st.used_reflink || st.bytes_copied == 2 * MiB);
	free(src);
	free(dst);
}

Test(copy, qemu_img_compare_raw_and_qcow2)
{
	char *raw = path_in(dir, "a.raw"), *raw2 = path_in(dir, "b.raw");
	char *q = path_in(dir, "a.qcow2"), *q2 = path_in(dir, "b.qcow2");
	if (!have_prog("qemu-img") || !have_prog("qemu-io")) {
		teardown();
		cr_skip_test("qemu-img/qemu-io not installed (qemu-utils)");
	}
	make_sized(raw, 256 * MiB);
	write_random(raw, 64 * MiB, 8 * MiB, 3);
	copy_ok(raw, raw2, NULL, NULL);
	cr_assert_eq(run("qemu-img compare -q -f raw -F raw '%s' '%s'", raw, raw2), 0);

	cr_assert_eq(run("qemu-img create -q -f qcow2 '%s' 1G", q), 0);
	cr_assert_eq(run("qemu-io -f qcow2 -c 'write -P 0xab 0 1M' -c 'write -P 0x5c 700M 3M' "
			 "'%s' >/dev/null", q), 0);
	copy_ok(q, q2, NULL, NULL);
	cr_assert(files_equal(q, q2));
	cr_assert_eq(run("qemu-img compare -q -f qcow2 -F qcow2 '%s' '%s'", q, q2), 0);
	cr_assert_eq(run("qemu-img check -q -f qcow2 '%s'", q2), 0);
	/* compare does notice a difference */
	cr_assert_eq(run("qemu-io -f qcow2 -c 'write -P 0x01 4096 512' '%s' >/dev/null", q2), 0);
	cr_assert_neq(run("qemu-img compare -q -f qcow2 -F qcow2 '%s' '%s'", q, q2), 0);
	free(raw);
	free(raw2);
	free(q);
	free(q2);
}
