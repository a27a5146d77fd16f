/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers for the lab-VM suites (run inside scripts/labvm.sh): spinning
 * inner VMs (QEMU with a 64 KiB -bios that loops), each in its own cgroup,
 * and a driver for the resource loop at a fixed interval. */

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qemu/qmp.h"
#include "sched/cgroup.h"
#include "sched/resloop.h"

#define LAB_MAX_VMS 8

struct lab_vm {
	char name[32];
	pid_t pid;
	cg_group *g;
	char qmp[128];
	qmp_client *c;
};

struct lab {
	cg_manager *m;
	cg_manager *part; /* lab_partition: a slice that is a cpuset partition root */
	char slice[64];
	struct lab_vm vm[LAB_MAX_VMS];
	size_t n;
	qv_collector *col;
	hl_loop *loop;
	unsigned interval_ms;
	uint64_t next_us;
};

static inline uint64_t lab_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

#define LAB_REQUIRE()                                                                    \
	do {                                                                             \
		if (!getenv("QV_LAB_VM"))                                                \
			cr_skip_test("runs inside the lab VM (scripts/labvm.sh, make "     \
				     "check-lab): needs a whole cgroup v2 and inner QEMUs"); \
	} while (0)

/* A slice of our own with every controller; cpus (e.g. "0") confines it. */
static inline void lab_init(struct lab *l, const char *cpus)
{
	struct qv_error err = { 0 };

	memset(l, 0, sizeof(*l));
	snprintf(l->slice, sizeof(l->slice), "qvlab-%d.slice", (int)getpid());
	struct cg_manager_opts o = { .slice = l->slice };
	cr_assert_eq(cg_manager_new(&o, &l->m, &err), 0, "%s", err.message);
	cr_assert_str_eq(cg_manager_backend_id(l->m), "unified");
	cr_assert_eq(cg_manager_controllers(l->m) & (CG_CPU | CG_CPUSET | CG_MEMORY),
		     CG_CPU | CG_CPUSET | CG_MEMORY);
	if (cpus) {
		char p[600];
		snprintf(p, sizeof(p), "%s/cpuset.cpus", cg_manager_slice_path(l->m));
		FILE *f = fopen(p, "w");
		cr_assert_not_null(f, "%s", p);
		fprintf(f, "%s\n", cpus);
		cr_assert_eq(fclose(f), 0, "cpuset.cpus %s", cpus);
	}
	l->interval_ms = 1000;
}

/* Write value to the file of dir; -1 on error. */
static inline int lab_write(const char *dir, const char *file, const char *value)
{
	char p[700];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	FILE *f = fopen(p, "w");
	if (!f)
		return -1;
	fprintf(f, "%s\n", value);
	return fclose(f) == 0 ? 0 : -1;
}

/* A second slice beside l->m for VMs started with lab_vm_start_in(l,
 * l->part, ...); once lab_partition_root made it a cpuset partition root,
 * their groups may become partition roots too (every ancestor is one). */
static inline void lab_partition(struct lab *l)
{
	struct qv_error err = { 0 };
	char slice[80];

	snprintf(slice, sizeof(slice), "qvlab-%d-lat.slice", (int)getpid());
	struct cg_manager_opts o = { .slice = slice };
	cr_assert_eq(cg_manager_new(&o, &l->part, &err), 0, "%s", err.message);
}

/* Make that slice (an ordinary member until now) a partition root of cpus. */
static inline void lab_partition_root(struct lab *l, const char *cpus)
{
	char got[64] = "";
	const char *dir = cg_manager_slice_path(l->part);
	cr_assert_eq(lab_write(dir, "cpuset.cpus", cpus), 0, "%s cpuset.cpus %s", dir, cpus);
	cr_assert_eq(lab_write(dir, "cpuset.cpus.partition", "root"), 0);
	char p[700];
	snprintf(p, sizeof(p), "%s/cpuset.cpus.partition", dir);
	FILE *f = fopen(p, "re");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(got, sizeof(got), f));
	fclose(f);
	cr_assert_str_eq(got, "root\n", "%s: %s", p, got);
}

static inline struct lab_vm *lab_vm_start_in(struct lab *l, cg_manager *m, const char *name,
					     const char *fw);

/* Start an inner VM with firmware fw ("spin.bin" or "halt.bin") in group name. */
static inline struct lab_vm *lab_vm_start(struct lab *l, const char *name, const char *fw)
{
	return lab_vm_start_in(l, l->m, name, fw);
}

/* The same in manager m's slice. */
static inline struct lab_vm *lab_vm_start_in(struct lab *l, cg_manager *m, const char *name,
					     const char *fw)
{
	struct qv_error err = { 0 };
	struct lab_vm *v = &l->vm[l->n++];
	char bios[256], qmp[160];

	cr_assert_leq(l->n, LAB_MAX_VMS);
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(bios, sizeof(bios), "%s/%s", getenv("QV_LAB_FW") ?: "/lab/fw", fw);
	snprintf(v->qmp, sizeof(v->qmp), "/tmp/qvlab-%d-%s.qmp", (int)getpid(), name);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", v->qmp);
	cr_assert_eq(cg_group_create(m, name, &v->g, &err), 0, "%s", err.message);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (cg_group_attach(v->g, getpid(), NULL) < 0)
			_exit(126);
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-nodefaults", "-no-user-config",
		       "-name", "lab,debug-threads=on", "-machine", "pc", "-accel", "tcg,tb-size=8", "-m", "16", "-smp", "1",
		       "-bios", bios, "-display", "none", "-serial", "none", "-qmp", qmp,
		       (char *)NULL);
		_exit(127);
	}
	v->pid = pid;
	cr_assert_eq(qmp_client_connect(v->qmp, 120000, &v->c, &err), 0, "%s: %s", name,
		     err.message);
	return v;
}

static inline void lab_vm_qmp(struct lab_vm *v, const char *cmd)
{
	struct qv_error err = { 0 };
	cr_assert_eq(qmp_client_execute(v->c, cmd, NULL, 10000, NULL, &err), 0, "%s %s: %s",
		     v->name, cmd, err.message);
}

static inline void lab_loop(struct lab *l, unsigned ncpus, enum vm_loop_mode mode)
{
	struct hl_loop_opts o = { .caps = { .ncpus = ncpus, .mem_total = 1024ull << 20 },
				  .mode = mode };
	cr_assert_eq(col_new(NULL, &l->col), 0);
	cr_assert_eq(hl_loop_new(&o, l->col, &l->loop), 0);
}

static inline void lab_manage(struct lab *l, struct lab_vm *v, const struct vm_resources *r)
{
	cr_assert_eq(hl_loop_add_vm(l->loop, v->name, cg_group_path(v->g), r, 1, 16 << 20), 0);
}

/* Sleep to the next interval, poll, tick; print changes. Returns the number
 * of changes of this tick. */
static inline size_t lab_tick(struct lab *l)
{
	struct hl_change ch[32];
	uint64_t now = lab_now_us();

	if (!l->next_us)
		l->next_us = now;
	l->next_us += (uint64_t)l->interval_ms * 1000;
	if (l->next_us > now)
		usleep((useconds_t)(l->next_us - now));
	col_poll(l->col, lab_now_us());
	size_t n = hl_loop_tick(l->loop, ch, 32);
	char line[256];
	int len = snprintf(line, sizeof(line), "lab: tick");
	for (size_t i = 0; i < col_vm_count(l->col); i++) {
		const struct col_point *p = col_vm_last(l->col, i);
		if (p && len < (int)sizeof(line))
			len += snprintf(line + len, sizeof(line) - (size_t)len, " %s=%.2f",
					col_vm_name(l->col, i), p->cpu);
	}
	const struct col_host *h = col_host(l->col);
	if (h->valid && len < (int)sizeof(line))
		snprintf(line + len, sizeof(line) - (size_t)len, " host=%.2f", h->rate.cpu);
	printf("%s\n", line);
	for (size_t i = 0; i < n && i < 32; i++)
		printf("lab: change %s %s %s -> %s (%s)%s\n", ch[i].vm, hl_knob_name(ch[i].knob),
		       ch[i].from, ch[i].to, ch[i].reason, ch[i].applied ? "" : " [advised]");
	return n;
}

static inline uint64_t lab_usage(struct lab_vm *v)
{
	struct cg_stats s = { 0 };
	struct qv_error err = { 0 };
	cr_assert_eq(cg_group_read_stats(v->g, &s, &err), 0, "%s", err.message);
	return s.cpu_usage_usec;
}

/* Jiffies CPU cpu spent available to tasks (user, nice, system, idle,
 * iowait) and in total. Under a loaded host the lab VM's vCPUs are often
 * descheduled; the guest kernel charges that stolen wall time mostly to
 * interrupt handling (the lab VM has no steal clock), so "one core" is what
 * the core had for tasks, not wall time. */
static inline void lab_cpu_jiffies(int cpu, uint64_t *ret_avail, uint64_t *ret_total)
{
	char want[16], line[256];
	FILE *f = fopen("/proc/stat", "re");
	unsigned long long v[8] = { 0 };

	cr_assert_not_null(f);
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, want, strlen(want)) == 0)
			sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
			       &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	*ret_avail = v[0] + v[1] + v[2] + v[3] + v[4];
	*ret_total = *ret_avail + v[5] + v[6] + v[7];
}

/* CPU used by each VM over ticks intervals, in cores of the CPUs in mask
 * available to tasks (see lab_cpu_jiffies); raw wall-clock figures printed. */
static inline void lab_measure_on(struct lab *l, unsigned ticks, unsigned mask, double *ret)
{
	uint64_t u0[LAB_MAX_VMS], t0 = lab_now_us(), a0 = 0, j0 = 0, a1 = 0, j1 = 0, a, j;

	for (int c = 0; c < 8; c++)
		if (mask & (1u << c))
			lab_cpu_jiffies(c, &a, &j), a0 += a, j0 += j;
	for (size_t i = 0; i < l->n; i++)
		u0[i] = lab_usage(&l->vm[i]);
	for (unsigned t = 0; t < ticks; t++)
		lab_tick(l);
	double dt = (double)(lab_now_us() - t0);
	for (int c = 0; c < 8; c++)
		if (mask & (1u << c))
			lab_cpu_jiffies(c, &a, &j), a1 += a, j1 += j;
	double avail = j1 > j0 ? (double)(a1 - a0) / (double)(j1 - j0) : 1;
	int ncpu = __builtin_popcount(mask);
	printf("lab: cpus 0x%x were available to tasks %.1f%% of the time\n", mask, avail * 100);
	for (size_t i = 0; i < l->n; i++) {
		double wall = (double)(lab_usage(&l->vm[i]) - u0[i]) / dt;
		ret[i] = avail > 0 ? wall / avail : wall;
		printf("lab: %s used %.3f cores over %u intervals (%.3f of wall time on %d cpu(s))\n",
		       l->vm[i].name, ret[i], ticks, wall, ncpu);
	}
}

static inline void lab_measure(struct lab *l, unsigned ticks, double *ret)
{
	lab_measure_on(l, ticks, 0x1, ret);
}

static inline void lab_fini(struct lab *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct lab_vm *v = &l->vm[i];
		qmp_client_free(v->c);
		if (v->pid > 0) {
			kill(v->pid, SIGKILL);
			waitpid(v->pid, NULL, 0);
		}
		unlink(v->qmp);
		if (v->g)
			cg_group_remove(v->g, 2000);
	}
	hl_loop_free(l->loop);
	col_free(l->col);
	if (l->m) {
		cg_manager_destroy(l->m);
		cg_manager_free(l->m);
	}
	if (l->part) {
		cg_manager_destroy(l->part);
		cg_manager_free(l->part);
	}
}
