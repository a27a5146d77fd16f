/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "common/log.h"
#include "storage/copy-internal.h"
#include "storage/copy.h"
#include "storage/csum.h"
#include "storage/tmpfile.h"

/* Extents are rounded to this so every chunk starts on a checksum unit and a
 * direct-io boundary. */
#define ALIGN 4096u

enum slot_state { SLOT_IDLE, SLOT_READ, SLOT_WRITE };

struct slot {
	enum slot_state state;
	unsigned index;
	uint8_t *buf;
	uint64_t off;
	uint32_t len;  /* payload bytes */
	uint32_t io;   /* bytes the current phase must move (rounded if direct) */
	uint32_t done; /* bytes the current phase has moved */
};

struct copy {
	const char *src, *dst;
	const struct qv_copy_opts *o;
	int sfd, dfd;
	bool sdirect, ddirect;
	uint64_t total;
	struct io_uring ring;
	bool ring_ok, fixed_files;
	uint8_t *mem;
	struct slot *slots;
	unsigned nslots; /* queue_depth, fewer for a file smaller than them all */
	unsigned inflight;
	/* extent walk */
	uint64_t cur, ext_end;
	/* accounting */
	uint64_t done, copied, holes, zeroes, sum;
	uint64_t t0, last_progress;
	int err;
	bool err_write;
	struct qv_copy_stats *st;
};

uint64_t qv_copy_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t align_up(uint64_t v)
{
	return (v + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

void qv_copy_opts_init(struct qv_copy_opts *opts)
{
	*opts = (struct qv_copy_opts){
		.queue_depth = QV_COPY_DEFAULT_QUEUE_DEPTH,
		.direct = true,
		.reflink = true,
	};
}

static void progress(struct copy *c, bool final)
{
	uint64_t now = qv_copy_now_ns();

	if (!c->o->progress)
		return;
	if (!final && now - c->last_progress < QV_COPY_PROGRESS_INTERVAL_MS * 1000000ull)
		return;
	c->last_progress = now;
	uint64_t el = now - c->t0;
	uint64_t rate = el ? (uint64_t)((double)c->done * 1e9 / (double)el) : 0;
	c->o->progress(c->done, c->total, rate, c->o->userdata);
}

static void skip_hole(struct copy *c, uint64_t to)
{
	if (to <= c->cur)
		return;
	c->holes += to - c->cur;
	c->done += to - c->cur;
	if (c->o->verify)
		c->sum += qv_csum_zeroes(c->cur, to - c->cur);
	c->cur = to;
}

/* Next chunk of source data: 1 with off and len set, 0 at the end, or -errno. */
static int next_chunk(struct copy *c, size_t bs, uint64_t *off, uint32_t *len)
{
	if (c->cur >= c->ext_end) {
		if (c->cur >= c->total)
			return 0;
		off_t d = lseek(c->sfd, (off_t)c->cur, SEEK_DATA);
		if (d < 0) {
			if (errno != ENXIO)
				return -errno;
			d = (off_t)c->total;
		}
		uint64_t data = (uint64_t)d & ~(uint64_t)(ALIGN - 1);
		if (data >= c->total) {
			skip_hole(c, c->total);
			return 0;
		}
		skip_hole(c, data);
		off_t h = lseek(c->sfd, (off_t)c->cur, SEEK_HOLE);
		if (h < 0)
			return -errno;
		c->ext_end = align_up((uint64_t)h);
		if (c->ext_end > c->total)
			c->ext_end = c->total;
		if (c->ext_end <= c->cur) /* file shrank under us */
			c->ext_end = c->total;
	}
	uint64_t n = c->ext_end - c->cur;
	*off = c->cur;
	*len = (uint32_t)(n < bs ? n : bs);
	c->cur += *len;
	return 1;
}

static void submit_io(struct copy *c, struct slot *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
	bool rd = s->state == SLOT_READ;
	int fd = rd ? c->sfd : c->dfd;
	uint8_t *p = s->buf + s->done;
	unsigned n = s->io - s->done;
	uint64_t at = s->off + s->done;

	/* One sqe per slot and ring entries >= slots: never NULL. */
	if (c->fixed_files)
		fd = rd ? 0 : 1;
	if (c->st->used_fixed_buffers) {
		if (rd)
			io_uring_prep_read_fixed(sqe, fd, p, n, at, (int)s->index);
		else
			io_uring_prep_write_fixed(sqe, fd, p, n, at, (int)s->index);
	} else if (rd) {
		io_uring_prep_read(sqe, fd, p, n, at);
	} else {
		io_uring_prep_write(sqe, fd, p, n, at);
	}
	if (c->fixed_files)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, s);
	c->inflight++;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void start_write(struct copy *c, struct slot *s)
{
	if (c->o->verify)
		c->sum += qv_csum_data(s->off, s->buf, s->len);
	if (c->o->skip_zeroes && all_zero(s->buf, s->len)) {
		c->zeroes += s->len;
		c->done += s->len;
		s->state = SLOT_IDLE;
		return;
	}
	s->state = SLOT_WRITE;
	s->done = 0;
	/* O_DIRECT wants whole blocks; the tail past EOF is truncated later. */
	s->io = c->ddirect ? (uint32_t)align_up(s->len) : s->len;
	if (c->ddirect && s->io > s->len)
		memset(s->buf + s->len, 0, s->io - s->len);
	submit_io(c, s);
}

static void fail(struct copy *c, int r, bool on_write)
{
	if (c->err)
		return;
	c->err = r;
	c->err_write = on_write;
}

static void complete(struct copy *c, struct slot *s, int res)
{
	bool wr = s->state == SLOT_WRITE;

	c->inflight--;
	if (res == -EINTR || res == -EAGAIN) {
		if (!c->err)
			submit_io(c, s);
		else
			s->state = SLOT_IDLE;
		return;
	}
	if (res < 0 || (res == 0 && s->done < s->len)) {
		/* A read of 0 before len: the source shrank while copying. */
		fail(c, res < 0 ? res : -EIO, wr);
		s->state = SLOT_IDLE;
		return;
	}
	s->done += (uint32_t)res;
	if (!wr && s->done >= s->len) /* direct reads may stop at EOF */
		s->done = s->io;
	if (s->done < s->io) {
		if (c->err)
			s->state = SLOT_IDLE;
		else
			submit_io(c, s);
		return;
	}
	if (c->err) {
		s->state = SLOT_IDLE;
		return;
	}
	if (!wr) {
		start_write(c, s);
		return;
	}
	c->copied += s->len;
	c->done += s->len;
	s->state = SLOT_IDLE;
}

static void refill(struct copy *c, size_t bs)
{
	for (unsigned i = 0; i < c->nslots && !c->err; i++) {
		struct slot *s = &c->slots[i];
		if (s->state != SLOT_IDLE)
			continue;
		int r = next_chunk(c, bs, &s->off, &s->len);
		if (r < 0) {
			fail(c, r, false);
			return;
		}
		if (r == 0)
			return;
		s->state = SLOT_READ;
		s->done = 0;
		s->io = c->sdirect ? (uint32_t)align_up(s->len) : s->len;
		submit_io(c, s);
	}
}

/* Kernel copy fast path: copy_file_range() per data extent, in chunks of
 * KCOPY_CHUNK so that progress and cancel stay responsive. The data never
 * crosses into user space (one in-kernel page-cache copy instead of two
 * user copies, no io-wq punting of buffered writes), and holes stay holes
 * because only data extents are passed. Returns 0 when done, 1 when the
 * kernel refuses (cross-filesystem, unsupported): the io_uring engine then
 * goes on from c->cur. */
#define KCOPY_CHUNK ((uint32_t)16 << 20)

static bool kcopy_unsupported(int e)
{
	return e == EXDEV || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL || e == EBADF ||
	       e == ETXTBSY || e == EPERM;
}

static int kernel_copy(struct copy *c)
{
	for (;;) {
		uint64_t off, done = 0;
		uint32_t len;
		int r;

		if (c->o->cancel && atomic_load(c->o->cancel))
			return -ECANCELED;
		r = next_chunk(c, KCOPY_CHUNK, &off, &len);
		if (r <= 0)
			return r;
		while (done < len) {
			loff_t in = (loff_t)(off + done), out = in;
			ssize_t n = copy_file_range(c->sfd, &in, c->dfd, &out, len - done, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && kcopy_unsupported(errno) && c->copied == 0 && done == 0) {
				log_debug("copy_file_range %s -> %s: %m, using io_uring", c->src,
					  c->dst);
				c->cur = off; /* the io_uring engine redoes this chunk */
				return 1;
			}
			if (n < 0) {
				c->err_write = errno == ENOSPC || errno == EDQUOT || errno == EFBIG;
				return -errno;
			}
			if (n == 0)
				return -EIO; /* the source shrank during the copy */
			done += (uint64_t)n;
			c->st->used_kernel_copy = true;
		}
		c->copied += len;
		c->done += len;
		progress(c, false);
	}
}

static int setup_ring(struct copy *c, size_t bs)
{
	uint64_t need = (c->total - c->cur + bs - 1) / bs;
	unsigned qd = need < c->o->queue_depth ? (unsigned)need : c->o->queue_depth;
	struct iovec *iov;
	int r;

	c->nslots = qd;
	r = io_uring_queue_init(qd, &c->ring, 0);
	if (r < 0)
		return r;
	c->ring_ok = true;
	if (posix_memalign((void **)&c->mem, ALIGN, qd * bs) != 0)
		return -ENOMEM;
	c->slots = calloc(qd, sizeof(*c->slots));
	iov = calloc(qd, sizeof(*iov));
	if (!c->slots || !iov) {
		free(iov);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < qd; i++) {
		c->slots[i] = (struct slot){ .index = i, .buf = c->mem + i * bs };
		iov[i] = (struct iovec){ .iov_base = c->slots[i].buf, .iov_len = bs };
	}
	/* Registered buffers need locked memory; plain reads do not. */
	r = io_uring_register_buffers(&c->ring, iov, qd);
	free(iov);
	c->st->used_fixed_buffers = r == 0;
	if (r < 0)
		log_debug("io_uring buffer registration failed (%s), using plain reads",
			  strerror(-r));
	int fds[2] = { c->sfd, c->dfd };
	c->fixed_files = io_uring_register_files(&c->ring, fds, 2) == 0;
	return 0;
}

/* Kernel copy only where the kernel may pick how blocks are copied (it may
 * share them, like FICLONE) and nothing needs the bytes. */
static bool kernel_copy_allowed(const struct qv_copy_opts *o)
{
	return o->reflink && !o->verify && !o->skip_zeroes;
}

static int run_copy(struct copy *c, size_t bs)
{
	int r;

	if (kernel_copy_allowed(c->o) && !c->sdirect && !c->ddirect) {
		r = kernel_copy(c);
		if (r <= 0)
			return r;
	}
	/* No data left (an empty image): no ring, no buffers to pin. */
	off_t d = lseek(c->sfd, (off_t)c->cur, SEEK_DATA);
	if ((d < 0 && errno == ENXIO) || (d >= 0 && (uint64_t)d >= c->total)) {
		skip_hole(c, c->total);
		return 0;
	}
	/* Double the read-ahead window; the engine reads strictly forward. */
	if (!c->sdirect)
		(void)posix_fadvise(c->sfd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r = setup_ring(c, bs);
	if (r < 0)
		return r;
	for (;;) {
		if (c->o->cancel && atomic_load(c->o->cancel))
			fail(c, -ECANCELED, false);
		refill(c, bs);
		if (c->inflight == 0)
			break;
		r = io_uring_submit_and_wait(&c->ring, 1);
		if (r < 0 && r != -EINTR) {
			/* Nothing can be reaped safely any more: give up on the
			 * ring; the buffers stay alive until it is torn down. */
			fail(c, r, false);
			return r;
		}
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&c->ring, head, cqe) {
			complete(c, io_uring_cqe_get_data(cqe), cqe->res);
			n++;
		}
		io_uring_cq_advance(&c->ring, n);
		progress(c, false);
	}
	return c->err;
}

static void copy_free(struct copy *c)
{
	if (c->ring_ok)
		io_uring_queue_exit(&c->ring); /* waits for in-flight io */
	free(c->slots);
	free(c->mem);
	if (c->sfd >= 0)
		close(c->sfd);
}

static int copy_error(struct copy *c, int r, struct qv_error *errp)
{
	if (r == -ECANCELED)
		return qv_error_set(errp, ECANCELED, QV_REASON_CANCELLED,
				    "copy of %s to %s cancelled", c->src, c->dst);
	if (r == -ENOSPC || r == -EDQUOT)
		return qv_error_set(errp, -r, QV_REASON_NO_SPACE,
				    "no space left on the filesystem of %s (copying %s, %" PRIu64
				    " bytes)", c->dst, c->src, c->total);
	return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "copy %s to %s: %s %s: %s",
			    c->src, c->dst, c->err_write ? "writing" : "reading",
			    c->err_write ? c->dst : c->src, strerror(-r));
}

static int check_opts(const struct qv_copy_opts *o, struct qv_error *errp)
{
	if (o->queue_depth < 1 || o->queue_depth > QV_COPY_MAX_QUEUE_DEPTH)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "copy queue depth %u out of range 1..%u", o->queue_depth,
				    QV_COPY_MAX_QUEUE_DEPTH);
	if (o->block_size && (o->block_size < QV_COPY_MIN_BLOCK_SIZE ||
			      o->block_size > QV_COPY_MAX_BLOCK_SIZE || o->block_size % ALIGN))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "copy block size %zu must be a multiple of 4096 in 4 KiB..64 MiB",
				    o->block_size);
	return 0;
}

/* Filesystems whose copy_file_range is a server-side copy: the bytes need
 * not cross the network twice, so the kernel copy beats O_DIRECT there. */
static bool offloads_copies(const char *dst)
{
	_cleanup_free_ char *dir = NULL, *base = NULL;
	struct statfs sf;

	if (qv_path_split(dst, &dir, &base) < 0 || statfs(dir, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case 0x6969UL:     /* NFS */
	case 0xFF534D42UL: /* CIFS */
	case 0xFE534D42UL: /* SMB2 */
	case 0x00C36400UL: /* Ceph */
		return true;
	default:
		return false;
	}
}

static int open_src(struct copy *c, bool direct, struct stat *st, struct qv_error *errp)
{
	if (direct) {
		c->sfd = open(c->src, O_RDONLY | O_CLOEXEC | O_DIRECT);
		c->sdirect = c->sfd >= 0;
	}
	if (c->sfd < 0)
		c->sfd = open(c->src, O_RDONLY | O_CLOEXEC);
	if (c->sfd < 0)
		return qv_error_set(errp, errno, NULL, "open %s: %m", c->src);
	if (fstat(c->sfd, st) < 0)
		return qv_error_set(errp, errno, NULL, "stat %s: %m", c->src);
	if (!S_ISREG(st->st_mode))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s is not a regular file", c->src);
	c->total = (uint64_t)st->st_size;
	return 0;
}

static int check_dst(struct copy *c, const struct stat *sst, struct qv_error *errp)
{
	struct stat dst;

	if (stat(c->dst, &dst) < 0)
		return errno == ENOENT ? 0 : qv_error_set(errp, errno, NULL, "stat %s: %m", c->dst);
	if (dst.st_dev == sst->st_dev && dst.st_ino == sst->st_ino)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s and %s are the same file", c->src, c->dst);
	if (c->o->no_replace)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "%s already exists", c->dst);
	return 0;
}

static bool try_reflink(struct copy *c)
{
	if (!c->o->reflink || c->total == 0)
		return false;
	if (ioctl(c->dfd, FICLONE, c->sfd) == 0)
		return true;
	/* EOPNOTSUPP/EXDEV/EINVAL/ENOTTY...: no sharing here, copy instead. */
	log_debug("FICLONE %s -> %s: %m, copying", c->src, c->dst);
	return false;
}

static int copy_finish(struct copy *c, struct qv_tmpfile *t, struct qv_error *errp)
{
	int r;

	if (!c->st->used_reflink && ftruncate(c->dfd, (off_t)c->total) < 0)
		return copy_error(c, (c->err_write = true, -errno), errp);
	if (c->o->verify) {
		uint64_t ssum = c->sum, dsum;
		if (c->st->used_reflink) {
			r = qv_copy_checksum_fd(c->sfd, c->sdirect, &ssum);
			if (r < 0)
				return copy_error(c, r, errp);
		}
		if (fdatasync(c->dfd) < 0)
			return copy_error(c, (c->err_write = true, -errno), errp);
		/* Read back what the disk holds, not what the cache holds. */
		(void)posix_fadvise(c->dfd, 0, 0, POSIX_FADV_DONTNEED);
		r = qv_copy_checksum_fd(c->dfd, c->ddirect, &dsum);
		if (r < 0)
			return copy_error(c, (c->err_write = true, r), errp);
		if (dsum != ssum)
			return qv_error_set(errp, EILSEQ, QV_REASON_IO_ERROR,
					    "verification failed: copy of %s differs from the source "
					    "(checksum %016" PRIx64 " != %016" PRIx64 ")",
					    c->src, dsum, ssum);
		c->st->checksum = ssum;
		c->st->verified = true;
	}
	r = qv_tmpfile_commit(t, c->o->no_replace);
	if (r == -EEXIST)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "%s already exists", c->dst);
	if (r < 0)
		return copy_error(c, (c->err_write = true, r), errp);
	return 0;
}

int qv_copy_file(const char *src, const char *dst, const struct qv_copy_opts *opts,
		 struct qv_copy_stats *ret_stats, struct qv_error *errp)
{
	struct qv_copy_opts defaults;
	struct qv_copy_stats st = { 0 };
	struct qv_tmpfile t = QV_TMPFILE_INIT;
	struct copy c = { .src = src, .dst = dst, .sfd = -1, .dfd = -1, .st = &st };
	struct stat sst;
	bool direct;
	int r;

	qv_copy_opts_init(&defaults);
	if (opts) {
		struct qv_copy_opts o = *opts;
		if (!o.queue_depth)
			o.queue_depth = defaults.queue_depth;
		defaults = o;
	}
	opts = &defaults;
	c.o = opts;
	r = check_opts(opts, errp);
	if (r < 0)
		return r;
	c.t0 = c.last_progress = qv_copy_now_ns();
	/* Where the kernel copy will run on a filesystem that offloads it,
	 * O_DIRECT would only keep it from running. */
	direct = opts->direct && !(kernel_copy_allowed(opts) && offloads_copies(dst));
	r = open_src(&c, direct, &sst, errp);
	if (r < 0)
		goto out;
	r = check_dst(&c, &sst, errp);
	if (r < 0)
		goto out;
	r = qv_tmpfile_open(&t, dst, sst.st_mode & 0777, direct);
	if (r < 0) {
		r = qv_error_set(errp, -r, NULL, "create a temporary file for %s: %s", dst,
				 strerror(-r));
		goto out;
	}
	c.dfd = t.fd;
	c.ddirect = t.direct;
	st.bytes_total = c.total;
	st.used_reflink = try_reflink(&c);
	if (!st.used_reflink) {
		st.used_direct = c.sdirect && c.ddirect;
		if (ftruncate(c.dfd, (off_t)c.total) < 0) {
			c.err_write = true;
			r = copy_error(&c, -errno, errp);
			goto out;
		}
		size_t bs = opts->block_size;
		/* skip_zeroes looks for all-zero blocks: keep them small. */
		if (!bs)
			bs = st.used_direct && !opts->skip_zeroes
				     ? QV_COPY_DEFAULT_DIRECT_BLOCK_SIZE
				     : QV_COPY_DEFAULT_BLOCK_SIZE;
		r = run_copy(&c, bs);
		if (r < 0) {
			r = copy_error(&c, r, errp);
			goto out;
		}
	} else {
		c.done = c.total;
	}
	r = copy_finish(&c, &t, errp);
	if (r < 0)
		goto out;
	progress(&c, true);
	st.bytes_copied = c.copied;
	st.holes_skipped = c.holes;
	st.zeroes_skipped = c.zeroes;
	st.elapsed_ns = qv_copy_now_ns() - c.t0;
	if (ret_stats)
		*ret_stats = st;
out:
	copy_free(&c);
	qv_tmpfile_discard(&t);
	return r;
}
