/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Standard base64 with padding (RFC 4648 §4): the etcd JSON gateway's
 * encoding of keys and values, and QEMU's `secret` objects. */

/* NUL-terminated, malloc'd; NULL on ENOMEM. */
char *qv_base64_encode(const void *data, size_t len);
/* Decodes up to the first '='; malloc'd and NUL-terminated (binary data
 * may contain NULs: use *ret_len). NULL on a character outside the
 * alphabet or ENOMEM. */
char *qv_base64_decode(const char *s, size_t *ret_len);
