/* SPDX-License-Identifier: MIT */
#include <stdarg.h>

#include "common/error.h"

int qv_error_set(struct qv_error *errp, int error, const char *reason, const char *fmt, ...)
{
	va_list ap;

	if (error < 0)
		error = -error;
	if (error == 0)
		error = EIO;
	if (!errp || errp->set)
		return -error;
	errp->set = true;
	errp->error = error;
	snprintf(errp->reason, sizeof(errp->reason), "%s",
		 reason ? reason : qv_reason_from_errno(error));
	va_start(ap, fmt);
	vsnprintf(errp->message, sizeof(errp->message), fmt, ap);
	va_end(ap);
	return -error;
}

void qv_error_prefix(struct qv_error *errp, const char *fmt, ...)
{
	char prefix[256], old[sizeof(errp->message)];
	va_list ap;

	if (!errp || !errp->set)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, errp->message, sizeof(old));
	size_t n = strnlen(prefix, sizeof(prefix) - 1);
	memcpy(errp->message, prefix, n);
	memcpy(errp->message + n, ": ", 2);
	size_t rest = sizeof(errp->message) - n - 3;
	size_t ol = strnlen(old, rest);
	memcpy(errp->message + n + 2, old, ol);
	errp->message[n + 2 + ol] = '\0';
}

void qv_error_clear(struct qv_error *errp)
{
	if (errp)
		memset(errp, 0, sizeof(*errp));
}

const char *qv_reason_from_errno(int error)
{
	if (error < 0)
		error = -error;
	switch (error) {
	case EINVAL:
	case ENAMETOOLONG:
	case E2BIG:
	case EMSGSIZE:
		return QV_REASON_INVALID_ARGUMENT;
	case ENOENT:
	case ENODEV:
	case ESRCH:
		return QV_REASON_NOT_FOUND;
	case EEXIST:
	case EBUSY:
	case EALREADY:
		return QV_REASON_CONFLICT;
	case ETIMEDOUT:
		return QV_REASON_TIMEOUT;
	case ENOSPC:
	case EDQUOT:
		return QV_REASON_NO_SPACE;
	case EPERM:
	case EACCES:
		return QV_REASON_PERMISSION;
	case EOPNOTSUPP:
	case ENOSYS:
		return QV_REASON_UNSUPPORTED;
	case ECANCELED:
		return QV_REASON_CANCELLED;
	case EIO:
		return QV_REASON_IO_ERROR;
	case ECONNREFUSED:
	case ECONNRESET:
	case EPIPE:
	case EAGAIN:
		return QV_REASON_UNAVAILABLE;
	default:
		return QV_REASON_INTERNAL;
	}
}
