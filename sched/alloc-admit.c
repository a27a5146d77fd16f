/* SPDX-License-Identifier: MIT */
/* Admission control: do a new VM's reservations fit next to the running ones? */
#include <errno.h>

#include "sched/alloc.h"

#define MIB (1024 * 1024)

struct totals {
	uint32_t cpu;       /* millicores reserved on shared cores */
	unsigned lat_cores; /* exclusive cores */
	uint64_t mem;
};

static void add(struct totals *t, const struct hl_host_caps *h, const struct hl_vm_in *vm,
		bool allowed)
{
	if (hl_gets_exclusive(h, allowed, vm->res))
		t->lat_cores += hl_latency_cores(vm->res, vm->vcpus);
	else
		t->cpu += vm->res->cpu_reservation;
	t->mem += vm->res->mem_reservation;
}

static int short_of(struct qv_error *errp, const char *what, const char *where, double need,
		    double taken, double avail, int prec, const char *unit, const char *name)
{
	return qv_error_set(errp, ENOSPC, QV_REASON_UNAVAILABLE,
			    "not enough %s for VM %s: it reserves %.*f %s; %.*f of the %.*f %s "
			    "%s are already reserved by running VMs",
			    what, name, prec, need, unit, prec, taken, prec, avail, unit, where);
}

int hl_admit(const struct hl_host_caps *h, const struct hl_vm_in *running, size_t n,
	     const struct hl_vm_in *cand, struct qv_error *errp)
{
	struct totals t = { 0 }, c = { 0 };
	unsigned ncpus = h->ncpus > 64 ? 64 : h->ncpus ? h->ncpus : 1;
	const char *name = cand->name ? cand->name : "(new)";

	bool excl = hl_exclusive_allowed(h); /* else latency VMs reserve shared cores */

	for (size_t i = 0; i < n; i++)
		add(&t, h, &running[i], excl);
	add(&c, h, cand, excl);
	if (c.lat_cores && t.lat_cores + c.lat_cores > ncpus - 1)
		return short_of(errp, "exclusive cores", "that can be exclusive (one stays shared)",
				c.lat_cores, t.lat_cores, ncpus - 1, 0, "cores", name);
	/* Shared cores left once every latency VM has its own. */
	double pool = (ncpus - t.lat_cores - c.lat_cores) * 1000.0 - h->cpu_host_reserve;
	if ((c.cpu || c.lat_cores) && t.cpu + c.cpu > pool)
		return short_of(errp, "cpu", "left shared", c.cpu / 1000.0, t.cpu / 1000.0,
				pool > 0 ? pool / 1000.0 : 0, 3, "cores", name);
	uint64_t mem_cap = h->mem_total > h->mem_host_reserve ? h->mem_total - h->mem_host_reserve : 0;
	if (c.mem && t.mem + c.mem > mem_cap)
		return short_of(errp, "memory", "available to VMs", (double)(c.mem / MIB),
				(double)(t.mem / MIB), (double)(mem_cap / MIB), 0, "MiB", name);
	return 0;
}
