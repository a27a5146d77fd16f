/* cpuload — replay a CPU-utilisation trace (test-guest workload).
 *
 * Usage: cpuload START_EPOCH SAMPLE_S PCT[,PCT...]
 *        (the guest's qv.load=START:SAMPLE_S:PCT,PCT,... passes its fields)
 *
 * From wall-clock second START_EPOCH on (the guest's clock comes from the
 * host's RTC, so guests booted at different times replay in step), sample
 * i of the list is replayed during [START + i*SAMPLE_S, START + (i+1)*SAMPLE_S):
 * in every 100 ms period the program spins for PCT % of it and sleeps the
 * rest, i.e. one vCPU at PCT % utilisation. Before START it sleeps; after
 * the last sample it prints "QVISOR-LOAD-END" and exits. Live migration
 * carries it along: it keeps replaying on the destination.
 *
 * Used by scripts/bench/testbed.sh (PlanetLab traces, time-compressed).
 * Built static by scripts/mkguest.sh; runs on the host too.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PERIOD_NS 100000000L /* 100 ms */
#define MAX_SAMPLES 4096

static double now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	static double pct[MAX_SAMPLES];
	double start, sample_s;
	int n = 0;

	if (argc != 4 || (start = atof(argv[1])) <= 0 || (sample_s = atof(argv[2])) <= 0) {
		fprintf(stderr, "usage: cpuload START_EPOCH SAMPLE_S PCT[,PCT...]\n");
		return 2;
	}
	for (char *save = NULL, *t = strtok_r(argv[3], ",", &save); t && n < MAX_SAMPLES;
	     t = strtok_r(NULL, ",", &save)) {
		double v = atof(t);
		pct[n++] = v < 0 ? 0 : v > 100 ? 100 : v;
	}
	if (n == 0) {
		fprintf(stderr, "cpuload: no samples\n");
		return 2;
	}
	printf("QVISOR-LOAD-START samples=%d sample_s=%g\n", n, sample_s);
	fflush(stdout);
	sleep_s(start - now(CLOCK_REALTIME));
	for (;;) {
		int i = (int)((now(CLOCK_REALTIME) - start) / sample_s);
		if (i >= n)
			break;
		double t0 = now(CLOCK_MONOTONIC), busy = pct[i] / 100.0 * PERIOD_NS / 1e9;
		while (now(CLOCK_MONOTONIC) - t0 < busy)
			; /* spin */
		sleep_s(PERIOD_NS / 1e9 - (now(CLOCK_MONOTONIC) - t0));
	}
	printf("QVISOR-LOAD-END\n");
	return 0;
}
