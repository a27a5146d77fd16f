/* SPDX-License-Identifier: MIT */
/* The balloon rule (sched/alloc-balloon.c) and the loop's balloon knob: an
 * idle guest shrinks toward its use + headroom, never below its floor; a
 * guest under pressure gets its memory back at once; a steady guest
 * settles. Real guests: tests/integration/test_balloon.c. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "sched/resloop.h"

#define MIB (1ull << 20)

static struct hl_balloon_params bp;

static void setup(void)
{
	memset(&bp, 0, sizeof(bp));
	hl_balloon_params_defaults(&bp);
}

TestSuite(balloon_alloc, .init = setup);

/* A guest of `mem` using `used` bytes, its balloon at target (reached). */
static struct hl_balloon_in guest(uint64_t mem, uint64_t target, uint64_t used)
{
	return (struct hl_balloon_in){ .memory = mem, .target = target, .actual = target,
				       .stats = true, .available = target - used };
}

/* Run the rule n intervals, the guest following every target at once. */
static uint64_t run(struct hl_balloon_in *in, struct hl_balloon_state *st, uint64_t used,
		    unsigned n, unsigned *ret_changes)
{
	enum hl_balloon_why why;
	unsigned changes = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t t = hl_balloon_step(in, &bp, st, &why);
		if (t != in->target)
			changes++;
		cr_assert_eq(t != in->target, why != HL_BW_NONE);
		in->target = in->actual = t;
		in->available = t > used ? t - used : 0;
	}
	if (ret_changes)
		*ret_changes = changes;
	return in->target;
}

Test(balloon_alloc, idle_guest_shrinks_to_use_plus_headroom_gradually)
{
	struct hl_balloon_state st = { 0 };
	struct hl_balloon_in in = guest(1024 * MIB, 1024 * MIB, 100 * MIB);
	enum hl_balloon_why why;

	/* nothing before `hold` calm intervals */
	for (unsigned i = 0; i + 1 < bp.hold; i++)
		cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 1024 * MIB, "interval %u", i);
	/* then at most 25 % at a time */
	uint64_t t = hl_balloon_step(&in, &bp, &st, &why);
	cr_assert_eq(why, HL_BW_IDLE);
	cr_assert_eq(t, 768 * MIB);
	/* the guest has not inflated yet: wait for it */
	in.target = t;
	for (int i = 0; i < 10; i++)
		cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), t, "waits for the guest");
	in.actual = t, in.available = t - 100 * MIB;
	/* settles at used + headroom (max(25 %, 64 MiB)) = 164 MiB */
	unsigned changes;
	cr_assert_eq(run(&in, &st, 100 * MIB, 60, NULL), 164 * MIB);
	run(&in, &st, 100 * MIB, 60, &changes);
	cr_assert_eq(changes, 0, "settled: no change in 60 intervals");
}

Test(balloon_alloc, never_below_the_reservation_or_the_floor)
{
	struct hl_balloon_state st = { 0 };
	struct hl_balloon_in in = guest(1024 * MIB, 1024 * MIB, 10 * MIB);

	bp.headroom_min = 16 * MIB; /* use + headroom = 26 MiB */
	uint64_t t = run(&in, &st, 10 * MIB, 80, NULL);
	/* stops within the tolerance above the floor, never under it */
	cr_assert(t >= bp.floor_min && t <= bp.floor_min + bp.tolerance_min, "%llu MiB",
		  (unsigned long long)(t / MIB));
	memset(&st, 0, sizeof(st));
	in = guest(1024 * MIB, 1024 * MIB, 10 * MIB);
	in.reservation = 300 * MIB;
	cr_assert_eq(run(&in, &st, 10 * MIB, 80, NULL), 300 * MIB, "the reservation");
	/* a target below the reservation (set by hand) is raised at once */
	enum hl_balloon_why why;
	in.target = in.actual = 128 * MIB;
	cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 300 * MIB);
	cr_assert_eq(why, HL_BW_BOUNDS);
}

Test(balloon_alloc, never_above_the_limit)
{
	struct hl_balloon_state st = { 0 };
	struct hl_balloon_in in = guest(1024 * MIB, 1024 * MIB, 200 * MIB);
	enum hl_balloon_why why;

	in.limit = 512 * MIB;
	cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 512 * MIB);
	cr_assert_eq(why, HL_BW_BOUNDS);
	/* pressure gives back up to the limit, not the whole guest memory */
	in.target = in.actual = 300 * MIB;
	in.available = 5 * MIB;
	cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 512 * MIB);
	cr_assert_eq(why, HL_BW_LOW);
}

Test(balloon_alloc, pressure_gives_everything_back_at_once_then_holds)
{
	struct hl_balloon_state st = { 0 };
	struct hl_balloon_in in = guest(1024 * MIB, 1024 * MIB, 100 * MIB);
	enum hl_balloon_why why;

	cr_assert_eq(run(&in, &st, 100 * MIB, 80, NULL), 164 * MIB);
	/* the guest allocates 40 MiB more: 24 MiB left, under half the headroom */
	in.available = 24 * MIB;
	cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 1024 * MIB);
	cr_assert_eq(why, HL_BW_LOW);
	/* ... and is not shrunk again before `hold` calm intervals */
	in.target = in.actual = 1024 * MIB, in.available = 1024 * MIB - 140 * MIB;
	for (unsigned i = 0; i + 1 < bp.hold; i++)
		cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 1024 * MIB);
	/* major faults and swap-ins count as pressure too */
	cr_assert_eq(run(&in, &st, 140 * MIB, 80, NULL), 204 * MIB);
	in.major_faults_ps = 500;
	cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 1024 * MIB);
	cr_assert_eq(why, HL_BW_FAULTS);
	in.major_faults_ps = 0;
	in.target = in.actual = 300 * MIB, in.available = 200 * MIB;
	in.swap_in_bps = 8.0 * MIB;
	cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 1024 * MIB);
	cr_assert_eq(why, HL_BW_SWAP);
}

Test(balloon_alloc, without_statistics_nothing_moves)
{
	struct hl_balloon_state st = { 0 };
	struct hl_balloon_in in = guest(1024 * MIB, 700 * MIB, 100 * MIB);
	enum hl_balloon_why why;

	in.stats = false;
	for (int i = 0; i < 60; i++)
		cr_assert_eq(hl_balloon_step(&in, &bp, &st, &why), 700 * MIB);
}

/* The engine: a VM without a cgroup (watched by pid) gets only balloon
 * changes, with reasons, and the caller applies them in enforce mode. */
Test(balloon_alloc, loop_steers_the_balloon_with_reasons)
{
	qv_collector *c = NULL;
	hl_loop *l = NULL;
	struct hl_loop_opts o = { .caps = { .ncpus = 2, .mem_total = 1ull << 32 },
				  .mode = VM_LOOP_ENFORCE };
	struct vm_resources r = { .mem_reservation = 96 * MIB };
	struct hl_change ch[16];
	struct col_guest g = { .valid = true, .last_update = 1 };
	uint64_t target = 512 * MIB;
	size_t n = 0;
	int shrinks = 0;

	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(hl_loop_new(&o, c, &l), 0);
	cr_assert_eq(col_add_vm_pid(c, "g", getpid()), 0);
	cr_assert_eq(hl_loop_add_vm(l, "g", NULL, &r, 1, 512 * MIB), 0);
	for (int i = 0; i < 80; i++) {
		cr_assert_eq(hl_loop_vm_set_balloon(l, "g", true, target, target), 0);
		g.available = target - 20 * MIB, g.last_update++;
		cr_assert_eq(col_vm_set_guest(c, "g", &g, (uint64_t)i * 1000000), 0);
		col_poll(c, (uint64_t)i * 1000000);
		n = hl_loop_tick(l, ch, 16);
		for (size_t k = 0; k < n; k++) {
			cr_assert_eq(ch[k].knob, HL_K_BALLOON, "no cgroup knobs without a cgroup");
			cr_assert(ch[k].caller_applies && !ch[k].applied);
			cr_assert_not_null(strstr(ch[k].reason, "guest idle"), "%s", ch[k].reason);
			cr_assert_lt(ch[k].value, target);
			target = ch[k].value;
			shrinks++;
		}
	}
	cr_assert_gt(shrinks, 1);
	cr_assert_eq(target, 96 * MIB, "down to the reservation (use 20 MiB + 64 MiB < it)");
	/* the guest allocates: back to the full memory, with the reason */
	cr_assert_eq(hl_loop_vm_set_balloon(l, "g", true, target, target), 0);
	g.available = 10 * MIB, g.last_update++;
	cr_assert_eq(col_vm_set_guest(c, "g", &g, 100000000), 0);
	n = hl_loop_tick(l, ch, 16);
	cr_assert_eq(n, 1);
	cr_assert_eq(ch[0].value, 512 * MIB);
	cr_assert_not_null(strstr(ch[0].reason, "guest memory low"), "%s", ch[0].reason);
	/* advise: reported, not for the caller to apply */
	hl_loop_set_mode(l, VM_LOOP_ADVISE);
	cr_assert_eq(hl_loop_vm_set_balloon(l, "g", true, 512 * MIB, 512 * MIB), 0);
	for (int i = 0; i < 40; i++) {
		g.available = 400 * MIB, g.last_update++;
		cr_assert_eq(col_vm_set_guest(c, "g", &g, (uint64_t)(101 + i) * 1000000), 0);
		n = hl_loop_tick(l, ch, 16);
		for (size_t k = 0; k < n; k++)
			cr_assert(!ch[k].caller_applies && !ch[k].applied);
	}
	json_object *j = hl_loop_vm_json(l, "g"), *b;
	cr_assert(json_object_object_get_ex(j, "balloon", &b), "%s", json_object_to_json_string(j));
	json_object_put(j);
	hl_loop_free(l);
	col_free(c);
}

Test(balloon_alloc, guest_counters_become_rates)
{
	qv_collector *c = NULL;
	struct col_guest g = { .valid = true, .last_update = 100, .major_faults = 1000,
			       .swap_in = 0 };

	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(col_vm_set_guest(c, "x", &g, 0), -ENOENT);
	cr_assert_eq(col_add_vm_pid(c, "x", getpid()), 0);
	cr_assert_eq(col_vm_set_guest(c, "x", &g, 0), 0);
	g.last_update = 102, g.major_faults = 1400, g.swap_in = 4 * MIB;
	cr_assert_eq(col_vm_set_guest(c, "x", &g, 500000), 0);
	const struct col_guest *r = col_vm_guest(c, 0);
	cr_assert_not_null(r);
	cr_assert_float_eq(r->major_faults_ps, 200, 1e-9, "by the guest's clock: 400 in 2 s");
	cr_assert_float_eq(r->swap_in_bps, 2.0 * MIB, 1e-6);
	/* a counter that goes back (guest reboot) gives 0, not a huge rate */
	g.last_update = 104, g.major_faults = 5;
	cr_assert_eq(col_vm_set_guest(c, "x", &g, 900000), 0);
	cr_assert_float_eq(col_vm_guest(c, 0)->major_faults_ps, 0, 1e-9);
	/* unknown now: forgotten */
	g.valid = false;
	cr_assert_eq(col_vm_set_guest(c, "x", &g, 1000000), 0);
	cr_assert_null(col_vm_guest(c, 0));
	col_free(c);
}
