/* SPDX-License-Identifier: MIT */
/* Demand estimation, allocation of cgroup knobs, admission control. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "sched/alloc.h"

#define MIB (1024.0 * 1024.0)
#define HL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define HL_CLAMP(x, lo, hi) ((x) < (lo) ? (lo) : (x) > (hi) ? (hi) : (x))

void hl_params_defaults(struct hl_params *p)
{
	if (!p->cpu_headroom)
		p->cpu_headroom = 0.2;
	if (!p->mem_headroom)
		p->mem_headroom = 0.25;
	if (!p->mem_headroom_min)
		p->mem_headroom_min = 128ull << 20;
	if (!p->ewma_alpha)
		p->ewma_alpha = 0.3;
	if (!p->percentile || p->percentile > 100)
		p->percentile = 95;
	if (!p->window || p->window > HL_EST_WINDOW)
		p->window = 30;
	if (!p->period_us)
		p->period_us = 100000;
	if (!p->weight_scale || p->weight_scale > 10000)
		p->weight_scale = 1000;
}

/* --- estimator ----------------------------------------------------------------- */

void hl_est_push(struct hl_estimator *e, const struct hl_params *p, double cpu, uint64_t mem)
{
	double mem_mib = (double)mem / MIB;

	if (!e->n) {
		e->ewma_cpu = cpu, e->ewma_mem = mem_mib;
	} else {
		e->ewma_cpu += p->ewma_alpha * (cpu - e->ewma_cpu);
		e->ewma_mem += p->ewma_alpha * (mem_mib - e->ewma_mem);
	}
	e->cpu[e->head] = (float)cpu;
	e->mem[e->head] = (float)mem_mib;
	e->head = (e->head + 1) % p->window;
	if (e->n < p->window)
		e->n++;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

static double percentile(const float *v, unsigned n, unsigned pct)
{
	float tmp[HL_EST_WINDOW];

	memcpy(tmp, v, n * sizeof(*tmp));
	qsort(tmp, n, sizeof(*tmp), cmp_float);
	unsigned idx = (n * pct + 99) / 100; /* nearest rank */
	return tmp[idx ? idx - 1 : 0];
}

void hl_est_demand(const struct hl_estimator *e, const struct hl_params *p, uint32_t vcpus,
		   struct hl_demand *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!e->n)
		return;
	ret->known = true;
	ret->cpu_ewma = e->ewma_cpu;
	ret->cpu_pct = percentile(e->cpu, e->n, p->percentile);
	double cpu = HL_MAX(ret->cpu_ewma, ret->cpu_pct) * (1 + p->cpu_headroom);
	ret->cpu = vcpus && cpu > vcpus ? vcpus : cpu;
	double mem = HL_MAX(e->ewma_mem, percentile(e->mem, e->n, p->percentile)) * MIB;
	double room = HL_MAX(mem * p->mem_headroom, (double)p->mem_headroom_min);
	ret->mem = (uint64_t)(mem + room);
}

/* --- allocation ------------------------------------------------------------------ */

unsigned hl_latency_cores(const struct vm_resources *res, uint32_t vcpus)
{
	unsigned k = (res->cpu_reservation + 999) / 1000;

	k = HL_MAX(k, 1u);
	return vcpus && k > vcpus ? vcpus : k;
}

static unsigned cpus_usable(const struct hl_host_caps *h)
{
	return h->ncpus > 64 ? 64 : h->ncpus ? h->ncpus : 1;
}

bool hl_exclusive_allowed(const struct hl_host_caps *h)
{
	unsigned min = h->exclusive_min_cpus ? h->exclusive_min_cpus : HL_EXCLUSIVE_MIN_CPUS;

	return cpus_usable(h) >= (min < 2 ? 2 : min); /* one core always stays shared */
}

bool hl_gets_exclusive(const struct hl_host_caps *h, bool allowed, const struct vm_resources *r)
{
	/* a small host: only latency VMs that ask (cpu.exclusive), and never
	 * the last core */
	return r->klass == VM_CLASS_LATENCY && (allowed || (r->cpu_exclusive && cpus_usable(h) >= 2));
}

static uint64_t place_latency(const struct hl_host_caps *h, const struct hl_vm_in *vms, size_t n,
			      struct hl_alloc *ret, struct hl_verdict *v)
{
	unsigned ncpus = cpus_usable(h), used = 0;
	uint64_t excl = 0;

	bool allowed = hl_exclusive_allowed(h);

	for (size_t i = 0; i < n; i++) {
		if (!hl_gets_exclusive(h, allowed, vms[i].res))
			continue;
		unsigned k = hl_latency_cores(vms[i].res, vms[i].vcpus);
		if (used + k > ncpus - 1) { /* one core always stays shared */
			v->latency_unplaced++;
			continue;
		}
		for (unsigned c = ncpus - used - k; c < ncpus - used; c++)
			ret[i].cpuset |= 1ull << c;
		ret[i].exclusive = true;
		excl |= ret[i].cpuset;
		used += k;
		v->cpu_reserved += k * 1000;
	}
	return excl;
}

static double eff_shares(const struct vm_resources *r)
{
	double s = r->cpu_shares ? r->cpu_shares : VM_SHARES_DEFAULT;
	return r->klass == VM_CLASS_BEST_EFFORT ? HL_MAX(s / 20, 1.0) : s;
}

/* Fractions of the shared pool: shares, raised to the reservation where
 * needed (the raised ones leave the proportional division). */
static void shared_fractions(const struct hl_vm_in *vms, size_t n, const struct hl_alloc *al,
			     double pool_milli, double *frac)
{
	bool raised[n];
	bool changed = true;

	memset(raised, 0, sizeof(raised));
	while (changed) {
		double r = 0, s = 0;
		changed = false;
		for (size_t i = 0; i < n; i++) {
			if (al[i].exclusive)
				continue;
			double f = pool_milli > 0 ? vms[i].res->cpu_reservation / pool_milli : 1;
			if (raised[i])
				r += frac[i] = f;
			else
				s += eff_shares(vms[i].res);
		}
		for (size_t i = 0; i < n; i++) {
			if (al[i].exclusive || raised[i])
				continue;
			frac[i] = HL_MAX(1 - r, 0.0) * eff_shares(vms[i].res) / s;
			double f = pool_milli > 0 ? vms[i].res->cpu_reservation / pool_milli : 1;
			if (frac[i] < f)
				raised[i] = changed = true;
		}
	}
}

/* Best-effort without a CPU reservation: an idle group (a reservation
 * needs a real weight to hold). */
static bool wants_idle(const struct hl_host_caps *h, const struct vm_resources *r)
{
	return h->cpu_idle && r->klass == VM_CLASS_BEST_EFFORT && !r->cpu_reservation;
}

static void set_weights(const struct hl_host_caps *h, const struct hl_params *p,
			const struct hl_vm_in *vms, size_t n, struct hl_alloc *ret,
			double pool_milli)
{
	double frac[n], top = 0;

	if (!n)
		return;
	shared_fractions(vms, n, ret, pool_milli, frac);
	for (size_t i = 0; i < n; i++)
		if (!ret[i].exclusive)
			top = HL_MAX(top, frac[i]);
	for (size_t i = 0; i < n; i++) {
		double w = ret[i].exclusive || top <= 0 ? p->weight_scale
							: frac[i] / top * p->weight_scale;
		ret[i].cpu_weight = (uint32_t)HL_CLAMP(w + 0.5, 1.0, 10000.0);
		if (!ret[i].exclusive && wants_idle(h, vms[i].res))
			ret[i].cpu_idle = true, ret[i].cpu_weight = 1;
	}
}

static void set_memory(const struct hl_vm_in *vm, struct hl_alloc *a)
{
	const struct vm_resources *r = vm->res;

	a->mem_low = r->mem_reservation;
	a->mem_max = r->mem_limit;
	if (!vm->demand.known)
		return;
	uint64_t high = HL_MAX(vm->demand.mem, r->mem_reservation);
	if (r->mem_limit && high > r->mem_limit)
		high = r->mem_limit;
	a->mem_high = high;
}

void hl_allocate(const struct hl_host_caps *h, const struct hl_params *p,
		 const struct hl_vm_in *vms, size_t n, struct hl_alloc *ret,
		 struct hl_verdict *ret_verdict)
{
	struct hl_verdict v = { 0 };
	unsigned ncpus = cpus_usable(h);
	uint64_t all = ncpus == 64 ? ~0ull : (1ull << ncpus) - 1;

	memset(ret, 0, n * sizeof(*ret));
	uint64_t excl = place_latency(h, vms, n, ret, &v);
	unsigned shared_cpus = (unsigned)__builtin_popcountll(all & ~excl);
	double pool = shared_cpus * 1000.0 - h->cpu_host_reserve;
	for (size_t i = 0; i < n; i++) {
		const struct vm_resources *r = vms[i].res;
		if (!ret[i].exclusive) {
			ret[i].cpuset = excl ? all & ~excl : 0;
			v.cpu_reserved += r->cpu_reservation;
		}
		if (r->cpu_limit) {
			ret[i].cpu_max_period_us = p->period_us;
			ret[i].cpu_max_quota_us = (uint64_t)r->cpu_limit * p->period_us / 1000;
		}
		set_memory(&vms[i], &ret[i]);
		v.cpu_demand += vms[i].demand.cpu;
		v.mem_demand += vms[i].demand.mem;
		v.mem_reserved += r->mem_reservation;
	}
	set_weights(h, p, vms, n, ret, pool);
	v.cpu_capacity = ncpus * 1000 > h->cpu_host_reserve ? ncpus * 1000 - h->cpu_host_reserve : 0;
	v.mem_capacity = h->mem_total > h->mem_host_reserve ? h->mem_total - h->mem_host_reserve : 0;
	v.cpu_short = v.cpu_reserved > v.cpu_capacity || v.latency_unplaced;
	v.mem_short = v.mem_reserved > v.mem_capacity;
	*ret_verdict = v;
}

const char *hl_cpuset_format(uint64_t mask, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int c = 0; c < 64 && len < size; c++) {
		if (!(mask & (1ull << c)))
			continue;
		int e = c;
		while (e + 1 < 64 && (mask & (1ull << (e + 1))))
			e++;
		len += (size_t)snprintf(buf + len, size - len, e > c ? "%s%d-%d" : "%s%d",
					len ? "," : "", c, e);
		c = e;
	}
	return buf;
}
