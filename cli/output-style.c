/* SPDX-License-Identifier: MIT */
/* Terminal style: colours (only on a terminal, NO_COLOR honoured), clock
 * times and short durations. */
#include <inttypes.h>
#include <time.h>
#include <unistd.h>

#include "cli/output.h"
#include "common/macro.h"

bool out_color(FILE *f)
{
	const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
	int fd = fileno(f);

	if (no && *no)
		return false;
	if (term && streq(term, "dumb"))
		return false;
	return fd >= 0 && isatty(fd);
}

const char *out_state_sgr(const char *state)
{
	static const struct {
		const char *state, *sgr;
	} map[] = {
		{ "running", "\033[32m" },   { "paused", "\033[33m" },
		{ "starting", "\033[36m" },  { "stopping", "\033[36m" },
		{ "migrating", "\033[35m" }, { "crashed", "\033[31m" },
		{ "failed", "\033[31m" },
	};

	for (size_t i = 0; state && i < ARRAY_SIZE(map); i++)
		if (streq(state, map[i].state))
			return map[i].sgr;
	return "";
}

const char *out_clock(int64_t unix_ms, char *buf, size_t size)
{
	time_t s = (time_t)(unix_ms / 1000);
	struct tm tm;
	char hms[16];

	if (!localtime_r(&s, &tm) || !strftime(hms, sizeof(hms), "%H:%M:%S", &tm)) {
		snprintf(buf, size, "%" PRId64, unix_ms);
		return buf;
	}
	snprintf(buf, size, "%s.%03d", hms, (int)(unix_ms % 1000));
	return buf;
}

const char *out_duration(int64_t ms, char *buf, size_t size)
{
	const char *sign = ms < 0 ? "-" : "";
	int64_t a = ms < 0 ? -ms : ms, s = a / 1000;

	if (a < 1000)
		snprintf(buf, size, "%s%" PRId64 "ms", sign, a);
	else if (a < 60 * 1000)
		snprintf(buf, size, "%s%" PRId64 ".%" PRId64 "s", sign, s, (a % 1000) / 100);
	else if (s < 3600)
		snprintf(buf, size, "%s%" PRId64 "m%02" PRId64 "s", sign, s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%s%" PRId64 "h%02" PRId64 "m", sign, s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%s%" PRId64 "d%02" PRId64 "h", sign, s / 86400, s % 86400 / 3600);
	return buf;
}
