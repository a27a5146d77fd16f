/* SPDX-License-Identifier: MIT */
/* Azure public VM trace (AzurePublicDataset, vm_cpu_readings-*.csv):
 * rows "timestamp,vmid,min_cpu,max_cpu,avg_cpu", timestamps in seconds,
 * one reading per VM per 5 minutes, CPU in percent. The first day from
 * the earliest timestamp is read; a VM's missing readings count as 0 %
 * (not running). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sim.h"

#define DAY_SAMPLES 288

struct row {
	char *id;
	long ts;
	double avg;
};

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : (x->ts > y->ts) - (x->ts < y->ts);
}

/* Parse one line; 1 if it is a data row, 0 to skip (header), -EINVAL. */
static int parse_row(char *line, struct row *r)
{
	char *f[5], *save = NULL, *p = line;
	int n = 0;
	line[strcspn(line, "\r\n")] = 0;
	if (!*line)
		return 0;
	for (char *tok; n < 5 && (tok = strtok_r(p, ",", &save)); p = NULL)
		f[n++] = tok;
	if (n != 5)
		return -EINVAL;
	char *end;
	r->ts = strtol(f[0], &end, 10);
	if (*end)
		return strcmp(f[0], "timestamp") == 0 ? 0 : -EINVAL;
	r->avg = strtod(f[4], &end);
	if (*end || r->avg < 0 || r->avg > 100 || !*f[1])
		return -EINVAL;
	r->id = strdup(f[1]);
	return r->id ? 1 : -ENOMEM;
}

static int build(struct row *rows, size_t n, struct qv_trace *t)
{
	long t0 = rows[0].ts;
	for (size_t i = 1; i < n; i++)
		if (rows[i].ts < t0)
			t0 = rows[i].ts;
	qsort(rows, n, sizeof(*rows), cmp_row);
	int nvms = 0;
	for (size_t i = 0; i < n; i++)
		nvms += i == 0 || strcmp(rows[i].id, rows[i - 1].id) != 0;
	t->nsamples = DAY_SAMPLES;
	t->interval_s = 300;
	t->util = calloc((size_t)nvms * (DAY_SAMPLES + 1), sizeof(double));
	t->names = calloc(nvms, sizeof(char *));
	if (!t->util || !t->names)
		return -ENOMEM;
	int v = -1;
	for (size_t i = 0; i < n; i++) {
		if (v < 0 || strcmp(rows[i].id, t->names[v]) != 0) {
			v++;
			t->names[v] = rows[i].id;
			rows[i].id = NULL;
			t->nvms = v + 1;
		}
		long k = (rows[i].ts - t0) / 300;
		if (k >= 0 && k < DAY_SAMPLES)
			t->util[(size_t)v * (DAY_SAMPLES + 1) + k] = rows[i].avg / 100.0;
	}
	for (int i = 0; i < t->nvms; i++)
		t->util[(size_t)i * (DAY_SAMPLES + 1) + DAY_SAMPLES] =
			t->util[(size_t)i * (DAY_SAMPLES + 1) + DAY_SAMPLES - 1];
	return 0;
}

int qv_trace_read_azure(const char *csv, struct qv_trace *ret, struct qv_error *errp)
{
	FILE *f = fopen(csv, "re");
	if (!f)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %s", csv, strerror(errno));
	struct row *rows = NULL;
	size_t n = 0, cap = 0, lineno = 0;
	char line[512];
	int r = 0;
	while (r >= 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			struct row *nr = realloc(rows, sizeof(*rows) * cap);
			if (!nr) {
				r = -ENOMEM;
				break;
			}
			rows = nr;
		}
		r = parse_row(line, &rows[n]);
		if (r == -EINVAL)
			r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					 "%s: line %zu: expected timestamp,vmid,min,max,avg", csv, lineno);
		n += r == 1;
	}
	fclose(f);
	struct qv_trace t = {};
	if (r >= 0 && n == 0)
		r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "%s: no readings", csv);
	if (r >= 0)
		r = build(rows, n, &t);
	for (size_t i = 0; i < n; i++)
		free(rows[i].id);
	free(rows);
	if (r < 0) {
		qv_trace_free(&t);
		return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "%s: %s", csv, strerror(-r));
	}
	*ret = t;
	return 0;
}
