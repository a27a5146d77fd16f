/* dirtier — dirty guest memory at a steady rate (test-guest workload).
 *
 * Usage: dirtier RATE_MBPS WSS_MIB[:random] [REPORT_SECONDS]
 *        (the guest's qv.dirty=RATE:WSS[:random] passes "WSS:random" through)
 *
 * Maps WSS_MIB MiB of anonymous memory, touches every page once, then
 * writes a fresh 64-bit counter into the first bytes of successive 4 KiB
 * pages (wrapping over the working set) at RATE_MBPS megabytes (10^6 bytes)
 * of pages per second, paced in 10 ms slices.  With ":random" every dirtied
 * page is rewritten whole with pseudo-random data (xorshift64), which
 * neither XBZRLE nor zero-page detection can shrink: the honest load for a
 * convergence controller.  RATE_MBPS 0 means "as fast
 * as possible".  Prints "QVISOR-DIRTIER-START ..." once, then a status line
 * every REPORT_SECONDS (default 5, 0 = never).
 *
 * Built static by scripts/mkguest.sh (gcc -static -O2); runs on the host too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096UL
#define SLICE_NS 10000000L /* 10 ms */

static int parse_num(const char *s, double *ret);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ts_add_ns(struct timespec *ts, long ns)
{
	ts->tv_nsec += ns;
	while (ts->tv_nsec >= 1000000000L) {
		ts->tv_nsec -= 1000000000L;
		ts->tv_sec++;
	}
}

/* Rewrite one whole page with pseudo-random words. */
static void fill_random(unsigned char *page, unsigned long long *state)
{
	unsigned long long x = *state, *w = (unsigned long long *)page;

	for (unsigned long i = 0; i < PAGE / sizeof(*w); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
	*state = x;
}

/* "WSS" or "WSS:random". */
static int parse_wss(char *s, double *ret, int *ret_random)
{
	char *colon = strchr(s, ':');

	*ret_random = 0;
	if (colon) {
		if (strcmp(colon + 1, "random") != 0)
			return -EINVAL;
		*colon = '\0';
		*ret_random = 1;
	}
	return parse_num(s, ret);
}

static int parse_num(const char *s, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	double rate, wss_mib, report = 5;
	unsigned long npages, idx = 0;
	unsigned long long written = 0, counter = 0, last_written = 0;
	double budget = 0, pages_per_s, t_start, t_last, t_report;
	struct timespec next;
	unsigned long long rnd = 0x9e3779b97f4a7c15ULL;
	unsigned char *mem;
	int random_pages = 0;

	if (argc < 3 || argc > 4 || parse_num(argv[1], &rate) < 0 ||
	    parse_wss(argv[2], &wss_mib, &random_pages) < 0 || wss_mib < 1 ||
	    (argc == 4 && parse_num(argv[3], &report) < 0)) {
		fprintf(stderr, "usage: %s RATE_MBPS WSS_MIB[:random] [REPORT_SECONDS]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	npages = (unsigned long)(wss_mib * 1024 * 1024) / PAGE;
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("dirtier: mmap");
		return 1;
	}
	for (unsigned long i = 0; i < npages; i++)
		mem[i * PAGE] = 1; /* fault the whole working set in */

	pages_per_s = rate * 1e6 / (double)PAGE;
	printf("QVISOR-DIRTIER-START rate=%.1fMB/s wss=%.0fMiB pages=%lu mode=%s\n",
	       rate, wss_mib, npages, random_pages ? "random" : "counter");

	t_start = t_last = t_report = now_s();
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		double t = now_s();
		unsigned long n;

		if (rate > 0) {
			budget += pages_per_s * (t - t_last);
			/* do not bank more than one second of backlog */
			if (budget > pages_per_s)
				budget = pages_per_s;
			n = (unsigned long)budget;
			budget -= (double)n;
		} else {
			n = npages;
		}
		t_last = t;

		for (unsigned long i = 0; i < n; i++) {
			if (random_pages)
				fill_random(mem + idx * PAGE, &rnd);
			else
				*(volatile unsigned long long *)(mem + idx * PAGE) = ++counter;
			if (++idx == npages)
				idx = 0;
		}
		written += n;

		if (report > 0 && t - t_report >= report) {
			double mbps = (double)(written - last_written) * PAGE / 1e6 / (t - t_report);

			printf("dirtier: %.1f MB/s over %.0f MiB, %llu pages total, %.0f s\n",
			       mbps, wss_mib, written, t - t_start);
			last_written = written;
			t_report = t;
		}
		if (rate > 0) {
			ts_add_ns(&next, SLICE_NS);
			struct timespec cur;

			clock_gettime(CLOCK_MONOTONIC, &cur);
			/* if we fell far behind (e.g. VM paused), resynchronise */
			if (cur.tv_sec > next.tv_sec + 1)
				next = cur;
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
	}
}
