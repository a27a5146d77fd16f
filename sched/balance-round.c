/* SPDX-License-Identifier: MIT */
/* One balancer round: detect overloaded hosts with the policy library's
 * detector on their measured histories, relieve each with the VMs whose
 * migration buys the most relief per second, then (power saving) empty
 * the least-used hosts onto hosts already in use. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/balance-internal.h"

struct hstate {
	bool over, mem_over;
	double metric, util, mem_util;
	char what[96];
};

static double cpu_cap(const struct qv_pl_host *h)
{
	double c = (double)h->cpu_milli - h->cpu_reserved_milli;
	return c > 0 ? c : 1;
}

static double mem_cap(const struct qv_pl_host *h)
{
	double c = (double)h->mem_mib - (double)h->mem_reserved_mib;
	return c > 0 ? c : 1;
}

/* qvisor's forecast error of one VM: RMS of its one-step changes. */
static double vm_sd(const struct qv_pl_vm *v)
{
	int n = v->ncpu_hist < 12 ? v->ncpu_hist : 12;
	double size = 1000.0 * (v->vcpus ? v->vcpus : 1);
	if (n < 3 || !v->cpu_hist)
		return 0.15 * size;
	double s = 0;
	for (int i = 0; i + 1 < n; i++) {
		double d = v->cpu_hist[i] - v->cpu_hist[i + 1];
		s += d * d;
	}
	return sqrt(s / (n - 1)) * size;
}

static const char *const det_names[] = { "THR", "MAD", "IQR", "LR", "LRR" };

static void detect(const struct bal_ctx *c, int h, struct hstate *s)
{
	const struct qv_bal_cfg *cfg = &c->b->cfg;
	const struct qv_pl_host *ho = &c->snap->hosts[h];
	const struct qv_pol_cfg *pol = &cfg->pol;
	double cap = cpu_cap(ho), used = ho->cpu_used_milli + c->pending[h];
	s->util = used / cap;
	s->mem_util = ((double)ho->mem_used_mib + c->mpending[h]) / mem_cap(ho);
	if (pol->kind == QV_POL_QVISOR) {
		double var = 0;
		for (int v = c->first[h]; v >= 0; v = c->next[v]) {
			double sd = vm_sd(&c->snap->vms[v]);
			var += sd * sd;
		}
		s->metric = (used + pol->q_z * sqrt(var)) / cap;
		s->over = s->metric > pol->q_target;
		snprintf(s->what, sizeof(s->what), "forecast %.0f%% > %.0f%%, cpu %.0f%% now", 100 * s->metric,
			 100 * pol->q_target, 100 * s->util);
	} else {
		int n = ho->cpu_hist ? (ho->ncpu_hist < QV_POL_HIST ? ho->ncpu_hist : QV_POL_HIST) : 0;
		double ahead = 0;
		if ((pol->det == QV_DET_LR || pol->det == QV_DET_LRR) && n >= 10) {
			double longest = 0;
			for (int v = c->first[h]; v >= 0; v = c->next[v]) {
				double t = bal_cost(c->b, c->snap, &c->snap->vms[v], -1);
				if (isfinite(t) && t > longest)
					longest = t;
			}
			ahead = ceil(longest / (pol->interval_s > 0 ? pol->interval_s : 60));
		}
		/* migrations in flight shift the history by the load they carry */
		double hist[QV_POL_HIST], shift = c->pending[h] / cap;
		for (int i = 0; i < n; i++)
			hist[i] = ho->cpu_hist[i] + shift;
		s->over = qv_pol_detect(hist, n, s->util, ahead, pol, &s->metric);
		snprintf(s->what, sizeof(s->what), "%s %.3f, cpu %.0f%% now", det_names[pol->det], s->metric,
			 100 * s->util);
	}
	if (s->mem_util > cfg->mem_threshold) {
		s->mem_over = true;
		if (!s->over)
			snprintf(s->what, sizeof(s->what), "memory %.0f%% in use > %.0f%%", 100 * s->mem_util,
				 100 * cfg->mem_threshold);
	}
}

/* Append a phrase to a note list, at most a few. */
static void note(char *buf, size_t len, int *n, const char *fmt, const char *a, double x, double y)
{
	size_t k = strlen(buf);
	if ((*n)++ >= 4 || k + 8 >= len)
		return;
	snprintf(buf + k, len - k, "%s", k ? ", " : "");
	k = strlen(buf);
	snprintf(buf + k, len - k, fmt, a, x, y);
}

/* Why vm may not leave now ("" = it may); cost out. */
static bool movable(const struct bal_ctx *c, const struct qv_pl_vm *v, double *cost, char *notes,
		    size_t len, int *nn)
{
	const struct qv_bal_cfg *cfg = &c->b->cfg;
	if (v->migrating)
		return false;
	if (v->pinned) {
		note(notes, len, nn, "%s pinned", v->name, 0, 0);
		return false;
	}
	double left = bal_cooldown_left(c->b, v, c->now);
	if (left > 0) {
		note(notes, len, nn, "%s in cooldown (%.0f s of %.0f s left)", v->name, left, cfg->cooldown_s);
		return false;
	}
	*cost = bal_cost(c->b, c->snap, v, -1);
	if (!isfinite(*cost)) {
		note(notes, len, nn, "%s would not converge (dirty %.0f Mbit/s)", v->name, v->dirty_mbps, 0);
		return false;
	}
	if (cfg->max_migration_s > 0 && *cost > cfg->max_migration_s) {
		note(notes, len, nn, "%s: predicted migration %.0f s > %.0f s", v->name, *cost,
		     cfg->max_migration_s);
		return false;
	}
	return true;
}

/* A VM without labels or groups that fit nowhere: during the overload
 * pass destinations only gain load and hosts only get blocked, so a VM at
 * least as large in every respect fits nowhere either (no search). */
static bool plain(const struct qv_pl_vm *v)
{
	return !v->nrequires && !v->nanti_affinity && !v->naffinity;
}

static int dominated(const struct bal_ctx *c, const struct qv_pl_vm *v)
{
	if (!plain(v))
		return -1;
	for (int i = 0; i < c->nfail; i++) {
		const struct qv_pl_vm *f = c->fail[i];
		if (v->cpu_used_milli >= f->cpu_used_milli && v->cpu_res_milli >= f->cpu_res_milli &&
		    v->mem_res_mib >= f->mem_res_mib && v->mem_mib >= f->mem_mib &&
		    v->mem_used_mib >= f->mem_used_mib)
			return i;
	}
	return -1;
}

static void remember_failure(struct bal_ctx *c, const struct qv_pl_vm *v, const char *why)
{
	if (!plain(v) || c->nfail >= (int)(sizeof(c->fail) / sizeof(c->fail[0])))
		return;
	/* keep the phrase after "no host can take NAME" */
	const char *p = strstr(why, ": ");
	snprintf(c->fail_why[c->nfail], sizeof(c->fail_why[0]), "%s", p ? p : why);
	c->fail[c->nfail++] = v;
}

struct cand {
	int vm;
	double cost, relief;
};

/* One VM that covers the excess in the shortest migration, else the
 * most relief per second of migration; ties by name. */
static int pick(const struct bal_ctx *c, const struct cand *cs, int n, double excess)
{
	int best = -1;
	bool best_covers = false;
	double best_val = 0;
	for (int i = 0; i < n; i++) {
		bool covers = cs[i].relief >= excess;
		double val = covers ? -cs[i].cost : cs[i].relief / fmax(cs[i].cost, 0.1);
		bool better = best < 0 || (covers && !best_covers) ||
			      (covers == best_covers && (val > best_val ||
			       (val == best_val && strcmp(c->snap->vms[cs[i].vm].name, c->snap->vms[cs[best].vm].name) < 0)));
		if (better) {
			best = i;
			best_covers = covers;
			best_val = val;
		}
	}
	return best;
}

static int limit_reason(const struct bal_ctx *c, int h, char *buf, size_t len)
{
	const struct qv_bal_cfg *cfg = &c->b->cfg;
	if (c->budget <= 0) {
		if (cfg->max_cluster > 0 && c->cluster_busy >= cfg->max_cluster)
			snprintf(buf, len, "cluster limit reached (%d migrations in flight, limit %d)",
				 c->cluster_busy, cfg->max_cluster);
		else
			snprintf(buf, len, "round limit reached (%d new migrations per round)",
				 cfg->max_moves_per_round);
		return 1;
	}
	if (cfg->max_per_host > 0 && c->busy[h] >= cfg->max_per_host) {
		snprintf(buf, len, "%s has %d migrations in flight (limit %d)", c->snap->hosts[h].name, c->busy[h],
			 cfg->max_per_host);
		return 1;
	}
	return 0;
}

/* A move decided: the decision, the placement's books, the limits. */
static int commit(struct bal_ctx *c, enum qv_bal_why why, int vm, int from,
		  const struct qv_pl_choice *ch, double metric, const char *prefix)
{
	const struct qv_pl_vm *v = &c->snap->vms[vm];
	double cost = bal_cost(c->b, c->snap, v, ch->host);
	struct qv_bal_decision *d = bal_add(c->plan, QV_BAL_MOVE, why, vm, from, ch->host,
					    "%s; %s moves (predicted %.1f s, %llu MiB, dirty %.0f Mbit/s) to %s",
					    prefix, v->name, cost,
					    (unsigned long long)(v->mem_used_mib ? v->mem_used_mib : v->mem_mib),
					    v->dirty_mbps, ch->reason);
	if (!d)
		return -ENOMEM;
	d->cost_s = cost;
	d->metric = metric;
	int r = qv_pl_assign(c->pl, v, ch->host);
	if (r >= 0 && c->record)
		r = bal_record(c->b, c->snap, vm, from, ch->host, c->now, cost);
	bal_take(c, from, ch->host);
	return r;
}

static int relieve(struct bal_ctx *c, int h, const struct hstate *s, bool *received)
{
	const struct qv_bal_cfg *cfg = &c->b->cfg;
	const struct qv_pl_host *ho = &c->snap->hosts[h];
	char prefix[160], notes[240] = "", lim[120];
	int nn = 0, n = 0, moved = 0, stays = 0;
	snprintf(prefix, sizeof(prefix), "%s overloaded (%s)", ho->name, s->what);
	if (limit_reason(c, h, lim, sizeof(lim)))
		return bal_add(c->plan, QV_BAL_DEFER, QV_BAL_OVERLOAD, -1, h, -1, "%s; nothing moves now: %s",
			       prefix, lim) ? 0 : -ENOMEM;
	double goal = (cfg->pol.kind == QV_POL_QVISOR ? cfg->pol.q_target
		       : cfg->pol.det == QV_DET_THR ? fmin(cfg->pol.param, cfg->target_util) : cfg->target_util);
	double excess = s->over ? s->util * cpu_cap(ho) - goal * cpu_cap(ho) : 0;
	double mexcess = s->mem_over ? (s->mem_util - cfg->mem_threshold) * mem_cap(ho) : 0;
	int cnt = 0;
	for (int v = c->first[h]; v >= 0; v = c->next[v])
		cnt++;
	struct cand *cs = malloc(sizeof(*cs) * (cnt ? cnt : 1));
	if (!cs)
		return -ENOMEM;
	for (int v = c->first[h]; v >= 0; v = c->next[v]) {
		const struct qv_pl_vm *vm = &c->snap->vms[v];
		double cost;
		if (movable(c, vm, &cost, notes, sizeof(notes), &nn))
			cs[n++] = (struct cand){ v, cost,
						 s->over ? vm->cpu_used_milli : (double)vm->mem_used_mib };
	}
	int r = 0;
	while (n > 0 && (excess > 0 || mexcess > 0 || !moved)) {
		if (limit_reason(c, h, lim, sizeof(lim))) {
			r = bal_add(c->plan, QV_BAL_DEFER, QV_BAL_OVERLOAD, -1, h, -1,
				    "%s; %d more VMs may move later: %s", prefix, n, lim) ? 0 : -ENOMEM;
			break;
		}
		int i = pick(c, cs, n, s->over ? excess : mexcess);
		struct cand cd = cs[i];
		cs[i] = cs[--n];
		struct qv_pl_choice ch;
		const struct qv_pl_vm *vm = &c->snap->vms[cd.vm];
		int f = dominated(c, vm);
		if (f >= 0 || qv_pl_choose(c->pl, vm, h, &ch, NULL) < 0) {
			if (f < 0)
				remember_failure(c, vm, ch.reason);
			if (stays++)
				continue;
			if (f >= 0 ? !bal_add(c->plan, QV_BAL_SKIP, QV_BAL_OVERLOAD, cd.vm, h, -1,
					      "%s; %s stays: no host can take it (like %s)%s", prefix, vm->name,
					      c->fail[f]->name, c->fail_why[f])
				   : !bal_add(c->plan, QV_BAL_SKIP, QV_BAL_OVERLOAD, cd.vm, h, -1, "%s; %s stays: %s",
					      prefix, vm->name, ch.reason))
				r = -ENOMEM;
			continue;
		}
		r = commit(c, QV_BAL_OVERLOAD, cd.vm, h, &ch, s->metric, prefix);
		if (r < 0)
			break;
		received[ch.host] = true;
		moved++;
		excess -= vm->cpu_used_milli;
		mexcess -= (double)vm->mem_used_mib;
	}
	free(cs);
	if (r >= 0 && stays > 1)
		r = bal_add(c->plan, QV_BAL_SKIP, QV_BAL_OVERLOAD, -1, h, -1,
			    "%s; %d more VMs stay: no host can take them either", prefix, stays - 1) ? 0 : -ENOMEM;
	if (r >= 0 && !moved && (nn || !cnt))
		r = bal_add(c->plan, QV_BAL_SKIP, QV_BAL_OVERLOAD, -1, h, -1, "%s; no VM may move: %s", prefix,
			    cnt ? notes : "no VMs run there") ? 0 : -ENOMEM;
	return r;
}

/* --- power saving ------------------------------------------------------- */

/* Empty host h onto hosts in use: all its VMs or none. */
static int empty_host(struct bal_ctx *c, int h, const struct hstate *s, bool *emptied)
{
	const struct qv_bal_cfg *cfg = &c->b->cfg;
	const struct qv_pl_host *ho = &c->snap->hosts[h];
	char prefix[160], notes[240] = "", lim[120];
	int nn = 0, n = 0, r = 0;
	snprintf(prefix, sizeof(prefix), "%s underloaded (cpu %.0f%% < %.0f%%)", ho->name, 100 * s->util,
		 100 * cfg->underload_util);
	int cnt = 0;
	for (int v = c->first[h]; v >= 0; v = c->next[v])
		cnt++;
	int *vms = malloc(sizeof(int) * (cnt ? cnt : 1));
	const struct qv_pl_vm **ptr = malloc(sizeof(*ptr) * (cnt ? cnt : 1));
	struct qv_pl_choice *ch = malloc(sizeof(*ch) * (cnt ? cnt : 1));
	if (!vms || !ptr || !ch) {
		r = -ENOMEM;
		goto out;
	}
	bool ok = true;
	for (int v = c->first[h]; v >= 0; v = c->next[v]) {
		double cost;
		if (!movable(c, &c->snap->vms[v], &cost, notes, sizeof(notes), &nn))
			ok = false;
		vms[n++] = v;
	}
	if (!ok) {
		r = bal_add(c->plan, QV_BAL_SKIP, QV_BAL_UNDERLOAD, -1, h, -1, "%s; stays on: %s", prefix, notes)
			    ? 0 : -ENOMEM;
		goto out;
	}
	qsort_r(vms, n, sizeof(int), bal_foot_cmp, (void *)c->snap);
	for (int i = 0; i < n; i++)
		ptr[i] = &c->snap->vms[vms[i]];
	qv_pl_block(c->pl, h, "being emptied (power saving)");
	int placed = qv_pl_choose_batch(c->pl, ptr, n, h, ch, NULL);
	if (placed < 0) {
		r = placed;
		goto out;
	}
	if (placed < n) {
		const char *why = "";
		for (int i = 0; i < n; i++) {
			if (ch[i].host < 0 && !why[0])
				why = ch[i].reason;
			else if (ch[i].host >= 0)
				qv_pl_assign(c->pl, ptr[i], h); /* all or none */
		}
		qv_pl_block(c->pl, h, NULL);
		r = bal_add(c->plan, QV_BAL_SKIP, QV_BAL_UNDERLOAD, -1, h, -1, "%s; stays on: %s", prefix, why)
			    ? 0 : -ENOMEM;
		goto out;
	}
	*emptied = true;
	char full[200];
	snprintf(full, sizeof(full), "%s; emptied to save power", prefix);
	for (int i = 0; i < n && r >= 0; i++) {
		if (limit_reason(c, h, lim, sizeof(lim)) ||
		    (cfg->max_per_host > 0 && c->busy[ch[i].host] >= cfg->max_per_host &&
		     snprintf(lim, sizeof(lim), "%s has %d migrations in flight (limit %d)",
			      c->snap->hosts[ch[i].host].name, c->busy[ch[i].host], cfg->max_per_host))) {
			struct qv_bal_decision *d = bal_add(c->plan, QV_BAL_DEFER, QV_BAL_UNDERLOAD, vms[i], h,
							    ch[i].host, "%s; %s waits: %s", full, ptr[i]->name, lim);
			r = d ? 0 : -ENOMEM;
			continue;
		}
		/* already assigned by the batch: commit re-assigns (no-op) and records */
		r = commit(c, QV_BAL_UNDERLOAD, vms[i], h, &ch[i], s->util, full);
	}
out:
	free(vms);
	free(ptr);
	free(ch);
	return r;
}

struct order_ctx {
	const struct bal_ctx *c;
	const struct hstate *hs;
	int sign; /* -1: highest util first, +1 lowest */
};

static int util_cmp(const void *a, const void *b, void *arg)
{
	const struct order_ctx *o = arg;
	int x = *(const int *)a, y = *(const int *)b;
	double ux = o->hs[x].util, uy = o->hs[y].util;
	if (ux != uy)
		return (ux < uy ? -1 : 1) * o->sign;
	return strcmp(o->c->snap->hosts[x].name, o->c->snap->hosts[y].name);
}

static int power_pass(struct bal_ctx *c, struct hstate *hs, const bool *received)
{
	const struct qv_bal_cfg *cfg = &c->b->cfg;
	int nh = c->snap->nhosts, n = 0, done = 0, r = 0;
	int *cand = malloc(sizeof(int) * (nh ? nh : 1));
	if (!cand)
		return -ENOMEM;
	for (int h = 0; h < nh; h++) {
		const struct qv_pl_host *ho = &c->snap->hosts[h];
		const struct qv_pl_load *l = qv_pl_load_of(c->pl, h);
		if (!l->nvms) {
			qv_pl_block(c->pl, h, "empty (power saving keeps it off)");
			continue;
		}
		if (hs[h].over || hs[h].mem_over || !ho->schedulable || c->busy[h] || received[h] ||
		    c->first[h] < 0 || hs[h].util >= cfg->underload_util)
			continue;
		cand[n++] = h;
	}
	c->plan->underloaded = n;
	struct order_ctx o = { c, hs, +1 };
	qsort_r(cand, n, sizeof(int), util_cmp, &o);
	for (int i = 0; i < n && done < cfg->max_empty_per_round && c->budget > 0 && r >= 0; i++) {
		bool emptied = false;
		r = empty_host(c, cand[i], &hs[cand[i]], &emptied);
		done += emptied;
	}
	free(cand);
	return r;
}

int qv_bal_round(qv_bal *b, const struct qv_pl_snapshot *snap, double now_s, struct qv_bal_plan *ret,
		 struct qv_error *errp)
{
	const struct qv_bal_cfg *cfg = &b->cfg;
	struct qv_bal_plan plan = { 0 };
	if (cfg->mode == QV_BAL_OFF) {
		snprintf(plan.summary, sizeof(plan.summary), "balancer off");
		*ret = plan;
		return 0;
	}
	struct qv_pl_cfg pcfg = cfg->place;
	pcfg.cpu_max_util = cfg->target_util;
	if (cfg->power_saving && pcfg.score != QV_PL_CUSTOM)
		pcfg.score = QV_PL_POWER;
	struct bal_ctx c;
	int nh = snap->nhosts, r = bal_ctx_init(&c, b, snap, now_s, &plan, &pcfg, errp);
	struct hstate *hs = calloc(nh ? nh : 1, sizeof(*hs));
	bool *received = calloc(nh ? nh : 1, sizeof(bool));
	int *over = malloc(sizeof(int) * (nh ? nh : 1)), no = 0;
	if (r >= 0 && (!hs || !received || !over))
		r = -ENOMEM;
	for (int h = 0; r >= 0 && h < nh; h++) {
		detect(&c, h, &hs[h]);
		if (hs[h].over || hs[h].mem_over) {
			over[no++] = h;
			char why[120];
			snprintf(why, sizeof(why), "overloaded itself (%s)", hs[h].what);
			qv_pl_block(c.pl, h, why);
		}
	}
	if (r >= 0) {
		plan.overloaded = no;
		struct order_ctx o = { &c, hs, -1 };
		qsort_r(over, no, sizeof(int), util_cmp, &o);
	}
	for (int i = 0; r >= 0 && i < no; i++)
		r = relieve(&c, over[i], &hs[over[i]], received);
	if (r >= 0 && cfg->power_saving)
		r = power_pass(&c, hs, received);
	bal_ctx_done(&c);
	free(hs);
	free(received);
	free(over);
	if (r < 0) {
		qv_bal_plan_free(&plan);
		return qv_error_set(errp, -r, NULL, "balancer round failed: %s", strerror(-r));
	}
	bal_summary(&plan, cfg->mode == QV_BAL_ENFORCE ? "round (enforce)" : "round (advise)");
	*ret = plan;
	return 0;
}
