/* SPDX-License-Identifier: MIT */
/* The guest's balloon statistics, stored by the caller (QMP is its job). */
#include <errno.h>
#include <string.h>

#include "sched/collect-internal.h"

static double rate(uint64_t now, uint64_t before, double dt)
{
	return now > before && dt > 0 ? (double)(now - before) / dt : 0;
}

int col_vm_set_guest(qv_collector *c, const char *name, const struct col_guest *g,
		     uint64_t now_us)
{
	int i = col_vm_index(c, name);

	if (i < 0)
		return i;
	struct col_guest *old = &c->vms[i]->guest, next = *g;
	if (!g->valid) { /* unknown now: forget the last report */
		memset(old, 0, sizeof(*old));
		return 0;
	}
	next.t_us = now_us;
	next.major_faults_ps = next.swap_in_bps = next.swap_out_bps = 0;
	if (old->valid) {
		/* the guest's own clock when it gives one: QEMU re-serves the
		 * same report until the guest sends the next */
		double dt = g->last_update && old->last_update
				    ? (double)(g->last_update - old->last_update)
				    : (double)(now_us - old->t_us) / 1e6;
		if (g->last_update && g->last_update == old->last_update) {
			next.major_faults_ps = old->major_faults_ps;
			next.swap_in_bps = old->swap_in_bps;
			next.swap_out_bps = old->swap_out_bps;
		} else {
			next.major_faults_ps = rate(g->major_faults, old->major_faults, dt);
			next.swap_in_bps = rate(g->swap_in, old->swap_in, dt);
			next.swap_out_bps = rate(g->swap_out, old->swap_out, dt);
		}
	}
	*old = next;
	return 0;
}

const struct col_guest *col_vm_guest(const qv_collector *c, size_t i)
{
	return i < c->n_vms && c->vms[i]->guest.valid ? &c->vms[i]->guest : NULL;
}
