/* SPDX-License-Identifier: MIT */
/* Benchmark driver (scripts/bench/collect.sh runs it inside the lab VM):
 * CPU time of one collector pass per VM with N VM groups, each holding a
 * sleeping process, against two peers reading the same files side by side:
 * "shell": a busybox sh running cat on every file (one sh per pass, like a
 * cron/exporter script), and "reopen": the same C parsing but
 * open/read/close on every pass instead of kept descriptors.
 *   bench_collect N PASSES */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sched/cgroup-internal.h"
#include "sched/collect.h"

static const char *const files[] = { "cpu.stat", "memory.current", "memory.stat",
				     "memory.events", "io.stat", "cpu.pressure",
				     "memory.pressure", "io.pressure" };

static double cpu_ms(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double reopen_pass(cg_group **g, unsigned n)
{
	static char buf[16384];
	struct cg_stats s;
	double t0 = cpu_ms(RUSAGE_SELF);

	for (unsigned i = 0; i < n; i++) {
		memset(&s, 0, sizeof(s));
		for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++)
			if (cg_read_at(cg_group_fd(g[i]), files[k], buf, sizeof(buf)) >= 0 && k == 0)
				cg_parse_cpu_stat(buf, &s);
	}
	return cpu_ms(RUSAGE_SELF) - t0;
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 50;
	unsigned passes = argc > 2 ? (unsigned)atoi(argv[2]) : 200;
	struct cg_manager_opts o = { .slice = "qvbench-collect.slice" };
	struct qv_error err = {};
	cg_manager *m = NULL;
	cg_group **g = calloc(n, sizeof(*g));
	pid_t *kids = calloc(n, sizeof(*kids));
	qv_collector *c = NULL;

	if (cg_manager_new(&o, &m, &err) < 0 || !cg_manager_slice_path(m)) {
		fprintf(stderr, "bench_collect: no cgroup v2 here: %s\n", err.message);
		return 1;
	}
	col_new(NULL, &c);
	FILE *sh = fopen("/tmp/bench-collect.sh", "w");
	fprintf(sh, "for d in");
	for (unsigned i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "vm-c%u", i);
		if (cg_group_create(m, name, &g[i], &err) < 0) {
			fprintf(stderr, "%s\n", err.message);
			return 1;
		}
		if ((kids[i] = fork()) == 0) {
			cg_group_attach(g[i], getpid(), NULL);
			pause();
			_exit(0);
		}
		col_add_vm(c, name, cg_group_path(g[i]));
		fprintf(sh, " %s", cg_group_path(g[i]));
	}
	fprintf(sh, "; do for f in");
	for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++)
		fprintf(sh, " %s", files[k]);
	fprintf(sh, "; do cat $d/$f; done; done >/dev/null\n"
		    "cat /proc/stat /proc/meminfo /proc/pressure/cpu /proc/pressure/memory "
		    "/proc/pressure/io >/dev/null\n");
	fclose(sh);
	usleep(200000);

	struct timespec ts;
	col_poll(c, 0); /* warm up */
	double t0 = cpu_ms(RUSAGE_SELF);
	for (unsigned p = 1; p <= passes; p++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		col_poll(c, (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
	}
	double ours = (cpu_ms(RUSAGE_SELF) - t0) / passes / n;
	double reopen = 0;
	for (unsigned p = 0; p < passes; p++)
		reopen += reopen_pass(g, n);
	reopen = reopen / passes / n;
	unsigned shell_passes = passes / 10 ? passes / 10 : 1;
	t0 = cpu_ms(RUSAGE_CHILDREN);
	for (unsigned p = 0; p < shell_passes; p++)
		if (system("sh /tmp/bench-collect.sh") != 0)
			fprintf(stderr, "shell pass failed\n");
	double shell = (cpu_ms(RUSAGE_CHILDREN) - t0) / shell_passes / n;

	printf("BENCH collect vms=%u passes=%u cpu_ms_per_vm_pass: qvisor=%.4f reopen=%.4f "
	       "shell_cat=%.4f  shell/qvisor=%.1fx reopen/qvisor=%.1fx\n",
	       n, passes, ours, reopen, shell, shell / ours, reopen / ours);
	for (unsigned i = 0; i < n; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
		cg_group_remove(g[i], 2000);
	}
	col_free(c);
	cg_manager_destroy(m);
	cg_manager_free(m);
	return 0;
}
