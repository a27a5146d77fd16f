/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/daemon.h"

/* The Prometheus endpoint (docs/metrics.md); off unless --metrics-listen. */
struct qv_metrics_http;
int qv_metrics_http_start(struct qv_daemon *d, const char *listen, struct qv_metrics_http **ret);
struct qv_metrics_http *qv_metrics_http_stop(struct qv_metrics_http *m);
