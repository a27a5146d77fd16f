/* SPDX-License-Identifier: MIT */
/* The balancer's state across rounds (migrations it ordered: in flight,
 * and the cooldown), its limits and its plans. The round is in
 * sched/balance-round.c, the evacuation in sched/balance-evac.c. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/balance-internal.h"

void qv_bal_cfg_defaults(struct qv_bal_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = QV_BAL_ADVISE;
	qv_pol_cfg_defaults(&cfg->pol);
	cfg->pol.interval_s = 60;
	qv_pl_cfg_defaults(&cfg->place);
	cfg->target_util = 0.8;
	cfg->mem_threshold = 0.9;
	cfg->max_per_host = 2;
	cfg->max_cluster = 4;
	cfg->cooldown_s = 1800;
	cfg->max_migration_s = 600;
	cfg->inflight_timeout_s = 3600;
	cfg->underload_util = 0.2;
	cfg->max_empty_per_round = 1;
}

static const char *const mode_names[] = { "off", "advise", "enforce" };

int qv_bal_mode_parse(const char *s, enum qv_bal_mode *ret)
{
	for (int i = 0; i < 3; i++)
		if (s && strcmp(s, mode_names[i]) == 0) {
			*ret = i;
			return 0;
		}
	return -EINVAL;
}

const char *qv_bal_mode_name(enum qv_bal_mode m)
{
	return m >= QV_BAL_OFF && m <= QV_BAL_ENFORCE ? mode_names[m] : "?";
}

double qv_bal_cost_precopy(const struct qv_pl_vm *vm, const struct qv_pl_host *from,
			   const struct qv_pl_host *to, void *opaque)
{
	double bw = from && from->bw_mbps > 0 ? from->bw_mbps : 1000;
	if (to && to->bw_mbps > 0 && to->bw_mbps < bw)
		bw = to->bw_mbps;
	double mib = vm->mem_used_mib ? (double)vm->mem_used_mib : (double)vm->mem_mib;
	double first = mib * 8.388608 / bw; /* MiB -> Mbit */
	double r = vm->dirty_mbps / bw;
	if (r >= 1)
		return INFINITY;
	/* each round resends what the previous one let the guest dirty */
	return first / (1 - r);
}

double bal_cost(const qv_bal *b, const struct qv_pl_snapshot *snap, const struct qv_pl_vm *vm, int to)
{
	const struct qv_pl_host *f = vm->host >= 0 ? &snap->hosts[vm->host] : NULL;
	const struct qv_pl_host *t = to >= 0 ? &snap->hosts[to] : NULL;
	qv_bal_cost_fn fn = b->cfg.cost_fn ? b->cfg.cost_fn : qv_bal_cost_precopy;
	return fn(vm, f, t, b->cfg.cost_opaque);
}

int qv_bal_new(const struct qv_bal_cfg *cfg, qv_bal **ret)
{
	qv_bal *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	if (cfg)
		b->cfg = *cfg;
	else
		qv_bal_cfg_defaults(&b->cfg);
	*ret = b;
	return 0;
}

static void rec_clear(struct bal_rec *r)
{
	free(r->vm);
	free(r->from);
	free(r->to);
}

qv_bal *qv_bal_free(qv_bal *b)
{
	if (!b)
		return NULL;
	for (int i = 0; i < b->nrec; i++)
		rec_clear(&b->rec[i]);
	free(b->rec);
	free(b);
	return NULL;
}

const struct qv_bal_cfg *qv_bal_cfg_of(const qv_bal *b)
{
	return &b->cfg;
}

void qv_bal_set_mode(qv_bal *b, enum qv_bal_mode mode)
{
	b->cfg.mode = mode;
}

static struct bal_rec *rec_find(const qv_bal *b, const char *name)
{
	/* newest first: the cooldown counts from the latest move */
	for (int i = b->nrec - 1; i >= 0; i--)
		if (strcmp(b->rec[i].vm, name) == 0)
			return &b->rec[i];
	return NULL;
}

int bal_record(qv_bal *b, const struct qv_pl_snapshot *snap, int vm, int from, int to, double now,
	       double cost)
{
	if (b->nrec == b->caprec) {
		int nc = b->caprec ? b->caprec * 2 : 16;
		struct bal_rec *nr = realloc(b->rec, sizeof(*nr) * nc);
		if (!nr)
			return -ENOMEM;
		b->rec = nr;
		b->caprec = nc;
	}
	struct bal_rec r = {
		.vm = strdup(snap->vms[vm].name ? snap->vms[vm].name : ""),
		.from = strdup(from >= 0 && snap->hosts[from].name ? snap->hosts[from].name : ""),
		.to = strdup(to >= 0 && snap->hosts[to].name ? snap->hosts[to].name : ""),
		.t = now,
		.cost_s = isfinite(cost) ? cost : 0,
		.inflight = true,
	};
	if (!r.vm || !r.from || !r.to) {
		rec_clear(&r);
		return -ENOMEM;
	}
	b->rec[b->nrec++] = r;
	return 0;
}

void qv_bal_finished(qv_bal *b, const char *name, bool ok, double now_s)
{
	(void)ok, (void)now_s;
	for (int i = 0; i < b->nrec; i++)
		if (b->rec[i].inflight && strcmp(b->rec[i].vm, name) == 0)
			b->rec[i].inflight = false;
}

int qv_bal_inflight(const qv_bal *b)
{
	int n = 0;
	for (int i = 0; i < b->nrec; i++)
		n += b->rec[i].inflight;
	return n;
}

double bal_cooldown_left(const qv_bal *b, const struct qv_pl_vm *vm, double now)
{
	double last = vm->last_move_s;
	struct bal_rec *r = vm->name ? rec_find(b, vm->name) : NULL;
	if (r && r->t > last)
		last = r->t;
	if (last < 0 || b->cfg.cooldown_s <= 0)
		return 0;
	double left = last + b->cfg.cooldown_s - now;
	return left > 0 ? left : 0;
}

static int vm_index(const struct qv_pl_snapshot *snap, const char *name)
{
	for (int i = 0; i < snap->nvms; i++)
		if (snap->vms[i].name && strcmp(snap->vms[i].name, name) == 0)
			return i;
	return -1;
}

/* Which ordered migrations still run, seen in the snapshot; forget old
 * records whose cooldown is over. */
static void refresh(qv_bal *b, const struct qv_pl_snapshot *snap, double now)
{
	int w = 0;
	for (int i = 0; i < b->nrec; i++) {
		struct bal_rec *r = &b->rec[i];
		if (r->inflight) {
			int v = vm_index(snap, r->vm);
			const struct qv_pl_vm *vm = v >= 0 ? &snap->vms[v] : NULL;
			int to = qv_pl_host_index(snap, r->to), from = qv_pl_host_index(snap, r->from);
			double grace = 60 + 2 * r->cost_s;
			if (!vm || now - r->t > b->cfg.inflight_timeout_s)
				r->inflight = false;
			else if (!vm->migrating && vm->host == to)
				r->inflight = false;
			else if (!vm->migrating && vm->host == from && now - r->t > grace)
				r->inflight = false; /* failed or never started */
		}
		if (!r->inflight && now - r->t >= b->cfg.cooldown_s) {
			rec_clear(r);
			continue;
		}
		b->rec[w++] = *r;
	}
	b->nrec = w;
}

void bal_take(struct bal_ctx *c, int from, int to)
{
	int lim = c->b->cfg.max_per_host;
	char why[64];
	c->cluster_busy++;
	c->budget--;
	for (int k = 0; k < 2; k++) {
		int h = k ? to : from;
		if (h < 0)
			continue;
		c->busy[h]++;
		if (lim > 0 && c->busy[h] >= lim) {
			snprintf(why, sizeof(why), "%d migrations in flight (limit %d)", c->busy[h], lim);
			qv_pl_block(c->pl, h, why);
		}
	}
}

int bal_ctx_init(struct bal_ctx *c, qv_bal *b, const struct qv_pl_snapshot *snap, double now,
		 struct qv_bal_plan *plan, const struct qv_pl_cfg *pcfg, struct qv_error *errp)
{
	int nh = snap->nhosts;
	*c = (struct bal_ctx){ .b = b, .snap = snap, .now = now, .plan = plan };
	refresh(b, snap, now);
	c->busy = calloc(nh ? nh : 1, sizeof(int));
	c->pending = calloc(nh ? nh : 1, sizeof(double));
	c->mpending = calloc(nh ? nh : 1, sizeof(double));
	c->first = malloc(sizeof(int) * (nh ? nh : 1));
	c->next = malloc(sizeof(int) * (snap->nvms ? snap->nvms : 1));
	if (!c->busy || !c->pending || !c->mpending || !c->first || !c->next)
		return -ENOMEM;
	int r = qv_pl_new(snap, pcfg, &c->pl, errp);
	if (r < 0)
		return r;
	for (int h = 0; h < nh; h++)
		c->first[h] = -1;
	for (int i = snap->nvms - 1; i >= 0; i--) {
		int h = snap->vms[i].host;
		c->next[i] = h >= 0 ? c->first[h] : -1;
		if (h >= 0)
			c->first[h] = i;
	}
	for (int i = 0; i < b->nrec; i++) {
		if (!b->rec[i].inflight)
			continue;
		int f = qv_pl_host_index(snap, b->rec[i].from), t = qv_pl_host_index(snap, b->rec[i].to);
		if (f >= 0)
			c->busy[f]++;
		if (t >= 0)
			c->busy[t]++;
		c->cluster_busy++;
		/* not arrived yet: count its load where it is going */
		int v = vm_index(snap, b->rec[i].vm);
		if (v >= 0 && t >= 0 && snap->vms[v].host == f && f >= 0) {
			const struct qv_pl_vm *vm = &snap->vms[v];
			c->pending[f] -= vm->cpu_used_milli;
			c->pending[t] += vm->cpu_used_milli;
			c->mpending[f] -= (double)vm->mem_used_mib;
			c->mpending[t] += (double)vm->mem_used_mib;
			r = qv_pl_assign(c->pl, vm, t);
			if (r < 0)
				return r;
		}
	}
	for (int i = 0; i < snap->nvms; i++) {
		const struct qv_pl_vm *v = &snap->vms[i];
		if (!v->migrating || v->host < 0)
			continue;
		struct bal_rec *rec = v->name ? rec_find(b, v->name) : NULL;
		if (!(rec && rec->inflight)) {
			c->busy[v->host]++;
			c->cluster_busy++;
		}
	}
	c->budget = b->cfg.max_cluster > 0 ? b->cfg.max_cluster - c->cluster_busy : snap->nvms;
	if (b->cfg.max_moves_per_round > 0 && c->budget > b->cfg.max_moves_per_round)
		c->budget = b->cfg.max_moves_per_round;
	for (int h = 0; h < nh; h++)
		if (b->cfg.max_per_host > 0 && c->busy[h] >= b->cfg.max_per_host) {
			char why[64];
			snprintf(why, sizeof(why), "%d migrations in flight (limit %d)", c->busy[h],
				 b->cfg.max_per_host);
			qv_pl_block(c->pl, h, why);
		}
	c->record = b->cfg.mode == QV_BAL_ENFORCE;
	plan->advise = b->cfg.mode == QV_BAL_ADVISE;
	return 0;
}

void bal_ctx_done(struct bal_ctx *c)
{
	qv_pl_free(c->pl);
	free(c->busy);
	free(c->pending);
	free(c->mpending);
	free(c->first);
	free(c->next);
}

struct qv_bal_decision *bal_add(struct qv_bal_plan *plan, enum qv_bal_kind kind, enum qv_bal_why why,
				int vm, int from, int to, const char *fmt, ...)
{
	if (plan->n == plan->cap) {
		int nc = plan->cap ? plan->cap * 2 : 16;
		struct qv_bal_decision *nd = realloc(plan->d, sizeof(*nd) * nc);
		if (!nd)
			return NULL;
		plan->d = nd;
		plan->cap = nc;
	}
	struct qv_bal_decision *d = &plan->d[plan->n++];
	*d = (struct qv_bal_decision){ .kind = kind, .why = why, .vm = vm, .from = from, .to = to };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	if (kind == QV_BAL_MOVE)
		plan->moves++;
	else if (kind == QV_BAL_DEFER)
		plan->deferred++;
	else
		plan->skipped++;
	return d;
}

int bal_foot_cmp(const void *a, const void *b, void *arg)
{
	const struct qv_pl_snapshot *s = arg;
	const struct qv_pl_vm *x = &s->vms[*(const int *)a], *y = &s->vms[*(const int *)b];
	uint64_t fx = x->mem_mib > x->mem_res_mib ? x->mem_mib : x->mem_res_mib;
	uint64_t fy = y->mem_mib > y->mem_res_mib ? y->mem_mib : y->mem_res_mib;
	if (fx != fy)
		return fx > fy ? -1 : 1;
	return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

void bal_summary(struct qv_bal_plan *plan, const char *what)
{
	snprintf(plan->summary, sizeof(plan->summary),
		 "%s: %d overloaded, %d underloaded; %d migrations%s, %d deferred, %d skipped", what,
		 plan->overloaded, plan->underloaded, plan->moves, plan->advise ? " advised" : "",
		 plan->deferred, plan->skipped);
}

void qv_bal_plan_free(struct qv_bal_plan *plan)
{
	free(plan->d);
	*plan = (struct qv_bal_plan){ 0 };
}
