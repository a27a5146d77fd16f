/* SPDX-License-Identifier: MIT */
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "sched/sim.h"

struct sim_opts {
	const char *trace, *policy, *csv, *svg;
	double param;
	uint64_t seed;
	int hosts, explain;
	bool memory_aware, cost_model;
	/* --balancer: the cluster balancer decides (sched/balance.h) */
	bool balancer, power_saving;
	int max_migrations;   /* -1 = the balancer's default */
	double cooldown_s;    /* < 0 = the balancer's default */
	int empty_per_round;  /* 0 = the balancer's default */
	double underload;     /* 0 = the balancer's default */
};

void sim_print_table(const struct qv_sim_result *r, FILE *f);
void sim_print_json(const struct qv_sim_result *r, const struct sim_opts *o, FILE *f);
int sim_write_csv(const struct qv_sim_result *r, const char *path);
int sim_write_svg(const struct qv_sim_result *r, const char *path);
