/* SPDX-License-Identifier: MIT */
#pragma once

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
