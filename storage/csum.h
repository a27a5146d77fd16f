/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Content checksum used by copy verification: the file is cut into
 * QV_CSUM_UNIT-byte units (the last one may be short); each unit is hashed
 * with XXH64 and mixed with its index, and the results are summed. The sum
 * does not depend on the order units are seen in, so out-of-order io_uring
 * completions can feed it, and a hole is just a run of zero units. */
#define QV_CSUM_UNIT 4096u

uint64_t qv_xxh64(const void *data, size_t len, uint64_t seed);

/* off must be a multiple of QV_CSUM_UNIT; len too unless the range ends the
 * file. Returns the contribution to add to the sum. */
uint64_t qv_csum_data(uint64_t off, const void *buf, size_t len);
/* Contribution of [off, off+len) all zero, same alignment rules. */
uint64_t qv_csum_zeroes(uint64_t off, uint64_t len);
