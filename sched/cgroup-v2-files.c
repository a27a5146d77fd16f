/* SPDX-License-Identifier: MIT */
/* The unified backend's interface files: limits in, statistics out. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "sched/cgroup-internal.h"

static int put(cg_group *g, const char *file, const char *value, struct qv_error *errp)
{
	int r = cg_write_at(g->fd, file, value);
	if (r < 0)
		return qv_error_set(errp, -r, r == -EINVAL ? QV_REASON_INVALID_ARGUMENT
							   : QV_REASON_IO_ERROR,
				    "Failed to write \"%s\" to %s/%s: %s", value, g->path, file,
				    strerror(-r));
	return 0;
}

static void fmt_u64_or_max(char *buf, size_t size, uint64_t v)
{
	if (v)
		snprintf(buf, size, "%" PRIu64, v);
	else
		snprintf(buf, size, "max");
}

/* Write when set (old == NULL) or changed (old != NULL). */
#define CHANGED(field) (old ? (l->field != o->field) : (l->field != 0))

static bool str_changed(const char *a, const char *b, bool fresh)
{
	if (fresh)
		return a != NULL;
	return !streq_ptr(a, b);
}

static int apply_cpu(cg_group *g, const struct vm_limits *l, const struct vm_limits *o,
		     bool old, struct qv_error *errp)
{
	char buf[64];
	int r;

	if (CHANGED(cpu_max_quota_us) || CHANGED(cpu_max_period_us)) {
		uint64_t period = l->cpu_max_period_us ? l->cpu_max_period_us : 100000;
		if (l->cpu_max_quota_us)
			snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, l->cpu_max_quota_us,
				 period);
		else
			snprintf(buf, sizeof(buf), "max %" PRIu64, period);
		r = put(g, "cpu.max", buf, errp);
		if (r < 0)
			return r;
	}
	if (CHANGED(cpu_weight)) {
		snprintf(buf, sizeof(buf), "%u", l->cpu_weight ? l->cpu_weight : 100);
		r = put(g, "cpu.weight", buf, errp);
		if (r < 0)
			return r;
	}
	return 0;
}

static int apply_cpuset(cg_group *g, const struct vm_limits *l, const struct vm_limits *o,
			bool old, struct qv_error *errp)
{
	int r = 0;

	if (str_changed(l->cpuset_cpus, old ? o->cpuset_cpus : NULL, !old))
		r = put(g, "cpuset.cpus", l->cpuset_cpus ? l->cpuset_cpus : "", errp);
	if (r >= 0 && str_changed(l->cpuset_mems, old ? o->cpuset_mems : NULL, !old))
		r = put(g, "cpuset.mems", l->cpuset_mems ? l->cpuset_mems : "", errp);
	return r;
}

static int apply_memory(cg_group *g, const struct vm_limits *l, const struct vm_limits *o,
			bool old, struct qv_error *errp)
{
	char buf[32];
	int r;

	/* high before max: a lowered max then reclaims from below high. */
	if (CHANGED(memory_high)) {
		fmt_u64_or_max(buf, sizeof(buf), l->memory_high);
		if ((r = put(g, "memory.high", buf, errp)) < 0)
			return r;
	}
	if (CHANGED(memory_max)) {
		fmt_u64_or_max(buf, sizeof(buf), l->memory_max);
		if ((r = put(g, "memory.max", buf, errp)) < 0)
			return r;
	}
	if (old ? l->memory_swap_max != o->memory_swap_max : l->memory_swap_max >= 0) {
		if (l->memory_swap_max >= 0)
			snprintf(buf, sizeof(buf), "%" PRId64, l->memory_swap_max);
		else
			snprintf(buf, sizeof(buf), "max");
		if ((r = put(g, "memory.swap.max", buf, errp)) < 0)
			return r;
	}
	return 0;
}

static bool io_same(const struct cg_io_limit *a, const struct cg_io_limit *b)
{
	return a->rbps == b->rbps && a->wbps == b->wbps && a->riops == b->riops &&
	       a->wiops == b->wiops;
}

static const struct cg_io_limit *io_find(const struct cg_limits *lim, unsigned ma, unsigned mi)
{
	for (size_t i = 0; lim && i < lim->n_io; i++)
		if (lim->io[i].major == ma && lim->io[i].minor == mi)
			return &lim->io[i];
	return NULL;
}

static int write_io(cg_group *g, const struct cg_io_limit *io, const struct cg_io_limit *prev,
		    struct qv_error *errp)
{
	static const struct cg_io_limit none = {};
	char rb[24], wb[24], ri[24], wi[24], buf[160];
	int r;

	if (!prev)
		prev = &none;
	if (!io_same(io, prev)) {
		fmt_u64_or_max(rb, sizeof(rb), io->rbps);
		fmt_u64_or_max(wb, sizeof(wb), io->wbps);
		fmt_u64_or_max(ri, sizeof(ri), io->riops);
		fmt_u64_or_max(wi, sizeof(wi), io->wiops);
		snprintf(buf, sizeof(buf), "%u:%u rbps=%s wbps=%s riops=%s wiops=%s", io->major,
			 io->minor, rb, wb, ri, wi);
		if ((r = put(g, "io.max", buf, errp)) < 0)
			return r;
	}
	if (io->weight != prev->weight) {
		if (io->weight)
			snprintf(buf, sizeof(buf), "%u:%u %u", io->major, io->minor, io->weight);
		else
			snprintf(buf, sizeof(buf), "%u:%u default", io->major, io->minor);
		if ((r = put(g, "io.weight", buf, errp)) < 0)
			return r;
	}
	return 0;
}

static int apply_io(cg_group *g, const struct cg_limits *lim, const struct cg_limits *old,
		    struct qv_error *errp)
{
	int r;

	for (size_t i = 0; i < lim->n_io; i++) {
		const struct cg_io_limit *io = &lim->io[i];
		if ((r = write_io(g, io, io_find(old, io->major, io->minor), errp)) < 0)
			return r;
	}
	/* Devices limited before but not any more: back to unlimited. */
	for (size_t i = 0; old && i < old->n_io; i++) {
		const struct cg_io_limit *prev = &old->io[i];
		struct cg_io_limit reset = { .major = prev->major, .minor = prev->minor };
		if (io_find(lim, prev->major, prev->minor))
			continue;
		if ((r = write_io(g, &reset, prev, errp)) < 0)
			return r;
	}
	return 0;
}

int cg_v2_apply(cg_group *g, const struct cg_limits *lim, const struct cg_limits *old,
		struct qv_error *errp)
{
	const struct vm_limits *l = &lim->l, *o = old ? &old->l : NULL;
	unsigned have = g->m->controllers;
	char buf[32];
	int r = 0;

	if (have & CG_CPU)
		r = apply_cpu(g, l, o, old != NULL, errp);
	if (r >= 0 && (have & CG_CPUSET))
		r = apply_cpuset(g, l, o, old != NULL, errp);
	if (r >= 0 && (have & CG_MEMORY))
		r = apply_memory(g, l, o, old != NULL, errp);
	if (r >= 0 && (have & CG_PIDS) && CHANGED(pids_max)) {
		fmt_u64_or_max(buf, sizeof(buf), l->pids_max);
		r = put(g, "pids.max", buf, errp);
	}
	if (r >= 0 && (have & CG_IO))
		r = apply_io(g, lim, old, errp);
	return r;
}

static bool read_u64(int fd, const char *file, uint64_t *ret)
{
	char buf[64];
	if (cg_read_at(fd, file, buf, sizeof(buf)) <= 0)
		return false;
	*ret = strtoull(buf, NULL, 10);
	return true;
}

static void read_psi(int fd, const char *file, struct cg_psi *ret)
{
	char buf[256];
	if (cg_read_at(fd, file, buf, sizeof(buf)) > 0)
		(void)cg_parse_psi(buf, ret);
}

int cg_v2_read_stats(cg_group *g, struct cg_stats *ret, struct qv_error *errp)
{
	struct cg_stats s = {};
	char buf[8192];
	ssize_t n;

	/* cpu.stat exists without the cpu controller (usage only). */
	n = cg_read_at(g->fd, "cpu.stat", buf, sizeof(buf));
	if (n < 0)
		return qv_error_set(errp, (int)-n, QV_REASON_IO_ERROR, "Cannot read %s/cpu.stat: %s",
				    g->path, strerror((int)-n));
	cg_parse_cpu_stat(buf, &s);
	s.controllers |= CG_CPU;
	if (read_u64(g->fd, "memory.current", &s.mem_current)) {
		s.controllers |= CG_MEMORY;
		(void)read_u64(g->fd, "memory.swap.current", &s.mem_swap_current);
		if (cg_read_at(g->fd, "memory.stat", buf, sizeof(buf)) > 0)
			cg_parse_memory_stat(buf, &s);
		if (cg_read_at(g->fd, "memory.events", buf, sizeof(buf)) > 0)
			cg_parse_memory_events(buf, &s);
	}
	if (read_u64(g->fd, "pids.current", &s.pids_current)) {
		s.controllers |= CG_PIDS;
		if (cg_read_at(g->fd, "pids.events", buf, sizeof(buf)) > 0)
			(void)sscanf(buf, "max %" SCNu64, &s.pids_ev_max);
	}
	if (cg_read_at(g->fd, "io.stat", buf, sizeof(buf)) >= 0 && (g->m->controllers & CG_IO)) {
		s.controllers |= CG_IO;
		cg_parse_io_stat(buf, &s);
	}
	read_psi(g->fd, "cpu.pressure", &s.psi_cpu);
	read_psi(g->fd, "memory.pressure", &s.psi_memory);
	read_psi(g->fd, "io.pressure", &s.psi_io);
	*ret = s;
	return 0;
}
