/* SPDX-License-Identifier: MIT */
/* sched/balance*: overload relief, limits, cooldown and no ping-pong
 * across rounds, advise vs enforce, power saving, evacuation waves and
 * determinism, on small hand-built clusters. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "sched/balance.h"

#define NH 4
#define NV 16
static struct qv_pl_host H[NH];
static struct qv_pl_vm V[NV];
static struct qv_pl_snapshot S;
static struct qv_bal_cfg C;
static qv_bal *B;

static void setup(void)
{
	static const char *names[NH] = { "h1", "h2", "h3", "h4" };
	memset(H, 0, sizeof(H));
	memset(V, 0, sizeof(V));
	for (int i = 0; i < NH; i++)
		H[i] = (struct qv_pl_host){ .name = names[i], .cpu_milli = 4000, .mem_mib = 8192,
					    .schedulable = true, .bw_mbps = 1000 };
	S = (struct qv_pl_snapshot){ .hosts = H, .nhosts = 3, .vms = V };
	qv_bal_cfg_defaults(&C);
	C.mode = QV_BAL_ENFORCE;
	B = NULL;
}

static void teardown(void)
{
	qv_bal_free(B);
}

/* VM i on host h using cpu millicores and mem MiB; the host's usage grows. */
static struct qv_pl_vm *vm(int i, const char *name, int h, double cpu, uint64_t mem)
{
	V[i] = (struct qv_pl_vm){ .name = name, .host = h, .vcpus = 2, .mem_mib = mem,
				  .cpu_used_milli = cpu, .mem_used_mib = mem, .last_move_s = -1,
				  .prev_host = -1 };
	if (h >= 0) {
		H[h].cpu_used_milli += cpu;
		H[h].mem_used_mib += mem;
	}
	if (i >= S.nvms)
		S.nvms = i + 1;
	return &V[i];
}

/* Move VM i to host h in the snapshot (what the cluster would report). */
static void arrive(int i, int h)
{
	H[V[i].host].cpu_used_milli -= V[i].cpu_used_milli;
	H[V[i].host].mem_used_mib -= V[i].mem_used_mib;
	V[i].host = h;
	H[h].cpu_used_milli += V[i].cpu_used_milli;
	H[h].mem_used_mib += V[i].mem_used_mib;
	V[i].migrating = false;
}

static struct qv_bal_plan round_at(double t)
{
	struct qv_bal_plan p;
	struct qv_error e = { 0 };
	if (!B)
		cr_assert_eq(qv_bal_new(&C, &B), 0);
	cr_assert_eq(qv_bal_round(B, &S, t, &p, &e), 0, "%s", e.message);
	if (getenv("DBG"))
		for (int i = 0; i < p.n; i++)
			fprintf(stderr, "t=%g %d: %s\n", t, p.d[i].kind, p.d[i].reason);
	return p;
}

static int count(const struct qv_bal_plan *p, enum qv_bal_kind k)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->d[i].kind == k;
	return n;
}

TestSuite(balance, .init = setup, .fini = teardown);

Test(balance, overload_moves_the_cheapest_relief)
{
	vm(0, "a", 0, 1500, 4096);
	vm(1, "b", 0, 1000, 512);
	vm(2, "c", 0, 1300, 1024);
	vm(3, "d", 1, 1000, 1024);
	vm(4, "e", 2, 500, 1024);
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.overloaded, 1);
	cr_assert_eq(p.moves, 1, "%s", p.summary);
	cr_assert_eq(p.d[0].vm, 1, "b clears the 600 millicores in the shortest migration: %s", p.d[0].reason);
	cr_assert_eq(p.d[0].to, 2);
	cr_assert_float_eq(p.d[0].cost_s, 512 * 8.388608 / 1000, 1e-9);
	cr_assert(strstr(p.d[0].reason, "h1 overloaded (THR 0.800, cpu 95% now); b moves (predicted 4.3 s, "
					"512 MiB, dirty 0 Mbit/s) to h3: least loaded after placement"),
		  "%s", p.d[0].reason);
	cr_assert_not(p.advise);
	cr_assert_eq(qv_bal_inflight(B), 1);
	cr_assert_str_eq(p.summary, "round (enforce): 1 overloaded, 0 underloaded; 1 migrations, 0 deferred, 0 skipped");
	qv_bal_plan_free(&p);
}

Test(balance, advise_records_nothing_and_off_does_nothing)
{
	vm(0, "a", 0, 3500, 1024);
	vm(1, "b", 0, 200, 512);
	C.mode = QV_BAL_ADVISE;
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.moves, 1);
	cr_assert(p.advise);
	cr_assert(strstr(p.summary, "1 migrations advised"), "%s", p.summary);
	cr_assert_eq(qv_bal_inflight(B), 0);
	qv_bal_plan_free(&p);
	p = round_at(10); /* nothing recorded: the same advice again */
	cr_assert_eq(p.moves, 1);
	cr_assert_eq(p.d[0].vm, 0, "a alone clears the excess (b does not): %s", p.d[0].reason);
	qv_bal_plan_free(&p);
	qv_bal_set_mode(B, QV_BAL_OFF);
	p = round_at(20);
	cr_assert_eq(p.n, 0);
	cr_assert_str_eq(p.summary, "balancer off");
	qv_bal_plan_free(&p);
	enum qv_bal_mode m;
	cr_assert_eq(qv_bal_mode_parse("enforce", &m), 0);
	cr_assert_eq(m, QV_BAL_ENFORCE);
	cr_assert_eq(qv_bal_mode_parse("on", &m), -EINVAL);
}

static const struct qv_bal_decision *first_move(const struct qv_bal_plan *p)
{
	for (int i = 0; i < p->n; i++)
		if (p->d[i].kind == QV_BAL_MOVE)
			return &p->d[i];
	cr_assert_fail("no move in the plan: %s", p->summary);
	return NULL;
}

Test(balance, cooldown_means_no_ping_pong)
{
	vm(0, "a", 0, 2000, 1024);
	vm(1, "pad", 0, 1600, 2048);
	vm(2, "x", 1, 1000, 512);
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.moves, 1);
	const struct qv_bal_decision *d = first_move(&p);
	int moved = d->vm, from = d->from, to = d->to;
	cr_assert_eq(moved, 0, "a: 1024 MiB, covers the 400 millicores: %s", d->reason);
	cr_assert_eq(to, 2);
	qv_bal_plan_free(&p);
	V[moved].migrating = true;
	p = round_at(30); /* still migrating: h1 is counted without it */
	cr_assert_eq(qv_bal_inflight(B), 1);
	cr_assert_eq(p.overloaded, 0, "h1 at 90%% less a's 2 cores in flight: %s", p.summary);
	cr_assert_eq(p.n, 0);
	qv_bal_plan_free(&p);
	arrive(moved, to);
	/* its new host is now the overloaded one, the old one has room */
	H[to].cpu_used_milli += 1500;
	p = round_at(60);
	cr_assert_eq(qv_bal_inflight(B), 0, "seen on its destination: done");
	cr_assert_eq(p.moves, 0, "a may not move back within its cooldown");
	cr_assert_eq(count(&p, QV_BAL_SKIP), 1);
	cr_assert_str_eq(p.d[0].reason, "h3 overloaded (THR 0.800, cpu 88% now); no VM may move: "
					"a in cooldown (1740 s of 1800 s left)");
	qv_bal_plan_free(&p);
	/* the leader restarted: the inventory's last_move_s still holds it */
	qv_bal_free(B);
	B = NULL;
	V[moved].last_move_s = 0;
	V[moved].prev_host = from;
	p = round_at(1000);
	cr_assert_eq(p.moves, 0);
	qv_bal_plan_free(&p);
	p = round_at(1801);
	cr_assert_eq(p.moves, 1, "cooldown over: %s", p.n ? p.d[0].reason : p.summary);
	cr_assert_eq(p.d[0].vm, moved);
	qv_bal_plan_free(&p);
}

Test(balance, limits_per_host_and_cluster)
{
	/* three overloaded hosts of two VMs each; h4 empty and large */
	S.nhosts = 4;
	H[3].cpu_milli = 64000;
	H[3].mem_mib = 65536;
	const char *n[] = { "a1", "a2", "b1", "b2", "c1", "c2" };
	for (int i = 0; i < 6; i++)
		vm(i, n[i], i / 2, 2000, 512);
	C.max_per_host = 2;
	C.max_cluster = 2;
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.overloaded, 3);
	cr_assert_eq(p.moves, 2, "%s", p.summary);
	cr_assert_eq(p.d[p.n - 1].kind, QV_BAL_DEFER);
	cr_assert(strstr(p.d[p.n - 1].reason, "nothing moves now: cluster limit reached (2 migrations in flight, limit 2)"),
		  "%s", p.d[p.n - 1].reason);
	qv_bal_plan_free(&p);
	/* per host: h4 may take only one at a time */
	qv_bal_free(B);
	B = NULL;
	C.max_per_host = 1;
	C.max_cluster = 0;
	p = round_at(0);
	cr_assert_eq(p.moves, 1, "only h4 fits and it takes one: %s", p.summary);
	cr_assert_eq(count(&p, QV_BAL_SKIP), 4, "h2 and h3: the first VM's refusal, then a count");
	cr_assert(strstr(p.d[1].reason, "h2 overloaded (THR 0.800, cpu 100% now); b1 stays: no host can take b1: "
					"h1: 1 migrations in flight (limit 1)"), "%s", p.d[1].reason);
	cr_assert(strstr(p.d[1].reason, "h4: 1 migrations in flight (limit 1)"), "%s", p.d[1].reason);
	cr_assert_str_eq(p.d[2].reason, "h2 overloaded (THR 0.800, cpu 100% now); 1 more VMs stay: no host can take them either");
	cr_assert(strstr(p.d[3].reason, "h3 overloaded (THR 0.800, cpu 100% now); c1 stays: no host can take it "
					"(like b1): h1: 1 migrations"), "%s", p.d[3].reason);
	qv_bal_plan_free(&p);
	/* the source limit: a host that needs two moves gets one per round */
	qv_bal_free(B);
	B = NULL;
	C.max_per_host = 1;
	H[3].cpu_milli = 4000;
	S.nhosts = 4;
	memset(V, 0, sizeof(V));
	for (int h = 0; h < 4; h++)
		H[h].cpu_used_milli = H[h].mem_used_mib = 0;
	S.nvms = 0;
	vm(0, "p", 0, 1800, 512);
	vm(1, "q", 0, 1700, 600);
	C.pol.param = 0.4; /* THR 0.4: both must go to bring h1 under */
	C.target_util = 0.5;
	p = round_at(0);
	cr_assert_eq(p.moves, 1);
	cr_assert_eq(count(&p, QV_BAL_DEFER), 1);
	cr_assert(strstr(p.d[1].reason, "1 more VMs may move later: h1 has 1 migrations in flight (limit 1)"), "%s",
		  p.d[1].reason);
	qv_bal_plan_free(&p);
}

Test(balance, lr_predicts_what_thr_misses)
{
	vm(0, "a", 0, 2760, 1024);
	vm(1, "b", 0, 400, 512);
	/* 79 % now, rising 6 points per sample */
	static double hist[12];
	for (int i = 0; i < 12; i++)
		hist[i] = 0.79 - 0.06 * i;
	H[0].cpu_hist = hist;
	H[0].ncpu_hist = 12;
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.overloaded, 0, "THR 0.8 sees 79%%");
	qv_bal_plan_free(&p);
	qv_bal_free(B);
	B = NULL;
	cr_assert_eq(qv_pol_cfg_parse("lr-mmt", 0, &C.pol), 0);
	p = round_at(0);
	cr_assert_eq(p.overloaded, 1);
	cr_assert_eq(p.moves, 1, "one VM moves although the excess is not there yet");
	cr_assert(strstr(p.d[0].reason, "h1 overloaded (LR 1."), "%s", p.d[0].reason);
	qv_bal_plan_free(&p);
}

Test(balance, memory_pressure_and_costs)
{
	vm(0, "big", 0, 100, 6000);
	vm(1, "small", 0, 100, 1800);
	H[0].mem_used_mib += 100; /* 96 % in use */
	V[0].dirty_mbps = 2000; /* never converges over 1 Gbit/s */
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.overloaded, 1);
	cr_assert_eq(p.moves, 1);
	cr_assert_eq(p.d[0].vm, 1, "big would not converge: %s", p.d[0].reason);
	cr_assert(strstr(p.d[0].reason, "h1 overloaded (memory 96% in use > 90%)"), "%s", p.d[0].reason);
	qv_bal_plan_free(&p);
	/* both impossible: a note naming each */
	qv_bal_free(B);
	B = NULL;
	V[1].pinned = true;
	p = round_at(0);
	cr_assert_eq(p.moves, 0);
	cr_assert(strstr(p.d[0].reason, "no VM may move: big would not converge (dirty 2000 Mbit/s), small pinned"),
		  "%s", p.d[0].reason);
	qv_bal_plan_free(&p);
	cr_assert(isinf(qv_bal_cost_precopy(&V[0], &H[0], NULL, NULL)));
	V[0].dirty_mbps = 500; /* geometric: twice the first pass */
	cr_assert_float_eq(qv_bal_cost_precopy(&V[0], &H[0], NULL, NULL), 2 * 6000 * 8.388608 / 1000, 1e-9);
}

static double flat_cost(const struct qv_pl_vm *v, const struct qv_pl_host *f, const struct qv_pl_host *t,
			void *opaque)
{
	(*(int *)opaque)++;
	return strcmp(v->name, "a") == 0 ? 1 : 50;
}

Test(balance, cost_callback_decides)
{
	int calls = 0;
	vm(0, "a", 0, 2000, 4096);
	vm(1, "b", 0, 2000, 512);
	C.cost_fn = flat_cost;
	C.cost_opaque = &calls;
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.moves, 1);
	cr_assert_eq(p.d[0].vm, 0, "the callback says a is cheap: %s", p.d[0].reason);
	cr_assert_float_eq(p.d[0].cost_s, 1, 1e-9);
	cr_assert_gt(calls, 0);
	qv_bal_plan_free(&p);
}

Test(balance, power_saving_empties_onto_hosts_in_use)
{
	vm(0, "lonely", 0, 300, 1024);
	vm(1, "w1", 1, 1200, 1024);
	vm(2, "w2", 1, 800, 1024);
	C.power_saving = true;
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.underloaded, 1);
	cr_assert_eq(p.moves, 1, "%s", p.summary);
	cr_assert_eq(p.d[0].to, 1, "h3 is empty: it stays off: %s", p.d[0].reason);
	cr_assert(strstr(p.d[0].reason, "h1 underloaded (cpu 8% < 20%); emptied to save power; lonely moves"), "%s",
		  p.d[0].reason);
	cr_assert_eq(p.d[0].why, QV_BAL_UNDERLOAD);
	qv_bal_plan_free(&p);
	/* a VM in cooldown keeps its host on */
	qv_bal_free(B);
	B = NULL;
	V[0].last_move_s = 0;
	p = round_at(100);
	cr_assert_eq(p.moves, 0);
	cr_assert(strstr(p.d[0].reason, "h1 underloaded (cpu 8% < 20%); stays on: lonely in cooldown"), "%s",
		  p.d[0].reason);
	qv_bal_plan_free(&p);
}

Test(balance, evacuation_in_waves)
{
	const char *n[] = { "e1", "e2", "e3", "e4", "e5" };
	for (int i = 0; i < 5; i++)
		vm(i, n[i], 0, 200, 1024 + 100 * i);
	V[4].pinned = true;
	V[3].last_move_s = 0; /* in cooldown */
	vm(5, "other", 1, 200, 512);
	C.max_per_host = 2;
	C.max_cluster = 4;
	cr_assert_eq(qv_bal_new(&C, &B), 0);
	struct qv_bal_plan p;
	struct qv_error e = { 0 };
	cr_assert_eq(qv_bal_evacuate(B, &S, 0, 10, &p, &e), 0, "%s", e.message);
	cr_assert_eq(p.moves, 5);
	cr_assert_eq(p.waves, 3, "two out of h1 per wave: %s", p.summary);
	int per_wave[3] = { 0 };
	for (int i = 0; i < p.n; i++) {
		cr_assert_neq(p.d[i].to, 0);
		cr_assert_geq(p.d[i].wave, i ? p.d[i - 1].wave : 0, "ordered by wave");
		per_wave[p.d[i].wave]++;
	}
	cr_assert_eq(per_wave[0], 2);
	cr_assert_eq(per_wave[1], 2);
	cr_assert_eq(per_wave[2], 1);
	cr_assert(strstr(p.d[0].reason, "evacuating h1 (wave 1 of 3): e5 (predicted"), "largest first: %s",
		  p.d[0].reason);
	cr_assert(strstr(p.d[0].reason, "pinned: moved by the operator's order"), "%s", p.d[0].reason);
	cr_assert_str_eq(p.summary, "evacuating h1: 5 migrations in 3 waves, 0 skipped");
	cr_assert_eq(qv_bal_inflight(B), 5, "enforce: recorded");
	qv_bal_plan_free(&p);

	/* one VM too big for anywhere: the others still planned */
	qv_bal_free(B);
	cr_assert_eq(qv_bal_new(&C, &B), 0);
	vm(6, "huge", 0, 100, 9000);
	qv_error_clear(&e);
	cr_assert_eq(qv_bal_evacuate(B, &S, 0, 10, &p, &e), -ENOSPC);
	cr_assert_eq(p.moves, 5);
	cr_assert_eq(p.skipped, 1);
	cr_assert(strstr(e.message, "cannot evacuate h1: 1 of 6 VMs fit on no other host (first: no host can take huge: h1: excluded; h2: memory"),
		  "%s", e.message);
	qv_bal_plan_free(&p);
	cr_assert_eq(qv_bal_evacuate(B, &S, 9, 10, &p, &e), -EINVAL);
}

Test(balance, deterministic)
{
	S.nhosts = 4;
	const char *n[] = { "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9" };
	for (int i = 0; i < 10; i++)
		vm(i, n[i], i % 2, 700 + 10 * (i % 3), 512 + 64 * (i % 4));
	C.power_saving = true;
	C.max_cluster = 0;
	C.max_per_host = 0;
	struct qv_bal_plan p1 = round_at(0);
	qv_bal_free(B);
	B = NULL;
	struct qv_bal_plan p2 = round_at(0);
	cr_assert_gt(p1.n, 0);
	cr_assert_eq(p1.n, p2.n);
	for (int i = 0; i < p1.n; i++) {
		cr_assert_eq(p1.d[i].vm, p2.d[i].vm);
		cr_assert_eq(p1.d[i].to, p2.d[i].to);
		cr_assert_str_eq(p1.d[i].reason, p2.d[i].reason);
	}
	qv_bal_plan_free(&p1);
	qv_bal_plan_free(&p2);
}

Test(balance, inflight_ends_by_snapshot_report_or_timeout)
{
	vm(0, "a", 0, 2000, 1024);
	vm(1, "b", 0, 1600, 2048);
	C.max_per_host = 1;
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.moves, 1);
	qv_bal_plan_free(&p);
	cr_assert_eq(qv_bal_inflight(B), 1);
	/* never started: still on its source, not migrating; after the grace
	 * (60 s + twice the predicted time) it stops counting */
	p = round_at(30);
	cr_assert_eq(qv_bal_inflight(B), 1);
	qv_bal_plan_free(&p);
	p = round_at(200);
	cr_assert_eq(p.moves, 1, "a's order lapsed; a is in cooldown, so b goes: %s", p.summary);
	cr_assert_str_eq(V[p.d[0].vm].name, "b");
	cr_assert_eq(qv_bal_inflight(B), 1, "only b's");
	qv_bal_plan_free(&p);
	/* the caller reports the end */
	qv_bal_finished(B, "b", false, 210);
	cr_assert_eq(qv_bal_inflight(B), 0);
	/* timeout: a migrating VM never seen to end */
	qv_bal_free(B);
	B = NULL;
	C.inflight_timeout_s = 100;
	p = round_at(0);
	qv_bal_plan_free(&p);
	V[0].migrating = true; /* a was ordered; b migrates by someone else's order */
	V[1].migrating = true;
	p = round_at(50);
	cr_assert_eq(qv_bal_inflight(B), 1);
	qv_bal_plan_free(&p);
	p = round_at(101);
	cr_assert_eq(qv_bal_inflight(B), 0, "timed out");
	qv_bal_plan_free(&p);
}

Test(balance, qvisor_forecast_and_groups)
{
	static const char *const g[] = { "db" };
	static double calm[12], wild[12];
	for (int i = 0; i < 12; i++) {
		calm[i] = 0.5;
		wild[i] = i % 2 ? 0.1 : 0.9;
	}
	/* 70 % busy: THR 0.8 is quiet; qvisor's forecast adds the noisy VM's spread */
	vm(0, "noisy", 0, 1800, 1024)->cpu_hist = wild;
	V[0].ncpu_hist = 12;
	vm(1, "calm", 0, 1000, 512)->cpu_hist = calm;
	V[1].ncpu_hist = 12;
	cr_assert_eq(qv_pol_cfg_parse("qvisor", 0, &C.pol), 0);
	struct qv_bal_plan p = round_at(0);
	cr_assert_eq(p.overloaded, 1, "%s", p.summary);
	cr_assert(strstr(p.d[0].reason, "h1 overloaded (forecast 1"), "%s", p.d[0].reason);
	qv_bal_plan_free(&p);
	/* an anti-affinity partner on h3 keeps the mover on h2 */
	qv_bal_free(B);
	B = NULL;
	vm(2, "db2", 2, 10, 64)->anti_affinity = g;
	V[2].nanti_affinity = 1;
	V[0].anti_affinity = V[1].anti_affinity = g;
	V[0].nanti_affinity = V[1].nanti_affinity = 1;
	H[1].cpu_used_milli = 1500; /* h3 is emptier, but holds db2 */
	p = round_at(0);
	cr_assert_eq(p.moves, 1);
	cr_assert_eq(p.d[0].to, 1, "%s", p.d[0].reason);
	qv_bal_plan_free(&p);
}

Test(balance, json_views_name_hosts_and_vms)
{
	vm(0, "a", 0, 2800, 1024);
	vm(1, "b", 0, 600, 512);
	struct qv_bal_plan p = round_at(0);
	json_object *j = qv_bal_plan_json(&S, &p);
	json_object *back = json_tokener_parse(json_object_get_string(j));
	cr_assert_not_null(back, "valid JSON");
	json_object_put(back);
	json_object *d = json_object_array_get_idx(json_object_object_get(j, "decisions"), 0);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(d, "kind")), "move");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(d, "why")), "overload");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(d, "vm")), "b");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(d, "from")), "h1");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(d, "to")), "h2");
	cr_assert_null(json_object_object_get(d, "wave"));
	cr_assert_float_eq(json_object_get_double(json_object_object_get(d, "predicted_s")), 4.29, 0.01);
	cr_assert_eq(json_object_get_int(json_object_object_get(j, "moves")), 1);
	cr_assert_not(json_object_get_boolean(json_object_object_get(j, "advise")));
	json_object_put(j);
	qv_bal_plan_free(&p);

	struct qv_pl_choice c = { .host = -1, .reason = "no host can take x: h1: unschedulable" };
	j = qv_pl_choice_json(&S, &c);
	cr_assert(json_object_object_get_ex(j, "host", NULL));
	cr_assert_null(json_object_object_get(j, "host"));
	cr_assert_str_eq(json_object_get_string(json_object_object_get(j, "reason")), c.reason);
	json_object_put(j);
}
