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
 *   - with opts->reflink (the default) the kernel copies: FICLONE when the
 *     filesystem allows it, else copy_file_range per data extent (holes kept);
 *     on EXDEV/EOPNOTSUPP/... it falls back silently to the engine below;
 *   - otherwise (or with verify/skip_zeroes/direct) it walks src's data extents (SEEK_DATA/SEEK_HOLE) and keeps
 *     holes as holes, with queue_depth reads/writes of block_size bytes in
 *     flight on registered buffers;
 *   - it writes into an anonymous O_TMPFILE (or ".<name>.XXXXXX") in dst's
 *     directory, fsyncs it, renames it into place and fsyncs the directory.
 *     A failed, cancelled or interrupted copy never leaves a file under dst.
 */

/* Defaults measured on the development disk (docs/storage.md). */
#define QV_COPY_DEFAULT_QUEUE_DEPTH 16u
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
	size_t block_size;      /* 0: default; multiple of 4096 */
	bool direct;            /* try O_DIRECT; falls back to buffered if refused */
	bool reflink;           /* let the kernel copy: FICLONE, then copy_file_range */
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
	bool used_direct;
	bool used_fixed_buffers;
	bool verified;
};

/* Fill opts with the defaults (queue depth, block size, reflink on). */
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
