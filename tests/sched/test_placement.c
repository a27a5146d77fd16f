/* SPDX-License-Identifier: MIT */
/* sched/placement*: filters, scorers, refusal messages, assignments and
 * the batch (evacuation) form on small hand-built clusters. */
#include <criterion/criterion.h>
#include <string.h>

#include "sched/placement.h"

static const char *const zone_a[] = { "zone=a", "ssd" };
static const char *const zone_b[] = { "zone=b" };

/* Three 4-core / 4096 MiB hosts, nothing running. */
static struct qv_pl_host H[4];
static struct qv_pl_vm V[16];
static struct qv_pl_snapshot S;
static struct qv_pl_cfg C;

static void setup(void)
{
	memset(H, 0, sizeof(H));
	memset(V, 0, sizeof(V));
	const char *names[] = { "h1", "h2", "h3", "h4" };
	for (int i = 0; i < 4; i++)
		H[i] = (struct qv_pl_host){ .name = names[i], .cpu_milli = 4000, .mem_mib = 4096,
					    .schedulable = true };
	H[0].labels = zone_a;
	H[0].nlabels = 2;
	H[1].labels = zone_b;
	H[1].nlabels = 1;
	S = (struct qv_pl_snapshot){ .hosts = H, .nhosts = 3, .vms = V, .nvms = 0 };
	qv_pl_cfg_defaults(&C);
}

static struct qv_pl_vm *vm(int i, const char *name, int host, uint64_t mem, uint64_t mem_res)
{
	V[i] = (struct qv_pl_vm){ .name = name, .host = host, .vcpus = 1, .mem_mib = mem,
				  .mem_res_mib = mem_res, .last_move_s = -1, .prev_host = -1 };
	if (i >= S.nvms)
		S.nvms = i + 1;
	return &V[i];
}

TestSuite(placement, .init = setup);

Test(placement, spread_picks_the_least_loaded_and_says_why)
{
	vm(0, "a", 0, 2048, 0);
	vm(1, "b", 1, 1024, 0);
	struct qv_pl_vm n = { .name = "new", .host = -1, .vcpus = 1, .mem_mib = 512 };
	struct qv_pl_choice c;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 2, "h3 is empty: %s", c.reason);
	cr_assert_eq(c.nfit, 3);
	cr_assert(strstr(c.reason, "h3: least loaded after placement (cpu 0%, memory 12%)"), "%s", c.reason);
	cr_assert(strstr(c.reason, "3 of 3 hosts fit"), "%s", c.reason);
}

Test(placement, pack_and_power_fill_the_used_host)
{
	vm(0, "a", 0, 2048, 0);
	vm(1, "b", 1, 1024, 0);
	struct qv_pl_vm n = { .name = "new", .host = -1, .mem_mib = 512 };
	struct qv_pl_choice c;
	C.score = QV_PL_PACK;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 0, "%s", c.reason);
	C.score = QV_PL_POWER;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_neq(c.host, 2, "an empty host costs its idle power: %s", c.reason);
	cr_assert(strstr(c.reason, "least added power"), "%s", c.reason);
	enum qv_pl_score sc;
	cr_assert_eq(qv_pl_score_parse("power", &sc), 0);
	cr_assert_eq(sc, QV_PL_POWER);
	cr_assert_eq(qv_pl_score_parse("bogus", &sc), -EINVAL);
}

Test(placement, refusal_lists_every_host)
{
	H[1].schedulable = false;
	H[2].labels = zone_b;
	H[2].nlabels = 1;
	vm(0, "big", 0, 1024, 900 + 2048);
	static const char *const req[] = { "zone=a" };
	struct qv_pl_vm n = { .name = "web1", .host = -1, .mem_mib = 256, .mem_res_mib = 1200,
			      .requires = req, .nrequires = 1 };
	struct qv_pl_choice c;
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, &e), -ENOSPC);
	cr_assert_eq(c.host, -1);
	cr_assert_eq(c.nfit, 0);
	cr_assert_str_eq(e.reason, "no-space");
	cr_assert_str_eq(e.message, "no host can take web1: h1: memory 2948/4096 MiB reserved, needs 1200 MiB; "
				    "h2: unschedulable; h3: lacks label zone=a",
			 "got: %s", e.message);
	cr_assert_str_eq(c.reason, e.message);
}

Test(placement, refusal_figures)
{
	/* reconstruct the message the brief names: memory reserved */
	H[2].schedulable = false;
	H[1].schedulable = false;
	H[0].mem_mib = 1024;
	vm(0, "db", 0, 900, 900);
	struct qv_pl_vm n = { .name = "web1", .host = -1, .mem_mib = 64, .mem_res_mib = 256 };
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, NULL, &e), -ENOSPC);
	cr_assert_str_eq(e.message, "no host can take web1: h1: memory 900/1024 MiB reserved, needs 256 MiB; "
				    "h2: unschedulable; h3: unschedulable");
}

Test(placement, labels_key_or_key_value)
{
	static const char *const ssd[] = { "ssd" }, *const zb[] = { "zone" , "zone=b" };
	struct qv_pl_vm n = { .name = "n", .host = -1, .mem_mib = 64, .requires = ssd, .nrequires = 1 };
	struct qv_pl_choice c;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 0, "only h1 has ssd");
	n.requires = zb;
	n.nrequires = 2;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 1, "zone present and zone=b: h2");
}

Test(placement, cpu_reservation_and_footprint)
{
	V[0] = (struct qv_pl_vm){ .name = "r", .host = 0, .mem_mib = 3700, .cpu_res_milli = 3500 };
	S.nvms = 1;
	H[1].schedulable = H[2].schedulable = false;
	struct qv_pl_vm n = { .name = "n", .host = -1, .mem_mib = 512, .cpu_res_milli = 1000 };
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, NULL, &e), -ENOSPC);
	cr_assert(strstr(e.message, "h1: cpu 3.5/4 cores reserved, needs 1"), "%s", e.message);
	n.cpu_res_milli = 0;
	qv_error_clear(&e);
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, NULL, &e), -ENOSPC);
	cr_assert(strstr(e.message, "h1: memory 3700/4096 MiB allocated to VMs, needs 512 MiB"), "%s", e.message);
	C.mem_overcommit = 1.5;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, NULL, NULL), 0, "overcommit allowed");
	H[0].mem_reserved_mib = 3000; /* host keeps most for itself */
	C.mem_overcommit = 1.0;
	qv_error_clear(&e);
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, NULL, &e), -ENOSPC);
	cr_assert(strstr(e.message, "3700/1096 MiB allocated"), "%s", e.message);
}

Test(placement, cpu_in_use_limit)
{
	H[0].cpu_used_milli = 3800;
	H[1].schedulable = H[2].schedulable = false;
	struct qv_pl_vm n = { .name = "n", .host = -1, .mem_mib = 64, .cpu_res_milli = 500 };
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, NULL, &e), -ENOSPC);
	cr_assert(strstr(e.message, "h1: cpu in use 3.8/4 cores, +0.5 would be 108% (max 100%)"), "%s",
		  e.message);
	C.cpu_max_util = 0;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, NULL, NULL), 0);
}

Test(placement, anti_affinity_spreads_and_refuses)
{
	static const char *const db[] = { "db" };
	vm(0, "db1", 0, 64, 0)->anti_affinity = db;
	V[0].nanti_affinity = 1;
	vm(1, "db2", 1, 64, 0)->anti_affinity = db;
	V[1].nanti_affinity = 1;
	struct qv_pl_vm n = { .name = "db3", .host = -1, .mem_mib = 64, .anti_affinity = db,
			      .nanti_affinity = 1 };
	struct qv_pl_choice c;
	C.score = QV_PL_PACK; /* would prefer a used host */
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 2, "%s", c.reason);
	H[2].schedulable = false;
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, &e), -ENOSPC);
	cr_assert_str_eq(e.message, "no host can take db3: h1: anti-affinity group db: db1 runs there; "
				    "h2: anti-affinity group db: db2 runs there; h3: unschedulable");
	/* db1 itself may move to h2? no: db2 is there. It stays movable to nowhere. */
	cr_assert_eq(qv_pl_place(&S, &C, &V[0], 0, &c, NULL), -ENOSPC);
}

Test(placement, affinity_follows_the_group)
{
	static const char *const web[] = { "web" };
	vm(0, "other", 2, 3000, 0);
	vm(1, "web1", 2, 64, 0)->affinity = web;
	V[1].naffinity = 1;
	struct qv_pl_vm n = { .name = "web2", .host = -1, .mem_mib = 64, .affinity = web, .naffinity = 1 };
	struct qv_pl_choice c;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 2, "with web1 although h3 is the fullest: %s", c.reason);
	/* the only member moving: it goes anywhere */
	cr_assert_eq(qv_pl_place(&S, &C, &V[1], 2, &c, NULL), 0);
	cr_assert_neq(c.host, 2);
	H[2].schedulable = false; /* the group's host is cordoned: refusal names it */
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, &e), -ENOSPC);
	cr_assert(strstr(e.message, "h1: affinity group web: its members run on h3"), "%s", e.message);
}

Test(placement, own_load_and_exclude)
{
	/* a VM on a full host is not refused by its own reservation there */
	H[0].mem_mib = 1024;
	vm(0, "self", 0, 1000, 1000);
	H[1].schedulable = H[2].schedulable = false;
	struct qv_pl_choice c;
	cr_assert_eq(qv_pl_place(&S, &C, &V[0], -1, &c, NULL), 0);
	cr_assert_eq(c.host, 0);
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_place(&S, &C, &V[0], 0, &c, &e), -ENOSPC);
	cr_assert(strstr(e.message, "h1: excluded"), "%s", e.message);
	cr_assert_eq(qv_pl_host_index(&S, "h2"), 1);
	cr_assert_eq(qv_pl_host_index(&S, "nope"), -1);
}

Test(placement, assign_is_seen_by_later_choices)
{
	qv_pl *pl;
	cr_assert_eq(qv_pl_new(&S, &C, &pl, NULL), 0);
	struct qv_pl_vm a = { .name = "a", .host = -1, .mem_mib = 2048, .cpu_res_milli = 500 };
	struct qv_pl_vm b = { .name = "b", .host = -1, .mem_mib = 2048 };
	struct qv_pl_choice c;
	cr_assert_eq(qv_pl_choose(pl, &a, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 0, "ties go to the first name");
	cr_assert_eq(qv_pl_assign(pl, &a, c.host), 0);
	cr_assert_eq(qv_pl_host_of(pl, &a), 0);
	cr_assert_eq(qv_pl_load_of(pl, 0)->mem_alloc_mib, 2048);
	cr_assert_eq(qv_pl_load_of(pl, 0)->cpu_res_milli, 500);
	cr_assert_float_eq(qv_pl_load_of(pl, 0)->cpu_used_milli, 500, 1e-9, "a new VM counts its reservation");
	cr_assert_eq(qv_pl_choose(pl, &b, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 1, "h1 now carries a: %s", c.reason);
	cr_assert_eq(qv_pl_assign(pl, &a, 2), 0, "reassign moves the load");
	cr_assert_eq(qv_pl_load_of(pl, 0)->mem_alloc_mib, 0);
	cr_assert_eq(qv_pl_load_of(pl, 2)->nvms, 1);
	cr_assert_eq(qv_pl_assign(pl, &a, 7), -EINVAL);
	cr_assert_eq(qv_pl_block(pl, 0, "2 migrations in flight (limit 2)"), 0);
	cr_assert_eq(qv_pl_block(pl, 1, "full"), 0);
	cr_assert_eq(qv_pl_block(pl, 2, "drained"), 0);
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_choose(pl, &b, -1, &c, &e), -ENOSPC);
	cr_assert_str_eq(e.message, "no host can take b: h1: 2 migrations in flight (limit 2); h2: full; h3: drained");
	cr_assert_eq(qv_pl_block(pl, 1, NULL), 0);
	cr_assert_eq(qv_pl_choose(pl, &b, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 1);
	qv_pl_free(pl);
}

Test(placement, snapshot_vm_moves_its_measured_use)
{
	H[0].cpu_used_milli = 3000;
	vm(0, "busy", 0, 512, 0)->cpu_used_milli = 2500;
	qv_pl *pl;
	cr_assert_eq(qv_pl_new(&S, &C, &pl, NULL), 0);
	cr_assert_float_eq(qv_pl_load_of(pl, 0)->cpu_used_milli, 3000, 1e-9);
	cr_assert_eq(qv_pl_assign(pl, &V[0], 1), 0);
	cr_assert_float_eq(qv_pl_load_of(pl, 0)->cpu_used_milli, 500, 1e-9);
	cr_assert_float_eq(qv_pl_load_of(pl, 1)->cpu_used_milli, 2500, 1e-9);
	cr_assert_eq(qv_pl_assign(pl, &V[0], 0), 0);
	cr_assert_float_eq(qv_pl_load_of(pl, 0)->cpu_used_milli, 3000, 1e-9);
	qv_pl_free(pl);
}

Test(placement, batch_evacuates_largest_first)
{
	/* h1 holds 4 VMs of 1500 MiB; h2 and h3 can take 2 each */
	const char *names[] = { "e1", "e2", "e3", "e4" };
	for (int i = 0; i < 4; i++)
		vm(i, names[i], 0, 1500, 0);
	H[0].mem_mib = 8192;
	const struct qv_pl_vm *ev[] = { &V[0], &V[1], &V[2], &V[3] };
	struct qv_pl_choice c[4];
	qv_pl *pl;
	cr_assert_eq(qv_pl_new(&S, &C, &pl, NULL), 0);
	cr_assert_eq(qv_pl_choose_batch(pl, ev, 4, 0, c, NULL), 4);
	int on[3] = { 0 };
	for (int i = 0; i < 4; i++)
		on[c[i].host]++;
	cr_assert_eq(on[0], 0);
	cr_assert_eq(on[1], 2);
	cr_assert_eq(on[2], 2);
	cr_assert_eq(qv_pl_load_of(pl, 0)->nvms, 0);
	qv_pl_free(pl);

	/* one more than fits: the rest is placed, the error counts */
	vm(4, "e5", 0, 1500, 0);
	const struct qv_pl_vm *ev5[] = { &V[0], &V[1], &V[2], &V[3], &V[4] };
	struct qv_pl_choice c5[5];
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_new(&S, &C, &pl, NULL), 0);
	cr_assert_eq(qv_pl_choose_batch(pl, ev5, 5, 0, c5, &e), 4);
	cr_assert_str_eq(e.message, "1 of 5 VMs fit nowhere (first: e5); the others were placed");
	cr_assert_eq(c5[4].host, -1);
	cr_assert(strstr(c5[4].reason, "h2: memory 3000/4096 MiB allocated to VMs, needs 1500 MiB"), "%s",
		  c5[4].reason);
	qv_pl_free(pl);
}

Test(placement, bad_snapshot_and_long_refusals)
{
	vm(0, "lost", 9, 64, 0);
	qv_pl *pl = NULL;
	struct qv_error e = { 0 };
	cr_assert_eq(qv_pl_new(&S, &C, &pl, &e), -EINVAL);
	cr_assert(strstr(e.message, "VM lost: host index 9 out of range (3 hosts)"));

	/* 200 cordoned hosts: the message is cut with a count */
	static struct qv_pl_host many[200];
	static char nm[200][8];
	for (int i = 0; i < 200; i++) {
		snprintf(nm[i], sizeof(nm[i]), "n%03d", i);
		many[i] = (struct qv_pl_host){ .name = nm[i], .cpu_milli = 1000, .mem_mib = 1024 };
	}
	struct qv_pl_snapshot s2 = { .hosts = many, .nhosts = 200 };
	struct qv_pl_vm n = { .name = "x", .host = -1, .mem_mib = 64 };
	struct qv_pl_choice c;
	qv_error_clear(&e);
	cr_assert_eq(qv_pl_place(&s2, &C, &n, -1, &c, &e), -ENOSPC);
	cr_assert(strstr(e.message, "n000: unschedulable; n001: unschedulable"), "%s", e.message);
	cr_assert(strstr(e.message, " more)"), "%s", e.message);
	cr_assert(strstr(c.reason, "no host can take x: n000"), "%s", c.reason);
}

static double prefer_h2(const struct qv_pl_host *h, const struct qv_pl_load *l, const struct qv_pl_vm *v,
			void *opaque)
{
	(void)l, (void)v;
	(*(int *)opaque)++;
	return strcmp(h->name, "h2") == 0 ? 1 : 0;
}

Test(placement, custom_scorer_and_determinism)
{
	int calls = 0;
	C.score = QV_PL_CUSTOM;
	C.score_fn = prefer_h2;
	C.score_opaque = &calls;
	struct qv_pl_vm n = { .name = "n", .host = -1, .mem_mib = 64 };
	struct qv_pl_choice c;
	cr_assert_eq(qv_pl_place(&S, &C, &n, -1, &c, NULL), 0);
	cr_assert_eq(c.host, 1);
	cr_assert_eq(calls, 3);
	/* same answer whatever the host order: ties by name */
	struct qv_pl_host rev[3] = { H[2], H[1], H[0] };
	struct qv_pl_snapshot s2 = { .hosts = rev, .nhosts = 3 };
	qv_pl_cfg_defaults(&C);
	cr_assert_eq(qv_pl_place(&s2, &C, &n, -1, &c, NULL), 0);
	cr_assert_str_eq(rev[c.host].name, "h1");
}
