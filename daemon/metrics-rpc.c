/* SPDX-License-Identifier: MIT */
/* RPC latency histograms for the metrics endpoint, fed by the RPC server's
 * observer (every finished call, synchronous or not). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "daemon/metrics-http.h"
#include "sched/metrics.h"

static const double bounds[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
				  1, 2.5, 5, 10, 30, 60 };
#define METHODS_MAX 160 /* registered methods only reach the observer */

struct rpc_hist {
	char method[48];
	struct qv_hist h;
	uint64_t errors;
};

struct qv_rpc_hists {
	struct rpc_hist h[METHODS_MAX];
	size_t n;
};

struct qv_rpc_hists *qv_rpc_hists_new(void)
{
	return calloc(1, sizeof(struct qv_rpc_hists));
}

void qv_rpc_hists_free(struct qv_rpc_hists *r)
{
	free(r);
}

void qv_rpc_hists_observe(struct qv_rpc_hists *r, const char *method, uint64_t ms, bool ok)
{
	struct rpc_hist *h = NULL;

	for (size_t i = 0; i < r->n && !h; i++)
		if (strcmp(r->h[i].method, method) == 0)
			h = &r->h[i];
	if (!h) {
		if (r->n == METHODS_MAX || strlen(method) >= sizeof(h->method))
			return;
		h = &r->h[r->n++];
		snprintf(h->method, sizeof(h->method), "%s", method);
		qv_hist_init(&h->h, bounds, ARRAY_SIZE(bounds));
	}
	qv_hist_observe(&h->h, (double)ms / 1000);
	h->errors += !ok;
}

void qv_rpc_hists_render(const struct qv_rpc_hists *r, FILE *f)
{
	char labels[64];

	if (!r->n)
		return;
	qv_metrics_family(f, "qvisor_rpc_duration_seconds", "histogram",
			  "Time from dispatch to reply of RPC calls.");
	for (size_t i = 0; i < r->n; i++) {
		snprintf(labels, sizeof(labels), "method=\"%s\"", r->h[i].method);
		qv_hist_render(f, "qvisor_rpc_duration_seconds", labels, &r->h[i].h);
	}
	qv_metrics_family(f, "qvisor_rpc_errors_total", "counter",
			  "RPC calls answered with an error.");
	for (size_t i = 0; i < r->n; i++)
		fprintf(f, "qvisor_rpc_errors_total{method=\"%s\"} %llu\n", r->h[i].method,
			(unsigned long long)r->h[i].errors);
}
