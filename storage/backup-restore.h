/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "storage/backup-store.h"
#include "storage/copy.h"

/* Restore and verify (docs/backup.md "Restore"). */

/* Walk the clusters a self-contained qcow2 file (an incremental backup,
 * written by QEMU: hostile input, every offset is bounds-checked) holds:
 * fn(guest_off, host_off, len, zero) for every allocated cluster in guest
 * order; zero: the cluster reads as zeros (host_off then meaningless).
 * Compressed clusters, encryption, external data and extended L2 entries
 * are refused, and so is a file whose data clusters add up to more than
 * its size (a cluster referenced twice: a small file would expand to its
 * virtual size). fn returning < 0 stops the walk with that value. */
typedef int (*qv_qcow2_extent_fn)(uint64_t guest_off, uint64_t host_off, uint64_t len,
				  bool zero, void *userdata);
int qv_qcow2_walk_clusters(int fd, uint64_t *ret_virtual_size, qv_qcow2_extent_fn fn,
			   void *userdata, struct qv_error *errp);

/* Write every cluster the self-contained qcow2 src holds onto the raw file
 * dst at its guest offset (zero clusters become holes): applies an
 * incremental backup, or turns a qcow2 disk without backing file into its
 * raw content (dst then an empty file of the virtual size). */
int qv_qcow2_apply(int src, int dst, uint64_t *ret_vsize, atomic_bool *cancel,
		   struct qv_error *errp);

struct qv_backup_restore_opts {
	qv_copy_progress_fn progress; /* done/total over the whole chain */
	void *userdata;
	atomic_bool *cancel;
};

/* Restore disk `disk` (index into each backup's disks) of the chain
 * metas[0..n) (full first) into the raw file dst, which must not exist:
 * the full backup is copied by the io_uring engine into a temporary
 * ".<name>.XXXXXXXX" file beside dst, each incremental's clusters are then
 * written at their guest offsets, the file is fsync'd and linked to dst
 * (never replacing). On failure nothing is left under dst. */
int qv_backup_restore_disk(const char *store, struct qv_backup_meta *const *metas, size_t n,
			   size_t disk, const char *dst, const struct qv_backup_restore_opts *opts,
			   struct qv_error *errp);

/* The same into a qcow2 image dst (64 KiB clusters, zero areas left
 * unallocated): the chain is restored into a hidden raw file beside dst,
 * converted by qemu-img into a hidden qcow2, fsync'd and linked to dst
 * (never replacing); the raw file is removed either way. */
int qv_backup_restore_disk_qcow2(const char *store, struct qv_backup_meta *const *metas, size_t n,
				 size_t disk, const char *dst,
				 const struct qv_backup_restore_opts *opts, struct qv_error *errp);

/* Re-read every file of backup m and compare with its recorded checksum
 * (and size). 0, or -EILSEQ (io-error) naming the disk and both sums. */
int qv_backup_verify(const char *store, const struct qv_backup_meta *m, struct qv_error *errp);

/* A full backup's raw file, written by QEMU with zero areas as zeros:
 * punch holes where 64 KiB blocks are all zero and return the file's
 * content checksum (the same as qv_copy_checksum_file(): holes are zero
 * units), in one read of its data. */
int qv_backup_sparsify(int fd, uint64_t *ret_checksum, struct qv_error *errp);
