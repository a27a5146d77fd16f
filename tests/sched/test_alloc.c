/* SPDX-License-Identifier: MIT */
/* The allocator, admission control and stepping: pure functions, no cgroups. */
#include <criterion/criterion.h>
#include <string.h>

#include "sched/alloc.h"

#define MIB (1024ull * 1024)

static struct hl_params P;
static const struct hl_host_caps two_cpus = { .ncpus = 2, .mem_total = 4096 * MIB };

static void setup(void)
{
	memset(&P, 0, sizeof(P));
	hl_params_defaults(&P);
}

static struct vm_resources res(uint32_t shares, uint32_t resv_milli, enum vm_class k)
{
	return (struct vm_resources){ .cpu_shares = shares, .cpu_reservation = resv_milli,
				      .klass = k };
}

TestSuite(alloc, .init = setup);

Test(alloc, shares_divide_the_weights)
{
	struct vm_resources a = res(2000, 0, VM_CLASS_THROUGHPUT), b = res(1000, 0, 0);
	struct hl_vm_in in[] = { { "a", &a, 1, 0, { 0 } }, { "b", &b, 1, 0, { 0 } } };
	struct hl_alloc out[2];
	struct hl_verdict v;

	hl_allocate(&two_cpus, &P, in, 2, out, &v);
	cr_assert_eq(out[0].cpu_weight, 1000);
	cr_assert_eq(out[1].cpu_weight, 500);
	cr_assert_eq(out[0].cpuset, 0, "no latency VM: cpusets inherit");
	cr_assert_eq(out[0].cpu_max_quota_us, 0);
	cr_assert_not(v.cpu_short);
}

Test(alloc, a_reservation_raises_its_weight_above_its_shares)
{
	/* one core shared by four equal-share VMs; d reserves 0.5 core */
	struct hl_host_caps one = { .ncpus = 1, .mem_total = 1024 * MIB };
	struct vm_resources r0 = res(1000, 0, 0), rd = res(1000, 500, 0);
	struct hl_vm_in in[] = { { "a", &r0, 1, 0, { 0 } }, { "b", &r0, 1, 0, { 0 } },
				 { "c", &r0, 1, 0, { 0 } }, { "d", &rd, 1, 0, { 0 } } };
	struct hl_alloc out[4];
	struct hl_verdict v;

	hl_allocate(&one, &P, in, 4, out, &v);
	double total = 0;
	for (int i = 0; i < 4; i++)
		total += out[i].cpu_weight;
	cr_assert_float_eq(out[3].cpu_weight / total, 0.5, 0.01, "d gets %u of %.0f",
			   out[3].cpu_weight, total);
	cr_assert_eq(out[0].cpu_weight, out[1].cpu_weight);
	cr_assert_eq(v.cpu_reserved, 500);
}

Test(alloc, best_effort_gets_a_twentieth_of_its_shares)
{
	struct vm_resources a = res(1000, 0, 0), b = res(1000, 0, VM_CLASS_BEST_EFFORT);
	struct hl_vm_in in[] = { { "a", &a, 1, 0, { 0 } }, { "b", &b, 1, 0, { 0 } } };
	struct hl_alloc out[2];
	struct hl_verdict v;

	hl_allocate(&two_cpus, &P, in, 2, out, &v);
	cr_assert_eq(out[0].cpu_weight, 1000);
	cr_assert_eq(out[1].cpu_weight, 50);
}

Test(alloc, latency_vm_gets_exclusive_cores_and_others_stay_off)
{
	struct hl_host_caps four = { .ncpus = 4, .mem_total = 1024 * MIB };
	struct vm_resources lat = res(1000, 1500, VM_CLASS_LATENCY), t = res(1000, 0, 0);
	struct hl_vm_in in[] = { { "n", &t, 2, 0, { 0 } }, { "l", &lat, 2, 0, { 0 } } };
	struct hl_alloc out[2];
	struct hl_verdict v;
	char buf[32];

	hl_allocate(&four, &P, in, 2, out, &v);
	cr_assert(out[1].exclusive);
	cr_assert_str_eq(hl_cpuset_format(out[1].cpuset, buf, sizeof(buf)), "2-3");
	cr_assert_str_eq(hl_cpuset_format(out[0].cpuset, buf, sizeof(buf)), "0-1");
	cr_assert_not(out[0].exclusive);
	cr_assert_eq(v.latency_unplaced, 0);
}

Test(alloc, one_core_always_stays_shared)
{
	struct vm_resources lat = res(1000, 0, VM_CLASS_LATENCY);
	struct hl_vm_in in[] = { { "l1", &lat, 1, 0, { 0 } }, { "l2", &lat, 1, 0, { 0 } } };
	struct hl_alloc out[2];
	struct hl_verdict v;

	hl_allocate(&two_cpus, &P, in, 2, out, &v);
	cr_assert(out[0].exclusive);
	cr_assert_eq(out[0].cpuset, 2);
	cr_assert_not(out[1].exclusive);
	cr_assert_eq(out[1].cpuset, 1, "the unplaced one shares core 0");
	cr_assert_eq(v.latency_unplaced, 1);
	cr_assert(v.cpu_short);
}

Test(alloc, limit_becomes_cpu_max)
{
	struct vm_resources a = res(1000, 0, 0);
	a.cpu_limit = 1500;
	struct hl_vm_in in[] = { { "a", &a, 2, 0, { 0 } } };
	struct hl_alloc out[1];
	struct hl_verdict v;

	hl_allocate(&two_cpus, &P, in, 1, out, &v);
	cr_assert_eq(out[0].cpu_max_quota_us, 150000);
	cr_assert_eq(out[0].cpu_max_period_us, 100000);
}

Test(alloc, memory_high_is_demand_clamped_between_reservation_and_limit)
{
	struct vm_resources a = res(1000, 0, 0);
	a.mem_reservation = 300 * MIB, a.mem_limit = 600 * MIB;
	struct hl_vm_in in[] = { { "a", &a, 1, 512 * MIB, { 0 } } };
	struct hl_alloc out[1];
	struct hl_verdict v;

	hl_allocate(&two_cpus, &P, in, 1, out, &v);
	cr_assert_eq(out[0].mem_high, 0, "unknown demand: max");
	cr_assert_eq(out[0].mem_low, 300 * MIB);
	cr_assert_eq(out[0].mem_max, 600 * MIB);
	in[0].demand = (struct hl_demand){ .known = true, .mem = 100 * MIB };
	hl_allocate(&two_cpus, &P, in, 1, out, &v);
	cr_assert_eq(out[0].mem_high, 300 * MIB, "never below the reservation");
	in[0].demand.mem = 900 * MIB;
	hl_allocate(&two_cpus, &P, in, 1, out, &v);
	cr_assert_eq(out[0].mem_high, 600 * MIB, "never above the limit");
	in[0].demand.mem = 400 * MIB;
	hl_allocate(&two_cpus, &P, in, 1, out, &v);
	cr_assert_eq(out[0].mem_high, 400 * MIB);
}

Test(alloc, estimator_takes_the_larger_of_ewma_and_percentile_plus_headroom)
{
	struct hl_estimator e = { 0 };
	struct hl_demand d;

	hl_est_demand(&e, &P, 2, &d);
	cr_assert_not(d.known);
	for (int i = 0; i < 20; i++)
		hl_est_push(&e, &P, i == 10 || i == 11 ? 1.0 : 0.2, 100 * MIB);
	hl_est_demand(&e, &P, 2, &d);
	cr_assert(d.known);
	cr_assert_float_eq(d.cpu_pct, 1.0, 1e-6, "p95 of 20 samples with 2 spikes is a spike");
	cr_assert_float_eq(d.cpu, 1.2, 1e-6);
	cr_assert_eq(d.mem, 228 * MIB, "100 MiB + max(25%%, 128 MiB)");
	for (int i = 0; i < 40; i++)
		hl_est_push(&e, &P, 5.0, 100 * MIB);
	hl_est_demand(&e, &P, 2, &d);
	cr_assert_float_eq(d.cpu, 2.0, 1e-6, "capped at vcpus");
}

Test(alloc, admission_names_the_short_resource)
{
	struct vm_resources a = res(1000, 1500, 0), b = res(1000, 1000, 0), m = res(1000, 0, 0);
	struct vm_resources lat = res(1000, 0, VM_CLASS_LATENCY);
	m.mem_reservation = 4000 * MIB;
	struct hl_vm_in run[] = { { "a", &a, 2, 0, { 0 } } };
	struct hl_vm_in cand = { "b", &b, 1, 0, { 0 } };
	struct qv_error err = { 0 };

	cr_assert_eq(hl_admit(&two_cpus, run, 1, &cand, &err), -ENOSPC);
	cr_assert_not_null(strstr(err.message, "not enough cpu for VM b"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "1.500 of the 2.000 cores"), "%s", err.message);
	cr_assert_str_eq(err.reason, "unavailable");
	b.cpu_reservation = 500;
	cr_assert_eq(hl_admit(&two_cpus, run, 1, &cand, NULL), 0);

	struct hl_vm_in mc = { "m", &m, 1, 0, { 0 } };
	qv_error_clear(&err);
	cr_assert_eq(hl_admit(&two_cpus, run, 1, &mc, NULL), 0);
	struct hl_vm_in run2[] = { { "a", &a, 2, 0, { 0 } }, { "m", &m, 1, 0, { 0 } } };
	cr_assert_eq(hl_admit(&two_cpus, run2, 2, &mc, &err), -ENOSPC);
	cr_assert_not_null(strstr(err.message, "not enough memory"), "%s", err.message);

	struct hl_vm_in lc = { "l", &lat, 1, 0, { 0 } };
	struct hl_vm_in run3[] = { { "l0", &lat, 1, 0, { 0 } } };
	qv_error_clear(&err);
	cr_assert_eq(hl_admit(&two_cpus, run3, 1, &lc, &err), -ENOSPC);
	cr_assert_not_null(strstr(err.message, "not enough exclusive cores"), "%s", err.message);
	/* a latency VM takes its core away from the shared reservations */
	qv_error_clear(&err);
	cr_assert_eq(hl_admit(&two_cpus, run, 1, &lc, &err), -ENOSPC);
	cr_assert_not_null(strstr(err.message, "not enough cpu"), "%s", err.message);
}

Test(alloc, step_applies_entitlements_at_once_and_memory_with_hysteresis)
{
	struct hl_step_params sp = { 0 };
	struct hl_step_state st = { 0 };
	struct hl_alloc cur = { 0 }, want = { .cpu_weight = 1000, .mem_high = 500 * MIB }, next;

	hl_step_params_defaults(&sp);
	cr_assert_eq(hl_step(&cur, false, &want, &sp, &st, &next), 0x3f, "first: everything");
	cur = next;
	want.cpu_weight = 1050; /* within 10 % */
	want.mem_high = 510 * MIB;
	cr_assert_eq(hl_step(&cur, true, &want, &sp, &st, &next), 0, "small moves are ignored");
	want.mem_high = 100 * MIB;
	cr_assert_eq(hl_step(&cur, true, &want, &sp, &st, &next), HL_K_MEM_HIGH);
	cr_assert_eq(next.mem_high, 375 * MIB, "down by at most 25 %% per step");
	cur = next;
	want.mem_high = 600 * MIB;
	cr_assert_eq(hl_step(&cur, true, &want, &sp, &st, &next), HL_K_MEM_HIGH,
		     "growing is never held back");
	cr_assert_eq(next.mem_high, 600 * MIB);
	cur = next;
	want.mem_high = 300 * MIB;
	for (unsigned i = 0; i < sp.hold - 1; i++)
		cr_assert_eq(hl_step(&cur, true, &want, &sp, &st, &next), 0,
			     "no reversal within the hold (step %u)", i);
	cr_assert_eq(hl_step(&cur, true, &want, &sp, &st, &next), HL_K_MEM_HIGH);
	want.cpuset = 3;
	cur = next;
	cr_assert_eq(hl_step(&cur, true, &want, &sp, &st, &next) & HL_K_CPUSET, HL_K_CPUSET);
}

Test(alloc, steady_input_settles_and_never_changes_again)
{
	struct hl_step_params sp = { 0 };
	struct hl_step_state st = { 0 };
	struct hl_estimator e = { 0 };
	struct vm_resources a = res(1000, 0, 0);
	struct hl_alloc cur = { 0 }, out[1], next;
	struct hl_verdict v;
	bool have = false;
	int changes_late = 0;

	hl_step_params_defaults(&sp);
	for (int t = 0; t < 300; t++) {
		/* noisy but steady: memory wobbles +-8 MiB around 200 MiB */
		hl_est_push(&e, &P, 0.9 + (t % 3) * 0.05, (200 + (t % 5) * 4 - 8) * MIB);
		struct hl_vm_in in = { "a", &a, 1, 0, { 0 } };
		hl_est_demand(&e, &P, 1, &in.demand);
		hl_allocate(&two_cpus, &P, &in, 1, out, &v);
		unsigned m = hl_step(&cur, have, &out[0], &sp, &st, &next);
		cur = next, have = true;
		if (t >= 60 && m)
			changes_late++;
	}
	cr_assert_eq(changes_late, 0);
}

Test(alloc, cpuset_format)
{
	char buf[64];

	cr_assert_str_eq(hl_cpuset_format(0, buf, sizeof(buf)), "");
	cr_assert_str_eq(hl_cpuset_format(0x1, buf, sizeof(buf)), "0");
	cr_assert_str_eq(hl_cpuset_format(0xb, buf, sizeof(buf)), "0-1,3");
	cr_assert_str_eq(hl_cpuset_format(1ull << 63, buf, sizeof(buf)), "63");
}

Test(alloc, best_effort_is_an_idle_group_where_the_kernel_has_it)
{
	struct hl_host_caps idle = two_cpus;
	struct vm_resources a = res(1000, 0, 0), b = res(1000, 0, VM_CLASS_BEST_EFFORT);
	struct vm_resources br = res(1000, 500, VM_CLASS_BEST_EFFORT);
	struct hl_vm_in in[] = { { "a", &a, 1, 0, { 0 } }, { "b", &b, 1, 0, { 0 } },
				 { "br", &br, 1, 0, { 0 } } };
	struct hl_alloc out[3];
	struct hl_verdict v;

	idle.cpu_idle = true;
	hl_allocate(&idle, &P, in, 3, out, &v);
	cr_assert_not(out[0].cpu_idle);
	cr_assert_eq(out[0].cpu_weight, 1000);
	cr_assert(out[1].cpu_idle, "best-effort without a reservation: SCHED_IDLE group");
	cr_assert_eq(out[1].cpu_weight, 1, "constant while idle (the kernel refuses writes)");
	cr_assert_not(out[2].cpu_idle, "a reservation needs a real weight to hold");
	cr_assert_gt(out[2].cpu_weight, 1);
	/* without cpu.idle in the kernel: the old low weight, 1/20 of the shares */
	hl_allocate(&two_cpus, &P, in, 2, out, &v);
	cr_assert_not(out[1].cpu_idle);
	cr_assert_eq(out[1].cpu_weight, 50);
}

Test(alloc, latency_vm_shares_the_cores_on_a_host_below_exclusive_min_cpus)
{
	struct hl_host_caps small = two_cpus, four = { .ncpus = 4, .mem_total = 1024 * MIB,
						       .exclusive_min_cpus = 4 };
	struct vm_resources lat = res(1000, 0, VM_CLASS_LATENCY), t = res(1000, 0, 0);
	struct hl_vm_in in[] = { { "t", &t, 1, 0, { 0 } }, { "l", &lat, 1, 0, { 0 } },
				 { "l2", &lat, 1, 0, { 0 } } };
	struct hl_alloc out[3];
	struct hl_verdict v;

	cr_assert(hl_exclusive_allowed(&small), "default: whenever one core stays shared");
	small.exclusive_min_cpus = 4;
	cr_assert_not(hl_exclusive_allowed(&small));
	hl_allocate(&small, &P, in, 3, out, &v);
	for (int i = 0; i < 3; i++) {
		cr_assert_not(out[i].exclusive, "%d", i);
		cr_assert_eq(out[i].cpuset, 0, "%d: every core", i);
	}
	cr_assert_eq(v.latency_unplaced, 0, "not a shortage: the host's choice");
	cr_assert_not(v.cpu_short);
	/* admission: two latency VMs fit (no exclusive cores to run out of) */
	struct hl_vm_in run[] = { { "l", &lat, 1, 0, { 0 } } };
	cr_assert_eq(hl_admit(&small, run, 1, &in[2], NULL), 0);
	hl_allocate(&four, &P, in, 3, out, &v);
	cr_assert(out[1].exclusive);
	cr_assert(out[2].exclusive);
	cr_assert_eq(out[0].cpuset, 3, "the throughput VM keeps cores 0-1");
	/* the operator asks for it (resources.cpu.exclusive): one VM, not the last core */
	struct vm_resources ask = lat;
	ask.cpu_exclusive = true;
	struct hl_vm_in in2[] = { { "t", &t, 1, 0, { 0 } }, { "a", &ask, 1, 0, { 0 } },
				  { "l", &lat, 1, 0, { 0 } } };
	hl_allocate(&small, &P, in2, 3, out, &v);
	cr_assert(out[1].exclusive);
	cr_assert_eq(out[1].cpuset, 2);
	cr_assert_not(out[2].exclusive, "did not ask: shares core 0");
	cr_assert_eq(out[0].cpuset, 1);
	struct hl_vm_in run2[] = { { "a", &ask, 1, 0, { 0 } } };
	struct qv_error err = { 0 };
	cr_assert_eq(hl_admit(&small, run2, 1, &in2[1], &err), -ENOSPC);
	cr_assert_not_null(strstr(err.message, "not enough exclusive cores"), "%s", err.message);
}

Test(alloc, step_turns_cpu_idle_with_the_class_and_then_stays)
{
	struct hl_step_params sp = { 0 };
	struct hl_step_state st = { 0 };
	struct hl_alloc cur = { 0 }, want = { .cpu_weight = 1, .cpu_idle = true }, next;

	hl_step_params_defaults(&sp);
	unsigned m = hl_step(&cur, false, &want, &sp, &st, &next);
	cr_assert(m & HL_K_CPU_IDLE, "an idle group is written at once");
	cr_assert(m & HL_K_WEIGHT);
	cur = next;
	cr_assert_eq(hl_step(&cur, true, &want, &sp, &st, &next), 0, "steady");
	struct hl_alloc normal = { .cpu_weight = 1000 };
	m = hl_step(&cur, true, &normal, &sp, &st, &next);
	cr_assert_eq(m, HL_K_CPU_IDLE | HL_K_WEIGHT);
	cr_assert_not(next.cpu_idle);
	cr_assert_eq(next.cpu_weight, 1000);
	/* a fresh group is not idle: nothing to write for a normal class */
	cr_assert_not(hl_step(&cur, false, &normal, &sp, &st, &next) & HL_K_CPU_IDLE);
	cr_assert_str_eq(hl_knob_name(HL_K_CPU_IDLE), "cpu.idle");
}
