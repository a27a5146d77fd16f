/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* io_uring image copy engine (docs/storage.md).
 *
 * qv_copy_file() copies src to dst:
 *   - with opts->reflink (the default) FICLONE first, where the filesystem
 *     can share blocks;
 *   - then, with opts->direct (the default) and both files open with
 *     O_DIRECT, the io_uring engine below bypasses the page cache: the disk
 *     moves the bytes, the CPU does not, and the host's cache is left alone;
 *   - otherwise (O_DIRECT refused, direct off, or a destination filesystem
 *     that offloads copies such as NFS or SMB) with opts->reflink the kernel
 *     copies, copy_file_range per data extent, and the io_uring engine takes
 *     over where the kernel refuses;
 *   - the io_uring engine walks src's data extents (SEEK_DATA/SEEK_HOLE),
 *     keeps holes as holes, and keeps queue_depth reads/writes of block_size
 *     bytes in flight on registered buffers;
 *   - it writes into an anonymous O_TMPFILE (or ".<name>.XXXXXX") in dst's
 *     directory, fsyncs it, renames it into place and fsyncs the directory.
 *     A failed, cancelled or interrupted copy never leaves a file under dst.
 */

/* Defaults measured on the development disk (docs/storage.md). The block
 * size depends on the path: large blocks for O_DIRECT (each one is a disk
 * request), smaller ones through the page cache. */
#define QV_COPY_DEFAULT_QUEUE_DEPTH 16u
#define QV_COPY_DEFAULT_DIRECT_BLOCK_SIZE ((size_t)4 << 20)
#define QV_COPY_DEFAULT_BLOCK_SIZE ((size_t)256 << 10)
#define QV_COPY_MAX_QUEUE_DEPTH 256u
#define QV_COPY_MIN_BLOCK_SIZE ((size_t)4096)
#define QV_COPY_MAX_BLOCK_SIZE ((size_t)64 << 20)
/* The progress callback runs at most this often (plus once at the end). */
#define QV_COPY_PROGRESS_INTERVAL_MS 100

/* done and total count apparent bytes (holes count as done once passed);
 * rate is the average so far, in bytes per second. */
typedef void (*qv_copy_progress_fn)(uint64_t done, uint64_t total, uint64_t rate,
				    void *userdata);

struct qv_copy_opts {
	unsigned queue_depth;   /* 0: QV_COPY_DEFAULT_QUEUE_DEPTH */
	size_t block_size;      /* 0: default for the path taken (256 KiB with
				 * skip_zeroes, its granularity); multiple of 4096 */
	bool direct;            /* O_DIRECT where the filesystems allow it (default) */
	bool reflink;           /* let the kernel copy: FICLONE, copy_file_range (default) */
	bool verify;            /* hash src while copying, re-read dst, compare */
	bool skip_zeroes;       /* do not write all-zero blocks inside data extents */
	bool no_replace;        /* fail with -EEXIST if dst exists */
	qv_copy_progress_fn progress;
	void *userdata;
	atomic_bool *cancel;    /* set (from any thread or the callback) to cancel */
};

struct qv_copy_stats {
	uint64_t bytes_total;    /* apparent size of src */
	uint64_t bytes_copied;   /* data bytes written (0 with reflink) */
	uint64_t holes_skipped;  /* bytes of src holes not read */
	uint64_t zeroes_skipped; /* all-zero bytes in data extents not written */
	uint64_t elapsed_ns;
	uint64_t checksum;       /* content checksum when verify was on */
	bool used_reflink;
	bool used_direct;        /* both files were open with O_DIRECT */
	bool used_kernel_copy;   /* copy_file_range moved the bytes */
	bool used_fixed_buffers;
	bool verified;
};

/* Fill opts with the defaults (queue depth 16, block size by path, direct
 * and reflink on). */
void qv_copy_opts_init(struct qv_copy_opts *opts);

/* Copy src to dst (see above). opts may be NULL for the defaults.
 * Returns 0 or -errno with errp set:
 *   -ENOSPC  (no-space)   the destination filesystem is full;
 *   -ECANCELED (cancelled) *opts->cancel was set;
 *   -EILSEQ  (io-error)   verification found a mismatch;
 *   -EEXIST  (conflict)   no_replace and dst exists;
 *   -EINVAL  (invalid-argument) bad options or src not a regular file. */
int qv_copy_file(const char *src, const char *dst, const struct qv_copy_opts *opts,
		 struct qv_copy_stats *ret_stats, struct qv_error *errp);

/* Content checksum of a file as qv_copy_file() computes it with verify
 * (holes hash as zeros, so it depends only on the bytes). */
int qv_copy_checksum_file(const char *path, uint64_t *ret, struct qv_error *errp);
