/* SPDX-License-Identifier: MIT */
/* qvisord's resource loop end to end in the lab VM: a real qvisord in
 * enforce mode with three real VMs (the latency one boots the test guest;
 * the two throughput ones boot a multiboot kernel that spins, so their
 * vCPUs are always busy and compete for core 0 at every instant): the latency
 * VM gets core 1 to itself, the two throughput VMs share core 0 by their
 * shares (2:1), policy.show lists each change with its reason, host.pressure
 * lists each VM's demand, and the metrics endpoint exports the knobs and the
 * CPU seconds read from each VM's cpu.stat. The latency VM's group lives in
 * the daemon's partition slice beside its slice: both are cpuset partition
 * roots of core 1, which leaves every other group's effective cpus (the
 * noisy VMs' threads are allowed only core 0); a SIGKILLed and restarted
 * qvisord keeps that layout, and when the latency VM stops, core 1 returns
 * to everyone. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/file.h"
#include "helpers/http.h"
#include "helpers/qvisord.h"
#include "lab/lab-util.h"

static struct qvt_daemon D;

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static char lat_slice[1024]; /* the partition slice, once known */

static void rm_group(const char *dir)
{
	char p[1100];
	snprintf(p, sizeof(p), "%s/cpuset.cpus.partition", dir);
	FILE *f = fopen(p, "we");
	if (f) {
		fputs("member\n", f);
		fclose(f);
	}
	for (int i = 0; i < 300 && rmdir(dir) < 0 && errno == EBUSY; i++)
		usleep(10000);
}

/* The cleanup kills the QEMUs and the daemon at once, which may leave the
 * partition slice behind (the daemon's next start would remove it): give
 * its core back, for the next suite. */
static void teardown(void)
{
	qvt_daemon_cleanup(&D);
	if (!lat_slice[0])
		return;
	DIR *d = opendir(lat_slice);
	struct dirent *e;
	char p[1400];
	while (d && (e = readdir(d)))
		if (e->d_type == DT_DIR && e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", lat_slice, e->d_name);
			rm_group(p);
		}
	if (d)
		closedir(d);
	rm_group(lat_slice);
}

static json_object *call(const char *method, const char *fmt, const char *arg)
{
	struct qv_error err = { 0 };
	json_object *res = NULL;
	cr_assert_eq(qvt_callf(&D, method, &res, &err, fmt, arg), 0, "%s: %s", method, err.message);
	return res;
}

static const char *str(json_object *o, const char *a, const char *b)
{
	json_object *v;
	if (!json_object_object_get_ex(o, a, &v) || (b && !json_object_object_get_ex(v, b, &v)))
		return "";
	return json_object_get_string(v);
}

static json_object *vm_policy(json_object *show, const char *name)
{
	json_object *vms;
	cr_assert(json_object_object_get_ex(show, "vms", &vms));
	for (size_t i = 0; i < json_object_array_length(vms); i++)
		if (strcmp(str(json_object_array_get_idx(vms, i), "name", NULL), name) == 0)
			return json_object_array_get_idx(vms, i);
	return NULL;
}

static uint64_t usage(const char *vm)
{
	json_object *s = call("vm.stats", "{\"name\":\"%s\"}", vm), *c, *u;
	cr_assert(json_object_object_get_ex(s, "cpu", &c) &&
		  json_object_object_get_ex(c, "usage_usec", &u));
	uint64_t v = (uint64_t)json_object_get_int64(u);
	json_object_put(s);
	return v;
}

static const char *cg_file(const char *dir, const char *file, char *buf, size_t size)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return qvt_first_line(p, buf, size);
}

/* The VM's cgroup directory (vm.stats), its slice and the slice's parent. */
static void dirs_of(const char *vm, char *group, char *slice, char *base, size_t size)
{
	json_object *s = call("vm.stats", "{\"name\":\"%s\"}", vm);
	char tmp[1024];
	snprintf(group, size, "%s", str(s, "cgroup", NULL));
	json_object_put(s);
	cr_assert_neq(group[0], '\0', "VM %s has a cgroup", vm);
	snprintf(tmp, sizeof(tmp), "%s", group);
	snprintf(slice, size, "%s", dirname(tmp));
	snprintf(tmp, sizeof(tmp), "%s", slice);
	snprintf(base, size, "%s", dirname(tmp));
}

/* Whether every thread of the VM's QEMU is allowed exactly the cpus want;
 * the first mismatch goes to why. */
static bool threads_allowed(const char *vm, const char *want, char *why, size_t size)
{
	int pid = qvt_vm_pid(&D, vm);
	char dir[64], path[600], buf[4096];
	struct dirent *e;
	int n = 0;
	bool ok = true;

	snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
	DIR *d = pid > 0 ? opendir(dir) : NULL;
	if (!d) {
		snprintf(why, size, "VM %s: no QEMU (pid %d)", vm, pid);
		return false;
	}
	while (ok && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
		FILE *f = fopen(path, "re");
		char allowed[64] = "?";
		while (f && fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "Cpus_allowed_list: %63s", allowed) == 1)
				break;
		if (f)
			fclose(f);
		n++;
		if (strcmp(allowed, want) != 0) {
			snprintf(why, size, "VM %s: thread %s of %d allowed %s, not %s", vm,
				 e->d_name, pid, allowed, want);
			ok = false;
		}
	}
	closedir(d);
	if (ok)
		snprintf(why, size, "VM %s: %d threads of %d allowed %s", vm, n, pid, want);
	return ok && n > 0;
}

/* The latency VM's core is a partition: its group and its slice are roots,
 * the cgroup root and the shared slice keep only core 0, and each noisy
 * VM's threads are allowed only core 0, the latency VM's only core 1. */
static void check_partition(const char *when)
{
	char lg[1024], ls[1024], base[1024], tg[1024], ts[1024], tb[1024], b[256], why[256];

	dirs_of("lat", lg, ls, base, sizeof(lg));
	snprintf(lat_slice, sizeof(lat_slice), "%s", ls);
	dirs_of("t1", tg, ts, tb, sizeof(tg));
	printf("lab: %s: lat in %s (%s), t1 in %s\n", when, lg, ls, tg);
	cr_assert_str_eq(base, tb, "the partition slice is beside the daemon's slice");
	cr_assert_str_neq(ls, ts);
	cr_assert_str_eq(cg_file(lg, "cpuset.cpus.partition", b, sizeof(b)), "root", "%s", when);
	cr_assert_str_eq(cg_file(lg, "cpuset.cpus.effective", b, sizeof(b)), "1", "%s", when);
	cr_assert_str_eq(cg_file(ls, "cpuset.cpus.partition", b, sizeof(b)), "root", "%s", when);
	cr_assert_str_eq(cg_file(ls, "cpuset.cpus", b, sizeof(b)), "1", "%s", when);
	cr_assert_str_eq(cg_file(base, "cpuset.cpus.effective", b, sizeof(b)), "0",
			 "%s: the root keeps core 0 only", when);
	cr_assert_str_eq(cg_file(ts, "cpuset.cpus.effective", b, sizeof(b)), "0",
			 "%s: the daemon's slice keeps core 0 only", when);
	for (int i = 0; i < 2; i++) {
		const char *vm = i ? "t2" : "t1";
		cr_assert(threads_allowed(vm, "0", why, sizeof(why)), "%s: %s", when, why);
		printf("lab: %s: %s\n", when, why);
	}
	cr_assert(threads_allowed("lat", "1", why, sizeof(why)), "%s: %s", when, why);
	printf("lab: %s: %s\n", when, why);
}

/* What a share measurement depends on, printed beside it. */
static void print_vm_cpu_state(const char *vm)
{
	char g[1024], sl[1024], base[1024], b[512], line[1024];
	static const char *const files[] = { "cpu.weight", "cpu.max", "cpu.pressure",
					     "memory.high", "memory.current" };

	dirs_of(vm, g, sl, base, sizeof(g));
	int n = snprintf(line, sizeof(line), "lab: %s:", vm);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && n < (int)sizeof(line); i++)
		n += snprintf(line + n, sizeof(line) - n, " %s=%s", files[i],
			      cg_file(g, files[i], b, sizeof(b)));
	printf("%s\n", line);
	fflush(stdout);
}

/* policy.show until lat's exclusive cores are a partition again. */
static json_object *wait_partition(void)
{
	json_object *show = NULL;
	for (int i = 0; i < 60; i++) {
		json_object_put(show);
		show = call("policy.show", "{}%s", "");
		if (strcmp(str(vm_policy(show, "lat"), "allocation", "exclusive_by"), "partition") == 0)
			break;
		qvt_sleep_ms(500);
	}
	return show;
}

Test(daemon_loop, qvisord_allocates_reports_and_exports, .fini = teardown, .timeout = 600)
{
	LAB_REQUIRE();
	struct qv_error err = { 0 };
	const char *vms[] = { "lat", "t1", "t2" };
	/* t1 and t2 boot the lab's spinning multiboot kernel (scripts/labvm.sh):
	 * a booting Linux sleeps now and then (timers, device probes), which
	 * would give the other VM room beyond its share. With spinners the
	 * split is the scheduler's: it read 1.51-1.66 in 3 of 6 runs while the
	 * loop made the partition in the tick of the cpuset writes (the stale
	 * blocked load of sched/resloop-tick.c enter_partitions()). */
	const char *fw = getenv("QV_LAB_FW");
	char extra[3][512];
	snprintf(extra[0], sizeof(extra[0]),
		 "{\"memory\":128,\"resources\":{\"class\":\"latency\"}}");
	snprintf(extra[1], sizeof(extra[1]),
		 "{\"memory\":128,\"kernel\":\"%s/spin-multiboot.bin\",\"resources\":"
		 "{\"cpu\":{\"shares\":2000},\"memory\":{\"reservation\":\"96M\"}}}",
		 fw ? fw : "/lab/fw");
	snprintf(extra[2], sizeof(extra[2]),
		 "{\"memory\":128,\"kernel\":\"%s/spin-multiboot.bin\",\"resources\":"
		 "{\"cpu\":{\"shares\":1000}}}", fw ? fw : "/lab/fw");

	D.extra_args[0] = "--loop-mode";
	D.extra_args[1] = "enforce";
	D.extra_args[2] = "--metrics-listen";
	D.extra_args[3] = "127.0.0.1:9464";
	cr_assert_eq(qvt_daemon_start(&D), 0, "qvisord did not start (log %s)", D.log);
	/* Each VM is paused once started: a QEMU starting next to two busy
	 * nested-TCG vCPUs on two lab CPUs can miss the daemon's QMP deadline. */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(qvt_define_guest(&D, vms[i], extra[i], &err), 0, "%s", err.message);
		json_object_put(call("vm.start", "{\"name\":\"%s\"}", vms[i]));
		json_object_put(call("vm.pause", "{\"name\":\"%s\"}", vms[i]));
	}
	for (int i = 0; i < 3; i++)
		json_object_put(call("vm.resume", "{\"name\":\"%s\"}", vms[i]));
	/* the loop's first ticks place everyone */
	json_object *show = NULL;
	for (int i = 0; i < 60; i++) {
		json_object_put(show);
		qvt_sleep_ms(500);
		show = call("policy.show", "{}%s", "");
		json_object *l = vm_policy(show, "lat"), *t = vm_policy(show, "t2");
		if (l && t && strcmp(str(l, "allocation", "cpuset.cpus"), "1") == 0 &&
		    strcmp(str(l, "allocation", "exclusive_by"), "") != 0 &&
		    strcmp(str(t, "allocation", "cpu.weight"), "500") == 0)
			break;
	}
	printf("lab: policy.show %s\n", json_object_to_json_string(show));
	cr_assert_str_eq(str(vm_policy(show, "lat"), "allocation", "cpuset.cpus"), "1");
	cr_assert_str_eq(str(vm_policy(show, "lat"), "allocation", "exclusive"), "true");
	/* the latency VM's group is in the partition slice: both become
	 * partition roots of core 1 (on 6.1 the parent must be one) */
	cr_assert_str_eq(str(vm_policy(show, "lat"), "allocation", "exclusive_by"), "partition",
			 "%s", json_object_to_json_string(show));
	check_partition("started");
	cr_assert_str_eq(str(vm_policy(show, "t1"), "allocation", "cpuset.cpus"), "0");
	cr_assert_str_eq(str(vm_policy(show, "t1"), "allocation", "cpu.weight"), "1000");
	cr_assert_str_eq(str(vm_policy(show, "t2"), "allocation", "cpu.weight"), "500");
	/* 6.1 has cgroup SCHED_IDLE: reported (and written) for every VM, 0 for
	 * the throughput and latency classes */
	cr_assert_str_eq(str(vm_policy(show, "t1"), "allocation", "cpu.idle"), "0");
	cr_assert_str_eq(str(vm_policy(show, "lat"), "allocation", "cpu.idle"), "0");
	cr_assert_str_eq(str(show, "mode", NULL), "enforce");
	cr_assert_not_null(strstr(json_object_to_json_string(show), "initial allocation"));
	json_object_put(show);

	/* the throughput VMs share core 0 by their shares: the median of 12
	 * one-second ratios (a loaded host stalls nested VMs unevenly; with the
	 * partition, core 0 also runs the rest of the lab VM, qvisord and this
	 * test). Up to three windows: one disturbed window may miss the ±10 %
	 * band, a wrong allocation (1:1, or 2:1 the wrong way) misses all
	 * three. The library test (hostloop) holds the band in one window. */
	double ratio = 0;
	for (int w = 0; w < 3; w++) {
		double r[12];
		uint64_t a0 = usage("t1"), b0 = usage("t2"), s0a = a0, s0b = b0;
		for (int i = 0; i < 12; i++) {
			uint64_t a1, b1;
			/* a second, longer while a stalled nested VM has not run */
			for (int k = 0; k < 10; k++) {
				qvt_sleep_ms(1000);
				a1 = usage("t1"), b1 = usage("t2");
				if (b1 > b0 && a1 > a0)
					break;
			}
			cr_assert_gt(b1, b0, "t2 ran");
			r[i] = (double)(a1 - a0) / (double)(b1 - b0);
			a0 = a1, b0 = b1;
		}
		qsort(r, 12, sizeof(r[0]), cmp_double);
		ratio = (r[5] + r[6]) / 2;
		printf("lab: daemon shares 2:1 -> t1/t2 = %.3f (window %d, median of 12 s, range "
		       "%.3f..%.3f; overall %.3f)\n", ratio, w + 1, r[0], r[11],
		       (double)(a0 - s0a) / (double)(b0 - s0b));
		fflush(stdout);
		print_vm_cpu_state("t1");
		print_vm_cpu_state("t2");
		if (ratio >= 1.8 && ratio <= 2.2)
			break;
	}
	cr_assert(ratio >= 1.8 && ratio <= 2.2, "t1/t2 = %.3f in three windows", ratio);

	/* memory: t1's reservation is memory.low, and memory.high (its demand
	 * with headroom) never below it */
	show = call("policy.show", "{}%s", "");
	const char *low = str(vm_policy(show, "t1"), "allocation", "memory.low");
	const char *high = str(vm_policy(show, "t1"), "allocation", "memory.high");
	printf("lab: t1 memory.low %s memory.high %s\n", low, high);
	cr_assert_eq(strtoull(low, NULL, 10), 96ull << 20, "memory.low %s", low);
	cr_assert(streq(high, "max") || strtoull(high, NULL, 10) >= 96ull << 20, "memory.high %s",
		  high);
	json_object_put(show);

	json_object *p = call("host.pressure", "{}%s", ""), *pv;
	cr_assert(json_object_object_get_ex(p, "vms", &pv));
	cr_assert_eq(json_object_array_length(pv), 3);
	cr_assert_str_eq(str(json_object_array_get_idx(pv, 0), "demand", "known"), "true");
	json_object_put(p);

	static char body[262144];
	cr_assert_eq(qvt_http_get(9464, "/metrics", body, sizeof(body)), 200);
	cr_assert_not_null(strstr(body, "qvisor_vm_cpu_weight{vm=\"t1\"} 1000\n"), "%s", body);
	cr_assert_not_null(strstr(body, "qvisor_vm_cpu_exclusive{vm=\"lat\"} 1\n"), "%s", body);
	cr_assert_not_null(strstr(body, "qvisor_vm_cpu_seconds_total{vm=\"lat\"}"), "%s", body);
	cr_assert_not_null(strstr(body, "qvisor_vm_pressure_ratio{vm=\"t2\",resource=\"cpu\""),
			   "PSI from the VM's cgroup");

	/* qvisord crashes and restarts with the VMs running: it adopts the
	 * latency VM's group in the partition slice and keeps the layout */
	char lg[1024], ls[1024], base[1024], b[256], why[256];
	dirs_of("lat", lg, ls, base, sizeof(lg));
	int lat_pid = qvt_vm_pid(&D, "lat");
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);
	cr_assert_str_eq(cg_file(lg, "cpuset.cpus.partition", b, sizeof(b)), "root");
	cr_assert_str_eq(cg_file(ls, "cpuset.cpus.partition", b, sizeof(b)), "root");
	D.extra_args[2] = NULL; /* no second metrics listener on the same port */
	cr_assert_eq(qvt_daemon_start(&D), 0, "qvisord did not restart (log %s)", D.log);
	cr_assert_eq(qvt_vm_pid(&D, "lat"), lat_pid, "the latency VM kept running");
	show = wait_partition();
	printf("lab: after the restart: %s\n", json_object_to_json_string(vm_policy(show, "lat")));
	cr_assert_str_eq(str(vm_policy(show, "lat"), "allocation", "exclusive_by"), "partition");
	json_object_put(show);
	check_partition("restarted");

	/* the latency VM stops: its core returns to everyone */
	json_object_put(call("vm.stop", "{\"name\":\"%s\",\"force\":true}", "lat"));
	bool back = false;
	for (int i = 0; i < 60 && !back; i++) {
		qvt_sleep_ms(500);
		back = access(ls, F_OK) < 0 &&
		       strcmp(cg_file(base, "cpuset.cpus.effective", b, sizeof(b)), "0-1") == 0 &&
		       threads_allowed("t1", "0-1", why, sizeof(why)) &&
		       threads_allowed("t2", "0-1", why, sizeof(why));
	}
	char tg[1024], ts[1024], tb[1024], tc[256];
	dirs_of("t1", tg, ts, tb, sizeof(tg));
	printf("lab: lat stopped: %s %s, root effective %s; t1 cpuset.cpus \"%s\"; %s\n", ls,
	       access(ls, F_OK) < 0 ? "removed" : "still there", b,
	       cg_file(tg, "cpuset.cpus", tc, sizeof(tc)), why);
	cr_assert(access(ls, F_OK) < 0, "the partition slice %s is removed", ls);
	cr_assert_str_eq(b, "0-1", "the root has core 1 again");
	cr_assert(back, "%s", why);
}
