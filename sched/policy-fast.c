/* SPDX-License-Identifier: MIT */
/* Per-round caches that make PABFD's candidate test cheap without
 * changing one decision.
 *
 * PABFD asks "would host h be overloaded with vm added?" for most hosts
 * of every search, and a search that fails (common: the underload pass
 * stops at the first VM that fits nowhere) asks it of every host. The
 * exact detector rebuilds the host's history with the VM's and sorts it
 * (MAD, IQR) or fits a line (LR). Here each host's requested MIPS and
 * history statistics are kept for the round (recomputed when its list
 * changes), and the answer comes from bounds in most cases:
 *  - THR: the requested share is the cached sum plus the VM's request,
 *    added in the same order as the detector adds them: the same double;
 *  - MAD, IQR: adding a series whose values lie in [lo, hi] moves every
 *    order statistic (and interpolated percentile) by at most hi - lo over
 *    two, so the spread of host + VM is the host's spread +- (hi - lo);
 *  - LR: least squares is linear in y, so the prediction is the host's
 *    plus the VM's;
 * each with a margin far above rounding (1e-9 relative). When the answer
 * lies within the bounds' slack, or the data are unusual (negative or
 * non-finite values, a VM history longer than the host's, LRR), the exact
 * detector decides. The same bounds give each host a headroom (the most
 * a VM may ask, or for LR add to the prediction, and still be taken),
 * kept in a max-tree over the hosts: a search descends only into subtrees
 * holding a host that could take the VM, left to right, so it visits in
 * host order a subset of the plain scan's hosts that contains every host
 * the scan could choose. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "sched/policy-internal.h"

#define LR_LEN 10 /* newest samples LR fits (policy-detect.c) */

struct fast_host {
	double req_sum;  /* requested MIPS of the list, summed in list order */
	double spread;   /* MAD or IQR of the host's history */
	double xmax;     /* largest history value */
	double a, b;     /* LR line through the 10 newest (oldest first) */
	double pw_now;   /* power at the last measurement (fixed in a round) */
	int ram;         /* largest (int) RAM on the list, INT_MIN if none */
	int hraw;        /* history length, zero tail trimmed (0: all zero) */
};

struct fast_vm {
	double hmin, hmax; /* over its history, 0 counted when shorter than 30 */
	double a, b;       /* LR line of its own history (unscaled) */
	int ylen;          /* history length, zero tail trimmed */
};

struct qv_pol_fast {
	const struct qv_pol_cfg *cfg;
	struct fast_host *h;
	struct fast_vm *v;
	bool sane; /* all values finite and >= 0: the bounds hold */
	int ymax;  /* longest VM history (zero tail trimmed) */
	double lr_x; /* LR's abscissa 10 + intervals if the same for every
		      * host and VM, else NAN (no LR headroom index) */
	/* max-tree over hosts of the most a VM may ask of each and still be
	 * taken (a necessary condition); -INF once excluded */
	double *mx;
	bool *gone;
	int size;
	long by_bounds, by_exact; /* answers, for tests */
};

static double vm_req(const struct qv_pol_vm *v)
{
	return v->instantiating ? v->mips : v->req_mips;
}

static bool vm_sane(const struct qv_pol_vm *v)
{
	if (!(v->mips > 0) || !isfinite(v->mips) || !(vm_req(v) >= 0) || !isfinite(vm_req(v)) ||
	    v->nhist < 0 || v->nhist > QV_POL_HIST)
		return false;
	for (int k = 0; k < v->nhist; k++)
		if (!(v->hist[k] >= 0) || !isfinite(v->hist[k]))
			return false;
	return true;
}

/* The 10 newest of s (zero past n), oldest first, as the detector takes them. */
static void lr_series(const double *s, int n, double *y)
{
	for (int i = 0; i < LR_LEN; i++) {
		int t = LR_LEN - i - 1;
		y[i] = t < n ? s[t] : 0;
	}
}

static void vm_stats(const struct qv_pol_vm *v, struct fast_vm *f)
{
	f->hmin = v->nhist < QV_POL_HIST ? 0 : INFINITY;
	f->hmax = 0;
	f->ylen = 0;
	for (int k = 0; k < v->nhist; k++) {
		f->hmin = fmin(f->hmin, v->hist[k]);
		f->hmax = fmax(f->hmax, v->hist[k]);
		if (v->hist[k] != 0)
			f->ylen = k + 1;
	}
	if (v->nhist == 0)
		f->hmin = 0;
	double y[LR_LEN];
	lr_series(v->hist, v->nhist, y);
	if (qv_pol_ols(y, LR_LEN, &f->a, &f->b) < 0)
		f->a = f->b = NAN;
}

static void host_stats(const struct qv_pol_dc *dc, struct qv_pol_host *h, struct fast_host *f);

static void tree_set(struct qv_pol_fast *fa, int i, double key)
{
	int k = fa->size + i;
	fa->mx[k] = isnan(key) ? INFINITY : key;
	for (k /= 2; k >= 1; k /= 2)
		fa->mx[k] = fa->mx[2 * k] > fa->mx[2 * k + 1] ? fa->mx[2 * k] : fa->mx[2 * k + 1];
}

/* An upper bound of the request a VM may have and still be taken by h
 * (suitable and not overloaded after), in MIPS, against need() below:
 * THR: thr T - requested; MAD/IQR: T (1 - s spread) - requested, the VM
 * side subtracting s x its MIPS x its history's range; LR/LRR: only the
 * scheduler's room. Margins far above rounding. */
static double host_key(const struct qv_pol_dc *dc, const struct qv_pol_host *h, const struct fast_host *f)
{
	const struct qv_pol_fast *fa = dc->fast;
	const struct qv_pol_cfg *cfg = fa->cfg;
	double key = h->avail < h->core_mips ? h->avail : h->core_mips;
	/* LR's index is in the prediction's units: every host it cannot
	 * bound is always visited */
	bool lr = cfg->det == QV_DET_LR && fa->sane && !isnan(fa->lr_x);
	if (lr && (h->alloc_mips == 0 || f->hraw < LR_LEN || f->hraw < fa->ymax))
		return INFINITY;
	if (h->alloc_mips == 0)
		return key;
	double t = qv_pol_host_total_mips(h), m = 1e-7 * (t + fabs(f->req_sum)), det = INFINITY;
	if (cfg->det == QV_DET_THR)
		det = cfg->param * t - f->req_sum + m;
	else if (!fa->sane || f->hraw == 0 || f->hraw < fa->ymax)
		det = INFINITY;
	else if (f->hraw < (cfg->det == QV_DET_MAD || cfg->det == QV_DET_IQR ? 12 : LR_LEN))
		det = cfg->fallback_thr * t - f->req_sum + m;
	else if (cfg->det == QV_DET_MAD || cfg->det == QV_DET_IQR)
		det = t * (1 - cfg->param * f->spread) - f->req_sum + m;
	else if (cfg->det == QV_DET_LR) {
		/* accepted => param (host's + VM's prediction) < 1 + slack: a
		 * bound in the prediction's units, not the request's, so it
		 * replaces the scheduler's room */
		double x = fa->lr_x;
		if (isnan(x) || !isfinite(f->a) || !isfinite(f->b) || !(cfg->param > 0))
			return INFINITY;
		return t / cfg->param - t * (f->a + f->b * x) + 1e-8 * t * (1 + fabs(f->a) + fabs(f->b) * x + f->xmax);
	}
	return det < key ? det : key;
}

static double need(const struct qv_pol_fast *fa, const struct qv_pol_vm *v, const struct fast_vm *fv)
{
	double r = vm_req(v);
	if (fa->sane && fa->cfg->det == QV_DET_LR) {
		double x = fa->lr_x;
		if (isnan(x) || !isfinite(fv->a) || !isfinite(fv->b) || !(fa->cfg->param > 0))
			return -INFINITY;
		return v->mips * (fv->a + fv->b * x) - 1e-8 * v->mips * (fabs(fv->a) + fabs(fv->b) * x + fv->hmax);
	}
	if (fa->sane && (fa->cfg->det == QV_DET_MAD || fa->cfg->det == QV_DET_IQR))
		r -= fa->cfg->param * v->mips * (fv->hmax - fv->hmin) * (1 + 1e-9) + 1e-9 * v->mips;
	return r;
}

static void tree_visit(struct qv_pol_fast *fa, const struct qv_pol_dc *dc, int k, double nd, int vm,
		       const bool *excluded, double *min, int *best)
{
	if (!(fa->mx[k] >= nd))
		return;
	if (k >= fa->size) {
		int i = k - fa->size;
		if (excluded && excluded[i]) {
			fa->gone[i] = true;
			tree_set(fa, i, -INFINITY);
			return;
		}
		qv_pol_pabfd_visit(dc, i, vm, fa->cfg, min, best);
		return;
	}
	tree_visit(fa, dc, 2 * k, nd, vm, excluded, min, best);
	tree_visit(fa, dc, 2 * k + 1, nd, vm, excluded, min, best);
}

int qv_pol_fast_find_host(struct qv_pol_dc *dc, int vm, const bool *excluded, const struct qv_pol_cfg *cfg)
{
	struct qv_pol_fast *fa = dc->fast;
	int best = -1;
	double min = INFINITY;
	if (fa->cfg != cfg) { /* not this round's policy: the plain scan */
		for (int i = 0; i < dc->nhosts; i++)
			if (!excluded || !excluded[i])
				qv_pol_pabfd_visit(dc, i, vm, cfg, &min, &best);
		return best;
	}
	double nd = need(fa, &dc->vms[vm], &fa->v[vm]);
	if (isnan(nd))
		nd = -INFINITY;
	tree_visit(fa, dc, 1, nd, vm, excluded, &min, &best);
	return best;
}

void qv_pol_fast_host_changed(struct qv_pol_dc *dc, int hi)
{
	struct qv_pol_fast *fa = dc->fast;
	if (!fa)
		return;
	struct qv_pol_host *h = &dc->hosts[hi];
	struct fast_host *f = &fa->h[hi];
	f->req_sum = 0;
	f->ram = INT_MIN;
	for (int i = 0; i < h->nvm; i++) {
		const struct qv_pol_vm *v = &dc->vms[h->vm[i]];
		f->req_sum += vm_req(v);
		if ((int)v->ram_mb > f->ram)
			f->ram = (int)v->ram_mb;
	}
	if (fa->sane && fa->cfg->det != QV_DET_THR)
		host_stats(dc, h, f);
	tree_set(fa, hi, fa->gone[hi] ? -INFINITY : host_key(dc, h, f));
}

static void host_stats(const struct qv_pol_dc *dc, struct qv_pol_host *h, struct fast_host *f)
{
	const struct qv_pol_fast *fa = dc->fast;
	int n;
	const double *x = qv_pol_host_history(dc, h, &n);
	f->hraw = n == 1 && x[0] == 0 ? 0 : n;
	f->xmax = 0;
	for (int i = 0; i < n; i++)
		f->xmax = fmax(f->xmax, x[i]);
	if (fa->cfg->det == QV_DET_MAD)
		f->spread = qv_pol_mad(x, n);
	else if (fa->cfg->det == QV_DET_IQR)
		f->spread = qv_pol_iqr(x, n);
	else {
		double y[LR_LEN];
		lr_series(x, n, y);
		if (qv_pol_ols(y, LR_LEN, &f->a, &f->b) < 0)
			f->a = f->b = NAN;
	}
}

/* LR extrapolates to 10 + ceil(largest RAM / half the link / interval);
 * with every RAM and link the same number in all pairs, one abscissa. */
static double lr_abscissa(const struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg)
{
	int lo = INT_MAX, hi = INT_MIN;
	for (int i = 0; i < dc->nvms; i++) {
		int r = (int)dc->vms[i].ram_mb;
		lo = r < lo ? r : lo;
		hi = r > hi ? r : hi;
	}
	if (dc->nvms == 0)
		return NAN;
	double x = NAN;
	for (int i = 0; i < dc->nhosts; i++) {
		double half = dc->hosts[i].bw_mbps * 1000 / (2 * 8000);
		double a = ceil(lo / half / cfg->interval_s), b = ceil(hi / half / cfg->interval_s);
		if (a != b || (!isnan(x) && a != x))
			return NAN;
		x = a;
	}
	return LR_LEN + x;
}

int qv_pol_fast_begin(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg)
{
	dc->fast = NULL;
	if (dc->reference)
		return 0;
	struct qv_pol_fast *fa = calloc(1, sizeof(*fa));
	if (!fa)
		return -ENOMEM;
	for (fa->size = 1; fa->size < dc->nhosts; fa->size *= 2)
		;
	fa->h = calloc(dc->nhosts + 1, sizeof(*fa->h));
	fa->v = calloc(dc->nvms + 1, sizeof(*fa->v));
	fa->mx = malloc(sizeof(double) * 2 * fa->size);
	fa->gone = calloc(dc->nhosts + 1, sizeof(bool));
	if (!fa->h || !fa->v || !fa->mx || !fa->gone) {
		free(fa->h);
		free(fa->v);
		free(fa->mx);
		free(fa->gone);
		free(fa);
		return -ENOMEM;
	}
	for (int k = 0; k < 2 * fa->size; k++)
		fa->mx[k] = -INFINITY;
	fa->cfg = cfg;
	fa->sane = isfinite(cfg->param) && cfg->param >= 0 && cfg->interval_s > 0;
	for (int i = 0; i < dc->nvms && fa->sane; i++)
		fa->sane = vm_sane(&dc->vms[i]);
	for (int i = 0; i < dc->nhosts && fa->sane; i++)
		fa->sane = qv_pol_host_total_mips(&dc->hosts[i]) > 0 && dc->hosts[i].bw_mbps > 0;
	if (fa->sane && cfg->det != QV_DET_THR)
		for (int i = 0; i < dc->nvms; i++) {
			vm_stats(&dc->vms[i], &fa->v[i]);
			if (fa->v[i].ylen > fa->ymax)
				fa->ymax = fa->v[i].ylen;
		}
	fa->lr_x = lr_abscissa(dc, cfg);
	dc->fast = fa;
	for (int i = 0; i < dc->nhosts; i++) {
		const struct qv_pol_host *h = &dc->hosts[i];
		fa->h[i].pw_now = qv_pol_power_at(&h->power, qv_pol_host_util(h));
		qv_pol_fast_host_changed(dc, i);
	}
	return 0;
}

void qv_pol_fast_end(struct qv_pol_dc *dc)
{
	if (!dc->fast)
		return;
	free(dc->fast->h);
	free(dc->fast->v);
	free(dc->fast->mx);
	free(dc->fast->gone);
	free(dc->fast);
	dc->fast = NULL;
}

/* k-th smallest of a[lo..hi] (a is reordered): the value a full sort
 * would put at k, so the statistics below equal policy-stats.c's. */
static double select_kth(double *a, int lo, int hi, int k)
{
	while (hi > lo) {
		double p = a[(lo + hi) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i <= j) {
				double t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return a[k];
	}
	return a[k];
}

/* commons-math's legacy percentile (policy-stats.c) by selection. */
static double percentile_sel(double *a, int n, double p)
{
	double pos = p * (n + 1) / 100, fpos = floor(pos), dif = pos - fpos;
	int ipos = (int)fpos;
	if (n == 1 || pos < 1)
		return select_kth(a, 0, n - 1, 0);
	if (pos >= n)
		return select_kth(a, 0, n - 1, n - 1);
	double lo = select_kth(a, 0, n - 1, ipos - 1);
	double hi = a[ipos]; /* the smallest of what selection left above */
	for (int i = ipos + 1; i < n; i++)
		if (a[i] < hi)
			hi = a[i];
	return lo + dif * (hi - lo);
}

/* qv_pol_mad / qv_pol_iqr of the host's history plus vm's, n = hraw. */
static double exact_spread(const struct qv_pol_dc *dc, struct qv_pol_host *h, const struct qv_pol_vm *v,
			   int n, bool mad)
{
	int hn;
	const double *x = qv_pol_host_history(dc, h, &hn);
	double z[QV_POL_HIST], total = qv_pol_host_total_mips(h);
	for (int i = 0; i < n; i++)
		z[i] = x[i];
	for (int k = 0; k < v->nhist && k < n; k++)
		z[k] += v->hist[k] * v->mips / total;
	if (!mad) {
		int q1 = (int)floor(0.25 * (n + 1) + 0.5) - 1, q3 = (int)floor(0.75 * (n + 1) + 0.5) - 1;
		if (q1 < 0)
			q1 = 0;
		if (q3 > n - 1)
			q3 = n - 1;
		double s3 = select_kth(z, 0, n - 1, q3);
		return s3 - select_kth(z, 0, q3, q1);
	}
	double med = percentile_sel(z, n, 50), d[QV_POL_HIST];
	for (int i = 0; i < n; i++)
		d[i] = fabs(med - z[i]);
	return percentile_sel(d, n, 50);
}

/* MAD's answer: the median deviation lies between the two middle order
 * statistics, so counting the deviations below and above the value that
 * decides (1 - util) / s usually settles it without selecting them. */
static bool mad_over(const struct qv_pol_dc *dc, struct qv_pol_host *h, const struct qv_pol_vm *v, int n,
		     double s, double util)
{
	double pos = 50.0 * (n + 1) / 100;
	int ipos = (int)floor(pos);
	if (n < 3 || !(s > 1e-3) || pos >= n)
		return util > 1 - s * exact_spread(dc, h, v, n, true);
	int hn;
	const double *x = qv_pol_host_history(dc, h, &hn);
	double z[QV_POL_HIST], total = qv_pol_host_total_mips(h);
	for (int i = 0; i < n; i++)
		z[i] = x[i];
	for (int k = 0; k < v->nhist && k < n; k++)
		z[k] += v->hist[k] * v->mips / total;
	double med = percentile_sel(z, n, 50), tau = (1 - util) / s, eps = 1e-9 * (1 + fabs(tau) + med);
	int below = 0, upto = 0; /* deviations < tau - eps, <= tau + eps */
	double d[QV_POL_HIST];
	for (int i = 0; i < n; i++) {
		d[i] = fabs(med - z[i]);
		below += d[i] < tau - eps;
		upto += d[i] <= tau + eps;
	}
	/* the median interpolates sorted[ipos - 1] and sorted[ipos] */
	if (upto < ipos)
		return true;  /* both above tau: MAD > tau, util > 1 - s MAD */
	if (below > ipos)
		return false; /* both below */
	return util > 1 - s * percentile_sel(d, n, 50);
}

/* LR / LRR exactly as policy-detect.c computes them, from the cached
 * host history, requested sum and largest RAM (history >= 10 samples). */
static bool lr_exact(const struct qv_pol_dc *dc, struct qv_pol_host *h, const struct fast_host *f,
		     const struct qv_pol_vm *v, const struct qv_pol_cfg *cfg, double util)
{
	int hn;
	const double *x = qv_pol_host_history(dc, h, &hn);
	double z[LR_LEN], y[LR_LEN], total = qv_pol_host_total_mips(h), a, b;
	for (int t = 0; t < LR_LEN; t++) {
		z[t] = x[t];
		if (t < v->nhist)
			z[t] += v->hist[t] * v->mips / total;
	}
	for (int i = 0; i < LR_LEN; i++)
		y[i] = z[LR_LEN - i - 1];
	int r = cfg->det == QV_DET_LR ? qv_pol_ols(y, LR_LEN, &a, &b) : qv_pol_lrr(y, LR_LEN, &a, &b);
	if (r < 0)
		return util > cfg->fallback_thr;
	int ram = (int)v->ram_mb > f->ram ? (int)v->ram_mb : f->ram;
	double intervals = ceil(ram / (h->bw_mbps * 1000 / (2 * 8000)) / cfg->interval_s);
	double pred = a + b * (LR_LEN + intervals);
	pred *= cfg->param;
	return pred >= 1;
}

/* 1: overloaded, 0: not, -1: the bounds cannot tell. */
static int spread_verdict(const struct fast_host *f, const struct fast_vm *fv, const struct qv_pol_vm *v,
			  double total, double s, double util)
{
	double scale = v->mips / total, range = (fv->hmax - fv->hmin) * scale;
	double e = 1e-9 * (1 + f->xmax + fv->hmax * scale);
	/* a spread is never negative, so the metric is never above 1 */
	double low = f->spread - range - e, metric_hi = 1 - s * (low > 0 ? low : 0);
	double metric_lo = 1 - s * (f->spread + range + e);
	if (util > metric_hi + 1e-9)
		return 1;
	if (util < metric_lo - 1e-9)
		return 0;
	return -1;
}

static int lr_verdict(const struct qv_pol_host *h, const struct fast_host *f,
		      const struct fast_vm *fv, const struct qv_pol_vm *v, const struct qv_pol_cfg *cfg)
{
	if (!isfinite(f->a) || !isfinite(f->b) || !isfinite(fv->a) || !isfinite(fv->b))
		return -1;
	int ram = (int)v->ram_mb > f->ram ? (int)v->ram_mb : f->ram;
	double iv = ceil(ram / (h->bw_mbps * 1000 / (2 * 8000)) / cfg->interval_s);
	double scale = v->mips / qv_pol_host_total_mips(h), x = LR_LEN + iv;
	double px = f->a + f->b * x, py = (fv->a + fv->b * x) * scale;
	double mag = 1 + fabs(f->a) + fabs(f->b) * fabs(x) + (fabs(fv->a) + fabs(fv->b) * fabs(x)) * scale +
		     f->xmax + fv->hmax * scale;
	double pred = cfg->param * (px + py), m = 1e-9 * cfg->param * mag;
	if (pred >= 1 + m)
		return 1;
	if (pred < 1 - m)
		return 0;
	return -1;
}

double qv_pol_fast_power_now(const struct qv_pol_dc *dc, const struct qv_pol_host *h)
{
	if (dc->fast)
		return dc->fast->h[h - dc->hosts].pw_now;
	return qv_pol_power_at(&h->power, qv_pol_host_util(h));
}

void qv_pol_fast_counts(const struct qv_pol_dc *dc, long *ret_bounds, long *ret_exact)
{
	*ret_bounds = dc->fast ? dc->fast->by_bounds : 0;
	*ret_exact = dc->fast ? dc->fast->by_exact : 0;
}

static bool exact(const struct qv_pol_dc *dc, struct qv_pol_host *h, int vm, const struct qv_pol_cfg *cfg)
{
	if (dc->fast)
		dc->fast->by_exact++;
	return qv_pol_overloaded_after(dc, h, vm, cfg);
}

bool qv_pol_fast_overloaded_after(const struct qv_pol_dc *dc, struct qv_pol_host *h, int vm,
				  const struct qv_pol_cfg *cfg)
{
	struct qv_pol_fast *fa = dc->fast;
	if (!fa || fa->cfg != cfg)
		return exact(dc, h, vm, cfg);
	const struct fast_host *f = &fa->h[h - dc->hosts];
	const struct qv_pol_vm *v = &dc->vms[vm];
	double total = qv_pol_host_total_mips(h), util = (f->req_sum + vm_req(v)) / total;
	if (cfg->det == QV_DET_THR)
		return util > cfg->param;
	const struct fast_vm *fv = &fa->v[vm];
	if (!fa->sane || f->hraw == 0 || fv->ylen > f->hraw)
		return exact(dc, h, vm, cfg);
	fa->by_bounds++; /* undone below if the bounds cannot tell */
	int n = f->hraw, verdict = -1;
	if (cfg->det == QV_DET_MAD || cfg->det == QV_DET_IQR) {
		if (n < 12)
			return util > cfg->fallback_thr;
		verdict = spread_verdict(f, fv, v, total, cfg->param, util);
		if (verdict < 0) {
			fa->by_bounds--;
			fa->by_exact++;
			if (cfg->det == QV_DET_MAD)
				return mad_over(dc, h, v, n, cfg->param, util);
			return util > 1 - cfg->param * exact_spread(dc, h, v, n, false);
		}
	} else if (n < LR_LEN) {
		return util > cfg->fallback_thr;
	} else {
		verdict = cfg->det == QV_DET_LR ? lr_verdict(h, f, fv, v, cfg) : -1;
		if (verdict < 0) {
			fa->by_bounds--;
			fa->by_exact++;
			return lr_exact(dc, h, f, v, cfg, util);
		}
	}
	if (verdict >= 0)
		return verdict;
	fa->by_bounds--;
	return exact(dc, h, vm, cfg);
}
