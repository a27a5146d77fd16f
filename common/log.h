/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/macro.h"

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Default INFO; QV_LOG=debug|info|warning|error overrides. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_ident(const char *ident);

/* Returns -abs(error) so callers can `return log_error_errno(r, ...)`.
 * "%m" in fmt prints strerror(error). */
int log_internal(enum log_level level, int error, const char *file, int line,
		 const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(lvl, e, ...) log_internal(lvl, e, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_LEVEL_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_LEVEL_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_LEVEL_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_LEVEL_ERROR, e, __VA_ARGS__)
