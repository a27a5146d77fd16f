/* SPDX-License-Identifier: MIT */
/* sched/cgroup against a REAL cgroup2 tree. This host's cgroup2 has no
 * cpu/memory controllers, so these tests skip here; tests/integration/
 * test_cgroup_vm.c runs this binary inside the TCG test guest (full cgroup v2,
 * QV_IN_TEST_VM=1), where a missing controller is a failure, not a skip. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/cgroup.h"

#define NEED (CG_CPU | CG_MEMORY | CG_PIDS)

static bool in_vm(void)
{
	return getenv("QV_IN_TEST_VM") != NULL;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A manager on a private slice, or skip (host) / fail (VM). */
static cg_manager *mgr_or_skip(bool move_self)
{
	struct cg_manager_opts o = { .move_self = move_self };
	struct qv_error err = {};
	char slice[64], desc[512], have[96];
	cg_manager *m = NULL;

	snprintf(slice, sizeof(slice), "qvt-%d.slice", (int)getpid());
	o.slice = slice;
	int r = cg_manager_new(&o, &m, &err);
	if (r < 0) {
		if (in_vm())
			cr_assert_fail("cg_manager_new: %s", err.message);
		cr_skip_test("no usable cgroup2 here: %s", err.message);
	}
	if ((cg_manager_controllers(m) & NEED) != NEED) {
		cg_host_describe(cg_manager_host(m), desc, sizeof(desc));
		cg_controllers_format(cg_manager_controllers(m), have, sizeof(have));
		if (in_vm())
			cr_assert_fail("inside the test VM but controllers are %s (%s)", have, desc);
		cg_manager_destroy(m);
		cg_manager_free(m);
		cr_skip_test("host cgroup v2 lacks cpu/memory/pids (%s; usable: %s); "
			     "tests/integration/test_cgroup_vm.c runs these in a VM", desc, have);
	}
	return m;
}

static void finish(cg_manager *m)
{
	char path[CG_PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s", cg_manager_slice_path(m));
	cr_assert_eq(cg_manager_destroy(m), 0, "destroy");
	cr_assert(stat(path, &st) < 0 && errno == ENOENT, "%s is left behind", path);
	cg_manager_free(m);
}

static cg_group *group(cg_manager *m, const char *name, const struct vm_limits *l)
{
	struct qv_error err = {};
	cg_group *g = NULL;

	cr_assert_eq(cg_group_create(m, name, &g, &err), 0, "create: %s", err.message);
	if (l) {
		struct cg_limits lim = { .l = *l };
		cr_assert_eq(cg_group_apply(g, &lim, NULL, &err), 0, "apply: %s", err.message);
	}
	return g;
}

static struct vm_limits no_limits(void)
{
	return (struct vm_limits){ .memory_swap_max = -1 };
}

/* Fork a child that joins g and runs fn. */
static pid_t spawn_in(cg_group *g, void (*fn)(void *), void *ud)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (cg_group_attach(g, getpid(), NULL) < 0)
			_exit(100);
		fn(ud);
		_exit(0);
	}
	return pid;
}

static void busy(void *ud)
{
	volatile uint64_t x = 0;
	for (;;)
		x++;
}

static uint64_t usage_usec(cg_group *g)
{
	struct cg_stats s;
	struct qv_error err = {};
	cr_assert_eq(cg_group_read_stats(g, &s, &err), 0, "%s", err.message);
	return s.cpu_usage_usec;
}

/* CPU share of one CPU used by g over ms milliseconds of guest time. */
static double share_over(cg_group *g, unsigned ms)
{
	uint64_t u0 = usage_usec(g), t0 = now_us();
	sleep_ms(ms);
	uint64_t u1 = usage_usec(g), t1 = now_us();
	return (double)(u1 - u0) / (double)(t1 - t0);
}

static void reap(cg_group *g, pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cg_group_kill(g);
}

TestSuite(cgroup, .timeout = 120);

Test(cgroup, cpu_max_holds_a_busy_loop_at_20_percent)
{
	cg_manager *m = mgr_or_skip(false);
	struct vm_limits l = no_limits();
	l.cpu_max_quota_us = 20000;
	l.cpu_max_period_us = 100000;
	cg_group *g = group(m, "vm-cpu20", &l);
	pid_t pid = spawn_in(g, busy, NULL);

	sleep_ms(500); /* let it settle into the bandwidth pattern */
	double share = share_over(g, 3000);
	struct cg_stats s;
	cr_assert_eq(cg_group_read_stats(g, &s, NULL), 0);
	reap(g, pid);
	cg_group_remove(g, 2000);
	finish(m);
	printf("cpu.max 20%%: measured %.3f of one CPU, nr_throttled %llu\n", share,
	       (unsigned long long)s.cpu_nr_throttled);
	cr_expect_gt(s.cpu_nr_throttled, 0, "the group was never throttled");
	cr_assert(share > 0.15 && share < 0.25, "busy loop used %.3f of a CPU (want 0.20 +- 0.05)",
		  share);
}

Test(cgroup, cpu_max_live_change_takes_effect_within_a_period)
{
	cg_manager *m = mgr_or_skip(false);
	struct vm_limits l = no_limits(), l2;
	struct qv_error err = {};
	l.cpu_max_quota_us = 20000;
	l.cpu_max_period_us = 100000;
	cg_group *g = group(m, "vm-live", &l);
	pid_t pid = spawn_in(g, busy, NULL);

	sleep_ms(300);
	double before = share_over(g, 1000);
	l2 = l;
	l2.cpu_max_quota_us = 50000;
	struct cg_limits nl = { .l = l2 }, ol = { .l = l };
	cr_assert_eq(cg_group_apply(g, &nl, &ol, &err), 0, "%s", err.message);
	sleep_ms(100); /* one period */
	double after = share_over(g, 2000);
	reap(g, pid);
	cg_group_remove(g, 2000);
	finish(m);
	printf("cpu.max 20%% -> 50%%: %.3f -> %.3f\n", before, after);
	cr_assert(before > 0.12 && before < 0.28, "before: %.3f", before);
	cr_assert(after > 0.40 && after < 0.60, "after the change: %.3f (want 0.50 +- 0.10)", after);
}

static void hog(void *ud)
{
	size_t mib = (size_t)(uintptr_t)ud;
	for (size_t i = 0; i < mib; i++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (p == MAP_FAILED)
			_exit(3);
		memset(p, 0x5a, 1 << 20);
	}
	_exit(0);
}

Test(cgroup, memory_max_triggers_an_oom_kill)
{
	cg_manager *m = mgr_or_skip(false);
	struct vm_limits l = no_limits();
	l.memory_max = 32 << 20;
	l.memory_swap_max = 0;
	cg_group *g = group(m, "vm-oom", &l);
	int status;
	pid_t pid = spawn_in(g, hog, (void *)(uintptr_t)128);

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	struct cg_stats s;
	cr_assert_eq(cg_group_read_stats(g, &s, NULL), 0);
	cg_group_remove(g, 2000);
	finish(m);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		  "child was not OOM-killed (status 0x%x)", status);
	cr_assert_geq(s.mem_ev_oom_kill, 1, "memory.events oom_kill = %llu",
		      (unsigned long long)s.mem_ev_oom_kill);
	cr_assert_geq(s.mem_ev_max, 1);
}

/* Allocate in 1 MiB steps, reporting progress through a pipe. */
struct slow_hog {
	int fd;
	size_t mib;
};

static void slow_hog_fn(void *ud)
{
	struct slow_hog *h = ud;
	for (size_t i = 0; i < h->mib; i++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (p == MAP_FAILED)
			_exit(3);
		memset(p, 0x5a, 1 << 20);
		char c = 1;
		if (write(h->fd, &c, 1) != 1)
			_exit(4);
	}
	pause();
}

Test(cgroup, memory_high_holds_usage_near_the_limit)
{
	cg_manager *m = mgr_or_skip(false);
	struct vm_limits l = no_limits();
	const uint64_t high = 32 << 20;
	l.memory_high = high;
	l.memory_swap_max = 0;
	cg_group *g = group(m, "vm-high", &l);
	int pfd[2];
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	struct slow_hog h = { .fd = pfd[1], .mib = 96 };
	pid_t pid = spawn_in(g, slow_hog_fn, &h);
	close(pfd[1]);
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);

	uint64_t peak = 0;
	size_t progress = 0;
	for (int i = 0; i < 30; i++) {
		struct cg_stats s;
		char buf[256];
		ssize_t n;
		sleep_ms(100);
		while ((n = read(pfd[0], buf, sizeof(buf))) > 0)
			progress += (size_t)n;
		cr_assert_eq(cg_group_read_stats(g, &s, NULL), 0);
		if (s.mem_current > peak)
			peak = s.mem_current;
	}
	struct cg_stats s;
	cr_assert_eq(cg_group_read_stats(g, &s, NULL), 0);
	reap(g, pid);
	close(pfd[0]);
	cg_group_remove(g, 2000);
	finish(m);
	printf("memory.high 32 MiB: peak memory.current %.1f MiB, allocated %zu of 96 MiB in 3 s, "
	       "high events %llu\n", peak / 1048576.0, progress,
	       (unsigned long long)s.mem_ev_high);
	cr_assert_gt(s.mem_ev_high, 0, "memory.events high never fired");
	cr_assert_lt(peak, high + high / 2, "memory.current peaked at %llu (high %llu)",
		     (unsigned long long)peak, (unsigned long long)high);
	cr_assert_lt(progress, 96, "the allocator was never throttled");
}

static void bomb(void *ud)
{
	int fd = (int)(intptr_t)ud, made = 0, err = 0;
	for (int i = 0; i < 1000; i++) {
		pid_t p = fork();
		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0) {
			err = errno;
			break;
		}
		made++;
	}
	int msg[2] = { made, err };
	if (write(fd, msg, sizeof(msg)) != sizeof(msg))
		_exit(4);
	pause();
}

Test(cgroup, pids_max_stops_a_fork_bomb)
{
	cg_manager *m = mgr_or_skip(false);
	struct vm_limits l = no_limits();
	l.pids_max = 16;
	cg_group *g = group(m, "vm-pids", &l);
	int pfd[2], msg[2] = { -1, -1 };
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid_t pid = spawn_in(g, bomb, (void *)(intptr_t)pfd[1]);
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	struct cg_stats s;
	cr_assert_eq(cg_group_read_stats(g, &s, NULL), 0);
	cg_group_kill(g);
	waitpid(pid, NULL, 0);
	close(pfd[0]);
	cr_assert_eq(cg_group_remove(g, 3000), 0, "rmdir after the bomb was killed");
	finish(m);
	cr_assert_eq(msg[0], 15, "forked %d children under pids.max 16", msg[0]);
	cr_assert_eq(msg[1], EAGAIN, "fork failed with %s", strerror(msg[1]));
	cr_assert_leq(s.pids_current, 16);
	cr_assert_geq(s.pids_ev_max, 1);
}

static void sleeper(void *ud)
{
	pause();
}

/* Charges are not moved with a task: touch fresh memory inside the group. */
static void toucher(void *ud)
{
	char *p = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(3);
	memset(p, 1, 4 << 20);
	pause();
}

Test(cgroup, stats_pressure_and_json)
{
	cg_manager *m = mgr_or_skip(false);
	struct vm_limits l = no_limits();
	l.cpu_weight = 200;
	l.memory_max = 64 << 20;
	cg_group *g = group(m, "vm-stats", &l);
	pid_t pid = spawn_in(g, toucher, NULL);
	struct cg_stats s;
	struct qv_error err = {};

	sleep_ms(500);
	cr_assert_eq(cg_group_read_stats(g, &s, &err), 0, "%s", err.message);
	json_object *j = cg_stats_to_json(&s), *v;
	reap(g, pid);
	cg_group_remove(g, 2000);
	finish(m);
	cr_assert(s.controllers & CG_MEMORY);
	cr_assert_geq(s.mem_current, 4 << 20, "memory.current %llu",
		      (unsigned long long)s.mem_current);
	cr_assert_geq(s.mem_anon, 4 << 20);
	cr_assert_geq(s.pids_current, 1);
	cr_assert(json_object_object_get_ex(j, "cpu", &v));
	cr_assert(json_object_object_get_ex(v, "usage_usec", NULL));
	cr_assert(json_object_object_get_ex(j, "memory", &v));
	cr_assert(json_object_object_get_ex(v, "events", NULL));
	/* The VM runner boots with psi=1 (Debian disables PSI by default). */
	if (in_vm()) {
		cr_assert(s.psi_cpu.present && s.psi_memory.present && s.psi_io.present,
			  "PSI files missing");
		cr_assert(json_object_object_get_ex(j, "pressure", &v));
		cr_assert(json_object_object_get_ex(v, "memory", NULL));
	}
	json_object_put(j);
}

static void read_file(cg_group *g, const char *file, char *buf, size_t size)
{
	char path[CG_PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", cg_group_path(g), file);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f, "open %s", path);
	buf[0] = '\0';
	cr_assert_not_null(fgets(buf, (int)size, f));
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

Test(cgroup, changing_limits_resets_removed_fields)
{
	cg_manager *m = mgr_or_skip(false);
	struct vm_limits l = no_limits(), l2 = no_limits();
	struct qv_error err = {};
	char buf[128];
	l.memory_max = 64 << 20;
	l.pids_max = 100;
	l.cpu_max_quota_us = 30000;
	l.cpu_max_period_us = 100000;
	l.cpu_weight = 50;
	l.cpuset_cpus = "0";
	cg_group *g = group(m, "vm-reset", &l);

	read_file(g, "memory.max", buf, sizeof(buf));
	cr_assert_str_eq(buf, "67108864");
	read_file(g, "cpu.max", buf, sizeof(buf));
	cr_assert_str_eq(buf, "30000 100000");
	read_file(g, "cpuset.cpus", buf, sizeof(buf));
	cr_assert_str_eq(buf, "0");
	l2.pids_max = 50;
	struct cg_limits nl = { .l = l2 }, ol = { .l = l };
	cr_assert_eq(cg_group_apply(g, &nl, &ol, &err), 0, "%s", err.message);
	read_file(g, "memory.max", buf, sizeof(buf));
	cr_assert_str_eq(buf, "max");
	read_file(g, "pids.max", buf, sizeof(buf));
	cr_assert_str_eq(buf, "50");
	read_file(g, "cpu.max", buf, sizeof(buf));
	cr_assert_str_eq(buf, "max 100000");
	read_file(g, "cpu.weight", buf, sizeof(buf));
	cr_assert_str_eq(buf, "100");
	cg_group_remove(g, 2000);
	finish(m);
}

Test(cgroup, io_max_on_the_disk_behind_a_file)
{
	cg_manager *m = mgr_or_skip(false);
	const char *dev = "/dev/vda";
	unsigned ma, mi;
	struct qv_error err = {};
	struct stat st;

	if (stat(dev, &st) < 0 || !(cg_manager_controllers(m) & CG_IO)) {
		finish(m);
		if (in_vm())
			cr_assert_fail("the VM runner attaches %s and io must be available", dev);
		cr_skip_test("no %s or no io controller here", dev);
	}
	cr_assert_eq(cg_blkdev_for_path(dev, &ma, &mi, &err), 0, "%s", err.message);
	cr_assert_eq(ma, major(st.st_rdev));
	struct cg_io_limit io = { .major = ma, .minor = mi, .rbps = 1 << 20, .wiops = 100 };
	struct vm_limits l = no_limits();
	struct cg_limits lim = { .l = l, .io = &io, .n_io = 1 };
	cg_group *g = group(m, "vm-io", NULL);
	cr_assert_eq(cg_group_apply(g, &lim, NULL, &err), 0, "%s", err.message);
	char buf[256], want[128];
	read_file(g, "io.max", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%u:%u rbps=1048576 wbps=max riops=max wiops=100", ma, mi);
	cr_assert_str_eq(buf, want);
	/* Dropping the disk's limits resets the device to unlimited. */
	struct cg_limits none = { .l = l };
	cr_assert_eq(cg_group_apply(g, &none, &lim, &err), 0, "%s", err.message);
	char path[CG_PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/io.max", cg_group_path(g));
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f);
	cr_assert_null(fgets(buf, sizeof(buf), f), "io.max still lists: %s", buf);
	fclose(f);
	cg_group_remove(g, 2000);
	finish(m);
}

static bool keep_b(const char *name, void *ud)
{
	return streq(name, "vm-kept");
}

Test(cgroup, reconcile_removes_only_empty_unkept_groups)
{
	cg_manager *m = mgr_or_skip(false);
	cg_group *a = group(m, "vm-stale", NULL), *b = group(m, "vm-busy", NULL),
		 *c = group(m, "vm-kept", NULL);
	pid_t pid = spawn_in(b, sleeper, NULL);
	char path[CG_PATH_MAX + 16];
	struct stat st;

	sleep_ms(100);
	cr_assert_eq(cg_manager_reconcile(m, keep_b, NULL), 1);
	snprintf(path, sizeof(path), "%s", cg_group_path(a));
	cr_assert(stat(path, &st) < 0, "empty group survived");
	cr_assert_eq(stat(cg_group_path(b), &st), 0, "group with a live process removed");
	cr_assert_eq(stat(cg_group_path(c), &st), 0, "kept group removed");
	reap(b, pid);
	cg_group_free(a);
	cg_group_remove(b, 2000);
	cg_group_remove(c, 2000);
	finish(m);
}

Test(cgroup, daemon_leaf_and_no_internal_processes)
{
	cg_manager *m = mgr_or_skip(true);
	char buf[CG_PATH_MAX + 8], want[CG_PATH_MAX];
	FILE *f = fopen("/proc/self/cgroup", "re");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	const char *slice = strrchr(cg_manager_slice_path(m), '/');
	snprintf(want, sizeof(want), "0::%s/daemon", slice);
	cr_assert_str_eq(buf, want);
	/* A VM group next to the daemon leaf gets the controllers. */
	cg_group *g = group(m, "vm-x", NULL);
	char path[CG_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/cgroup.controllers", cg_group_path(g));
	f = fopen(path, "re");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_assert((cg_controllers_parse(buf) & NEED) == NEED, "vm group has only: %s", buf);
	cg_group_free(g);
	finish(m); /* moves us back, removes daemon leaf, vm-x and the slice */
	f = fopen("/proc/self/cgroup", "re");
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_assert_null(strstr(buf, "qvt-"), "still in %s", buf);
}
