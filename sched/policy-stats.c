/* SPDX-License-Identifier: MIT */
/* Statistics for the overload detectors and MC selection. The arithmetic
 * follows the libraries CloudSim 3.0.3 uses (commons-math's legacy
 * percentile and SimpleRegression's provisional means) so that a detector
 * sitting on its threshold decides the same way. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched/policy.h"

double qv_pol_power_at(const struct qv_pol_power *p, double u)
{
	if (!(u > 0))
		return p->w[0];
	if (u > 1)
		u = 1;
	/* CloudSim tests u % 0.1 == 0; only a u next to a multiple of 0.1
	 * can pass, so fmod (slow) runs only for those. */
	double k = u * 10;
	if (fabs(k - nearbyint(k)) < 1e-6 && fmod(u, 0.1) == 0)
		return p->w[(int)(u * 10)];
	int lo = (int)floor(u * 10), hi = (int)ceil(u * 10);
	double delta = (p->w[hi] - p->w[lo]) / 10;
	return p->w[lo] + delta * (u - (double)lo / 10) * 100;
}

/* Insertion sort: the detectors sort at most 30 samples, many times. */
static void sort_small(double *s, int n)
{
	for (int i = 1; i < n; i++) {
		double x = s[i];
		int j = i;
		for (; j > 0 && s[j - 1] > x; j--)
			s[j] = s[j - 1];
		s[j] = x;
	}
}

static double percentile_sorted(const double *s, int n, double p)
{
	double pos = p * (n + 1) / 100;
	double fpos = floor(pos);
	int ipos = (int)fpos;
	double dif = pos - fpos;
	if (n == 1 || pos < 1)
		return s[0];
	if (pos >= n)
		return s[n - 1];
	return s[ipos - 1] + dif * (s[ipos] - s[ipos - 1]);
}

double qv_pol_median(const double *x, int n)
{
	if (n <= 0)
		return NAN;
	double s[n];
	memcpy(s, x, sizeof(double) * n);
	sort_small(s, n);
	return percentile_sorted(s, n, 50);
}

double qv_pol_mad(const double *x, int n)
{
	if (n <= 0)
		return 0;
	double med = qv_pol_median(x, n), d[n];
	for (int i = 0; i < n; i++)
		d[i] = fabs(med - x[i]);
	return qv_pol_median(d, n);
}

double qv_pol_iqr(const double *x, int n)
{
	if (n <= 0)
		return 0;
	double s[n];
	memcpy(s, x, sizeof(double) * n);
	sort_small(s, n);
	int q1 = (int)floor(0.25 * (n + 1) + 0.5) - 1;
	int q3 = (int)floor(0.75 * (n + 1) + 0.5) - 1;
	if (q1 < 0)
		q1 = 0;
	if (q3 > n - 1)
		q3 = n - 1;
	return s[q3] - s[q1];
}

/* SimpleRegression's updating formulas, weighted by w (NULL: all 1). */
static int wls(const double *y, const double *w, int n, double *ret_a, double *ret_b)
{
	double sw = 0, xbar = 0, ybar = 0, sxx = 0, sxy = 0;
	for (int i = 0; i < n; i++) {
		double wi = w ? w[i] : 1, x = i + 1;
		if (wi <= 0)
			continue;
		if (sw == 0) {
			xbar = x;
			ybar = y[i];
			sw = wi;
			continue;
		}
		double nsw = sw + wi, dx = x - xbar, dy = y[i] - ybar;
		sxx += dx * dx * sw * wi / nsw;
		sxy += dx * dy * sw * wi / nsw;
		xbar += dx * wi / nsw;
		ybar += dy * wi / nsw;
		sw = nsw;
	}
	if (!(sxx > 0))
		return -EINVAL;
	*ret_b = sxy / sxx;
	*ret_a = ybar - *ret_b * xbar;
	return 0;
}

int qv_pol_ols(const double *y, int n, double *ret_intercept, double *ret_slope)
{
	if (n < 2)
		return -EINVAL;
	/* Exactly commons-math's SimpleRegression (sums, then intercept). */
	double xbar = 1, ybar = y[0], sxx = 0, sxy = 0, sx = 1, sy = y[0];
	for (int i = 1; i < n; i++) {
		double x = i + 1, fact1 = 1.0 + i, fact2 = i / (1.0 + i);
		double dx = x - xbar, dy = y[i] - ybar;
		sxx += dx * dx * fact2;
		sxy += dx * dy * fact2;
		xbar += dx / fact1;
		ybar += dy / fact1;
		sx += x;
		sy += y[i];
	}
	if (!(sxx > 0))
		return -EINVAL;
	double b = sxy / sxx;
	*ret_slope = b;
	*ret_intercept = (sy - b * sx) / n;
	return 0;
}

/* Tricube weight of point i of n: the newest (last) point weighs most. */
static double tricube(int i, int n)
{
	double d = (double)(n - 1 - i) / n;
	double k = 1 - d * d * d;
	return k * k * k;
}

int qv_pol_lrr(const double *y, int n, double *ret_intercept, double *ret_slope)
{
	if (n < 3)
		return -EINVAL;
	/* the weights of the common n = 10, computed once (same values) */
	static double w10[10];
	static bool w10_set;
	double w[n], r[n], a, b;
	if (n == 10 && !w10_set) {
		for (int i = 0; i < n; i++)
			w10[i] = tricube(i, n);
		w10_set = true;
	}
	for (int i = 0; i < n; i++)
		w[i] = n == 10 ? w10[i] : tricube(i, n);
	if (wls(y, w, n, &a, &b) < 0)
		return -EINVAL;
	/* Bisquare robustness iterations (Cleveland 1979): residuals beyond
	 * six median absolute residuals get weight 0. */
	for (int it = 0; it < 3; it++) {
		double rw[n];
		for (int i = 0; i < n; i++)
			r[i] = fabs(y[i] - (a + b * (i + 1)));
		double s6 = 6 * qv_pol_median(r, n);
		if (!(s6 > 0))
			break;
		for (int i = 0; i < n; i++) {
			double u = r[i] / s6;
			double k = u < 1 ? (1 - u * u) * (1 - u * u) : 0;
			rw[i] = k * w[i];
		}
		double na, nb;
		if (wls(y, rw, n, &na, &nb) < 0)
			break;
		a = na;
		b = nb;
	}
	*ret_intercept = a;
	*ret_slope = b;
	return 0;
}

/* Solve the k x k system m * x = v in place (Gaussian elimination with
 * partial pivoting); -EDOM if singular. */
static int solve(double *m, double *v, int k)
{
	for (int c = 0; c < k; c++) {
		int p = c;
		for (int r = c + 1; r < k; r++)
			if (fabs(m[r * k + c]) > fabs(m[p * k + c]))
				p = r;
		if (fabs(m[p * k + c]) < 1e-12)
			return -EDOM;
		if (p != c) {
			for (int j = 0; j < k; j++) {
				double t = m[c * k + j];
				m[c * k + j] = m[p * k + j];
				m[p * k + j] = t;
			}
			double t = v[c];
			v[c] = v[p];
			v[p] = t;
		}
		for (int r = c + 1; r < k; r++) {
			double f = m[r * k + c] / m[c * k + c];
			for (int j = c; j < k; j++)
				m[r * k + j] -= f * m[c * k + j];
			v[r] -= f * v[c];
		}
	}
	for (int c = k - 1; c >= 0; c--) {
		for (int j = c + 1; j < k; j++)
			v[c] -= m[c * k + j] * v[j];
		v[c] /= m[c * k + c];
	}
	return 0;
}

double qv_pol_r2(const double *rows, int m, int n, int i)
{
	int k = m; /* intercept + (m - 1) regressors */
	if (m < 2 || n <= k)
		return -1;
	double xtx[k * k], xty[k], ybar = 0;
	memset(xtx, 0, sizeof(xtx));
	memset(xty, 0, sizeof(xty));
	for (int t = 0; t < n; t++) {
		double x[k];
		x[0] = 1;
		for (int j = 0, c = 1; j < m; j++)
			if (j != i)
				x[c++] = rows[j * n + t];
		double y = rows[i * n + t];
		ybar += y / n;
		for (int a = 0; a < k; a++) {
			xty[a] += x[a] * y;
			for (int b = 0; b < k; b++)
				xtx[a * k + b] += x[a] * x[b];
		}
	}
	if (solve(xtx, xty, k) < 0)
		return -1;
	double sse = 0, sst = 0;
	for (int t = 0; t < n; t++) {
		double pred = xty[0], y = rows[i * n + t];
		for (int j = 0, c = 1; j < m; j++)
			if (j != i)
				pred += xty[c++] * rows[j * n + t];
		sse += (y - pred) * (y - pred);
		sst += (y - ybar) * (y - ybar);
	}
	return sst > 0 ? 1 - sse / sst : -1;
}
