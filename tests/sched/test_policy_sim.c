/* SPDX-License-Identifier: MIT */
/* sched/sim* and sched/trace*: the trace readers, determinism, NPA's
 * energy, and (when the PlanetLab days are present next to the tree, as
 * ../shared/policy) one baseline reproduced against CloudSim 3.0.3. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched/sim.h"

static char *tmpdir(void)
{
	char *d = strdup("/tmp/qvt-sim-XXXXXX");
	cr_assert_not_null(mkdtemp(d));
	return d;
}

static void rm_rf(const char *d)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* 288 lines "v\n" */
static char *day_of(int v)
{
	char *s = malloc(288 * 5 + 1), *p = s;
	for (int i = 0; i < 288; i++)
		p += sprintf(p, "%d\n", (v + i) % 100);
	return s;
}

Test(trace, planetlab_sorted_names_with_spaces)
{
	char *d = tmpdir();
	char *a = day_of(10), *b = day_of(20), *c = day_of(30);
	write_file(d, "node b_slice x", b);
	write_file(d, "node a_slice", a);
	write_file(d, "Zeta", c);
	write_file(d, ".hidden", "junk\n");
	struct qv_trace t;
	struct qv_error err = {};
	cr_assert_eq(qv_trace_read(d, &t, &err), 0, "%s", err.message);
	cr_assert_eq(t.nvms, 3);
	cr_assert_str_eq(t.names[0], "Zeta"); /* byte order: 'Z' < 'n' */
	cr_assert_str_eq(t.names[1], "node a_slice");
	cr_assert_str_eq(t.names[2], "node b_slice x");
	cr_assert_float_eq(qv_trace_util(&t, 1, 0), 0.10, 1e-12);
	cr_assert_float_eq(qv_trace_util(&t, 1, 150), 0.105, 1e-12); /* interpolated */
	cr_assert_float_eq(qv_trace_util(&t, 2, 300), 0.21, 1e-12);
	/* sample 288 repeats 287, as CloudSim pads its 289th value */
	cr_assert_float_eq(qv_trace_util(&t, 0, 86400), qv_trace_util(&t, 0, 86100), 1e-12);
	qv_trace_free(&t);
	write_file(d, "bad", "12\nabc\n");
	cr_assert_lt(qv_trace_read(d, &t, &err), 0);
	cr_assert(strstr(err.message, "bad: line 2") != NULL, "%s", err.message);
	free(a);
	free(b);
	free(c);
	rm_rf(d);
	free(d);
}

Test(trace, azure_readings)
{
	char *d = tmpdir();
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/vm_cpu_readings.csv", d);
	write_file(d, "vm_cpu_readings.csv",
		   "timestamp,vmid,min_cpu,max_cpu,avg_cpu\n"
		   "300,vmB,1,9,5.5\n"
		   "0,vmB,1,9,4\n"
		   "0,vmA,10,90,50\n"
		   "600,vmA,10,90,70\n");
	struct qv_trace t;
	struct qv_error err = {};
	cr_assert_eq(qv_trace_read(p, &t, &err), 0, "%s", err.message);
	cr_assert_eq(t.nvms, 2);
	cr_assert_str_eq(t.names[0], "vmA");
	cr_assert_float_eq(qv_trace_util(&t, 0, 0), 0.5, 1e-12);
	cr_assert_float_eq(qv_trace_util(&t, 0, 300), 0, 1e-12, "missing reading counts 0");
	cr_assert_float_eq(qv_trace_util(&t, 0, 600), 0.7, 1e-12);
	cr_assert_float_eq(qv_trace_util(&t, 1, 300), 0.055, 1e-12);
	qv_trace_free(&t);
	write_file(d, "vm_cpu_readings.csv", "0,vmA,1,2\n");
	cr_assert_lt(qv_trace_read(p, &t, &err), 0);
	cr_assert(strstr(err.message, "line 1") != NULL, "%s", err.message);
	rm_rf(d);
	free(d);
}

/* A synthetic day: AR(1) CPU with PlanetLab-like level and spread. */
static void synthetic(struct qv_trace *t, int nvms, uint64_t seed)
{
	t->nvms = nvms;
	t->nsamples = 288;
	t->interval_s = 300;
	t->util = calloc((size_t)nvms * 289, sizeof(double));
	t->names = calloc(nvms, sizeof(char *));
	for (int v = 0; v < nvms; v++) {
		double x = 0.1;
		cr_assert_geq(asprintf(&t->names[v], "vm%04d", v), 0);
		for (int k = 0; k < 289; k++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			double e = ((double)(seed >> 11) / (1ULL << 53)) - 0.5;
			x = 0.12 + 0.85 * (x - 0.12) + 0.15 * e;
			double u = x < 0.01 ? 0.01 : x > 0.99 ? 0.99 : x;
			t->util[(size_t)v * 289 + k] = floor(u * 100) / 100;
		}
		t->util[(size_t)v * 289 + 288] = t->util[(size_t)v * 289 + 287];
	}
}

static struct qv_sim_result run(const struct qv_trace *t, const char *policy, uint64_t seed, int hosts)
{
	struct qv_sim_cfg cfg;
	qv_sim_cfg_defaults(&cfg);
	cr_assert_eq(qv_pol_cfg_parse(policy, 0, &cfg.pol), 0);
	cfg.pol.seed = seed;
	cfg.nhosts = hosts;
	struct qv_sim_result r;
	struct qv_error err = {};
	cr_assert_eq(qv_sim_run(t, &cfg, &r, &err), 0, "%s", err.message);
	return r;
}

Test(sim, npa_is_every_host_at_full_power_all_day)
{
	struct qv_trace t;
	synthetic(&t, 200, 7);
	struct qv_sim_result r = run(&t, "npa", 1, 800);
	/* 400 x 117 W + 400 x 135 W for 24 h */
	cr_assert_float_eq(r.energy_kwh, 2419.2, 1e-9, "%.12f", r.energy_kwh);
	cr_assert_eq(r.migrations, 0);
	qv_sim_result_free(&r);
	qv_trace_free(&t);
}

Test(sim, same_seed_same_result)
{
	struct qv_trace t;
	synthetic(&t, 300, 11);
	const char *pols[] = { "thr-rs", "qvisor" };
	for (int i = 0; i < 2; i++) {
		struct qv_sim_result a = run(&t, pols[i], 42, 150), b = run(&t, pols[i], 42, 150);
		cr_assert_eq(a.migrations, b.migrations, "%s", pols[i]);
		cr_assert_eq(a.energy_kwh, b.energy_kwh, "%s", pols[i]);
		cr_assert_eq(a.slatah, b.slatah);
		cr_assert_eq(a.pdm, b.pdm);
		cr_assert_eq(a.shutdowns, b.shutdowns);
		cr_assert_gt(a.migrations, 0, "%s migrated nothing", pols[i]);
		qv_sim_result_free(&a);
		qv_sim_result_free(&b);
	}
	qv_trace_free(&t);
}

Test(sim, metrics_are_consistent)
{
	struct qv_trace t;
	synthetic(&t, 300, 5);
	struct qv_sim_result r = run(&t, "iqr-mmt", 1, 150);
	cr_assert_float_eq(r.slav, r.slatah * r.pdm, 1e-15);
	cr_assert_float_eq(r.esv, r.energy_kwh * r.slav, 1e-15);
	cr_assert(r.slatah > 0 && r.slatah < 1);
	cr_assert(r.pdm > 0 && r.pdm < 1);
	cr_assert(r.paper_slatah > 0 && r.paper_pdm > 0);
	cr_assert_lt(r.lower_bound_kwh, r.energy_kwh);
	cr_assert_eq(r.rounds, 287);
	struct qv_sim_result d = run(&t, "dvfs", 1, 150);
	cr_assert_eq(d.migrations, 0);
	cr_assert_lt(r.energy_kwh, d.energy_kwh, "consolidation saves energy");
	qv_sim_result_free(&r);
	qv_sim_result_free(&d);
	qv_trace_free(&t);
}

/* The PlanetLab days next to the tree: ../shared/policy/planetlab. */
static const char *planetlab_day(const char *day)
{
	static char p[PATH_MAX];
	const char *env = getenv("QV_POLICY_DATA"), *src = getenv("QV_SRC_DIR");
	const char *fmt[] = { "%s/planetlab/%s", "%s/../shared/policy/planetlab/%s",
			      "%s/../../shared/policy/planetlab/%s" };
	struct stat st;
	for (int i = 0; i < 3; i++) {
		const char *base = i == 0 ? env : src;
		if (!base)
			continue;
		snprintf(p, sizeof(p), fmt[i], base, day);
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
			return p;
	}
	return NULL;
}

Test(sim, planetlab_day_reproduces_cloudsim, .timeout = 60)
{
	const char *dir = planetlab_day("20110303");
	if (!dir)
		cr_skip_test("PlanetLab day 20110303 not found (set QV_POLICY_DATA or QV_SRC_DIR)");
	struct qv_trace t;
	struct qv_error err = {};
	cr_assert_eq(qv_trace_read(dir, &t, &err), 0, "%s", err.message);
	cr_assert_eq(t.nvms, 1052);
	struct qv_sim_result npa = run(&t, "npa", 1, 800);
	cr_assert_float_eq(npa.energy_kwh, 2419.2, 1e-9);
	/* CloudSim 3.0.3, sorted order (README): 163.48 kWh, 27,859
	 * migrations, SLATAH 5.86 %, PDM 0.08 %, 5053 host shutdowns. */
	struct qv_sim_result lr = run(&t, "lr-mmt", 1, 800);
	cr_assert_float_eq(lr.energy_kwh, 163.48, 0.005, "%.3f", lr.energy_kwh);
	cr_assert_eq(lr.migrations, 27859);
	cr_assert_float_eq(100 * lr.slatah, 5.86, 0.005);
	cr_assert_float_eq(100 * lr.pdm, 0.08, 0.005);
	cr_assert_float_eq(100 * lr.slav, 0.00464, 0.000005);
	cr_assert_eq(lr.shutdowns, 5053);
	qv_sim_result_free(&npa);
	qv_sim_result_free(&lr);
	qv_trace_free(&t);
}

/* The cluster balancer in place of the policy's round: power saving
 * consolidates, every move has a reason, no VM moves twice within its
 * cooldown, and the run is deterministic. */
Test(sim, balancer_consolidates_within_its_cooldown)
{
	struct qv_trace t;
	synthetic(&t, 300, 5);
	struct qv_sim_cfg cfg;
	qv_sim_cfg_defaults(&cfg);
	cr_assert_eq(qv_pol_cfg_parse("thr-mmt", 0, &cfg.pol), 0);
	cfg.nhosts = 150;
	cfg.balance = true;
	cfg.explain = 100000;
	struct qv_sim_result plain, saving, again;
	struct qv_error err = {};
	cr_assert_eq(qv_sim_run(&t, &cfg, &plain, &err), 0, "%s", err.message);
	cr_assert_str_eq(plain.policy, "THR-MMT-0.8+balancer");
	cfg.bal.power_saving = true;
	cfg.bal.max_cluster = 0;
	cfg.bal.max_empty_per_round = 100;
	cfg.bal.underload_util = 1;
	cr_assert_eq(qv_sim_run(&t, &cfg, &saving, &err), 0, "%s", err.message);
	cr_assert_eq(qv_sim_run(&t, &cfg, &again, &err), 0, "%s", err.message);
	cr_assert_gt(saving.migrations, 0);
	cr_assert_lt(saving.energy_kwh, plain.energy_kwh, "power saving: %.2f vs %.2f kWh", saving.energy_kwh,
		     plain.energy_kwh);
	cr_assert_eq(saving.migrations, again.migrations);
	cr_assert_eq(saving.energy_kwh, again.energy_kwh);
	cr_assert_eq(saving.nmoves, saving.migrations);
	bool emptied = false;
	for (int i = 0; i < saving.nmoves; i++) {
		const struct qv_sim_move *m = &saving.moves[i];
		cr_assert(strstr(m->m.reason, "overloaded") || strstr(m->m.reason, "underloaded"), "%s", m->m.reason);
		emptied |= strstr(m->m.reason, "emptied to save power") != NULL;
		for (int k = i + 1; k < saving.nmoves; k++)
			if (saving.moves[k].m.vm == m->m.vm)
				cr_assert_geq(saving.moves[k].t - m->t, cfg.bal.cooldown_s - 1e-6, "VM %d moved at %.1f and %.1f",
					      m->m.vm, m->t, saving.moves[k].t);
	}
	cr_assert(emptied);
	qv_sim_result_free(&plain);
	qv_sim_result_free(&saving);
	qv_sim_result_free(&again);
	qv_trace_free(&t);
}
