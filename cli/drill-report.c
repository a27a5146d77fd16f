/* SPDX-License-Identifier: MIT */
/* Drill report: the text table (stdout and report.txt) and the files of
 * --report DIR: report.json, report.txt, report.svg. */
#include <string.h>
#include <sys/stat.h>

#include "cli/drill.h"

static json_object *get(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static double num(json_object *o, const char *k, double dflt)
{
	json_object *v = get(o, k);
	return v ? json_object_get_double(v) : dflt;
}

static const char *str(json_object *o, const char *k, const char *dflt)
{
	json_object *v = get(o, k);
	return v ? json_object_get_string(v) : dflt;
}

static void row_checks(json_object *m, int *pass, int *total)
{
	json_object *ex = get(m, "expectations");

	*pass = *total = 0;
	for (size_t i = 0; ex && i < json_object_array_length(ex); i++) {
		(*total)++;
		*pass += json_object_get_boolean(get(json_object_array_get_idx(ex, i), "pass"));
	}
}

void drill_report_table(json_object *rep, FILE *f)
{
	json_object *ms = get(rep, "migrations");
	size_t n = ms ? json_object_array_length(ms) : 0;

	fprintf(f, "drill %s: %zu migration%s, link %s%.0f MiB/s %.0f ms\n", str(rep, "drill", "?"),
		n, n == 1 ? "" : "s", num(get(rep, "link"), "rate_mbps", 0) > 0 ? "" : "unshaped ",
		num(get(rep, "link"), "rate_mbps", 0), num(get(rep, "link"), "delay_ms", 0));
	fprintf(f, "%-3s %-14s %-12s %-6s %-15s %-9s %8s %8s %9s %6s  %s\n", "#", "step", "vm", "dir",
		"fault", "result", "wall_s", "down_ms", "sent_MiB", "rounds", "checks");
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(ms, i), *st = get(m, "stats");
		int pass, total;
		char dir[16], fault[24] = "-", down[16] = "-", sent[16] = "-", rounds[16] = "-";

		row_checks(m, &pass, &total);
		snprintf(dir, sizeof(dir), "%c->%c", 'A' + (int)num(m, "from", 0),
			 'A' + (int)num(m, "to", 0));
		if (get(m, "fault"))
			snprintf(fault, sizeof(fault), "%s@%.0f", str(get(m, "fault"), "kind", "?"),
				 num(get(m, "fault"), "at_ms", 0));
		if (st) {
			snprintf(down, sizeof(down), "%.0f", num(st, "downtime_ms", -1));
			snprintf(sent, sizeof(sent), "%.1f", num(st, "ram_transferred", 0) / 1048576.0);
			snprintf(rounds, sizeof(rounds), "%.0f", num(st, "rounds", 0));
		}
		fprintf(f, "%-3zu %-14.14s %-12.12s %-6s %-15.15s %-9s %8.2f %8s %9s %6s  %d/%d %s\n",
			i, str(m, "step_name", "?"), str(m, "vm", "?"), dir, fault,
			str(m, "result", "?"), num(m, "wall_ms", 0) / 1000.0, down, sent, rounds, pass,
			total, pass == total ? "ok" : "FAIL");
	}
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(ms, i), *ex = get(m, "expectations");
		for (size_t k = 0; ex && k < json_object_array_length(ex); k++) {
			json_object *c = json_object_array_get_idx(ex, k);
			if (json_object_get_boolean(get(c, "pass")))
				continue;
			fprintf(f, "  #%zu %s: expected %s, got %s\n", i, str(c, "name", "?"),
				json_object_to_json_string(get(c, "expected")),
				json_object_to_json_string(get(c, "actual")));
		}
		if (get(m, "error") && strcmp(str(m, "result", ""), "failed") == 0)
			fprintf(f, "  #%zu error: %s (%s)\n", i, str(get(m, "error"), "message", ""),
				str(get(m, "error"), "reason", ""));
	}
	fprintf(f, "drill %s: %s (%d/%d expectations passed, %.1f s)\n", str(rep, "drill", "?"),
		json_object_get_boolean(get(rep, "passed")) ? "passed" : "FAILED",
		(int)num(rep, "expectations_total", 0) - (int)num(rep, "expectations_failed", 0),
		(int)num(rep, "expectations_total", 0), num(rep, "total_s", 0));
}

static int write_file(const char *dir, const char *name, json_object *rep,
		      int (*fn)(json_object *, FILE *), struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	FILE *f;
	int r;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	f = fopen(path, "we");
	if (!f)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot write %s: %m", path);
	r = fn(rep, f);
	if (fclose(f) != 0 || r < 0)
		return qv_error_set(errp, EIO, QV_REASON_IO_ERROR, "cannot write %s", path);
	return 0;
}

static int write_json(json_object *rep, FILE *f)
{
	return fprintf(f, "%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE)) < 0
		       ? -EIO : 0;
}

static int write_table(json_object *rep, FILE *f)
{
	drill_report_table(rep, f);
	return ferror(f) ? -EIO : 0;
}

int drill_report_write(json_object *rep, const char *dir, struct qv_error *errp)
{
	_cleanup_free_ char *p = strdup(dir);

	/* mkdir -p */
	for (char *s = p ? p + 1 : NULL; s && *s; s++)
		if (*s == '/') {
			*s = 0;
			(void)mkdir(p, 0755);
			*s = '/';
		}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot create %s: %m", dir);
	if (write_file(dir, "report.json", rep, write_json, errp) < 0 ||
	    write_file(dir, "report.txt", rep, write_table, errp) < 0 ||
	    write_file(dir, "report.svg", rep, drill_svg_write, errp) < 0)
		return -EIO;
	return 0;
}
