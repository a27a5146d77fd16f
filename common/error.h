/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/macro.h"

/* Errors the user must read travel in a qv_error passed last as errp
 * (modelled on QEMU's Error **errp). Functions leave it untouched on success.
 * The RPC layer maps `reason` to data.reason and `message` to the message. */

/* Stable reason strings (docs/rpc.md lists them). */
#define QV_REASON_INVALID_ARGUMENT "invalid-argument"
#define QV_REASON_NOT_FOUND "not-found"
#define QV_REASON_CONFLICT "conflict"
#define QV_REASON_UNAVAILABLE "unavailable"
#define QV_REASON_QEMU_ERROR "qemu-error"
#define QV_REASON_TIMEOUT "timeout"
#define QV_REASON_IO_ERROR "io-error"
#define QV_REASON_NO_SPACE "no-space"
#define QV_REASON_INTERNAL "internal"
#define QV_REASON_UNSUPPORTED "unsupported"
#define QV_REASON_PERMISSION "permission-denied"
#define QV_REASON_CANCELLED "cancelled"

struct qv_error {
	bool set;
	int error;        /* positive errno */
	char reason[32];
	char message[512];
};

/* Fill *errp (if non-NULL and not yet set) and return -abs(error). */
int qv_error_set(struct qv_error *errp, int error, const char *reason, const char *fmt, ...)
	_printf_(4, 5);
/* Prefix an existing message: "ctx: old message". */
void qv_error_prefix(struct qv_error *errp, const char *fmt, ...) _printf_(2, 3);
void qv_error_clear(struct qv_error *errp);
/* Best reason for a bare -errno when no qv_error was filled. */
const char *qv_reason_from_errno(int error);
