/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>
#include <string.h>

/* The first line of a small file (e.g. a cgroup interface file), without
 * its newline; "" if it cannot be read. Returns buf. */
static inline const char *qvt_first_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)size, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}
