/* SPDX-License-Identifier: MIT */
/* The collector against fixture files (a directory shaped like a cgroup and
 * one shaped like /proc): rates, history rings, host parsers. The real
 * cgroup files are read in the lab VM (tests/lab/test_hostloop.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sched/collect.h"

static char dir[64], cg[96], proc[96];

static void put(const char *d, const char *file, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", d, file);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	fputs(text, f);
	fclose(f);
}

static void cpu_stat(uint64_t usage, uint64_t throttled)
{
	char t[256];
	snprintf(t, sizeof(t), "usage_usec %llu\nuser_usec 0\nsystem_usec 0\nnr_periods 10\n"
		 "nr_throttled 1\nthrottled_usec %llu\n", (unsigned long long)usage,
		 (unsigned long long)throttled);
	put(cg, "cpu.stat", t);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qvt-collect-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cg, sizeof(cg), "%s/vm", dir);
	snprintf(proc, sizeof(proc), "%s/proc", dir);
	mkdir(cg, 0755);
	mkdir(proc, 0755);
	char pr[128];
	snprintf(pr, sizeof(pr), "%s/pressure", proc);
	mkdir(pr, 0755);
	cpu_stat(0, 0);
	put(cg, "memory.current", "104857600\n");
	put(cg, "memory.stat", "anon 90000000\nfile 1000\n");
	put(cg, "memory.events", "low 0\nhigh 7\nmax 0\noom 0\noom_kill 0\n");
	put(cg, "io.stat", "8:0 rbytes=1000 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
	put(cg, "cpu.pressure", "some avg10=12.50 avg60=1.00 avg300=0.00 total=5\n"
				"full avg10=3.00 avg60=0.00 avg300=0.00 total=1\n");
	put(cg, "memory.pressure", "some avg10=1.00 avg60=0.00 avg300=0.00 total=0\n"
				   "full avg10=0.50 avg60=0.00 avg300=0.00 total=0\n");
	put(proc, "stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n"
			  "cpu1 50 0 50 400 0 0 0 0 0 0\nintr 1\n");
	put(proc, "meminfo", "MemTotal:        4000000 kB\nMemFree: 1 kB\n"
			     "MemAvailable:    3000000 kB\n");
	put(proc, "pressure/cpu", "some avg10=2.00 avg60=0.00 avg300=0.00 total=0\n");
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)system(cmd);
}

TestSuite(collect, .init = setup, .fini = teardown);

Test(collect, two_passes_give_rates_and_history)
{
	qv_collector *c = NULL;
	struct col_opts o = { .fine_points = 4, .coarse_points = 2, .coarse_every = 2,
			      .proc_root = proc };

	cr_assert_eq(col_new(&o, &c), 0);
	cr_assert_eq(col_add_vm(c, "a", cg), 0);
	cr_assert_eq(col_add_vm(c, "a", cg), -EEXIST);
	cr_assert_eq(col_add_vm(c, "b", "/nonexistent/x"), -ENOENT);
	cr_assert_eq(col_poll(c, 1000000), 1);
	cr_assert_null(col_vm_last(c, 0), "one pass gives no rate");
	cr_assert_eq(col_vm_raw(c, 0)->mem_current, 104857600);
	cr_assert_eq(col_vm_raw(c, 0)->mem_ev_high, 7);
	cr_assert_eq(col_vm_raw(c, 0)->io_rbytes, 1000);
	/* 2 s later: 1.5 s of CPU, 0.5 s throttled; proc: 200 more busy of 400 */
	cpu_stat(1500000, 500000);
	put(proc, "stat", "cpu  200 0 200 1000 0 0 0 0 0 0\ncpu0 1\ncpu1 1\n");
	put(cg, "io.stat", "8:0 rbytes=5000 wbytes=2000 rios=2 wios=1\n"
			   "8:16 rbytes=1000 wbytes=0 rios=1 wios=0\n");
	cr_assert_eq(col_poll(c, 3000000), 1);
	const struct col_point *p = col_vm_last(c, 0);
	cr_assert_not_null(p);
	cr_assert_float_eq(p->cpu, 0.75, 1e-6);
	cr_assert_float_eq(p->throttled, 0.25, 1e-6);
	cr_assert_float_eq(p->mem_mib, 100, 1e-3);
	cr_assert_float_eq(p->io_rbps, 2500, 1e-3, "(6000 - 1000) / 2 s");
	cr_assert_float_eq(p->io_wbps, 1000, 1e-3);
	cr_assert_float_eq(p->psi[COL_PSI_CPU_SOME], 12.5, 1e-6);
	cr_assert_float_eq(p->psi[COL_PSI_CPU_FULL], 3.0, 1e-6);
	cr_assert_float_eq(p->psi[COL_PSI_MEM_FULL], 0.5, 1e-6);
	cr_assert_eq(p->t_s, 2);
	const struct col_host *h = col_host(c);
	cr_assert_eq(h->ncpus, 2);
	cr_assert(h->valid);
	cr_assert_float_eq(h->rate.cpu, 1.0, 1e-6, "200 busy of 400 jiffies on 2 cpus");
	cr_assert_eq(h->mem_total, 4000000ull * 1024);
	cr_assert_float_eq(h->rate.psi[COL_PSI_CPU_SOME], 2.0, 1e-6);

	/* history: fine ring of 4 keeps the newest 4; coarse averages pairs */
	for (int i = 0; i < 5; i++) {
		cpu_stat(1500000 + (uint64_t)(i + 1) * 1000000, 500000);
		col_poll(c, 3000000 + (uint64_t)(i + 1) * 1000000);
	}
	struct col_point hist[8];
	cr_assert_eq(col_vm_history(c, 0, false, hist, 8), 4);
	cr_assert_eq(hist[0].t_s, 4);
	cr_assert_eq(hist[3].t_s, 7);
	cr_assert_eq(col_vm_history(c, 0, true, hist, 8), 2);
	cr_assert_float_eq(hist[1].cpu, 1.0, 1e-6);
	cr_assert_eq(col_vm_history(c, 0, false, hist, 2), 2, "max respected");
	cr_assert_eq(hist[1].t_s, 7, "newest last");
	cr_assert_eq(col_remove_vm(c, "a"), 0);
	cr_assert_eq(col_vm_count(c), 0);
	col_free(c);
}

Test(collect, a_group_without_readable_files_is_stale_not_an_error)
{
	qv_collector *c = NULL;
	struct col_opts o = { .proc_root = proc };
	char empty[128];

	/* a removed cgroup's files fail to read (ENODEV); a directory without
	 * them is read the same way: nothing counts, no rate, no error */
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	cr_assert_eq(mkdir(empty, 0755), 0);
	cr_assert_eq(col_new(&o, &c), 0);
	cr_assert_eq(col_add_vm(c, "a", cg), 0);
	cr_assert_eq(col_add_vm(c, "gone", empty), 0);
	cr_assert_eq(col_poll(c, 1), 1);
	cr_assert_eq(col_poll(c, 1000001), 1);
	cr_assert_not_null(col_vm_last(c, 0));
	cr_assert_null(col_vm_last(c, 1));
	cr_assert_null(col_vm_raw(c, 1));
	col_free(c);
}

Test(collect, host_parsers_reject_garbage)
{
	uint64_t a, b;
	unsigned n;

	cr_assert_eq(col_parse_proc_stat("intr 1 2 3\n", &a, &b, &n), -EINVAL);
	cr_assert_eq(col_parse_meminfo("MemFree: 1 kB\n", &a, &b), -EINVAL);
	cr_assert_eq(col_parse_proc_stat("cpu 1 2 3 4 5 6 7 8\ncpu0 x\n", &a, &b, &n), 0);
	cr_assert_eq(b, 36);
	cr_assert_eq(a, 36 - 4 - 5);
	cr_assert_eq(n, 1);
}

Test(collect, a_vm_watched_by_pid_reports_cpu_and_memory)
{
	qv_collector *c = NULL;
	struct col_opts o = { .proc_root = proc };

	cr_assert_eq(col_new(&o, &c), 0);
	cr_assert_eq(col_add_vm_pid(c, "self", getpid()), 0);
	cr_assert_eq(col_add_vm_pid(c, "self", getpid()), -EEXIST);
	cr_assert_eq(col_add_vm_pid(c, "none", 0), -EINVAL);
	cr_assert(col_vm_by_pid(c, 0));
	col_poll(c, 1000000);
	/* burn ~200 ms of CPU */
	struct timespec a, b;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	volatile unsigned long x = 0;
	do {
		for (int i = 0; i < 100000; i++)
			x += (unsigned long)i;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	} while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 200);
	col_poll(c, 2000000);
	const struct col_point *p = col_vm_last(c, 0);
	cr_assert_not_null(p);
	cr_assert_geq(p->cpu, 0.15, "%.3f cores over the 1 s fake interval", p->cpu);
	cr_assert_gt(p->mem_mib, 0.5);
	cr_assert_geq(col_vm_raw(c, 0)->cpu_usage_usec, 150000);
	col_free(c);
}
