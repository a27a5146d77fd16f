/* SPDX-License-Identifier: MIT */
/* The collector's bounded history: a fine ring at the interval and a coarse
 * ring of averages, both fixed size once created. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched/collect.h"

int col_ring_init(struct col_ring *r, unsigned n_fine, unsigned n_coarse, unsigned every)
{
	memset(r, 0, sizeof(*r));
	if (!n_fine || !n_coarse || !every)
		return -EINVAL;
	r->fine = calloc(n_fine, sizeof(*r->fine));
	r->coarse = calloc(n_coarse, sizeof(*r->coarse));
	if (!r->fine || !r->coarse) {
		col_ring_release(r);
		return -ENOMEM;
	}
	r->n_fine = n_fine, r->n_coarse = n_coarse, r->every = every;
	return 0;
}

void col_ring_release(struct col_ring *r)
{
	free(r->fine);
	free(r->coarse);
	memset(r, 0, sizeof(*r));
}

static void acc_add(struct col_point *acc, const struct col_point *p)
{
	acc->cpu += p->cpu, acc->throttled += p->throttled, acc->mem_mib += p->mem_mib;
	acc->io_rbps += p->io_rbps, acc->io_wbps += p->io_wbps;
	acc->net_rx_bps += p->net_rx_bps, acc->net_tx_bps += p->net_tx_bps;
	acc->disk_rd_bps += p->disk_rd_bps, acc->disk_wr_bps += p->disk_wr_bps;
	for (int i = 0; i < COL_PSI_N; i++)
		acc->psi[i] += p->psi[i];
}

static void acc_fold(struct col_ring *r, uint32_t t_s)
{
	struct col_point avg = r->acc;
	float n = (float)r->acc_n;

	avg.t_s = t_s;
	avg.cpu /= n, avg.throttled /= n, avg.mem_mib /= n;
	avg.io_rbps /= n, avg.io_wbps /= n;
	avg.net_rx_bps /= n, avg.net_tx_bps /= n, avg.disk_rd_bps /= n, avg.disk_wr_bps /= n;
	for (int i = 0; i < COL_PSI_N; i++)
		avg.psi[i] /= n;
	r->coarse[r->coarse_head] = avg;
	r->coarse_head = (r->coarse_head + 1) % r->n_coarse;
	if (r->coarse_len < r->n_coarse)
		r->coarse_len++;
	memset(&r->acc, 0, sizeof(r->acc));
	r->acc_n = 0;
}

void col_ring_push(struct col_ring *r, const struct col_point *p)
{
	r->fine[r->fine_head] = *p;
	r->fine_head = (r->fine_head + 1) % r->n_fine;
	if (r->fine_len < r->n_fine)
		r->fine_len++;
	acc_add(&r->acc, p);
	if (++r->acc_n >= r->every)
		acc_fold(r, p->t_s);
}

size_t col_ring_copy(const struct col_ring *r, bool coarse, struct col_point *ret, size_t max)
{
	const struct col_point *buf = coarse ? r->coarse : r->fine;
	unsigned cap = coarse ? r->n_coarse : r->n_fine;
	unsigned len = coarse ? r->coarse_len : r->fine_len;
	unsigned head = coarse ? r->coarse_head : r->fine_head;
	size_t n = len < max ? len : max;
	/* the newest n, oldest first */
	unsigned start = (head + cap - (unsigned)n) % cap;

	for (size_t i = 0; i < n; i++)
		ret[i] = buf[(start + i) % cap];
	return n;
}
