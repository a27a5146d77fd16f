/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

uint64_t qv_copy_now_ns(void);
/* Content checksum (storage/csum.h) of an open file, reading its data
 * extents; direct says fd has O_DIRECT (reads are then block-rounded). */
int qv_copy_checksum_fd(int fd, bool direct, uint64_t *ret);
