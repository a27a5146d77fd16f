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

enum variant { V_OFF, V_PARTITION, V_WEIGHT, V_IDLE };
static const char *const vname[] = { "off", "enforce+partition", "enforce+shared+weight",
				      "enforce+shared+idle" };

/* "cpu.idle" of a group as read back ("-" without the file). */
static void read_idle(cg_group *g, char *buf, size_t size)
{
	char p[700];
	snprintf(p, sizeof(p), "%s/cpu.idle", cg_group_path(g));
	FILE *f = fopen(p, "re");
	snprintf(buf, size, "-");
	if (f && fgets(buf, (int)size, f))
		buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* partition: the latency VM's group sits in a slice that is a cpuset
 * partition root of core 1, so the loop makes the group a partition root
 * too: no other task of the lab VM (the hogs' every thread, this driver,
 * the kernel's unbound work) may run on that core. */
static void run(enum variant v)
{
	struct lab l;
	struct qv_error err = { 0 };
	cg_group *lg = NULL;
	int p[2];
	bool partition = v == V_PARTITION;
	enum vm_loop_mode mode = v == V_OFF ? VM_LOOP_OFF : VM_LOOP_ENFORCE;

	lab_init(&l, NULL);
	if (partition)
		lab_partition(&l);
	/* shared variants: no exclusive core on this 2-CPU host */
	struct hl_loop_opts o = { .caps = { .ncpus = 2, .mem_total = 1024ull << 20,
					    .exclusive_min_cpus = v >= V_WEIGHT ? 4 : 0 },
				  .mode = mode };
	cr_assert_eq(col_new(NULL, &l.col), 0);
	cr_assert_eq(hl_loop_new(&o, l.col, &l.loop), 0);
	struct vm_resources hog = { .cpu_shares = v == V_WEIGHT ? 50 : 1000,
				    .klass = v == V_IDLE ? VM_CLASS_BEST_EFFORT : VM_CLASS_THROUGHPUT };
	struct vm_resources lat = { .cpu_shares = 1000, .klass = VM_CLASS_LATENCY };
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
	char idle[8];
	read_idle(l.vm[0].g, idle, sizeof(idle));
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
	printf("BENCH policy mode=%s wakeup_late_us p50=%.0f p99=%.0f max=%.0f hogs_cpu_cores=%.3f "
	       "hog_cpu.idle=%s\n", vname[v], late[SAMPLES / 2], late[SAMPLES * 99 / 100],
	       late[SAMPLES - 1], (double)(u1 - u0) / dt, idle);
	fflush(stdout);
	close(p[0]);
	close(p[1]);
	cg_group_remove(lg, 2000);
	lab_fini(&l);
}

Test(bench, policy_effect, .timeout = 1700)
{
	LAB_REQUIRE();
	int rounds = getenv("QV_BENCH_ROUNDS") ? atoi(getenv("QV_BENCH_ROUNDS")) : 3;
	for (int round = 0; round < rounds; round++)
		for (enum variant v = V_OFF; v <= V_IDLE; v++)
			run(v);
}
