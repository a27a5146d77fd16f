/* SPDX-License-Identifier: MIT */
/* The host resource loop on a real cgroup v2 with real (inner) QEMUs, inside
 * the lab VM. Each inner VM spins one vCPU (its -bios is `jmp $`), so CPU
 * demand is real; the loop (collector -> allocator -> step -> cgroup
 * writes) runs at a 1 s interval exactly as the daemon runs it.
 * CPU is compared between VMs (shares of what the VMs got), not against wall
 * time: under a loaded host the nested guests lose wall time unevenly
 * (docs/lab-vm.md). */
#include "lab/lab-util.h"

static struct vm_resources shares(uint32_t s)
{
	return (struct vm_resources){ .cpu_shares = s, .mode = VM_LOOP_HOST };
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static char *read_text(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(buf, 1, size - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

Test(hostloop, shares_2_to_1_then_the_idle_neighbour_frees_the_core, .timeout = 300)
{
	LAB_REQUIRE();
	struct lab l;
	double use[LAB_MAX_VMS];

	lab_init(&l, "0"); /* both VMs on one core */
	lab_loop(&l, 1, VM_LOOP_ENFORCE);
	struct lab_vm *a = lab_vm_start(&l, "a", "spin.bin"), *b = lab_vm_start(&l, "b", "spin.bin");
	struct vm_resources ra = shares(2000), rb = shares(1000);
	lab_manage(&l, a, &ra);
	lab_manage(&l, b, &rb);
	for (int i = 0; i < 3; i++)
		lab_tick(&l);
	cr_assert_eq(hl_loop_vm_alloc(l.loop, "a")->cpu_weight, 1000);
	cr_assert_eq(hl_loop_vm_alloc(l.loop, "b")->cpu_weight, 500);
	/* the median of 10 per-interval ratios: a host hiccup that stalls one
	 * nested VM for part of an interval (seen at load average 25) moves one
	 * interval, not the verdict */
	double r[10];
	size_t ia = (size_t)col_vm_index(l.col, "a"), ib = (size_t)col_vm_index(l.col, "b");
	uint64_t a0 = lab_usage(a), b0 = lab_usage(b);
	for (int i = 0; i < 10; i++) {
		lab_tick(&l);
		const struct col_point *pa = col_vm_last(l.col, ia), *pb = col_vm_last(l.col, ib);
		cr_assert(pa && pb && pb->cpu > 0);
		r[i] = pa->cpu / pb->cpu;
	}
	use[0] = (double)(lab_usage(a) - a0) / 1e6, use[1] = (double)(lab_usage(b) - b0) / 1e6;
	qsort(r, 10, sizeof(r[0]), cmp_double);
	double ratio = (r[4] + r[5]) / 2;
	printf("lab: shares 2:1 -> cpu ratio %.3f (median of 10 intervals, range %.3f..%.3f; "
	       "overall %.3f: a %.2f s, b %.2f s)\n", ratio, r[0], r[9], use[0] / use[1], use[0],
	       use[1]);
	cr_assert(ratio >= 1.8 && ratio <= 2.2, "ratio %.3f not within 10%% of 2", ratio);
	cr_assert_gt(use[1], 0.1, "b ran too");

	/* b goes idle (its vCPU stops): a gets the core within 3 intervals */
	lab_vm_qmp(b, "stop");
	int got = 0;
	for (int i = 1; i <= 3 && !got; i++) {
		lab_tick(&l);
		const struct col_point *pa = col_vm_last(l.col, (size_t)col_vm_index(l.col, "a"));
		const struct col_point *pb = col_vm_last(l.col, (size_t)col_vm_index(l.col, "b"));
		cr_assert(pa && pb);
		double share = pa->cpu / (pa->cpu + pb->cpu);
		printf("lab: interval %d after b stopped: a has %.1f%% of the core's VM time "
		       "(a %.3f, b %.3f cores of wall time)\n", i, share * 100, pa->cpu, pb->cpu);
		if (share >= 0.9)
			got = i;
	}
	cr_assert(got, "a did not get 90%% of the core within 3 intervals");
	lab_fini(&l);
}

Test(hostloop, a_half_core_reservation_holds_against_three_spinners, .timeout = 300)
{
	LAB_REQUIRE();
	struct lab l;
	double use[LAB_MAX_VMS];

	lab_init(&l, "0");
	lab_loop(&l, 1, VM_LOOP_ENFORCE);
	struct vm_resources r = shares(1000), rd = shares(1000);
	rd.cpu_reservation = 500;
	const char *names[] = { "n1", "n2", "n3", "r" };
	for (int i = 0; i < 4; i++)
		lab_manage(&l, lab_vm_start(&l, names[i], "spin.bin"), i == 3 ? &rd : &r);
	for (int i = 0; i < 3; i++)
		lab_tick(&l);
	lab_measure(&l, 6, use);
	double total = use[0] + use[1] + use[2] + use[3];
	printf("lab: reservation 0.5 core: r has %.1f%% of the core (%.3f of %.3f)\n",
	       use[3] / total * 100, use[3], total);
	cr_assert_geq(use[3] / total, 0.45, "r got %.3f of the core", use[3] / total);
	cr_assert_leq(use[3] / total, 0.60, "r got %.3f (more than its reservation)",
		      use[3] / total);
	for (int i = 0; i < 3; i++)
		cr_assert_geq(use[i] / total, 0.12, "%s starved: %.3f", names[i], use[i] / total);
	lab_fini(&l);
}

/* Every thread of pid: Cpus_allowed_list and the CPU it last ran on. */
static void check_threads(pid_t pid, const char *want_allowed, int want_cpu_of_vcpu)
{
	char dir[64], path[128], buf[4096];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	struct dirent *e;
	int vcpus = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
		const char *p = strstr(read_text(path, buf, sizeof(buf)), "Cpus_allowed_list:");
		cr_assert_not_null(p);
		char allowed[64];
		sscanf(p, "Cpus_allowed_list: %63s", allowed);
		cr_assert_str_eq(allowed, want_allowed, "thread %s of %d", e->d_name, (int)pid);
		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		if (!strstr(read_text(path, buf, sizeof(buf)), "TCG"))
			continue;
		/* field 39 of stat: the CPU it last ran on */
		snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
		const char *s = strrchr(read_text(path, buf, sizeof(buf)), ')');
		int field = 2, cpu = -1;
		for (; s && *s && field < 39; s++)
			if (*s == ' ')
				field++;
		cr_assert(s && sscanf(s, "%d", &cpu) == 1);
		printf("lab: pid %d vCPU thread %s allowed %s ran on cpu %d\n", (int)pid, e->d_name,
		       allowed, cpu);
		cr_assert_eq(cpu, want_cpu_of_vcpu);
		vcpus++;
	}
	closedir(d);
	cr_assert_eq(vcpus, 1, "one vCPU thread");
}

Test(hostloop, a_latency_vm_gets_an_exclusive_core, .timeout = 300)
{
	LAB_REQUIRE();
	struct lab l;
	double use[LAB_MAX_VMS];

	lab_init(&l, NULL); /* both lab CPUs */
	lab_partition(&l); /* the latency VMs' slice */
	lab_loop(&l, 2, VM_LOOP_ENFORCE);
	struct vm_resources lat = shares(1000), noisy = shares(1000);
	lat.klass = VM_CLASS_LATENCY;
	struct lab_vm *n1 = lab_vm_start(&l, "noisy1", "spin.bin");
	struct lab_vm *n2 = lab_vm_start(&l, "noisy2", "spin.bin");
	struct lab_vm *lv = lab_vm_start_in(&l, l.part, "lat", "spin.bin");
	lab_manage(&l, n1, &noisy);
	lab_manage(&l, n2, &noisy);
	lab_manage(&l, lv, &lat);
	lab_partition_root(&l, "1"); /* once booted: less contention at start */
	for (int i = 0; i < 2; i++)
		lab_tick(&l);
	char buf[64], path[600];
	snprintf(path, sizeof(path), "%s/cpuset.cpus.effective", cg_group_path(lv->g));
	cr_assert_str_eq(read_text(path, buf, sizeof(buf)), "1\n");
	snprintf(path, sizeof(path), "%s/cpuset.cpus.effective", cg_group_path(n1->g));
	cr_assert_str_eq(read_text(path, buf, sizeof(buf)), "0\n");
	/* its core is a partition root of its own (every ancestor is one) */
	snprintf(path, sizeof(path), "%s/cpuset.cpus.partition", cg_group_path(lv->g));
	cr_assert_str_eq(read_text(path, buf, sizeof(buf)), "root\n");
	json_object *pj = hl_loop_vm_json(l.loop, "lat"), *al, *by;
	cr_assert(json_object_object_get_ex(pj, "allocation", &al) &&
		  json_object_object_get_ex(al, "exclusive_by", &by), "%s",
		  json_object_to_json_string(pj));
	cr_assert_str_eq(json_object_get_string(by), "partition");
	json_object_put(pj);
	/* the root's effective cpus (everyone else's) no longer hold core 1 */
	cr_assert_str_eq(read_text("/sys/fs/cgroup/cpuset.cpus.effective", buf, sizeof(buf)),
			 "0\n");
	lab_measure_on(&l, 4, 0x3, use);
	check_threads(lv->pid, "1", 1);
	check_threads(n1->pid, "0", 0);
	check_threads(n2->pid, "0", 0);
	/* the latency VM has a core to itself, the noisy ones share the other */
	double both = use[0] + use[1];
	printf("lab: latency VM %.3f cores, noisy VMs %.3f + %.3f\n", use[2], use[0], use[1]);
	cr_assert_geq(use[2], 1.5 * use[0], "lat %.3f vs noisy1 %.3f", use[2], use[0]);
	cr_assert_geq(use[2], 1.5 * use[1], "lat %.3f vs noisy2 %.3f", use[2], use[1]);
	/* a core to itself; the noisy pair gets at most the other, which (the
	 * partition took core 1 from every other group) also runs the rest of
	 * the lab VM: one run gave lat 1.134, the noisy pair 0.603 */
	cr_assert(use[2] / both >= 0.8, "one core each side: lat %.3f, noisy together %.3f",
		  use[2], both);
	lab_fini(&l);
}

Test(hostloop, a_steady_workload_settles_and_never_oscillates, .timeout = 400)
{
	LAB_REQUIRE();
	struct lab l;

	lab_init(&l, "0");
	lab_loop(&l, 1, VM_LOOP_ENFORCE);
	struct vm_resources r1 = shares(3000), r2 = shares(1000), r3 = shares(500);
	r2.cpu_reservation = 300;
	r3.mem_reservation = 8 << 20;
	lab_manage(&l, lab_vm_start(&l, "s1", "spin.bin"), &r1);
	lab_manage(&l, lab_vm_start(&l, "s2", "spin.bin"), &r2);
	lab_manage(&l, lab_vm_start(&l, "idle", "halt.bin"), &r3);
	for (int i = 0; i < 10; i++)
		lab_tick(&l);
	unsigned long before = hl_loop_changes(l.loop);
	size_t n = 0;
	for (int i = 0; i < 60; i++)
		n += lab_tick(&l);
	printf("lab: %zu allocation changes in 60 intervals after settling (%lu before)\n", n,
	       before);
	cr_assert_eq(n, 0);
	cr_assert_eq(hl_loop_changes(l.loop), before);
	cr_assert_gt(before, 0, "the loop did allocate");
	lab_fini(&l);
}

/* Best-effort class on kernel 6.1: its group is idle (cpu.idle = 1, cgroup
 * SCHED_IDLE), so a throughput VM spinning on the same core gets nearly all
 * of it; when that VM stops, the best-effort one gets the core (idle means
 * last, not capped). */
Test(hostloop, a_best_effort_vm_is_an_idle_group_that_yields_and_fills, .timeout = 300)
{
	LAB_REQUIRE();
	struct lab l;
	char p[700], buf[16];

	lab_init(&l, "0");
	lab_loop(&l, 1, VM_LOOP_ENFORCE);
	struct lab_vm *t = lab_vm_start(&l, "t", "spin.bin"), *be = lab_vm_start(&l, "be", "spin.bin");
	struct vm_resources rt = shares(1000), rbe = shares(1000);
	rbe.klass = VM_CLASS_BEST_EFFORT;
	lab_manage(&l, t, &rt);
	lab_manage(&l, be, &rbe);
	for (int i = 0; i < 3; i++)
		lab_tick(&l);
	snprintf(p, sizeof(p), "%s/cpu.idle", cg_group_path(be->g));
	cr_assert_str_eq(read_text(p, buf, sizeof(buf)), "1\n", "%s", p);
	snprintf(p, sizeof(p), "%s/cpu.idle", cg_group_path(t->g));
	cr_assert_str_eq(read_text(p, buf, sizeof(buf)), "0\n", "%s", p);
	cr_assert(hl_loop_vm_alloc(l.loop, "be")->cpu_idle);
	json_object *j = hl_loop_vm_json(l.loop, "be"), *a, *v;
	cr_assert(json_object_object_get_ex(j, "allocation", &a));
	cr_assert(json_object_object_get_ex(a, "cpu.idle", &v) && json_object_get_int(v) == 1);
	json_object_put(j);
	/* the median of 6 per-interval shares (see the 2:1 test) */
	double s[6];
	size_t it = (size_t)col_vm_index(l.col, "t"), ib = (size_t)col_vm_index(l.col, "be");
	for (int i = 0; i < 6; i++) {
		lab_tick(&l);
		const struct col_point *pt = col_vm_last(l.col, it), *pb = col_vm_last(l.col, ib);
		cr_assert(pt && pb && pt->cpu + pb->cpu > 0);
		s[i] = pt->cpu / (pt->cpu + pb->cpu);
	}
	qsort(s, 6, sizeof(s[0]), cmp_double);
	double share = (s[2] + s[3]) / 2;
	printf("lab: best-effort (idle group) next to a throughput VM on one core: the throughput "
	       "VM has %.1f%% of the core's VM time (median of 6, range %.1f..%.1f%%)\n",
	       share * 100, s[0] * 100, s[5] * 100);
	cr_assert_geq(share, 0.9, "the throughput VM got only %.3f", share);

	/* the throughput VM stops: the idle group gets the core within 3 intervals */
	lab_vm_qmp(t, "stop");
	int got = 0;
	for (int i = 1; i <= 3 && !got; i++) {
		lab_tick(&l);
		const struct col_point *pt = col_vm_last(l.col, it), *pb = col_vm_last(l.col, ib);
		cr_assert(pt && pb);
		double sb = pb->cpu / (pt->cpu + pb->cpu);
		printf("lab: interval %d after t stopped: be has %.1f%% of the core's VM time\n", i,
		       sb * 100);
		if (sb >= 0.9)
			got = i;
	}
	cr_assert(got, "the best-effort VM did not get 90%% of the idle core within 3 intervals");
	lab_fini(&l);
}
