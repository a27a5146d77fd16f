/* SPDX-License-Identifier: MIT */
/* Benchmark (scripts/bench/policy-effect.sh runs it in the lab VM): the
 * resource loop's effect on a latency-class VM next to CPU hogs. Three
 * spinning inner VMs (throughput class) and a "latency VM": a cgroup with
 * a timer loop that sleeps 1 ms and records how late it wakes (the inner
 * VMs boot no OS, so the wake-up probe runs as a process in the latency
 * VM's group). Mode off vs enforce, side by side in one run: wake-up
 * latency p50/p99 and the hogs' total CPU. */
#include <math.h>

#include "lab/lab-util.h"

#define SAMPLES 3000

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Child in group g: SAMPLES 1-ms sleeps, lateness in us written to fd. */
static pid_t probe(cg_group *g, int fd)
{
	pid_t pid = fork();
	if (pid)
		return pid;
	cg_group_attach(g, getpid(), NULL);
	static double late[SAMPLES];
	for (int i = 0; i < SAMPLES; i++) {
		struct timespec a, b, d = { 0, 1000000 };
		clock_gettime(CLOCK_MONOTONIC, &a);
		clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		late[i] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec) - 1e6) / 1e3;
	}
	if (write(fd, late, sizeof(late)) != (ssize_t)sizeof(late))
		_exit(1);
	_exit(0);
}

/* partition: the latency VM's group sits in a slice that is a cpuset
 * partition root of core 1, so the loop makes the group a partition root
 * too: no other task of the lab VM (the hogs' every thread, this driver,
 * the kernel's unbound work) may run on that core. */
static void run(enum vm_loop_mode mode, bool partition)
{
	struct lab l;
	struct qv_error err = { 0 };
	cg_group *lg = NULL;
	int p[2];

	lab_init(&l, NULL);
	if (partition)
		lab_partition(&l);
	lab_loop(&l, 2, mode);
	struct vm_resources hog = { .cpu_shares = 1000 }, lat = { .cpu_shares = 1000,
								   .klass = VM_CLASS_LATENCY };
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "hog%d", i);
		lab_manage(&l, lab_vm_start(&l, name, "spin.bin"), &hog);
	}
	cr_assert_eq(cg_group_create(partition ? l.part : l.m, "lat", &lg, &err), 0, "%s",
		     err.message);
	cr_assert_eq(hl_loop_add_vm(l.loop, "lat", cg_group_path(lg), &lat, 1, 16 << 20), 0);
	if (partition)
		lab_partition_root(&l, "1");
	for (int i = 0; i < 3; i++)
		lab_tick(&l);
	uint64_t u0 = 0, u1 = 0, t0 = lab_now_us();
	for (size_t i = 0; i < l.n; i++)
		u0 += lab_usage(&l.vm[i]);
	cr_assert_eq(pipe(p), 0);
	pid_t pid = probe(lg, p[1]);
	static double late[SAMPLES];
	size_t got = 0;
	while (got < sizeof(late)) {
		ssize_t n = read(p[0], (char *)late + got, sizeof(late) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	waitpid(pid, NULL, 0);
	double dt = (double)(lab_now_us() - t0);
	for (size_t i = 0; i < l.n; i++)
		u1 += lab_usage(&l.vm[i]);
	cr_assert_eq(got, sizeof(late));
	qsort(late, SAMPLES, sizeof(late[0]), cmp);
	printf("BENCH policy mode=%s%s wakeup_late_us p50=%.0f p99=%.0f max=%.0f hogs_cpu_cores=%.3f\n",
	       vm_loop_mode_to_string(mode), partition ? "+partition" : "", late[SAMPLES / 2], late[SAMPLES * 99 / 100],
	       late[SAMPLES - 1], (double)(u1 - u0) / dt);
	close(p[0]);
	close(p[1]);
	cg_group_remove(lg, 2000);
	lab_fini(&l);
}

Test(bench, policy_effect, .timeout = 1200)
{
	LAB_REQUIRE();
	for (int round = 0; round < 2; round++) {
		run(VM_LOOP_OFF, false);
		run(VM_LOOP_ENFORCE, false);
		run(VM_LOOP_ENFORCE, true);
	}
}
