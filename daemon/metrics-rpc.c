/* SPDX-License-Identifier: MIT */
/* RPC latency histograms for the metrics endpoint, fed by the RPC server's
 * observer (every finished call, synchronous or not). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "daemon/metrics-http.h"

static const double bounds[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
				  1, 2.5, 5, 10, 30, 60 };
#define NB ARRAY_SIZE(bounds)
#define METHODS_MAX 160 /* registered methods only reach the observer */

struct rpc_hist {
	char method[48];
	uint64_t bucket[NB]; /* non-cumulative; rendered cumulatively */
	uint64_t count, errors;
	double sum;
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
	}
	double s = (double)ms / 1000;
	for (size_t b = 0; b < NB; b++)
		if (s <= bounds[b]) {
			h->bucket[b]++;
			break;
		}
	h->count++;
	h->sum += s;
	h->errors += !ok;
}

void qv_rpc_hists_render(const struct qv_rpc_hists *r, FILE *f)
{
	if (!r->n)
		return;
	fprintf(f, "# HELP qvisor_rpc_duration_seconds Time from dispatch to reply of RPC calls.\n"
		   "# TYPE qvisor_rpc_duration_seconds histogram\n");
	for (size_t i = 0; i < r->n; i++) {
		const struct rpc_hist *h = &r->h[i];
		uint64_t cum = 0;
		for (size_t b = 0; b < NB; b++) {
			cum += h->bucket[b];
			fprintf(f, "qvisor_rpc_duration_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n",
				h->method, bounds[b], (unsigned long long)cum);
		}
		fprintf(f, "qvisor_rpc_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n"
			   "qvisor_rpc_duration_seconds_sum{method=\"%s\"} %.3f\n"
			   "qvisor_rpc_duration_seconds_count{method=\"%s\"} %llu\n",
			h->method, (unsigned long long)h->count, h->method, h->sum, h->method,
			(unsigned long long)h->count);
	}
	fprintf(f, "# HELP qvisor_rpc_errors_total RPC calls answered with an error.\n"
		   "# TYPE qvisor_rpc_errors_total counter\n");
	for (size_t i = 0; i < r->n; i++)
		fprintf(f, "qvisor_rpc_errors_total{method=\"%s\"} %llu\n", r->h[i].method,
			(unsigned long long)r->h[i].errors);
}
