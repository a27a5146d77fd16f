/* SPDX-License-Identifier: MIT */
/* The resource loop engine against fixture directories shaped like cgroups:
 * what it writes in enforce mode, what it only reports in advise and off,
 * its reasons, steadiness and the overload signal. Real cgroups: tests/lab/. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched/resloop.h"

static char dir[64];
static const char *const knobs[] = { "cpu.weight", "cpu.max", "cpuset.cpus", "memory.low",
				     "memory.high", "memory.max" };

static void put(const char *d, const char *file, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", d, file);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	fputs(text, f);
	fclose(f);
}

static char *get(const char *vm, const char *file, char *buf, size_t size)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s/%s", dir, vm, file);
	FILE *f = fopen(p, "r");
	cr_assert_not_null(f, "%s", p);
	size_t n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static const char *mkvm(const char *name, unsigned long long usage)
{
	static char p[8][128];
	static int k;
	char *d = p[k++ % 8], t[128];
	snprintf(d, 128, "%s/%s", dir, name);
	mkdir(d, 0755);
	snprintf(t, sizeof(t), "usage_usec %llu\n", usage);
	put(d, "cpu.stat", t);
	put(d, "memory.current", "52428800\n");
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		put(d, knobs[i], "");
	return d;
}

static void clear_knobs(const char *name)
{
	char d[128];
	snprintf(d, sizeof(d), "%s/%s", dir, name);
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		put(d, knobs[i], "");
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qvt-resloop-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)system(cmd);
}

TestSuite(resloop, .init = setup, .fini = teardown);

static struct vm_resources R(uint32_t shares, enum vm_loop_mode mode)
{
	return (struct vm_resources){ .cpu_shares = shares, .mode = mode };
}

Test(resloop, enforce_writes_advise_reports_off_stays_silent)
{
	qv_collector *c = NULL;
	hl_loop *l = NULL;
	struct hl_loop_opts o = { .caps = { .ncpus = 2, .mem_total = 1ull << 32 },
				  .mode = VM_LOOP_ENFORCE };
	struct hl_change ch[64];
	char buf[64];

	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(hl_loop_new(&o, c, &l), 0);
	struct vm_resources a = R(2000, VM_LOOP_HOST), b = R(1000, VM_LOOP_HOST),
			    adv = R(1000, VM_LOOP_ADVISE), off = R(1000, VM_LOOP_OFF);
	cr_assert_eq(hl_loop_add_vm(l, "a", mkvm("a", 0), &a, 1, 256 << 20), 0);
	cr_assert_eq(hl_loop_add_vm(l, "b", mkvm("b", 0), &b, 1, 256 << 20), 0);
	cr_assert_eq(hl_loop_add_vm(l, "adv", mkvm("adv", 0), &adv, 1, 256 << 20), 0);
	cr_assert_eq(hl_loop_add_vm(l, "off", mkvm("off", 0), &off, 1, 256 << 20), 0);
	cr_assert_eq(hl_loop_add_vm(l, "a", mkvm("a", 0), &a, 1, 256 << 20), -EEXIST);

	col_poll(c, 1000000);
	size_t n = hl_loop_tick(l, ch, 64);
	cr_assert_eq(n, 18, "6 knobs for a, b and adv; none for off (got %zu)", n);
	cr_assert_str_eq(get("a", "cpu.weight", buf, sizeof(buf)), "1000");
	cr_assert_str_eq(get("b", "cpu.weight", buf, sizeof(buf)), "500");
	cr_assert_str_eq(get("a", "cpu.max", buf, sizeof(buf)), "max 100000");
	cr_assert_str_eq(get("a", "memory.high", buf, sizeof(buf)), "max");
	cr_assert_str_eq(get("adv", "cpu.weight", buf, sizeof(buf)), "", "advise writes nothing");
	cr_assert_str_eq(get("off", "cpu.weight", buf, sizeof(buf)), "");
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(ch[i].applied, strcmp(ch[i].vm, "adv") != 0, "%s %s", ch[i].vm,
			     hl_knob_name(ch[i].knob));
		cr_assert_not_null(strstr(ch[i].reason, "initial allocation"), "%s", ch[i].reason);
	}

	/* second pass: demand known (50 MiB + 128 MiB headroom = 178 MiB) -> memory.high */
	clear_knobs("a");
	put(dir, "a/cpu.stat", "usage_usec 1000000\n");
	col_poll(c, 2000000);
	n = hl_loop_tick(l, ch, 64);
	cr_assert_eq(n, 3, "memory.high of a, b and adv (got %zu)", n);
	cr_assert_eq(ch[0].knob, HL_K_MEM_HIGH);
	cr_assert_str_eq(ch[0].from, "max");
	cr_assert_str_eq(ch[0].to, "186646528");
	cr_assert_not_null(strstr(ch[0].reason, "memory demand 178 MiB"), "%s", ch[0].reason);
	cr_assert_str_eq(get("a", "memory.high", buf, sizeof(buf)), "186646528");
	cr_assert_str_eq(get("a", "cpu.weight", buf, sizeof(buf)), "", "unchanged knobs untouched");

	/* steady: nothing more */
	for (int t = 3; t < 30; t++) {
		col_poll(c, (uint64_t)t * 1000000);
		cr_assert_eq(hl_loop_tick(l, ch, 64), 0, "tick %d", t);
	}
	json_object *j = hl_loop_vm_json(l, "a");
	cr_assert_not_null(j);
	json_object *d, *v;
	cr_assert(json_object_object_get_ex(j, "demand", &d));
	cr_assert(json_object_object_get_ex(d, "memory_bytes", &v));
	cr_assert_eq(json_object_get_int64(v), 186646528);
	json_object_put(j);
	cr_assert_null(hl_loop_vm_json(l, "nope"));

	/* the host's off silences everyone, advise turns enforce into advice */
	cr_assert_eq(hl_loop_remove_vm(l, "a"), 0);
	hl_loop_set_mode(l, VM_LOOP_OFF);
	col_poll(c, 40000000);
	cr_assert_eq(hl_loop_tick(l, ch, 64), 0, "off: nothing even though a left");
	hl_loop_set_mode(l, VM_LOOP_ADVISE);
	clear_knobs("b");
	col_poll(c, 41000000);
	n = hl_loop_tick(l, ch, 64);
	cr_assert_eq(n, 2, "a left: b's and adv's weights move (got %zu)", n);
	cr_assert_str_eq(ch[0].vm, "b");
	cr_assert_str_eq(ch[0].to, "1000");
	cr_assert_not_null(strstr(ch[0].reason, "shares 1000"), "%s", ch[0].reason);
	for (size_t i = 0; i < n; i++)
		cr_assert_not(ch[i].applied);
	cr_assert_str_eq(get("b", "cpu.weight", buf, sizeof(buf)), "");
	hl_loop_free(l);
	col_free(c);
}

Test(resloop, reservations_that_do_not_fit_raise_the_overload_signal)
{
	qv_collector *c = NULL;
	hl_loop *l = NULL;
	struct hl_loop_opts o = { .caps = { .ncpus = 1, .mem_total = 1ull << 32 },
				  .mode = VM_LOOP_ADVISE, .overload_after = 3 };
	struct hl_change ch[64];
	char why[160];

	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(hl_loop_new(&o, c, &l), 0);
	struct vm_resources a = R(1000, VM_LOOP_HOST);
	a.cpu_reservation = 800;
	cr_assert_eq(hl_loop_add_vm(l, "a", mkvm("a", 0), &a, 1, 256 << 20), 0);
	for (int t = 1; t <= 4; t++) {
		col_poll(c, (uint64_t)t * 1000000);
		hl_loop_tick(l, ch, 64);
	}
	cr_assert_not(hl_loop_overloaded(l, why, sizeof(why)));
	cr_assert_eq(hl_loop_add_vm(l, "b", mkvm("b", 0), &a, 1, 256 << 20), 0);
	for (int t = 5; t <= 6; t++) {
		col_poll(c, (uint64_t)t * 1000000);
		hl_loop_tick(l, ch, 64);
		cr_assert_not(hl_loop_overloaded(l, NULL, 0), "not before 3 intervals");
	}
	col_poll(c, 7000000);
	hl_loop_tick(l, ch, 64);
	cr_assert(hl_loop_overloaded(l, why, sizeof(why)));
	cr_assert_not_null(strstr(why, "cpu reservations 1.6 cores > 1 available"), "%s", why);
	json_object *p = hl_loop_pressure_json(l), *v;
	cr_assert(json_object_object_get_ex(p, "overloaded", &v) && json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(p, "vms", &v) && json_object_array_length(v) == 2);
	json_object_put(p);
	cr_assert_eq(hl_loop_remove_vm(l, "b"), 0);
	col_poll(c, 8000000);
	hl_loop_tick(l, ch, 64);
	cr_assert_not(hl_loop_overloaded(l, NULL, 0), "clears at once");
	hl_loop_free(l);
	col_free(c);
}

/* A loop in enforce mode on 2 CPUs, with its collector in *ret_c. */
static hl_loop *enforcing_loop(qv_collector **ret_c)
{
	struct hl_loop_opts o = { .caps = { .ncpus = 2, .mem_total = 1ull << 32 },
				  .mode = VM_LOOP_ENFORCE };
	hl_loop *l = NULL;

	cr_assert_eq(col_new(NULL, ret_c), 0);
	cr_assert_eq(hl_loop_new(&o, *ret_c, &l), 0);
	return l;
}

/* A kernel with cgroup SCHED_IDLE (the fixture groups have cpu.idle): the
 * best-effort VM's group becomes idle after its weight is written (the
 * kernel refuses weights of idle groups); the other VM's cpu.idle is reset
 * to 0 before its weight (a group adopted from before may be idle). */
Test(resloop, best_effort_gets_cpu_idle_in_the_right_order_with_a_reason)
{
	qv_collector *c = NULL;
	hl_loop *l = enforcing_loop(&c);
	struct hl_change ch[64];
	char buf[64];

	struct vm_resources t = R(1000, VM_LOOP_HOST), be = R(1000, VM_LOOP_HOST);
	be.klass = VM_CLASS_BEST_EFFORT;
	const char *dt = mkvm("t", 0), *dbe = mkvm("be", 0);
	put(dt, "cpu.idle", "1\n");
	put(dbe, "cpu.idle", "0\n");
	cr_assert_eq(hl_loop_add_vm(l, "t", dt, &t, 1, 256 << 20), 0);
	cr_assert_eq(hl_loop_add_vm(l, "be", dbe, &be, 1, 256 << 20), 0);
	col_poll(c, 1000000);
	size_t n = hl_loop_tick(l, ch, 64);
	cr_assert_eq(n, 14, "7 knobs each (got %zu)", n);
	/* the fixture files are not truncated: the first byte is what was written */
	cr_assert_eq(get("t", "cpu.idle", buf, sizeof(buf))[0], '0');
	cr_assert_eq(get("be", "cpu.idle", buf, sizeof(buf))[0], '1');
	cr_assert_str_eq(get("be", "cpu.weight", buf, sizeof(buf)), "1");
	cr_assert_str_eq(get("t", "cpu.weight", buf, sizeof(buf)), "1000");
	int t_idle = -1, t_weight = -1, be_idle = -1, be_weight = -1;
	for (size_t i = 0; i < n; i++) {
		bool is_t = strcmp(ch[i].vm, "t") == 0;
		if (ch[i].knob == HL_K_CPU_IDLE)
			*(is_t ? &t_idle : &be_idle) = (int)i;
		if (ch[i].knob == HL_K_WEIGHT)
			*(is_t ? &t_weight : &be_weight) = (int)i;
	}
	cr_assert(t_idle >= 0 && t_idle < t_weight, "t: cpu.idle 0 before cpu.weight");
	cr_assert(be_idle > be_weight && be_weight >= 0, "be: cpu.idle 1 after cpu.weight");
	cr_assert_not_null(strstr(ch[be_idle].reason, "best-effort class: an idle group"), "%s",
			   ch[be_idle].reason);
	cr_assert_str_eq(ch[be_idle].to, "1");
	cr_assert(ch[be_idle].applied);
	cr_assert_not_null(strstr(ch[t_idle].reason, "class throughput: a normal group"), "%s",
			   ch[t_idle].reason);
	/* policy show reports it */
	json_object *j = hl_loop_vm_json(l, "be"), *a, *v;
	cr_assert(json_object_object_get_ex(j, "allocation", &a));
	cr_assert(json_object_object_get_ex(a, "cpu.idle", &v));
	cr_assert_eq(json_object_get_int(v), 1);
	json_object_put(j);
	/* steady afterwards */
	for (int k = 2; k < 20; k++) {
		col_poll(c, (uint64_t)k * 1000000);
		n = hl_loop_tick(l, ch, 64);
		for (size_t i = 0; i < n; i++)
			cr_assert_neq(ch[i].knob, HL_K_CPU_IDLE, "tick %d", k);
	}
	hl_loop_free(l);
	col_free(c);
}

Test(resloop, without_cpu_idle_in_the_kernel_nothing_is_written_or_shown)
{
	qv_collector *c = NULL;
	hl_loop *l = enforcing_loop(&c);
	struct hl_change ch[64];
	char buf[64];

	struct vm_resources be = R(1000, VM_LOOP_HOST);
	be.klass = VM_CLASS_BEST_EFFORT;
	cr_assert_eq(hl_loop_add_vm(l, "be", mkvm("be", 0), &be, 1, 256 << 20), 0);
	col_poll(c, 1000000);
	size_t n = hl_loop_tick(l, ch, 64);
	cr_assert_eq(n, 6);
	for (size_t i = 0; i < n; i++)
		cr_assert_neq(ch[i].knob, HL_K_CPU_IDLE);
	cr_assert_str_eq(get("be", "cpu.weight", buf, sizeof(buf)), "1000", "alone: the top weight");
	json_object *j = hl_loop_vm_json(l, "be"), *a, *v = NULL;
	cr_assert(json_object_object_get_ex(j, "allocation", &a));
	cr_assert(json_object_object_get_ex(a, "cpu.idle", &v));
	cr_assert_null(v, "null: the kernel has no cgroup SCHED_IDLE");
	json_object_put(j);
	hl_loop_free(l);
	col_free(c);
}
