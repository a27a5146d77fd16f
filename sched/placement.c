/* SPDX-License-Identifier: MIT */
/* The placement index: per-host loads and group members built once from a
 * snapshot and updated by assignments, so that a batch (evacuation) or a
 * balancer round sees its own earlier decisions. The filters and scorers
 * are in sched/placement-filter.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/placement-internal.h"

void qv_pl_cfg_defaults(struct qv_pl_cfg *cfg)
{
	*cfg = (struct qv_pl_cfg){
		.score = QV_PL_SPREAD,
		.mem_overcommit = 1.0,
		.cpu_max_util = 1.0,
	};
}

static const char *const score_names[] = {
	[QV_PL_SPREAD] = "spread",
	[QV_PL_PACK] = "pack",
	[QV_PL_POWER] = "power",
	[QV_PL_CUSTOM] = "custom",
};

int qv_pl_score_parse(const char *name, enum qv_pl_score *ret)
{
	for (int i = 0; i < QV_PL_CUSTOM; i++)
		if (name && strcmp(name, score_names[i]) == 0) {
			*ret = i;
			return 0;
		}
	return -EINVAL;
}

const char *qv_pl_score_name(enum qv_pl_score s)
{
	return s >= QV_PL_SPREAD && s <= QV_PL_CUSTOM ? score_names[s] : "?";
}

bool pl_in_snapshot(const qv_pl *pl, const struct qv_pl_vm *vm)
{
	return pl->snap->nvms > 0 && vm >= pl->snap->vms && vm < pl->snap->vms + pl->snap->nvms;
}

double pl_vm_cpu(const qv_pl *pl, const struct qv_pl_vm *vm)
{
	if (pl_in_snapshot(pl, vm) || vm->cpu_used_milli >= vm->cpu_res_milli)
		return vm->cpu_used_milli;
	return vm->cpu_res_milli;
}

uint64_t pl_vm_footprint(const struct qv_pl_vm *vm)
{
	return vm->mem_mib > vm->mem_res_mib ? vm->mem_mib : vm->mem_res_mib;
}

/* --- groups ------------------------------------------------------------ */

static uint64_t group_hash(int kind, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

static int slots_grow(qv_pl *pl)
{
	int n = pl->nslots ? pl->nslots * 2 : 64;
	int *s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (int g = 0; g < pl->ngroups; g++) {
		uint64_t i = group_hash(pl->groups[g].kind, pl->groups[g].name) & (n - 1);
		while (s[i])
			i = (i + 1) & (n - 1);
		s[i] = g + 1;
	}
	free(pl->slots);
	pl->slots = s;
	pl->nslots = n;
	return 0;
}

int pl_group_find(qv_pl *pl, int kind, const char *name, bool create)
{
	if (!name)
		return -1;
	if (pl->nslots) {
		uint64_t i = group_hash(kind, name) & (pl->nslots - 1);
		for (; pl->slots[i]; i = (i + 1) & (pl->nslots - 1)) {
			struct pl_group *g = &pl->groups[pl->slots[i] - 1];
			if (g->kind == kind && strcmp(g->name, name) == 0)
				return pl->slots[i] - 1;
		}
	}
	if (!create)
		return -1;
	if ((pl->ngroups + 1) * 2 > pl->nslots && slots_grow(pl) < 0)
		return -ENOMEM;
	if (pl->ngroups == pl->capgroups) {
		int nc = pl->capgroups ? pl->capgroups * 2 : 16;
		struct pl_group *ng = realloc(pl->groups, sizeof(*ng) * nc);
		if (!ng)
			return -ENOMEM;
		pl->groups = ng;
		pl->capgroups = nc;
	}
	int g = pl->ngroups++;
	pl->groups[g] = (struct pl_group){ .name = name, .kind = kind };
	uint64_t i = group_hash(kind, name) & (pl->nslots - 1);
	while (pl->slots[i])
		i = (i + 1) & (pl->nslots - 1);
	pl->slots[i] = g + 1;
	return g;
}

static struct pl_at *group_at(struct pl_group *g, int host)
{
	for (int i = 0; i < g->nat; i++)
		if (g->at[i].host == host)
			return &g->at[i];
	return NULL;
}

int pl_group_count(const qv_pl *pl, int g, int host, const struct qv_pl_vm *self)
{
	if (g < 0)
		return 0;
	struct pl_at *at = group_at(&pl->groups[g], host);
	int n = at ? at->count : 0;
	if (self && n > 0 && qv_pl_host_of(pl, self) == host) {
		/* self counts there only if it is a member */
		const char *const *names = pl->groups[g].kind == PL_ANTI ? self->anti_affinity : self->affinity;
		int nn = pl->groups[g].kind == PL_ANTI ? self->nanti_affinity : self->naffinity;
		for (int i = 0; i < nn; i++)
			if (strcmp(names[i], pl->groups[g].name) == 0)
				return n - 1;
	}
	return n;
}

static int group_add(qv_pl *pl, int kind, const char *name, const struct qv_pl_vm *vm, int host,
		     int delta)
{
	int gi = pl_group_find(pl, kind, name, delta > 0);
	if (gi < 0)
		return gi == -1 ? 0 : gi;
	struct pl_group *g = &pl->groups[gi];
	struct pl_at *at = group_at(g, host);
	if (!at) {
		if (delta < 0)
			return 0;
		if (g->nat == g->capat) {
			int nc = g->capat ? g->capat * 2 : 4;
			struct pl_at *na = realloc(g->at, sizeof(*na) * nc);
			if (!na)
				return -ENOMEM;
			g->at = na;
			g->capat = nc;
		}
		at = &g->at[g->nat++];
		*at = (struct pl_at){ .host = host };
	}
	at->count += delta;
	g->total += delta;
	if (delta > 0)
		at->example = vm;
	else if (at->example == vm)
		at->example = NULL;
	if (at->count <= 0)
		*at = g->at[--g->nat];
	return 0;
}

int pl_account(qv_pl *pl, const struct qv_pl_vm *vm, int host, int delta)
{
	if (host < 0)
		return 0;
	struct qv_pl_load *l = &pl->load[host];
	l->cpu_res_milli += (int64_t)delta * vm->cpu_res_milli;
	l->mem_res_mib += (int64_t)delta * vm->mem_res_mib;
	l->mem_alloc_mib += (int64_t)delta * pl_vm_footprint(vm);
	l->nvms += delta;
	l->cpu_used_milli += delta * pl_vm_cpu(pl, vm);
	l->mem_used_mib += (int64_t)delta * vm->mem_used_mib;
	for (int i = 0; i < vm->nanti_affinity; i++) {
		int r = group_add(pl, PL_ANTI, vm->anti_affinity[i], vm, host, delta);
		if (r < 0)
			return r;
	}
	for (int i = 0; i < vm->naffinity; i++) {
		int r = group_add(pl, PL_AFF, vm->affinity[i], vm, host, delta);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- the index --------------------------------------------------------- */

static int by_name_cmp(const void *a, const void *b, void *arg)
{
	const struct qv_pl_snapshot *s = arg;
	const char *x = s->hosts[*(const int *)a].name, *y = s->hosts[*(const int *)b].name;
	int c = strcmp(x ? x : "", y ? y : "");
	return c ? c : *(const int *)a - *(const int *)b;
}

int qv_pl_new(const struct qv_pl_snapshot *snap, const struct qv_pl_cfg *cfg, qv_pl **ret,
	      struct qv_error *errp)
{
	qv_pl *pl = calloc(1, sizeof(*pl));
	int nh = snap->nhosts;
	if (!pl)
		return -ENOMEM;
	pl->snap = snap;
	if (cfg)
		pl->cfg = *cfg;
	else
		qv_pl_cfg_defaults(&pl->cfg);
	pl->load = calloc(nh ? nh : 1, sizeof(*pl->load));
	pl->by_name = calloc(nh ? nh : 1, sizeof(int));
	pl->rank = calloc(nh ? nh : 1, sizeof(int));
	pl->where = calloc(snap->nvms ? snap->nvms : 1, sizeof(int));
	pl->blocked = calloc(nh ? nh : 1, sizeof(*pl->blocked));
	if (!pl->blocked || !pl->load || !pl->by_name || !pl->rank || !pl->where) {
		qv_pl_free(pl);
		return -ENOMEM;
	}
	for (int h = 0; h < nh; h++) {
		pl->load[h].cpu_used_milli = snap->hosts[h].cpu_used_milli;
		pl->load[h].mem_used_mib = snap->hosts[h].mem_used_mib;
		pl->by_name[h] = h;
	}
	qsort_r(pl->by_name, nh, sizeof(int), by_name_cmp, (void *)snap);
	for (int i = 0; i < nh; i++)
		pl->rank[pl->by_name[i]] = i;
	for (int i = 0; i < snap->nvms; i++) {
		const struct qv_pl_vm *v = &snap->vms[i];
		if (v->host < -1 || v->host >= nh) {
			int r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					     "VM %s: host index %d out of range (%d hosts)",
					     v->name ? v->name : "?", v->host, nh);
			qv_pl_free(pl);
			return r;
		}
		pl->where[i] = v->host;
		int r = pl_account(pl, v, v->host, +1);
		if (r < 0) {
			qv_pl_free(pl);
			return r;
		}
		if (v->host >= 0) { /* its use is in the host's measurement already */
			pl->load[v->host].cpu_used_milli -= pl_vm_cpu(pl, v);
			pl->load[v->host].mem_used_mib -= v->mem_used_mib;
		}
	}
	*ret = pl;
	return 0;
}

qv_pl *qv_pl_free(qv_pl *pl)
{
	if (!pl)
		return NULL;
	for (int g = 0; g < pl->ngroups; g++)
		free(pl->groups[g].at);
	free(pl->groups);
	free(pl->slots);
	free(pl->extra);
	free(pl->where);
	free(pl->blocked);
	free(pl->rank);
	free(pl->by_name);
	free(pl->load);
	free(pl);
	return NULL;
}

static struct pl_extra *extra_of(const qv_pl *pl, const struct qv_pl_vm *vm)
{
	for (int i = 0; i < pl->nextra; i++)
		if (pl->extra[i].vm == vm)
			return &pl->extra[i];
	return NULL;
}

int qv_pl_host_of(const qv_pl *pl, const struct qv_pl_vm *vm)
{
	if (pl_in_snapshot(pl, vm))
		return pl->where[vm - pl->snap->vms];
	struct pl_extra *e = extra_of(pl, vm);
	return e ? e->host : -1;
}

const struct qv_pl_load *qv_pl_load_of(const qv_pl *pl, int host)
{
	return host >= 0 && host < pl->snap->nhosts ? &pl->load[host] : NULL;
}

int qv_pl_assign(qv_pl *pl, const struct qv_pl_vm *vm, int host)
{
	if (host < -1 || host >= pl->snap->nhosts)
		return -EINVAL;
	int from = qv_pl_host_of(pl, vm);
	if (from == host)
		return 0;
	struct pl_extra *e = NULL;
	if (!pl_in_snapshot(pl, vm) && !(e = extra_of(pl, vm))) {
		if (pl->nextra == pl->capextra) {
			int nc = pl->capextra ? pl->capextra * 2 : 16;
			struct pl_extra *ne = realloc(pl->extra, sizeof(*ne) * nc);
			if (!ne)
				return -ENOMEM;
			pl->extra = ne;
			pl->capextra = nc;
		}
		e = &pl->extra[pl->nextra++];
		*e = (struct pl_extra){ .vm = vm, .host = -1 };
	}
	int r = pl_account(pl, vm, from, -1);
	if (r >= 0)
		r = pl_account(pl, vm, host, +1);
	if (r < 0)
		return r;
	if (e)
		e->host = host;
	else
		pl->where[vm - pl->snap->vms] = host;
	return 0;
}

int qv_pl_block(qv_pl *pl, int host, const char *why)
{
	if (host < 0 || host >= pl->snap->nhosts)
		return -EINVAL;
	snprintf(pl->blocked[host], sizeof(pl->blocked[host]), "%s", why ? why : "");
	return 0;
}

int qv_pl_host_index(const struct qv_pl_snapshot *snap, const char *name)
{
	for (int h = 0; name && h < snap->nhosts; h++)
		if (snap->hosts[h].name && strcmp(snap->hosts[h].name, name) == 0)
			return h;
	return -1;
}

static int batch_cmp(const void *a, const void *b)
{
	const struct qv_pl_vm *x = *(const struct qv_pl_vm *const *)a, *y = *(const struct qv_pl_vm *const *)b;
	uint64_t fx = pl_vm_footprint(x), fy = pl_vm_footprint(y);
	if (fx != fy)
		return fx > fy ? -1 : 1;
	if (x->cpu_res_milli != y->cpu_res_milli)
		return x->cpu_res_milli > y->cpu_res_milli ? -1 : 1;
	return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

int qv_pl_choose_batch(qv_pl *pl, const struct qv_pl_vm *const *vms, int n, int exclude_host,
		       struct qv_pl_choice *ret, struct qv_error *errp)
{
	const struct qv_pl_vm **order = malloc(sizeof(*order) * (n ? n : 1));
	int placed = 0, failed = 0;
	const char *first = NULL;
	if (!order)
		return -ENOMEM;
	memcpy(order, vms, sizeof(*order) * n);
	qsort(order, n, sizeof(*order), batch_cmp);
	for (int k = 0; k < n; k++) {
		int i = 0;
		while (vms[i] != order[k])
			i++;
		struct qv_pl_choice *c = &ret[i];
		if (qv_pl_choose(pl, vms[i], exclude_host, c, NULL) < 0) {
			failed++;
			first = first ? first : vms[i]->name;
			continue;
		}
		int r = qv_pl_assign(pl, vms[i], c->host);
		if (r < 0) {
			free(order);
			return r;
		}
		placed++;
	}
	free(order);
	if (failed)
		qv_error_set(errp, ENOSPC, QV_REASON_NO_SPACE,
			     "%d of %d VMs fit nowhere (first: %s); the others were placed", failed, n,
			     first ? first : "?");
	return placed;
}

int qv_pl_place(const struct qv_pl_snapshot *snap, const struct qv_pl_cfg *cfg,
		const struct qv_pl_vm *vm, int exclude_host, struct qv_pl_choice *ret,
		struct qv_error *errp)
{
	qv_pl *pl;
	int r = qv_pl_new(snap, cfg, &pl, errp);
	if (r < 0)
		return r;
	r = qv_pl_choose(pl, vm, exclude_host, ret, errp);
	qv_pl_free(pl);
	return r;
}
