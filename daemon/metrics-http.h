/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "daemon/daemon.h"

/* The Prometheus endpoint (docs/metrics.md); off unless --metrics-listen. */
struct qv_metrics_http;
int qv_metrics_http_start(struct qv_daemon *d, const char *listen, struct qv_metrics_http **ret);
struct qv_metrics_http *qv_metrics_http_stop(struct qv_metrics_http *m);

/* RPC latency histograms (daemon/metrics-rpc.c). Method names are the
 * registered ones (a-z, '.', '-'): no escaping needed. */
struct qv_rpc_hists;
struct qv_rpc_hists *qv_rpc_hists_new(void);
void qv_rpc_hists_free(struct qv_rpc_hists *r);
void qv_rpc_hists_observe(struct qv_rpc_hists *r, const char *method, uint64_t ms, bool ok);
void qv_rpc_hists_render(const struct qv_rpc_hists *r, FILE *f);
/* Start feeding the histograms from d->rpc (once the server exists). */
void qv_metrics_http_observe_rpc(struct qv_metrics_http *m);
