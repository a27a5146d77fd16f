/* SPDX-License-Identifier: MIT */
/* One collector pass: read, turn counters into rates, push to history. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/collect-internal.h"

static void psi_points(float *psi, const struct cg_psi *cpu, const struct cg_psi *mem,
		       const struct cg_psi *io)
{
	psi[COL_PSI_CPU_SOME] = (float)cpu->some_avg10, psi[COL_PSI_CPU_FULL] = (float)cpu->full_avg10;
	psi[COL_PSI_MEM_SOME] = (float)mem->some_avg10, psi[COL_PSI_MEM_FULL] = (float)mem->full_avg10;
	psi[COL_PSI_IO_SOME] = (float)io->some_avg10, psi[COL_PSI_IO_FULL] = (float)io->full_avg10;
}

static void read_vm(qv_collector *c, struct col_vm *v, struct col_vm_raw *r)
{
	struct cg_stats s = { 0 };
	const char *t;

	if ((t = col_read_fd(c, v->fd[F_CPU_STAT]))) {
		cg_parse_cpu_stat(t, &s);
		r->present |= CG_CPU;
	}
	if ((t = col_read_fd(c, v->fd[F_MEM_CUR]))) {
		unsigned long long cur;
		if (sscanf(t, "%llu", &cur) == 1)
			r->mem_current = cur;
		r->present |= CG_MEMORY;
	}
	if ((t = col_read_fd(c, v->fd[F_MEM_STAT])))
		cg_parse_memory_stat(t, &s);
	if ((t = col_read_fd(c, v->fd[F_MEM_EV])))
		cg_parse_memory_events(t, &s);
	if ((t = col_read_fd(c, v->fd[F_IO_STAT]))) {
		cg_parse_io_stat(t, &s);
		r->present |= CG_IO;
	}
	if ((t = col_read_fd(c, v->fd[F_PSI_CPU])))
		(void)cg_parse_psi(t, &r->psi_cpu);
	if ((t = col_read_fd(c, v->fd[F_PSI_MEM])))
		(void)cg_parse_psi(t, &r->psi_memory);
	if ((t = col_read_fd(c, v->fd[F_PSI_IO])))
		(void)cg_parse_psi(t, &r->psi_io);
	r->cpu_usage_usec = s.cpu_usage_usec, r->cpu_throttled_usec = s.cpu_throttled_usec;
	r->cpu_nr_periods = s.cpu_nr_periods, r->cpu_nr_throttled = s.cpu_nr_throttled;
	r->mem_anon = s.mem_anon, r->mem_file = s.mem_file;
	r->mem_ev_low = s.mem_ev_low, r->mem_ev_high = s.mem_ev_high;
	r->mem_ev_max = s.mem_ev_max, r->mem_ev_oom_kill = s.mem_ev_oom_kill;
	for (size_t i = 0; i < s.n_io; i++) {
		r->io_rbytes += s.io[i].rbytes, r->io_wbytes += s.io[i].wbytes;
		r->io_rios += s.io[i].rios, r->io_wios += s.io[i].wios;
	}
}

static uint64_t delta(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : 0; /* a reset counter counts as 0 */
}

static void vm_rates(const struct col_vm_raw *p, const struct col_vm_raw *r, uint32_t t_s,
		     struct col_point *ret)
{
	double dt = (double)delta(r->t_us, p->t_us) / 1e6;

	memset(ret, 0, sizeof(*ret));
	ret->t_s = t_s;
	ret->mem_mib = (float)((double)r->mem_current / (1 << 20));
	psi_points(ret->psi, &r->psi_cpu, &r->psi_memory, &r->psi_io);
	if (dt <= 0)
		return;
	ret->cpu = (float)((double)delta(r->cpu_usage_usec, p->cpu_usage_usec) / 1e6 / dt);
	ret->throttled = (float)((double)delta(r->cpu_throttled_usec, p->cpu_throttled_usec) /
				 1e6 / dt);
	ret->io_rbps = (float)((double)delta(r->io_rbytes, p->io_rbytes) / dt);
	ret->io_wbps = (float)((double)delta(r->io_wbytes, p->io_wbytes) / dt);
}

static void poll_vm(qv_collector *c, struct col_vm *v, uint64_t now_us, uint32_t t_s)
{
	struct col_vm_raw r = { .t_us = now_us };

	if (v->by_pid)
		col_read_pid(c, v, &r);
	else
		read_vm(c, v, &r);
	/* cpu.stat vanishes with the group: the VM's QEMU is gone. */
	v->stale = !(r.present & CG_CPU) && !(r.present & CG_MEMORY);
	if (v->stale)
		return;
	if (v->have_raw) {
		v->prev = v->raw;
		v->have_prev = true;
	}
	v->raw = r;
	v->have_raw = true;
	if (v->have_prev) {
		vm_rates(&v->prev, &v->raw, t_s, &v->last);
		v->last.net_rx_bps = v->net_rx_bps, v->last.net_tx_bps = v->net_tx_bps;
		v->last.disk_rd_bps = v->disk_rd_bps, v->last.disk_wr_bps = v->disk_wr_bps;
		col_ring_push(&v->ring, &v->last);
	}
}

static void poll_host(qv_collector *c, uint32_t t_s)
{
	struct col_host *h = &c->host;
	const char *t;
	uint64_t busy = 0, total = 0;
	unsigned ncpus = 0;

	if ((t = col_read_fd(c, c->hfd[H_STAT])) &&
	    col_parse_proc_stat(t, &busy, &total, &ncpus) == 0) {
		if (ncpus)
			h->ncpus = ncpus;
		h->valid = c->started && total > h->cpu_total_jiffies;
		if (h->valid)
			h->rate.cpu = (float)((double)(busy - h->cpu_busy_jiffies) /
					      (double)(total - h->cpu_total_jiffies) * h->ncpus);
		h->cpu_busy_jiffies = busy, h->cpu_total_jiffies = total;
	}
	if ((t = col_read_fd(c, c->hfd[H_MEMINFO])))
		(void)col_parse_meminfo(t, &h->mem_total, &h->mem_available);
	if ((t = col_read_fd(c, c->hfd[H_PSI_CPU])))
		(void)cg_parse_psi(t, &h->psi_cpu);
	if ((t = col_read_fd(c, c->hfd[H_PSI_MEM])))
		(void)cg_parse_psi(t, &h->psi_memory);
	if ((t = col_read_fd(c, c->hfd[H_PSI_IO])))
		(void)cg_parse_psi(t, &h->psi_io);
	h->rate.t_s = t_s;
	h->rate.mem_mib = (float)((double)(h->mem_total - h->mem_available) / (1 << 20));
	psi_points(h->rate.psi, &h->psi_cpu, &h->psi_memory, &h->psi_io);
}

int col_poll(qv_collector *c, uint64_t now_us)
{
	int n = 0;

	if (!c->started)
		c->t0_us = now_us;
	uint32_t t_s = (uint32_t)((now_us - c->t0_us) / 1000000);
	for (size_t i = 0; i < c->n_vms; i++) {
		poll_vm(c, c->vms[i], now_us, t_s);
		n += !c->vms[i]->stale;
	}
	poll_host(c, t_s);
	c->started = true;
	return n;
}

/* "cpu  user nice system idle iowait irq softirq steal guest guest_nice" */
int col_parse_proc_stat(const char *text, uint64_t *ret_busy, uint64_t *ret_total,
			unsigned *ret_ncpus)
{
	unsigned long long v[8] = { 0 };
	unsigned n = 0;

	if (sscanf(text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
		return -EINVAL;
	for (const char *p = strchr(text, '\n'); p && strncmp(p + 1, "cpu", 3) == 0;
	     p = strchr(p + 1, '\n'))
		n++;
	uint64_t total = 0;
	for (int i = 0; i < 8; i++)
		total += v[i];
	*ret_busy = total - v[3] - v[4]; /* idle and iowait are not busy */
	*ret_total = total;
	*ret_ncpus = n;
	return 0;
}

int col_parse_meminfo(const char *text, uint64_t *ret_total, uint64_t *ret_available)
{
	unsigned long long total = 0, avail = 0;
	const char *p;

	if ((p = strstr(text, "MemTotal:")))
		sscanf(p, "MemTotal: %llu", &total);
	if ((p = strstr(text, "MemAvailable:")))
		sscanf(p, "MemAvailable: %llu", &avail);
	if (!total)
		return -EINVAL;
	*ret_total = total * 1024;
	*ret_available = avail * 1024;
	return 0;
}
