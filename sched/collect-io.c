/* SPDX-License-Identifier: MIT */
/* NIC and disk counters stored by the caller (netlink, QMP), as rates. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/macro.h"
#include "sched/collect-internal.h"

static uint64_t delta(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : 0; /* a reset counts as 0 */
}

/* Bytes/s summed over the items present in both sets (matched by name, the
 * first field of each item); a and b are the two uint64_t counters. */
static void rates(const char *prev, size_t n_prev, const char *next, size_t n_next,
		  size_t stride, size_t off_a, size_t off_b, uint64_t dt_us, float *ret_a,
		  float *ret_b)
{
	uint64_t a = 0, b = 0, x, y;

	for (size_t k = 0; k < n_next; k++)
		for (size_t j = 0; j < n_prev; j++) {
			const char *e = next + k * stride, *p = prev + j * stride;
			if (!streq(e, p))
				continue;
			memcpy(&x, e + off_a, 8), memcpy(&y, p + off_a, 8);
			a += delta(x, y);
			memcpy(&x, e + off_b, 8), memcpy(&y, p + off_b, 8);
			b += delta(x, y);
		}
	*ret_a = dt_us ? (float)((double)a * 1e6 / (double)dt_us) : 0;
	*ret_b = dt_us ? (float)((double)b * 1e6 / (double)dt_us) : 0;
}

static uint64_t since(uint64_t then, uint64_t now)
{
	return then && now > then ? now - then : 0;
}

int col_vm_set_nics(qv_collector *c, const char *name, const struct col_nic *v, size_t n,
		    uint64_t now_us)
{
	int i = col_vm_index(c, name);

	if (i < 0)
		return i;
	struct col_vm *vm = c->vms[i];
	n = n > COL_NICS_MAX ? COL_NICS_MAX : n;
	rates((const char *)vm->nics, vm->n_nics, (const char *)v, n, sizeof(*v),
	      offsetof(struct col_nic, rx_bytes), offsetof(struct col_nic, tx_bytes),
	      since(vm->nics_t_us, now_us), &vm->net_rx_bps, &vm->net_tx_bps);
	memcpy(vm->nics, v, n * sizeof(*v));
	vm->n_nics = n;
	vm->nics_t_us = now_us;
	return 0;
}

int col_vm_set_disks(qv_collector *c, const char *name, const struct col_disk *v, size_t n,
		     uint64_t now_us)
{
	int i = col_vm_index(c, name);

	if (i < 0)
		return i;
	struct col_vm *vm = c->vms[i];
	n = n > COL_DISKS_MAX ? COL_DISKS_MAX : n;
	rates((const char *)vm->disks, vm->n_disks, (const char *)v, n, sizeof(*v),
	      offsetof(struct col_disk, rd_bytes), offsetof(struct col_disk, wr_bytes),
	      since(vm->disks_t_us, now_us), &vm->disk_rd_bps, &vm->disk_wr_bps);
	memcpy(vm->disks, v, n * sizeof(*v));
	vm->n_disks = n;
	vm->disks_t_us = now_us;
	return 0;
}

size_t col_vm_nics(const qv_collector *c, size_t i, const struct col_nic **ret)
{
	*ret = i < c->n_vms ? c->vms[i]->nics : NULL;
	return i < c->n_vms ? c->vms[i]->n_nics : 0;
}

size_t col_vm_disks(const qv_collector *c, size_t i, const struct col_disk **ret)
{
	*ret = i < c->n_vms ? c->vms[i]->disks : NULL;
	return i < c->n_vms ? c->vms[i]->n_disks : 0;
}
