/* SPDX-License-Identifier: MIT */
/* qvisor drill run FILE [--report DIR]: scripted migration drills
 * (docs/migration.md, "Drills"). The file is validated strictly
 * (drill-parse.c), run against the two daemons it names (drill-run.c), and
 * reported as a text table on stdout (with --json, the report JSON instead)
 * and, with --report, as DIR/report.{json,txt,svg}. Exit status 0 when
 * every expectation passed, 1 when one failed or the drill could not run,
 * 2 for a usage error or an invalid drill file. */
#include <getopt.h>
#include <signal.h>

#include "cli/drill.h"
#include "cli/verbs.h"

int verb_drill_run(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "report", required_argument, NULL, 'r' },
		{},
	};
	_cleanup_json_ json_object *j = NULL, *report = NULL;
	struct qv_error err = {};
	const char *dir = NULL;
	struct drill d;
	int c, r;

	while ((c = getopt_long(argc, argv, "r:", opts, NULL)) != -1) {
		if (c != 'r')
			return cli_usage_error(ctx, "invalid option");
		dir = optarg;
	}
	if (optind + 1 != argc)
		return cli_usage_error(ctx, "expected a drill file");
	if ((r = cli_read_json_file(ctx, argv[optind], &j)) != EXIT_OK)
		return r;
	if (drill_parse(j, &d, &err) < 0) {
		fprintf(stderr, "qvisor: drill run: %s: %s\n", argv[optind], err.message);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN); /* ssh:// hosts */
	r = drill_run(&d, argv[optind], &report, &err);
	json_object_put(d.root);
	if (r < 0)
		return cli_report(ctx, "drill", r, &err);
	if (ctx->json)
		printf("%s\n", json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		drill_report_table(report, stdout);
	fflush(stdout);
	if (dir && drill_report_write(report, dir, &err) < 0)
		return cli_report(ctx, dir, -EIO, &err);
	if (dir)
		fprintf(stderr, "drill: report in %s/report.{json,txt,svg}\n", dir);
	json_object *passed = NULL;
	json_object_object_get_ex(report, "passed", &passed);
	return json_object_get_boolean(passed) ? EXIT_OK : EXIT_FAILED;
}
