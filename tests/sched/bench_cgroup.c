/* SPDX-License-Identifier: MIT */
/* Benchmark driver (scripts/bench/cgroup.sh runs it inside the test VM):
 * latency of applying a full limit set to a VM group and of one stats read,
 * with 1 and N groups, against the peer "the same files written by a busy-
 * box shell script" (echo > file), side by side.
 *   bench_cgroup N REPEAT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/cgroup.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static struct vm_limits full(unsigned i)
{
	return (struct vm_limits){
		.cpu_max_quota_us = 50000 + i, .cpu_max_period_us = 100000, .cpu_weight = 100 + i,
		.cpuset_cpus = "0-1", .cpuset_mems = "0", .memory_max = (512ULL << 20) + 4096 * i,
		.memory_high = (448ULL << 20) + 4096 * i, .memory_swap_max = 0, .pids_max = 512 + i,
	};
}

static int run(unsigned n, unsigned repeat)
{
	struct cg_manager_opts o = { .slice = "qvbench.slice" };
	struct qv_error err = {};
	cg_manager *m = NULL;
	cg_group **g = calloc(n, sizeof(*g));
	double t_apply = 0, t_change = 0, t_stats = 0, t_shell = 0;

	if (cg_manager_new(&o, &m, &err) < 0 || !cg_manager_slice_path(m)) {
		fprintf(stderr, "bench_cgroup: no cgroup v2 here: %s\n", err.message);
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "vm-b%u", i);
		if (cg_group_create(m, name, &g[i], &err) < 0) {
			fprintf(stderr, "%s\n", err.message);
			return 1;
		}
	}
	for (unsigned r = 0; r < repeat; r++) {
		double t0 = now_us();
		for (unsigned i = 0; i < n; i++) {
			struct cg_limits l = { .l = full(i) };
			if (cg_group_apply(g[i], &l, NULL, &err) < 0) {
				fprintf(stderr, "%s\n", err.message);
				return 1;
			}
		}
		double t1 = now_us();
		for (unsigned i = 0; i < n; i++) {
			struct cg_limits a = { .l = full(i) }, b = { .l = full(i + 1) };
			if (cg_group_apply(g[i], &b, &a, &err) < 0) {
				fprintf(stderr, "%s\n", err.message);
				return 1;
			}
		}
		double t2 = now_us();
		for (unsigned i = 0; i < n; i++) {
			struct cg_stats s;
			if (cg_group_read_stats(g[i], &s, &err) < 0) {
				fprintf(stderr, "%s\n", err.message);
				return 1;
			}
		}
		double t3 = now_us();
		/* Peer: one shell per group writing the same nine files. */
		for (unsigned i = 0; i < n; i++) {
			char cmd[1024];
			struct vm_limits l = full(i);
			snprintf(cmd, sizeof(cmd),
				 "cd %s && echo '%llu 100000' > cpu.max && echo %u > cpu.weight && "
				 "echo 0-1 > cpuset.cpus && echo 0 > cpuset.mems && "
				 "echo %llu > memory.high && echo %llu > memory.max && "
				 "echo 0 > memory.swap.max && echo %llu > pids.max",
				 cg_group_path(g[i]), (unsigned long long)l.cpu_max_quota_us,
				 l.cpu_weight, (unsigned long long)l.memory_high,
				 (unsigned long long)l.memory_max, (unsigned long long)l.pids_max);
			if (system(cmd) != 0) {
				fprintf(stderr, "shell peer failed\n");
				return 1;
			}
		}
		double t4 = now_us();
		t_apply += t1 - t0, t_change += t2 - t1, t_stats += t3 - t2, t_shell += t4 - t3;
	}
	double k = (double)n * repeat;
	printf("BENCH groups=%u apply_full_us=%.1f change_all_us=%.1f stats_read_us=%.1f "
	       "shell_apply_us=%.1f shell_over_qvisor=%.1fx\n",
	       n, t_apply / k, t_change / k, t_stats / k, t_shell / k, t_shell / t_apply);
	for (unsigned i = 0; i < n; i++)
		cg_group_free(g[i]);
	free(g);
	int r = cg_manager_destroy(m);
	cg_manager_free(m);
	return r < 0;
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 1;
	unsigned repeat = argc > 2 ? (unsigned)atoi(argv[2]) : 20;
	return run(n ? n : 1, repeat ? repeat : 1);
}
