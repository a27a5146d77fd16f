/* SPDX-License-Identifier: MIT */
/* qvisor sim --trace DIR|CSV --policy NAME [--param X] [--seed N]
 *            [--memory-aware] [--cost-model] [--hosts N] [--json]
 *            [--csv FILE] [--svg FILE] [--explain N]
 *            [--balancer [--max-migrations N] [--cooldown S] [--power-saving]
 *             [--empty-per-round N] [--underload X]]
 * Replays a CPU trace through a consolidation policy (docs/policy.md).
 * Needs no daemon. Exit 0 on success, 1 if the run failed, 2 for usage. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/sim-output.h"
#include "cli/verbs.h"
#include "sched/sim.h"

static int parse_opts(struct cli_ctx *ctx, int argc, char **argv, struct sim_opts *o)
{
	static const struct option opts[] = {
		{ "trace", required_argument, NULL, 't' }, { "policy", required_argument, NULL, 'p' },
		{ "param", required_argument, NULL, 'x' }, { "seed", required_argument, NULL, 's' },
		{ "memory-aware", no_argument, NULL, 'm' }, { "cost-model", no_argument, NULL, 'c' },
		{ "hosts", required_argument, NULL, 'n' }, { "json", no_argument, NULL, 'j' },
		{ "csv", required_argument, NULL, 'C' },   { "svg", required_argument, NULL, 'S' },
		{ "explain", required_argument, NULL, 'e' },
		{ "balancer", no_argument, NULL, 'B' },    { "max-migrations", required_argument, NULL, 'M' },
		{ "cooldown", required_argument, NULL, 'K' }, { "power-saving", no_argument, NULL, 'P' },
		{ "empty-per-round", required_argument, NULL, 'E' }, { "underload", required_argument, NULL, 'U' },
		{},
	};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't': o->trace = optarg; break;
		case 'p': o->policy = optarg; break;
		case 'x':
			o->param = strtod(optarg, &end);
			if (*end || !(o->param > 0))
				return cli_usage_error(ctx, "--param: expected a positive number");
			break;
		case 's':
			o->seed = strtoull(optarg, &end, 10);
			if (*end || !*optarg)
				return cli_usage_error(ctx, "--seed: expected an integer");
			break;
		case 'n':
			o->hosts = strtol(optarg, &end, 10);
			if (*end || o->hosts < 1 || o->hosts > 1000000)
				return cli_usage_error(ctx, "--hosts: expected 1-1000000");
			break;
		case 'e':
			o->explain = strtol(optarg, &end, 10);
			if (*end || o->explain < 0 || o->explain > 1000000)
				return cli_usage_error(ctx, "--explain: expected a count of moves");
			break;
		case 'M':
			o->max_migrations = strtol(optarg, &end, 10);
			if (*end || !*optarg || o->max_migrations < 0 || o->max_migrations > 1000000)
				return cli_usage_error(ctx, "--max-migrations: expected 0 (no limit) or a count");
			break;
		case 'K':
			o->cooldown_s = strtod(optarg, &end);
			if (*end || !*optarg || !(o->cooldown_s >= 0))
				return cli_usage_error(ctx, "--cooldown: expected seconds");
			break;
		case 'E':
			o->empty_per_round = strtol(optarg, &end, 10);
			if (*end || !*optarg || o->empty_per_round < 1 || o->empty_per_round > 1000000)
				return cli_usage_error(ctx, "--empty-per-round: expected a count of hosts");
			break;
		case 'U':
			o->underload = strtod(optarg, &end);
			if (*end || !*optarg || !(o->underload > 0 && o->underload <= 1))
				return cli_usage_error(ctx, "--underload: expected a share in (0, 1]");
			break;
		case 'B': o->balancer = true; break;
		case 'P': o->power_saving = true; break;
		case 'm': o->memory_aware = true; break;
		case 'c': o->cost_model = true; break;
		case 'j': ctx->json = true; break;
		case 'C': o->csv = optarg; break;
		case 'S': o->svg = optarg; break;
		default: return cli_usage_error(ctx, "invalid option");
		}
	}
	if (optind != argc)
		return cli_usage_error(ctx, "unexpected argument \"%s\"", argv[optind]);
	if (!o->trace || !o->policy)
		return cli_usage_error(ctx, "--trace and --policy are required");
	if (!o->balancer && (o->power_saving || o->max_migrations >= 0 || o->cooldown_s >= 0 || o->empty_per_round ||
				 o->underload > 0))
		return cli_usage_error(ctx, "--max-migrations, --cooldown, --power-saving, --empty-per-round "
					    "and --underload need --balancer");
	return EXIT_OK;
}

int verb_sim(struct cli_ctx *ctx, int argc, char **argv)
{
	struct sim_opts o = { .seed = 1, .hosts = 800, .max_migrations = -1, .cooldown_s = -1 };
	int r = parse_opts(ctx, argc, argv, &o);
	if (r != EXIT_OK)
		return r;
	struct qv_sim_cfg cfg;
	qv_sim_cfg_defaults(&cfg);
	if (qv_pol_cfg_parse(o.policy, o.param, &cfg.pol) < 0)
		return cli_usage_error(ctx, "unknown policy \"%s\" (npa, dvfs, qvisor, "
					    "{thr,mad,iqr,lr,lrr}-{mmt,rs,mc,mu})", o.policy);
	cfg.pol.seed = o.seed;
	cfg.pol.memory_aware = o.memory_aware;
	cfg.cost_model = cfg.pol.cost_model = o.cost_model;
	cfg.nhosts = o.hosts;
	cfg.series = o.csv || o.svg;
	cfg.explain = o.explain;
	cfg.balance = o.balancer;
	cfg.bal.power_saving = o.power_saving;
	if (o.underload > 0)
		cfg.bal.underload_util = o.underload;
	if (o.empty_per_round)
		cfg.bal.max_empty_per_round = o.empty_per_round;
	if (o.max_migrations >= 0)
		cfg.bal.max_cluster = o.max_migrations;
	if (o.cooldown_s >= 0)
		cfg.bal.cooldown_s = o.cooldown_s;

	struct qv_error err = {};
	struct qv_trace tr = {};
	if (qv_trace_read(o.trace, &tr, &err) < 0) {
		fprintf(stderr, "qvisor: sim: %s\n", err.message);
		return EXIT_USAGE;
	}
	struct qv_sim_result res;
	if (qv_sim_run(&tr, &cfg, &res, &err) < 0) {
		fprintf(stderr, "qvisor: sim: %s\n", err.message);
		qv_trace_free(&tr);
		return EXIT_FAILED;
	}
	qv_trace_free(&tr);
	r = EXIT_OK;
	if (ctx->json)
		sim_print_json(&res, &o, stdout);
	else
		sim_print_table(&res, stdout);
	if (o.csv && sim_write_csv(&res, o.csv) < 0)
		r = EXIT_FAILED;
	if (o.svg && sim_write_svg(&res, o.svg) < 0)
		r = EXIT_FAILED;
	qv_sim_result_free(&res);
	return r;
}
