/* SPDX-License-Identifier: MIT */
/* Host VM lists and the bookkeeping a decision round reads: the
 * time-shared scheduler's free MIPS, RAM in use, and the host's
 * utilisation history. Policy names and plans live here too. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sched/policy.h"

static int list_add(int **v, int *n, int *cap, int x)
{
	if (*n == *cap) {
		int nc = *cap ? *cap * 2 : 8;
		int *nv = realloc(*v, sizeof(int) * nc);
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static bool list_remove(int *v, int *n, int x)
{
	for (int i = 0; i < *n; i++)
		if (v[i] == x) {
			memmove(v + i, v + i + 1, sizeof(int) * (*n - i - 1));
			(*n)--;
			return true;
		}
	return false;
}

static bool list_has(const int *v, int n, int x)
{
	for (int i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

int qv_pol_host_add(struct qv_pol_host *h, int vm)
{
	h->hvalid = false;
	return list_add(&h->vm, &h->nvm, &h->capvm, vm);
}

void qv_pol_host_remove(struct qv_pol_host *h, int vm)
{
	if (list_remove(h->vm, &h->nvm, vm))
		h->hvalid = false;
}

bool qv_pol_host_has(const struct qv_pol_host *h, int vm)
{
	return list_has(h->vm, h->nvm, vm);
}

bool qv_pol_host_is_in(const struct qv_pol_host *h, int vm)
{
	return list_has(h->in, h->nin, vm);
}

int qv_pol_host_add_in(struct qv_pol_host *h, int vm)
{
	return list_add(&h->in, &h->nin, &h->capin, vm);
}

void qv_pol_host_remove_in(struct qv_pol_host *h, int vm)
{
	list_remove(h->in, &h->nin, vm);
}

double qv_pol_host_total_mips(const struct qv_pol_host *h)
{
	/* CloudSim sums integer PE capacities. */
	return (double)(int)(h->core_mips * h->cores);
}

void qv_pol_host_free(struct qv_pol_host *h)
{
	free(h->vm);
	free(h->in);
	h->vm = h->in = NULL;
	h->nvm = h->capvm = h->nin = h->capin = 0;
}

/* VmSchedulerTimeSharedOverSubscription's state for the host's list:
 * each VM gets its request capped at one core (10 % of it while it
 * migrates in); when they do not all fit, everything is scaled down and
 * nothing stays free. */
void qv_pol_host_refresh(const struct qv_pol_dc *dc, struct qv_pol_host *h)
{
	double total = qv_pol_host_total_mips(h), avail = total, ram = 0, sum = 0, plain = 0;
	bool over = false;
	for (int i = 0; i < h->nvm; i++) {
		const struct qv_pol_vm *v = &dc->vms[h->vm[i]];
		double c = v->sched_req > h->core_mips ? h->core_mips : v->sched_req;
		bool in = qv_pol_host_is_in(h, h->vm[i]), out = v->migrating && !in;
		double need = in ? c * 0.1 : c, a = out ? c * 0.9 : need;
		sum += need;
		if (!over && avail >= need)
			avail -= need;
		else if (need > 0)
			over = true;
		/* getUtilizationOfCpuMips() counts a VM migrating in in full */
		plain += in ? a * 0.9 / 0.1 + a : a;
		ram += v->ram_alloc;
	}
	if (over) {
		double scale = total / sum;
		plain = 0;
		for (int i = 0; i < h->nvm; i++) {
			const struct qv_pol_vm *v = &dc->vms[h->vm[i]];
			double c = v->sched_req > h->core_mips ? h->core_mips : v->sched_req;
			bool in = qv_pol_host_is_in(h, h->vm[i]), out = v->migrating && !in;
			double a = out ? floor(c * scale * 0.9) : in ? floor(c * 0.1 * scale) : floor(c * scale);
			plain += in ? a * 0.9 / 0.1 + a : a;
		}
		avail = 0;
	}
	h->avail = avail;
	h->alloc_mips = plain;
	h->ram_used = ram;
}

const double *qv_pol_host_history(const struct qv_pol_dc *dc, struct qv_pol_host *h, int *ret_n)
{
	if (!h->hvalid) {
		double total = qv_pol_host_total_mips(h);
		memset(h->hsum, 0, sizeof(h->hsum));
		for (int i = 0; i < h->nvm; i++) {
			const struct qv_pol_vm *v = &dc->vms[h->vm[i]];
			for (int k = 0; k < v->nhist; k++)
				h->hsum[k] += v->hist[k] * v->mips / total;
		}
		int n = QV_POL_HIST;
		while (n > 0 && h->hsum[n - 1] == 0)
			n--;
		h->hlen = n ? n : 1;
		h->hvalid = true;
	}
	*ret_n = h->hlen;
	return h->hsum;
}

double qv_pol_migration_time(const struct qv_pol_vm *v, const struct qv_pol_host *dst, bool cost_model)
{
	double bw_kbit = dst->bw_mbps * 1000;
	double t = v->ram_mb / (bw_kbit / (2 * 8000));
	if (!cost_model || v->dirty_mbps <= 0)
		return t;
	/* Pre-copy: each round resends what was dirtied during the previous
	 * one; the ratio dirty/bandwidth shrinks the rounds geometrically
	 * (migrate/model.c). Capped at 30 rounds, then stop-and-copy. */
	double link_mbs = bw_kbit / 2 / 8000, r = v->dirty_mbps / 8 / link_mbs, sum = 0, round = t;
	for (int i = 0; i < 30 && round > 0.001; i++) {
		sum += round;
		round *= r;
		if (r >= 1)
			break;
	}
	return sum;
}

void qv_pol_plan_clear(struct qv_pol_plan *plan)
{
	plan->n = 0;
	plan->overloaded = plan->underloaded = 0;
}

void qv_pol_plan_free(struct qv_pol_plan *plan)
{
	free(plan->moves);
	plan->moves = NULL;
	plan->n = plan->cap = 0;
}

void qv_pol_cfg_defaults(struct qv_pol_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->kind = QV_POL_DYNAMIC;
	cfg->det = QV_DET_THR;
	cfg->sel = QV_SEL_MMT;
	cfg->param = 0.8;
	cfg->fallback_thr = 0.7;
	cfg->interval_s = 300;
	cfg->seed = 1;
	cfg->q_target = 1.0;
	cfg->q_z = 1.5;
	cfg->q_consolidate = 1.0;
	cfg->q_cooldown = 5;
}

static const struct {
	const char *name;
	enum qv_pol_detector det;
	double param;
} detectors[] = {
	{ "thr", QV_DET_THR, 0.8 }, { "mad", QV_DET_MAD, 2.5 }, { "iqr", QV_DET_IQR, 1.5 },
	{ "lr", QV_DET_LR, 1.2 },   { "lrr", QV_DET_LRR, 1.2 },
};
static const char *const selections[] = { "mmt", "rs", "mc", "mu" };

int qv_pol_cfg_parse(const char *name, double param, struct qv_pol_cfg *ret_cfg)
{
	struct qv_pol_cfg cfg;
	qv_pol_cfg_defaults(&cfg);
	if (!strcasecmp(name, "npa") || !strcasecmp(name, "dvfs")) {
		cfg.kind = !strcasecmp(name, "npa") ? QV_POL_NPA : QV_POL_DVFS;
		*ret_cfg = cfg;
		return 0;
	}
	if (!strcasecmp(name, "qvisor")) {
		cfg.kind = QV_POL_QVISOR;
		if (param > 0)
			cfg.q_target = param;
		*ret_cfg = cfg;
		return 0;
	}
	const char *dash = strchr(name, '-');
	if (!dash)
		return -EINVAL;
	size_t dl = dash - name;
	int d = -1, s = -1;
	for (size_t i = 0; i < sizeof(detectors) / sizeof(detectors[0]); i++)
		if (strlen(detectors[i].name) == dl && !strncasecmp(name, detectors[i].name, dl))
			d = i;
	for (size_t i = 0; i < sizeof(selections) / sizeof(selections[0]); i++)
		if (!strcasecmp(dash + 1, selections[i]))
			s = i;
	if (d < 0 || s < 0)
		return -EINVAL;
	cfg.det = detectors[d].det;
	cfg.sel = (enum qv_pol_selection)s;
	cfg.param = param > 0 ? param : detectors[d].param;
	*ret_cfg = cfg;
	return 0;
}

const char *qv_pol_cfg_name(const struct qv_pol_cfg *cfg, char *buf, int len)
{
	switch (cfg->kind) {
	case QV_POL_NPA:
		snprintf(buf, len, "NPA");
		break;
	case QV_POL_DVFS:
		snprintf(buf, len, "DVFS");
		break;
	case QV_POL_QVISOR:
		snprintf(buf, len, "qvisor");
		break;
	case QV_POL_DYNAMIC: {
		char d[8], s[8];
		snprintf(d, sizeof(d), "%s", detectors[cfg->det].name);
		snprintf(s, sizeof(s), "%s", selections[cfg->sel]);
		for (char *p = d; *p; p++)
			*p -= 32;
		for (char *p = s; *p; p++)
			*p -= 32;
		/* 1.0, not 1: the paper's spelling */
		if (cfg->param == floor(cfg->param))
			snprintf(buf, len, "%s-%s-%.1f", d, s, cfg->param);
		else
			snprintf(buf, len, "%s-%s-%g", d, s, cfg->param);
		break;
	}
	}
	return buf;
}
