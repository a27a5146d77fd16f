/* SPDX-License-Identifier: MIT */
/* Bench driver for scripts/bench/net.sh (not a Criterion test): in the
 * current netns, create bridge BR, then create+attach+up N TAPs through
 * qvisor's netlink path and delete them again, MODE "each" (qv_tap_delete
 * per TAP) or "batch" (qv_tap_delete_many). Usage: bench_taps N BR MODE.
 * Prints "qvisor-<mode> <N> taps: setup <s> teardown <s> total <s>". */
#include <time.h>

#include "net/bridge.h"
#include "net/nl.h"
#include "net/tap.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	const char *br = argc > 2 ? argv[2] : "br-bench";
	const char *mode = argc > 3 ? argv[3] : "each";
	bool batch = streq(mode, "batch");
	char (*names)[IFNAMSIZ];
	const char **namev;
	_cleanup_netlink_ qv_netlink *nl = NULL;
	struct qv_error err = {};
	int *fds;
	double t0, t1, t2;

	if (n <= 0 || n > 4000 || !(fds = calloc((size_t)n, sizeof(int))) ||
	    !(names = calloc((size_t)n, sizeof(*names))) ||
	    !(namev = calloc((size_t)n, sizeof(*namev))))
		return 2;
	for (int i = 0; i < n; i++) {
		snprintf(names[i], IFNAMSIZ, "qvb%d", i);
		namev[i] = names[i];
	}
	if (qv_netlink_open(&nl, &err) < 0 || qv_bridge_create(nl, br, &err) < 0 ||
	    qv_bridge_set_up(nl, br, true, &err) < 0) {
		fprintf(stderr, "bench_taps: %s\n", err.message);
		return 1;
	}
	t0 = now();
	for (int i = 0; i < n; i++) {
		if (qv_tap_create(names[i], 0, &fds[i], NULL, &err) < 0 ||
		    qv_tap_attach(nl, names[i], br, &err) < 0) {
			fprintf(stderr, "bench_taps: %s\n", err.message);
			return 1;
		}
	}
	t1 = now();
	if (batch && qv_tap_delete_many(nl, namev, (size_t)n, &err) < 0) {
		fprintf(stderr, "bench_taps: %s\n", err.message);
		return 1;
	}
	for (int i = 0; !batch && i < n; i++) {
		if (qv_tap_delete(nl, names[i], &err) < 0) {
			fprintf(stderr, "bench_taps: %s\n", err.message);
			return 1;
		}
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	t2 = now();
	printf("qvisor-%s %d taps: setup %.3f teardown %.3f total %.3f\n", mode, n, t1 - t0, t2 - t1,
	       t2 - t0);
	free(fds);
	free(names);
	free(namev);
	return 0;
}
