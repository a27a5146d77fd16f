/* SPDX-License-Identifier: MIT */
/* The paper's decision round as CloudSim 3.0.3 runs it
 * (PowerVmAllocationPolicyMigrationAbstract.optimizeAllocation):
 *  1. every host the detector calls overloaded, in host order;
 *  2. from each, the selection's VMs until it no longer is;
 *  3. PABFD: those VMs by decreasing CPU, each to the host whose power
 *     grows least, never onto one the detector would call overloaded;
 *  4. underload: the least-used active host is emptied if all its VMs fit
 *     elsewhere; repeated until no candidate is left.
 * The planned placements are tried on the hosts' lists and undone after,
 * as CloudSim's save/restoreAllocation does (its quirks are kept: the
 * power estimate reads the last measurement, not the planned VMs; the
 * overload pass's targets may be picked as underloaded). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/policy-internal.h"

static double vm_req(const struct qv_pol_vm *v)
{
	return v->instantiating ? v->mips : v->req_mips;
}

double qv_pol_host_util(const struct qv_pol_host *h)
{
	double u = h->util_mips / qv_pol_host_total_mips(h);
	return u > 1 && u < 1.01 ? 1 : u;
}

int qv_pol_vm_create(struct qv_pol_dc *dc, int host, int vm)
{
	struct qv_pol_host *h = &dc->hosts[host];
	struct qv_pol_vm *v = &dc->vms[vm];
	v->sched_req = vm_req(v);
	/* CloudSim asks for RAM only while a VM is being created. */
	v->ram_alloc = v->instantiating || dc->memory_aware ? v->ram_mb : 0;
	int r = qv_pol_host_add(h, vm);
	qv_pol_host_refresh(dc, h);
	qv_pol_fast_host_changed(dc, host);
	return r;
}

void qv_pol_vm_destroy(struct qv_pol_dc *dc, int host, int vm)
{
	qv_pol_host_remove(&dc->hosts[host], vm);
	qv_pol_host_refresh(dc, &dc->hosts[host]);
	qv_pol_fast_host_changed(dc, host);
}

int qv_pol_plan_add(struct qv_pol_plan *plan, int vm, int from, int to, enum qv_pol_why why,
		    double metric, const char *fmt, ...)
{
	if (plan->n == plan->cap) {
		int nc = plan->cap ? plan->cap * 2 : 64;
		struct qv_pol_move *m = realloc(plan->moves, sizeof(*m) * nc);
		if (!m)
			return -ENOMEM;
		plan->moves = m;
		plan->cap = nc;
	}
	struct qv_pol_move *m = &plan->moves[plan->n++];
	*m = (struct qv_pol_move){ .vm = vm, .from = from, .to = to, .why = why, .metric = metric };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->reason, sizeof(m->reason), fmt, ap);
	va_end(ap);
	return 0;
}

static bool suitable(const struct qv_pol_dc *dc, const struct qv_pol_host *h, const struct qv_pol_vm *v)
{
	double req = vm_req(v);
	if (h->core_mips < req || h->avail < req)
		return false;
	if (v->instantiating || dc->memory_aware)
		return h->ram_used + v->ram_mb <= h->ram_mb;
	return true;
}

/* One host of PABFD's scan: a better candidate replaces *best. */
void qv_pol_pabfd_visit(const struct qv_pol_dc *dc, int i, int vm, const struct qv_pol_cfg *cfg,
			double *min, int *best)
{
	struct qv_pol_host *h = &dc->hosts[i];
	const struct qv_pol_vm *v = &dc->vms[vm];
	if (!suitable(dc, h, v))
		return;
	/* CloudSim 3.0.3: "after" counts the VMs now on the host's list
	 * (planned ones included), "before" is the last measurement. */
	double after = (h->alloc_mips + vm_req(v)) / qv_pol_host_total_mips(h);
	double diff = qv_pol_power_at(&h->power, after) - qv_pol_fast_power_now(dc, h);
	if (!(diff < *min))
		return;
	if (h->alloc_mips != 0 && qv_pol_fast_overloaded_after(dc, h, vm, cfg))
		return;
	*min = diff;
	*best = i;
}

/* Java's loop: the first host with the least power increase among those
 * the detector accepts. The detector (the costly part) only runs for a
 * host that would improve on the best so far: the same choice. During a
 * round the hosts that cannot take the VM are skipped through an index
 * and the detector's answer mostly comes from bounds (sched/policy-fast.c):
 * the same choice again. */
int qv_pol_find_host(struct qv_pol_dc *dc, int vm, const bool *excluded, const struct qv_pol_cfg *cfg)
{
	const struct qv_pol_vm *v = &dc->vms[vm];
	bool first_fit = cfg->kind == QV_POL_DVFS || cfg->kind == QV_POL_NPA;
	if (!first_fit && dc->fast)
		return qv_pol_fast_find_host(dc, vm, excluded, cfg);
	int best = -1;
	double min = INFINITY;
	for (int i = 0; i < dc->nhosts; i++) {
		if (excluded && excluded[i])
			continue;
		if (first_fit) {
			if (suitable(dc, &dc->hosts[i], v))
				return i;
			continue;
		}
		qv_pol_pabfd_visit(dc, i, vm, cfg, &min, &best);
	}
	return best;
}

int qv_pol_place_all(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg)
{
	for (int i = 0; i < dc->nhosts; i++)
		qv_pol_host_refresh(dc, &dc->hosts[i]);
	for (int i = 0; i < dc->nvms; i++) {
		struct qv_pol_vm *v = &dc->vms[i];
		v->instantiating = true;
		int h = qv_pol_find_host(dc, i, NULL, cfg);
		if (h < 0)
			return -ENOSPC;
		int r = qv_pol_vm_create(dc, h, i);
		if (r < 0)
			return r;
		v->host = h;
		/* CloudSim keeps the full reservation until the host's next
		 * update: the scheduler state is not refreshed here. */
		v->instantiating = false;
	}
	return 0;
}

int qv_pol_save(const struct qv_pol_dc *dc, struct qv_pol_saved *ret)
{
	int total = 0;
	for (int i = 0; i < dc->nhosts; i++)
		total += dc->hosts[i].nvm;
	ret->vm = malloc(sizeof(int) * (total + 1));
	ret->off = malloc(sizeof(int) * (dc->nhosts + 1));
	if (!ret->vm || !ret->off) {
		free(ret->vm);
		free(ret->off);
		return -ENOMEM;
	}
	int k = 0;
	for (int i = 0; i < dc->nhosts; i++) {
		const struct qv_pol_host *h = &dc->hosts[i];
		ret->off[i] = k;
		for (int j = 0; j < h->nvm; j++)
			if (!qv_pol_host_is_in(h, h->vm[j]))
				ret->vm[k++] = h->vm[j];
	}
	ret->off[dc->nhosts] = k;
	return 0;
}

/* restoreAllocation: VMs migrating in first, then the saved ones. */
void qv_pol_restore(struct qv_pol_dc *dc, struct qv_pol_saved *s)
{
	for (int i = 0; i < dc->nhosts; i++) {
		struct qv_pol_host *h = &dc->hosts[i];
		h->nvm = 0;
		h->hvalid = false;
		for (int j = 0; j < h->nin; j++)
			qv_pol_host_add(h, h->in[j]);
		for (int j = s->off[i]; j < s->off[i + 1]; j++) {
			struct qv_pol_vm *v = &dc->vms[s->vm[j]];
			qv_pol_host_add(h, s->vm[j]);
			v->host = i;
			v->ram_alloc = dc->memory_aware ? v->ram_mb : 0;
		}
		for (int j = 0; j < h->nin; j++)
			dc->vms[h->in[j]].ram_alloc = dc->memory_aware ? dc->vms[h->in[j]].ram_mb : 0;
		qv_pol_host_refresh(dc, h);
	}
	free(s->vm);
	free(s->off);
}

struct util_key {
	int id;
	double key;
};

static int cmp_desc(const void *a, const void *b)
{
	const struct util_key *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? 1 : -1;
	return x->id - y->id; /* stable: keep list order */
}

/* PowerVmList.sortByCpuUtilization: decreasing MIPS in use now, stable. */
int qv_pol_sort_by_cpu(const struct qv_pol_dc *dc, int *vms, int n)
{
	if (n < 2)
		return 0;
	struct util_key *k = malloc(sizeof(*k) * n);
	int *tmp = malloc(sizeof(int) * n);
	if (!k || !tmp) {
		free(k);
		free(tmp);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++)
		k[i] = (struct util_key){ i, dc->vms[vms[i]].util_now * dc->vms[vms[i]].mips };
	qsort(k, n, sizeof(*k), cmp_desc);
	for (int i = 0; i < n; i++)
		tmp[i] = vms[k[i].id];
	memcpy(vms, tmp, sizeof(int) * n);
	free(k);
	free(tmp);
	return 0;
}
