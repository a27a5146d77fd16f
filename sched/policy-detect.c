/* SPDX-License-Identifier: MIT */
/* Overload detectors and VM selections, as CloudSim 3.0.3 runs them
 * (PowerVmAllocationPolicyMigration*, PowerVmSelectionPolicy*), except
 * LRR, which is really robust here (CloudSim's equals LR; see
 * docs/policy.md). A detector can be asked "what if vm were added"
 * without touching the host's list (extra >= 0). */
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "sched/policy-internal.h"

static double vm_req(const struct qv_pol_vm *v)
{
	return v->instantiating ? v->mips : v->req_mips;
}

/* Requested share of the host (THR's test), optionally with extra. */
static double requested_share(const struct qv_pol_dc *dc, const struct qv_pol_host *h, int extra)
{
	double sum = 0;
	for (int i = 0; i < h->nvm; i++)
		sum += vm_req(&dc->vms[h->vm[i]]);
	if (extra >= 0)
		sum += vm_req(&dc->vms[extra]);
	return sum / qv_pol_host_total_mips(h);
}

/* The host's history (trimmed), with extra's history added last. */
static int history_with(const struct qv_pol_dc *dc, struct qv_pol_host *h, int extra, double *out)
{
	int n;
	const double *hs = qv_pol_host_history(dc, h, &n);
	if (extra < 0) {
		for (int i = 0; i < n; i++)
			out[i] = hs[i];
		return n;
	}
	const struct qv_pol_vm *v = &dc->vms[extra];
	double total = qv_pol_host_total_mips(h);
	for (int i = 0; i < QV_POL_HIST; i++)
		out[i] = hs[i];
	for (int k = 0; k < v->nhist; k++)
		out[k] += v->hist[k] * v->mips / total;
	n = QV_POL_HIST;
	while (n > 0 && out[n - 1] == 0)
		n--;
	return n ? n : 1;
}

static double max_migration_s(const struct qv_pol_dc *dc, const struct qv_pol_host *h, int extra)
{
	int ram = INT_MIN;
	for (int i = 0; i < h->nvm; i++)
		if ((int)dc->vms[h->vm[i]].ram_mb > ram)
			ram = (int)dc->vms[h->vm[i]].ram_mb;
	if (extra >= 0 && (int)dc->vms[extra].ram_mb > ram)
		ram = (int)dc->vms[extra].ram_mb;
	return ram / (h->bw_mbps * 1000 / (2 * 8000));
}

bool qv_pol_detect(const double *hist, int n, double util, double ahead, const struct qv_pol_cfg *cfg,
		   double *ret_metric)
{
	double thr = cfg->det == QV_DET_THR ? cfg->param : cfg->fallback_thr;
	*ret_metric = thr;
	if (cfg->det == QV_DET_THR)
		return util > thr;
	if (cfg->det == QV_DET_MAD || cfg->det == QV_DET_IQR) {
		if (n < 12)
			return util > thr;
		double spread = cfg->det == QV_DET_MAD ? qv_pol_mad(hist, n) : qv_pol_iqr(hist, n);
		*ret_metric = 1 - cfg->param * spread;
		return util > *ret_metric;
	}
	/* LR / LRR over the 10 newest samples, oldest first. */
	const int len = 10;
	if (n < len)
		return util > thr;
	double y[len], a, b;
	for (int i = 0; i < len; i++)
		y[i] = hist[len - i - 1];
	int r = cfg->det == QV_DET_LR ? qv_pol_ols(y, len, &a, &b) : qv_pol_lrr(y, len, &a, &b);
	if (r < 0)
		return util > thr;
	double pred = a + b * (len + ahead);
	pred *= cfg->param;
	*ret_metric = pred;
	return pred >= 1;
}

static bool overloaded_with(const struct qv_pol_dc *dc, struct qv_pol_host *h, int extra,
			    const struct qv_pol_cfg *cfg, double *ret_metric)
{
	double hist[QV_POL_HIST], util = requested_share(dc, h, extra);
	if (cfg->det == QV_DET_THR)
		return qv_pol_detect(NULL, 0, util, 0, cfg, ret_metric);
	int n = history_with(dc, h, extra, hist);
	double ahead = 0;
	if ((cfg->det == QV_DET_LR || cfg->det == QV_DET_LRR) && n >= 10)
		ahead = ceil(max_migration_s(dc, h, extra) / cfg->interval_s);
	return qv_pol_detect(hist, n, util, ahead, cfg, ret_metric);
}

bool qv_pol_overloaded(const struct qv_pol_dc *dc, struct qv_pol_host *h,
		       const struct qv_pol_cfg *cfg, double *ret_metric)
{
	double m;
	bool r = overloaded_with(dc, h, -1, cfg, &m);
	if (ret_metric)
		*ret_metric = m;
	return r;
}

bool qv_pol_overloaded_after(const struct qv_pol_dc *dc, struct qv_pol_host *h, int vm,
			     const struct qv_pol_cfg *cfg)
{
	double m;
	return overloaded_with(dc, h, vm, cfg, &m);
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: small, seedable, the same everywhere. */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int select_mmt(const struct qv_pol_dc *dc, const struct qv_pol_host *h, bool by_util)
{
	int best = -1;
	double min = INFINITY;
	for (int i = 0; i < h->nvm; i++) {
		const struct qv_pol_vm *v = &dc->vms[h->vm[i]];
		if (v->migrating)
			continue;
		double m = by_util ? v->req_mips : (double)(int)v->ram_mb;
		if (m < min) {
			min = m;
			best = h->vm[i];
		}
	}
	return best;
}

static int select_mc(const struct qv_pol_dc *dc, const struct qv_pol_host *h)
{
	int ids[h->nvm], m = 0, n = QV_POL_HIST;
	for (int i = 0; i < h->nvm; i++)
		if (!dc->vms[h->vm[i]].migrating) {
			ids[m++] = h->vm[i];
			if (dc->vms[h->vm[i]].nhist < n)
				n = dc->vms[h->vm[i]].nhist;
		}
	if (m < 2 || n <= m)
		return select_mmt(dc, h, false);
	double rows[m * n], best = -1;
	int pick = -1;
	for (int j = 0; j < m; j++)
		for (int t = 0; t < n; t++)
			rows[j * n + t] = dc->vms[ids[j]].hist[t];
	for (int j = 0; j < m; j++) {
		double r2 = qv_pol_r2(rows, m, n, j);
		if (r2 > best) {
			best = r2;
			pick = ids[j];
		}
	}
	return pick >= 0 ? pick : select_mmt(dc, h, false);
}

int qv_pol_select(struct qv_pol_dc *dc, const struct qv_pol_host *h, const struct qv_pol_cfg *cfg)
{
	switch (cfg->sel) {
	case QV_SEL_MMT:
		return select_mmt(dc, h, false);
	case QV_SEL_MU:
		return select_mmt(dc, h, true);
	case QV_SEL_MC:
		return select_mc(dc, h);
	case QV_SEL_RS: {
		int ids[h->nvm], m = 0;
		for (int i = 0; i < h->nvm; i++)
			if (!dc->vms[h->vm[i]].migrating)
				ids[m++] = h->vm[i];
		return m ? ids[rng_next(&dc->rng) % m] : -1;
	}
	}
	return -1;
}
