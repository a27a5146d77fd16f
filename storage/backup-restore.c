/* SPDX-License-Identifier: MIT */
/* Restore a backup chain into a raw image, and verify backups. */
#include <limits.h>
#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "storage/backup-restore.h"
#include "storage/csum.h"
#include "storage/qcow2-refs.h"
#include "storage/qemu-img.h"
#include "storage/tmpfile.h"

#define L2_OFFSET_MASK 0x00fffffffffffe00ULL
#define L2_COMPRESSED (1ULL << 62)
#define L2_ZERO 1ULL
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_EXTL2 (1ULL << 4)


#define BAD(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

int qv_qcow2_walk_clusters(int fd, uint64_t *ret_virtual_size, qv_qcow2_extent_fn fn,
			   void *userdata, struct qv_error *errp)
{
	uint8_t h[104];
	struct stat st;
	int r = 0;

	if (fstat(fd, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "qcow2: %m");
	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, "QFI\xfb", 4) != 0)
		return BAD(errp, "not a qcow2 file");
	uint32_t version = qv_be32_at(h + 4), cbits = qv_be32_at(h + 20), l1_size = qv_be32_at(h + 36);
	uint64_t size = qv_be64_at(h + 24), l1_off = qv_be64_at(h + 40);
	uint64_t incompat = version >= 3 ? qv_be64_at(h + 72) : 0;
	if (version < 2 || version > 3 || cbits < 9 || cbits > 21 || qv_be32_at(h + 32) != 0 ||
	    (incompat & (INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_EXTL2)) ||
	    qv_be64_at(h + 8) != 0)
		return BAD(errp, "qcow2: unsupported header (version %u, cluster bits %u, features "
			   "%#" PRIx64 ", backing file, encryption or corrupt flag)", version, cbits,
			   incompat);
	uint64_t csize = 1ULL << cbits, l2n = csize / 8, mapped = 0;
	uint64_t need = (size + l2n * csize - 1) / (l2n * csize);
	if (size > (1ULL << 50) || l1_size < need || l1_size > need + 1 ||
	    l1_off % csize || l1_off + (uint64_t)l1_size * 8 > (uint64_t)st.st_size)
		return BAD(errp, "qcow2: L1 table out of bounds");
	_cleanup_free_ uint64_t *l1 = calloc(l1_size ? l1_size : 1, 8);
	_cleanup_free_ uint64_t *l2 = malloc(csize);
	if (!l1 || !l2)
		return -ENOMEM;
	if (l1_size && pread(fd, l1, (size_t)l1_size * 8, (off_t)l1_off) != (ssize_t)l1_size * 8)
		return qv_error_set(errp, EIO, QV_REASON_IO_ERROR, "qcow2: short read of L1");
	for (uint64_t i = 0; i < l1_size && r >= 0; i++) {
		uint64_t l2_off = be64toh(l1[i]) & L2_OFFSET_MASK;
		if (!l2_off)
			continue;
		if (l2_off % csize || l2_off + csize > (uint64_t)st.st_size)
			return BAD(errp, "qcow2: L2 table %" PRIu64 " out of bounds", i);
		if (pread(fd, l2, csize, (off_t)l2_off) != (ssize_t)csize)
			return qv_error_set(errp, EIO, QV_REASON_IO_ERROR, "qcow2: short read of L2");
		for (uint64_t j = 0; j < l2n && r >= 0; j++) {
			uint64_t e = be64toh(l2[j]), guest = (i * l2n + j) * csize, host;
			if (guest >= size)
				break;
			if (e & L2_COMPRESSED)
				return BAD(errp, "qcow2: compressed clusters are not supported");
			host = e & L2_OFFSET_MASK;
			bool zero = version >= 3 && (e & L2_ZERO);
			if (!host && !zero)
				continue;
			uint64_t len = size - guest < csize ? size - guest : csize;
			if (!zero && (host % csize || host + len > (uint64_t)st.st_size))
				return BAD(errp, "qcow2: data cluster at %" PRIu64 " out of bounds", guest);
			/* Every data cluster is the file's own: a file cannot map more
			 * data than it holds. Entries that share a cluster (or L2
			 * tables shared between L1 entries) would turn a small
			 * hostile file into up to its virtual size (1 PiB) of output. */
			if (!zero && (mapped += len) > (uint64_t)st.st_size)
				return BAD(errp, "qcow2: the clusters map more data than the file's "
					   "%" PRIu64 " bytes (a cluster is referenced more than "
					   "once)", (uint64_t)st.st_size);
			r = fn(guest, host, len, zero, userdata);
		}
	}
	if (r >= 0 && ret_virtual_size)
		*ret_virtual_size = size;
	return r;
}

struct apply {
	int src, dst;
	uint8_t *buf;
	size_t cap;
	atomic_bool *cancel;
};

static int apply_cluster(uint64_t guest, uint64_t host, uint64_t len, bool zero, void *ud)
{
	struct apply *a = ud;

	if (a->cancel && atomic_load(a->cancel))
		return -ECANCELED;
	if (len > a->cap)
		return -EINVAL;
	if (zero) {
		if (fallocate(a->dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)guest,
			      (off_t)len) == 0)
			return 0;
		memset(a->buf, 0, len);
	} else if (pread(a->src, a->buf, len, (off_t)host) != (ssize_t)len) {
		return -EIO;
	}
	for (uint64_t off = 0; off < len;) {
		ssize_t n = pwrite(a->dst, a->buf + off, len - off, (off_t)(guest + off));
		if (n < 0)
			return -errno;
		off += (uint64_t)n;
	}
	return 0;
}

int qv_qcow2_apply(int src, int dst, uint64_t *ret_vsize, atomic_bool *cancel,
		   struct qv_error *errp)
{
	struct apply a = { .src = src, .dst = dst, .cap = (size_t)2 << 20, .cancel = cancel };
	int r;

	if (!(a.buf = malloc(a.cap)))
		return -ENOMEM;
	r = qv_qcow2_walk_clusters(src, ret_vsize, apply_cluster, &a, errp);
	free(a.buf);
	if (r < 0 && !(errp && errp->set))
		return qv_error_set(errp, r, r == -ECANCELED ? QV_REASON_CANCELLED :
					     r == -ENOSPC ? QV_REASON_NO_SPACE : QV_REASON_IO_ERROR,
				    "%s", strerror(-r));
	return r;
}

static int apply_incremental(const char *path, int dst, uint64_t vsize, atomic_bool *cancel,
			     struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint64_t size = 0;
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", path);
	if ((r = qv_qcow2_apply(fd, dst, &size, cancel, errp)) < 0)
		return qv_error_prefix(errp, "applying %s", path), r;
	if (size != vsize)
		return BAD(errp, "%s: virtual size %" PRIu64 " differs from the full backup's %" PRIu64,
			   path, size, vsize);
	return 0;
}

static void file_path(char *buf, size_t size, const char *store, const struct qv_backup_meta *m,
		      size_t disk)
{
	snprintf(buf, size, "%s/%s/%s", store, m->id, m->disks[disk].file);
}

/* Split dst, open its directory; -EEXIST (conflict) when dst exists. */
static int open_dst_dir(const char *dst, char **dir, char **base, struct qv_error *errp)
{
	int r, fd;

	if ((r = qv_path_split(dst, dir, base)) < 0)
		return qv_error_set(errp, r, QV_REASON_INVALID_ARGUMENT, "bad destination %s", dst);
	if ((fd = open(*dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", *dir);
	if (faccessat(fd, *base, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		close(fd);
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "%s already exists", dst);
	}
	return fd;
}

/* fsync the temporary file tn (fd, when open) and link it to base (never
 * replacing), then fsync the directory; tn is removed on failure. */
static int link_dst(int dirfd, const char *tn, int fd, const char *base, const char *dst,
		    struct qv_error *errp)
{
	int r = 0;

	if (fd >= 0 && fsync(fd) < 0)
		r = qv_error_set(errp, errno, errno == ENOSPC ? QV_REASON_NO_SPACE : QV_REASON_IO_ERROR,
				 "%s: fsync: %m", dst);
	if (r >= 0 && renameat2(dirfd, tn, dirfd, base, RENAME_NOREPLACE) < 0)
		r = qv_error_set(errp, errno, errno == EEXIST ? QV_REASON_CONFLICT : QV_REASON_IO_ERROR,
				 "%s: %m", dst);
	if (r < 0) {
		unlinkat(dirfd, tn, 0);
		return r;
	}
	(void)fsync(dirfd);
	return 0;
}

int qv_backup_restore_disk(const char *store, struct qv_backup_meta *const *metas, size_t n,
			   size_t disk, const char *dst, const struct qv_backup_restore_opts *opts,
			   struct qv_error *errp)
{
	_cleanup_free_ char *dir = NULL, *base = NULL, *tn = NULL;
	_cleanup_close_ int dirfd = -1, fd = -1;
	struct qv_copy_opts co;
	char src[PATH_MAX], tmp[PATH_MAX];
	int r;

	if (n == 0 || metas[0]->incremental)
		return BAD(errp, "a restore starts with a full backup");
	for (size_t i = 0; i < n; i++)
		if (disk >= metas[i]->n_disks ||
		    metas[i]->disks[disk].virtual_size != metas[0]->disks[disk].virtual_size)
			return BAD(errp, "backup %s has no disk %zu of the same size", metas[i]->id, disk);
	if ((dirfd = open_dst_dir(dst, &dir, &base, errp)) < 0)
		return dirfd;
	if ((r = qv_tmpname_create(dirfd, base, &tn)) < 0)
		return qv_error_set(errp, r, QV_REASON_IO_ERROR, "%s: temporary file: %s", dir,
				    strerror(-r));
	snprintf(tmp, sizeof(tmp), "%s/%s", dir, tn);
	file_path(src, sizeof(src), store, metas[0], disk);
	qv_copy_opts_init(&co);
	co.reflink = false; /* the restored image must not share blocks with the store */
	if (opts) {
		co.progress = opts->progress;
		co.userdata = opts->userdata;
		co.cancel = opts->cancel;
	}
	r = qv_copy_file(src, tmp, &co, NULL, errp);
	for (size_t i = 1; r >= 0 && i < n; i++) {
		if (fd < 0 && (fd = openat(dirfd, tn, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0) {
			r = qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", tmp);
			break;
		}
		file_path(src, sizeof(src), store, metas[i], disk);
		r = apply_incremental(src, fd, metas[0]->disks[disk].virtual_size,
				      opts ? opts->cancel : NULL, errp);
	}
	return r < 0 ? (unlinkat(dirfd, tn, 0), r) : link_dst(dirfd, tn, fd, base, dst, errp);
}

int qv_backup_restore_disk_qcow2(const char *store, struct qv_backup_meta *const *metas, size_t n,
				 size_t disk, const char *dst,
				 const struct qv_backup_restore_opts *opts, struct qv_error *errp)
{
	_cleanup_free_ char *dir = NULL, *base = NULL;
	_cleanup_close_ int dirfd = -1, fd = -1;
	char raw[PATH_MAX], tmp[PATH_MAX], rawname[NAME_MAX + 1], tmpname[NAME_MAX + 1];
	int r;

	if ((dirfd = open_dst_dir(dst, &dir, &base, errp)) < 0)
		return dirfd;
	/* the chain restored raw beside dst (hidden), converted, renamed */
	snprintf(rawname, sizeof(rawname), ".%.200s.%d.restore.raw", base, (int)getpid());
	snprintf(tmpname, sizeof(tmpname), ".%.200s.%d.restore.qcow2", base, (int)getpid());
	snprintf(raw, sizeof(raw), "%s/%s", dir, rawname);
	snprintf(tmp, sizeof(tmp), "%s/%s", dir, tmpname);
	(void)unlinkat(dirfd, rawname, 0); /* leftovers of a killed restore */
	(void)unlinkat(dirfd, tmpname, 0);
	if ((r = qv_backup_restore_disk(store, metas, n, disk, raw, opts, errp)) < 0)
		return r;
	/* zero areas (holes) stay unallocated: a sparse qcow2 */
	char *argv[] = { "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-o",
			 "cluster_size=65536", raw, tmp, NULL };
	r = qv_qemu_img_run(argv, NULL, errp);
	(void)unlinkat(dirfd, rawname, 0);
	if (r >= 0 && (fd = openat(dirfd, tmpname, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
		r = qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", tmp);
	return r < 0 ? (unlinkat(dirfd, tmpname, 0), r) : link_dst(dirfd, tmpname, fd, base, dst, errp);
}

int qv_backup_verify(const char *store, const struct qv_backup_meta *m, struct qv_error *errp)
{
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < m->n_disks; i++) {
		const struct qv_backup_disk *d = &m->disks[i];
		uint64_t sum = 0;
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s/%s", store, m->id, d->file);
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			return qv_error_set(errp, errno ? errno : EINVAL, QV_REASON_IO_ERROR,
					    "backup %s: disk %u: %s is missing or not a regular file",
					    m->id, d->index, d->file);
		if ((r = qv_copy_checksum_file(path, &sum, errp)) < 0)
			return qv_error_prefix(errp, "backup %s", m->id), r;
		if (sum != d->checksum)
			return qv_error_set(errp, EILSEQ, QV_REASON_IO_ERROR,
					    "backup %s: disk %u (%s): checksum %016" PRIx64
					    " differs from the recorded %016" PRIx64,
					    m->id, d->index, d->file, sum, d->checksum);
	}
	return 0;
}

#define SPARSE_BLOCK ((size_t)64 << 10)
#define SPARSE_CHUNK ((size_t)1 << 20)

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int qv_backup_sparsify(int fd, uint64_t *ret_checksum, struct qv_error *errp)
{
	_cleanup_free_ uint8_t *buf = malloc(SPARSE_CHUNK);
	uint64_t sum = 0, off = 0, size;
	struct stat st;

	if (!buf)
		return -ENOMEM;
	if (fstat(fd, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "backup file: %m");
	size = (uint64_t)st.st_size;
	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;
		if (data < 0 && errno == ENXIO)
			data = (off_t)size;
		else if (data < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "backup file: %m");
		if ((uint64_t)data > off)
			sum += qv_csum_zeroes(off, (uint64_t)data - off);
		off = (uint64_t)data;
		if (off >= size)
			break;
		hole = lseek(fd, (off_t)off, SEEK_HOLE);
		uint64_t end = hole < 0 ? size : (uint64_t)hole;
		/* extents start and end on 4 KiB units here (a file's block size) */
		while (off < end) {
			size_t n = end - off < SPARSE_CHUNK ? (size_t)(end - off) : SPARSE_CHUNK;
			ssize_t got = pread(fd, buf, n, (off_t)off);
			if (got != (ssize_t)n)
				return qv_error_set(errp, got < 0 ? errno : EIO, QV_REASON_IO_ERROR,
						    "reading the backup file: %s",
						    got < 0 ? strerror(errno) : "short read");
			sum += qv_csum_data(off, buf, n);
			for (size_t b = 0; b < n; b += SPARSE_BLOCK) {
				size_t len = n - b < SPARSE_BLOCK ? n - b : SPARSE_BLOCK;
				if ((off + b) % SPARSE_BLOCK == 0 && len == SPARSE_BLOCK &&
				    all_zero(buf + b, len))
					(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
							(off_t)(off + b), (off_t)len);
			}
			off += n;
		}
	}
	*ret_checksum = sum;
	return 0;
}
