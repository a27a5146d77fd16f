/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <time.h>

#include "common/log.h"

static enum log_level max_level = LOG_LEVEL_INFO;
static bool level_from_env_done;
static const char *log_ident = "qvisor";

static void level_from_env(void)
{
	const char *e;

	if (level_from_env_done)
		return;
	level_from_env_done = true;
	e = getenv("QV_LOG");
	if (!e)
		return;
	if (streq(e, "debug"))
		max_level = LOG_LEVEL_DEBUG;
	else if (streq(e, "info"))
		max_level = LOG_LEVEL_INFO;
	else if (streq(e, "warning"))
		max_level = LOG_LEVEL_WARNING;
	else if (streq(e, "error"))
		max_level = LOG_LEVEL_ERROR;
}

void log_set_level(enum log_level level)
{
	level_from_env_done = true;
	max_level = level;
}

enum log_level log_get_level(void)
{
	level_from_env();
	return max_level;
}

void log_set_ident(const char *ident)
{
	log_ident = ident;
}

int log_internal(enum log_level level, int error, const char *file, int line,
		 const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	int saved = errno;
	va_list ap;

	if (error < 0)
		error = -error;
	level_from_env();
	if (level > max_level)
		return -error;

	errno = error;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s[%d] %s: ", tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, log_ident, (int)getpid(), names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (max_level >= LOG_LEVEL_DEBUG)
		fprintf(stderr, " (%s:%d)", file, line);
	fputc('\n', stderr);
	errno = saved;
	return -error;
}
