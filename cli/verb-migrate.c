/* SPDX-License-Identifier: MIT */
/* qvisor migrate VM --to URI: vm.migrate on the source daemon, which runs
 * the protocol against the destination daemon itself (docs/migration.md);
 * this renders its progress. Interrupting it does not stop the migration:
 * `qvisor migrate-cancel VM` does. */
#include <getopt.h>
#include <unistd.h>

#include "cli/migrate-run.h"
#include "cli/output.h"
#include "cli/verb-migrate.h"
#include "cli/verbs.h"

struct mig_line {
	bool tty;
	bool line_open;
};

static void end_line(struct mig_line *ml)
{
	if (ml->line_open)
		fputc('\n', stderr);
	ml->line_open = false;
}

static void progress_line(json_object *p, uint64_t t_ms, void *ud)
{
	struct mig_line *ml = ud;
	json_object *v;
	const char *type;

	type = json_object_object_get_ex(p, "type", &v) ? json_object_get_string(v) : "";
	if (streq(type, "phase") || streq(type, "note")) {
		end_line(ml);
		if (streq(type, "phase"))
			fprintf(stderr, "  phase: %s\n", json_object_object_get_ex(p, "phase", &v)
							      ? json_object_get_string(v) : "?");
		else
			fprintf(stderr, "  %s: %s\n",
				json_object_object_get_ex(p, "what", &v) ? json_object_get_string(v) : "",
				json_object_object_get_ex(p, "detail", &v) ? json_object_get_string(v)
									    : "");
		return;
	}
	if (streq(type, "decision")) {
		end_line(ml);
		fprintf(stderr, "  decision: %s %s: %s\n",
			json_object_object_get_ex(p, "action", &v) ? json_object_get_string(v) : "?",
			json_object_object_get_ex(p, "value", &v) ? json_object_get_string(v) : "",
			json_object_object_get_ex(p, "reason", &v) ? json_object_get_string(v) : "");
		return;
	}
	if (json_object_object_get_ex(p, "status", &v) &&
	    strncmp(json_object_get_string(v), "mirror", 6) == 0) {
		json_object *sto = NULL, *x;
		double off = 0, len = 0, el = 0;
		if (json_object_object_get_ex(p, "storage", &sto)) {
			off = json_object_object_get_ex(sto, "offset", &x) ? json_object_get_double(x) : 0;
			len = json_object_object_get_ex(sto, "len", &x) ? json_object_get_double(x) : 0;
		}
		el = json_object_object_get_ex(p, "elapsed_ms", &x) ? json_object_get_double(x) / 1000 : 0;
		if (!ml->tty && ((int)(el * 5) % 10) != 0)
			return;
		fprintf(stderr, "%s  %5.1fs storage %s %7.1f/%.1f MiB%s", ml->tty ? "\r" : "", el,
			json_object_get_string(v), off / 1048576.0, len / 1048576.0,
			ml->tty ? "" : "\n");
		ml->line_open = ml->tty;
		return;
	}
#define NUM(k) (json_object_object_get_ex(p, k, &v) ? json_object_get_double(v) : 0.0)
	double el = NUM("elapsed_ms") / 1000.0, rem = NUM("remaining") / 1048576.0;
	double tot = NUM("total") / 1048576.0, d = NUM("dirty_rate_bps") / 1048576.0;
	double b = NUM("bandwidth_bps") / 1048576.0, dt = NUM("expected_downtime_ms");
	double round = NUM("round"), thr = NUM("throttle_pct");
#undef NUM
	if (!ml->tty && ((int)(el * 5) % 10) != 0)
		return; /* one line every ~2 s when not on a terminal */
	fprintf(stderr, "%s  %5.1fs round %-3.0f remaining %7.1f/%.0f MiB  dirty %6.1f MiB/s  "
		"bw %6.1f MiB/s  downtime~%5.0f ms  throttle %2.0f%%%s",
		ml->tty ? "\r" : "", el, round, rem, tot, d, b, dt, thr, ml->tty ? "" : "\n");
	ml->line_open = ml->tty;
}

int verb_migrate(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "max-downtime", required_argument, NULL, 'm' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "allow-postcopy", no_argument, NULL, 'p' },
		{ "plain", no_argument, NULL, 'P' },
		{ "dest-address", required_argument, NULL, 'a' },
		{ "listen", required_argument, NULL, 'l' },
		{ "keep-definition", no_argument, NULL, 'k' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "copy-storage", no_argument, NULL, 'S' },
		{ "insecure", no_argument, NULL, 'I' },
		{},
	};
	struct cli_migrate_opts o = { .max_downtime_ms = 300, .deadline_s = 300 };
	const char *to = NULL;
	_cleanup_json_ json_object *stats = NULL;
	struct qv_error err = {};
	json_object *v;
	struct mig_line ml = { .tty = isatty(2) };
	struct cli_migrate_observer obs = { .on_progress = progress_line, .userdata = &ml };
	char *end;
	int c, r;

	while ((c = getopt_long(argc, argv, "t:m:b:d:pPa:l:kqSI", opts, NULL)) != -1) {
		switch (c) {
		case 't': to = optarg; break;
		case 'a': o.dest_address = optarg; break;
		case 'l': o.listen = optarg; break;
		case 'p': o.allow_postcopy = true; break;
		case 'P': o.plain = true; break;
		case 'k': o.keep_definition = true; break;
		case 'q': o.quiet = true; break;
		case 'S': o.copy_storage = true; break;
		case 'I': o.insecure = true; break;
		case 'm': case 'b': case 'd': {
			long x = strtol(optarg, &end, 10);
			if (*end || x < 0 || x > 1000000)
				return cli_usage_error(ctx, "invalid number \"%s\"", optarg);
			if (c == 'm')
				o.max_downtime_ms = x;
			else if (c == 'b')
				o.bandwidth_mibps = x;
			else
				o.deadline_s = x ? x : 300;
			break;
		}
		default:
			return cli_usage_error(ctx, "invalid option");
		}
	}
	if (optind + 1 != argc || !to)
		return cli_usage_error(ctx, "expected VM and --to URI");
	if ((r = cli_connect(ctx)) != EXIT_OK)
		return r;
	r = cli_migrate_run_observed(ctx->conn, to, argv[optind], &o, NULL,
				     o.quiet ? NULL : &obs, NULL, &stats, &err);
	end_line(&ml);
	if (r < 0)
		return cli_report(ctx, NULL, r, &err);
	if (ctx->json) {
		printf("%s\n", json_object_to_json_string_ext(stats, JSON_C_TO_STRING_PRETTY));
	} else {
#define NUM(k) (json_object_object_get_ex(stats, k, &v) ? json_object_get_double(v) : 0.0)
		printf("Migrated %s: %.2f s total, %.0f ms downtime (guest stop to resume; QEMU "
		       "says %.0f ms), %.1f MiB sent, %.0f rounds\n",
		       argv[optind], NUM("total_time_ms") / 1000.0, NUM("downtime_ms"),
		       NUM("qemu_downtime_ms"), NUM("ram_transferred") / 1048576.0, NUM("rounds"));
#undef NUM
	}
	return EXIT_OK;
}

int verb_migrate_cancel(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *v;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one VM name");
	r = cli_call(ctx, "migrate.cancel", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	printf("%s: %s\n", argv[1],
	       json_object_object_get_ex(res, "action", &v) ? json_object_get_string(v) : "cancelled");
	return EXIT_OK;
}

int verb_migrate_status(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	char line[512];
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one VM name");
	r = cli_call(ctx, "migrate.status", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("%s\n", cli_migrate_status_line(res, line, sizeof(line)));
	return EXIT_OK;
}
