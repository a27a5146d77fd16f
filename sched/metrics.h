/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "sched/collect.h"
#include "sched/resloop.h"

/* Prometheus text exposition (format 0.0.4) of what the collector and the
 * resource loop know: per-VM CPU seconds, throttling, memory, io, PSI, the
 * allocation knobs and demand estimates; host CPU, memory, pressure and the
 * overload signal. Names follow Prometheus conventions (base units,
 * _total for counters, one HELP and TYPE per family); docs/metrics.md
 * lists them. loop may be NULL. Label values are escaped. */
int qv_metrics_render(const qv_collector *col, const hl_loop *loop, FILE *out);

/* Escape a label value (\ " and newline) into buf; returns buf. */
const char *qv_metrics_escape(const char *s, char *buf, size_t size);

/* A Prometheus histogram with fixed upper bounds (ascending, at most
 * QV_HIST_MAX; +Inf is implicit). Zero it, then qv_hist_init. */
#define QV_HIST_MAX 16
struct qv_hist {
	const double *bounds;
	size_t n;
	uint64_t bucket[QV_HIST_MAX]; /* non-cumulative; rendered cumulatively */
	uint64_t count;
	double sum;
};
void qv_hist_init(struct qv_hist *h, const double *bounds, size_t n);
void qv_hist_observe(struct qv_hist *h, double v);
/* "# HELP/# TYPE name histogram" (once per family, before its series). */
void qv_metrics_family(FILE *out, const char *name, const char *type, const char *help);
/* One series of a histogram family: name_bucket{labels,le="…"} (cumulative,
 * +Inf last), name_sum{labels}, name_count{labels}. labels is "" or
 * `k="v",…` with escaped values. */
void qv_hist_render(FILE *out, const char *name, const char *labels, const struct qv_hist *h);
