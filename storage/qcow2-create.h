/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "common/error.h"

/* Write an empty, self-contained qcow2 (version 3, 64 KiB clusters, 16-bit
 * refcounts, no backing file, no extensions) of virtual size vsize into
 * the empty file fd: what `qemu-img create -f qcow2 -o cluster_size=65536`
 * makes, without forking it (an incremental backup's target is created on
 * the daemon's path of every backup: docs/backup.md). Layout: header,
 * refcount table, one refcount block, the L1 table, each cluster-aligned.
 * 0, or -errno with errp. */
#define QV_QCOW2_CLUSTER_BITS 16
int qv_qcow2_create_empty(int fd, uint64_t vsize, struct qv_error *errp);
