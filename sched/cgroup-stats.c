/* SPDX-License-Identifier: MIT */
/* Parsing cgroup-v2 statistics files and turning them into JSON. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/cgroup-internal.h"

ssize_t cg_read_at(int dirfd, const char *file, char *buf, size_t size)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off + 1 < size) {
		ssize_t n = read(fd, buf + off, size - 1 - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	return (ssize_t)off;
}

int cg_write_at(int dirfd, const char *file, const char *value)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(value);

	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, value, len);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* "key value\n" lines: calls fn for each. */
static void each_kv(const char *text, void (*fn)(const char *k, uint64_t v, void *ud), void *ud)
{
	const char *p = text;

	while (p && *p) {
		char key[64];
		unsigned long long v;
		if (sscanf(p, "%63s %llu", key, &v) == 2)
			fn(key, (uint64_t)v, ud);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

#define MATCH(k, name, field)              \
	do {                               \
		if (streq((k), (name))) {  \
			(field) = v;       \
			return;            \
		}                          \
	} while (0)

static void cpu_kv(const char *k, uint64_t v, void *ud)
{
	struct cg_stats *s = ud;
	MATCH(k, "usage_usec", s->cpu_usage_usec);
	MATCH(k, "user_usec", s->cpu_user_usec);
	MATCH(k, "system_usec", s->cpu_system_usec);
	MATCH(k, "nr_periods", s->cpu_nr_periods);
	MATCH(k, "nr_throttled", s->cpu_nr_throttled);
	MATCH(k, "throttled_usec", s->cpu_throttled_usec);
}

static void mem_kv(const char *k, uint64_t v, void *ud)
{
	struct cg_stats *s = ud;
	MATCH(k, "anon", s->mem_anon);
	MATCH(k, "file", s->mem_file);
	MATCH(k, "kernel_stack", s->mem_kernel_stack);
	MATCH(k, "shmem", s->mem_shmem);
	MATCH(k, "sock", s->mem_sock);
	MATCH(k, "slab", s->mem_slab);
	MATCH(k, "pgfault", s->mem_pgfault);
	MATCH(k, "pgmajfault", s->mem_pgmajfault);
}

static void mem_ev_kv(const char *k, uint64_t v, void *ud)
{
	struct cg_stats *s = ud;
	MATCH(k, "low", s->mem_ev_low);
	MATCH(k, "high", s->mem_ev_high);
	MATCH(k, "max", s->mem_ev_max);
	MATCH(k, "oom", s->mem_ev_oom);
	MATCH(k, "oom_kill", s->mem_ev_oom_kill);
}

void cg_parse_cpu_stat(const char *text, struct cg_stats *s)
{
	each_kv(text, cpu_kv, s);
}

void cg_parse_memory_stat(const char *text, struct cg_stats *s)
{
	each_kv(text, mem_kv, s);
}

void cg_parse_memory_events(const char *text, struct cg_stats *s)
{
	each_kv(text, mem_ev_kv, s);
}

/* "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per line. */
void cg_parse_io_stat(const char *text, struct cg_stats *s)
{
	const char *p = text;

	s->n_io = 0;
	while (p && *p && s->n_io < CG_STATS_MAX_IO) {
		struct cg_io_stat *io = &s->io[s->n_io];
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512];

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		memset(io, 0, sizeof(*io));
		if (sscanf(line, "%u:%u", &io->major, &io->minor) == 2) {
			char *save = NULL;
			for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
				unsigned long long v;
				char key[32];
				if (sscanf(t, "%31[^=]=%llu", key, &v) != 2)
					continue;
				if (streq(key, "rbytes"))
					io->rbytes = v;
				else if (streq(key, "wbytes"))
					io->wbytes = v;
				else if (streq(key, "rios"))
					io->rios = v;
				else if (streq(key, "wios"))
					io->wios = v;
			}
			s->n_io++;
		}
		p = eol ? eol + 1 : NULL;
	}
}

/* "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull ..." */
int cg_parse_psi(const char *text, struct cg_psi *ret)
{
	struct cg_psi psi = { .present = true };
	const char *p = text;
	int lines = 0;

	while (p && *p) {
		char kind[8];
		double a10, a60, a300;
		unsigned long long total;
		if (sscanf(p, "%7s avg10=%lf avg60=%lf avg300=%lf total=%llu", kind, &a10, &a60,
			   &a300, &total) == 5) {
			if (streq(kind, "some")) {
				psi.some_avg10 = a10, psi.some_avg60 = a60, psi.some_avg300 = a300;
				psi.some_total = total;
				lines++;
			} else if (streq(kind, "full")) {
				psi.full_avg10 = a10, psi.full_avg60 = a60, psi.full_avg300 = a300;
				psi.full_total = total;
				psi.has_full = true;
				lines++;
			}
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!lines)
		return -EINVAL;
	*ret = psi;
	return 0;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static json_object *psi_line(double a10, double a60, double a300, uint64_t total)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "avg10", json_object_new_double(a10));
	json_object_object_add(o, "avg60", json_object_new_double(a60));
	json_object_object_add(o, "avg300", json_object_new_double(a300));
	add_u64(o, "total_usec", total);
	return o;
}

static json_object *psi_json(const struct cg_psi *p)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "some",
			       psi_line(p->some_avg10, p->some_avg60, p->some_avg300, p->some_total));
	if (p->has_full)
		json_object_object_add(o, "full", psi_line(p->full_avg10, p->full_avg60,
							   p->full_avg300, p->full_total));
	return o;
}

json_object *cg_stats_to_json(const struct cg_stats *s)
{
	json_object *o = json_object_new_object();

	if (s->controllers & CG_CPU) {
		json_object *c = json_object_new_object();
		add_u64(c, "usage_usec", s->cpu_usage_usec);
		add_u64(c, "user_usec", s->cpu_user_usec);
		add_u64(c, "system_usec", s->cpu_system_usec);
		add_u64(c, "nr_periods", s->cpu_nr_periods);
		add_u64(c, "nr_throttled", s->cpu_nr_throttled);
		add_u64(c, "throttled_usec", s->cpu_throttled_usec);
		json_object_object_add(o, "cpu", c);
	}
	if (s->controllers & CG_MEMORY) {
		json_object *m = json_object_new_object(), *ev = json_object_new_object();
		add_u64(m, "current", s->mem_current);
		add_u64(m, "swap_current", s->mem_swap_current);
		add_u64(m, "anon", s->mem_anon);
		add_u64(m, "file", s->mem_file);
		add_u64(m, "kernel_stack", s->mem_kernel_stack);
		add_u64(m, "shmem", s->mem_shmem);
		add_u64(m, "sock", s->mem_sock);
		add_u64(m, "slab", s->mem_slab);
		add_u64(m, "pgfault", s->mem_pgfault);
		add_u64(m, "pgmajfault", s->mem_pgmajfault);
		add_u64(ev, "low", s->mem_ev_low);
		add_u64(ev, "high", s->mem_ev_high);
		add_u64(ev, "max", s->mem_ev_max);
		add_u64(ev, "oom", s->mem_ev_oom);
		add_u64(ev, "oom_kill", s->mem_ev_oom_kill);
		json_object_object_add(m, "events", ev);
		json_object_object_add(o, "memory", m);
	}
	if (s->controllers & CG_PIDS) {
		json_object *p = json_object_new_object();
		add_u64(p, "current", s->pids_current);
		add_u64(p, "events_max", s->pids_ev_max);
		json_object_object_add(o, "pids", p);
	}
	if (s->controllers & CG_IO) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < s->n_io; i++) {
			json_object *d = json_object_new_object();
			char dev[32];
			snprintf(dev, sizeof(dev), "%u:%u", s->io[i].major, s->io[i].minor);
			json_object_object_add(d, "device", json_object_new_string(dev));
			add_u64(d, "rbytes", s->io[i].rbytes);
			add_u64(d, "wbytes", s->io[i].wbytes);
			add_u64(d, "rios", s->io[i].rios);
			add_u64(d, "wios", s->io[i].wios);
			json_object_array_add(a, d);
		}
		json_object_object_add(o, "io", a);
	}
	json_object *pr = json_object_new_object();
	if (s->psi_cpu.present)
		json_object_object_add(pr, "cpu", psi_json(&s->psi_cpu));
	if (s->psi_memory.present)
		json_object_object_add(pr, "memory", psi_json(&s->psi_memory));
	if (s->psi_io.present)
		json_object_object_add(pr, "io", psi_json(&s->psi_io));
	json_object_object_add(o, "pressure", pr);
	return o;
}
