/* SPDX-License-Identifier: MIT */
/* cli/output-style.c and the table printer: colours only on a terminal and
 * never with NO_COLOR or TERM=dumb, coloured states, clock and durations. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli/output.h"

/* A terminal for the colour tests: the master side of a fresh pty pair is
 * enough for isatty() on the slave. */
static FILE *open_tty(int *ret_master)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	cr_assert_geq(m, 0, "posix_openpt: %m");
	cr_assert_eq(grantpt(m), 0);
	cr_assert_eq(unlockpt(m), 0);
	int s = open(ptsname(m), O_RDWR | O_NOCTTY);
	cr_assert_geq(s, 0);
	*ret_master = m;
	return fdopen(s, "w");
}

Test(output, colour_only_on_a_terminal_and_never_with_no_color)
{
	int m;
	FILE *tty = open_tty(&m);
	char path[] = "/tmp/qvt-out-XXXXXX";
	int fd = mkstemp(path);
	FILE *file = fdopen(fd, "w");

	unsetenv("NO_COLOR");
	setenv("TERM", "xterm", 1);
	cr_assert(out_color(tty));
	cr_assert(!out_color(file), "a regular file is not a terminal");
	setenv("NO_COLOR", "", 1);
	cr_assert(out_color(tty), "an empty NO_COLOR does not count");
	setenv("NO_COLOR", "1", 1);
	cr_assert(!out_color(tty));
	unsetenv("NO_COLOR");
	setenv("TERM", "dumb", 1);
	cr_assert(!out_color(tty));
	fclose(tty);
	close(m);
	fclose(file);
	unlink(path);
}

Test(output, states_have_colours_others_none)
{
	cr_assert_str_eq(out_state_sgr("running"), "\033[32m");
	cr_assert_str_eq(out_state_sgr("crashed"), "\033[31m");
	cr_assert_str_eq(out_state_sgr("stopped"), "");
	cr_assert_str_eq(out_state_sgr(NULL), "");
}

Test(output, durations_are_short_and_rounded_down)
{
	char b[32];

	cr_assert_str_eq(out_duration(0, b, sizeof(b)), "0ms");
	cr_assert_str_eq(out_duration(850, b, sizeof(b)), "850ms");
	cr_assert_str_eq(out_duration(3250, b, sizeof(b)), "3.2s");
	cr_assert_str_eq(out_duration(245000, b, sizeof(b)), "4m05s");
	cr_assert_str_eq(out_duration(7380000, b, sizeof(b)), "2h03m");
	cr_assert_str_eq(out_duration(273600000, b, sizeof(b)), "3d04h");
	cr_assert_str_eq(out_duration(-1500, b, sizeof(b)), "-1.5s");
}

Test(output, clock_is_local_time_with_milliseconds)
{
	char b[32];

	setenv("TZ", "UTC", 1);
	tzset();
	/* 2026-12-06 00:17:17.630 UTC */
	cr_assert_str_eq(out_clock(1796516237630LL, b, sizeof(b)), "00:17:17.630");
}

/* Padding counts the text, not the escape codes: columns line up with and
 * without colour. */
Test(output, coloured_table_keeps_its_columns)
{
	int m;
	FILE *tty = open_tty(&m);
	char buf[512] = "";

	unsetenv("NO_COLOR");
	setenv("TERM", "xterm", 1);
	out_table *t = out_table_new(3, (const char *[]){ "NAME", "STATE", "PID" });
	out_table_add(t, (const char *[]){ "web1", "running", "42" });
	out_table_add(t, (const char *[]){ "db", "stopped", NULL });
	out_table_print(t, tty);
	fflush(tty);
	ssize_t n = read(m, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert(strstr(buf, "\033[1mNAME\033[0m  \033[1mSTATE\033[0m    \033[1mPID\033[0m"), "%s",
		  buf);
	cr_assert(strstr(buf, "web1  \033[32mrunning\033[0m  42"), "%s", buf);
	cr_assert(strstr(buf, "db    stopped  -"), "%s", buf);
	out_table_free(t);
	fclose(tty);
	close(m);
}
