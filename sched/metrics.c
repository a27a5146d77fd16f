/* SPDX-License-Identifier: MIT */
/* Prometheus text exposition of the collector and the resource loop. */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <string.h>

#include "common/macro.h"
#include "sched/metrics.h"

const char *qv_metrics_escape(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	for (; s && *s && o + 3 < size; s++) {
		if (*s == '\\' || *s == '"')
			buf[o++] = '\\', buf[o++] = *s;
		else if (*s == '\n')
			buf[o++] = '\\', buf[o++] = 'n';
		else
			buf[o++] = *s;
	}
	buf[o] = '\0';
	return buf;
}

void qv_metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}
#define family qv_metrics_family

void qv_hist_init(struct qv_hist *h, const double *bounds, size_t n)
{
	h->bounds = bounds;
	h->n = n < QV_HIST_MAX ? n : QV_HIST_MAX;
}

void qv_hist_observe(struct qv_hist *h, double v)
{
	for (size_t b = 0; b < h->n; b++)
		if (v <= h->bounds[b]) {
			h->bucket[b]++;
			break;
		}
	h->count++;
	h->sum += v;
}

void qv_hist_render(FILE *f, const char *name, const char *labels, const struct qv_hist *h)
{
	const char *sep = labels[0] ? "," : "";
	uint64_t cum = 0;

	for (size_t b = 0; b < h->n; b++) {
		cum += h->bucket[b];
		fprintf(f, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep, h->bounds[b],
			cum);
	}
	fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, h->count);
	if (labels[0])
		fprintf(f, "%s_sum{%s} %.12g\n%s_count{%s} %" PRIu64 "\n", name, labels, h->sum, name,
			labels, h->count);
	else
		fprintf(f, "%s_sum %.12g\n%s_count %" PRIu64 "\n", name, h->sum, name, h->count);
}

typedef double (*vm_value_fn)(const qv_collector *c, size_t i, const hl_loop *l, bool *ok);

/* A family with one sample per VM that has a value. */
struct vm_family {
	const char *name, *type, *help;
	vm_value_fn get;
};

static void per_vm(FILE *f, const qv_collector *c, const hl_loop *l, const struct vm_family *fam,
		   size_t nfam)
{
	char esc[256];

	for (size_t k = 0; k < nfam; k++) {
		bool header = false;
		for (size_t i = 0; i < col_vm_count(c); i++) {
			bool ok = false;
			double v = fam[k].get(c, i, l, &ok);
			if (!ok)
				continue;
			if (!header)
				family(f, fam[k].name, fam[k].type, fam[k].help), header = true;
			fprintf(f, "%s{vm=\"%s\"} %.17g\n", fam[k].name,
				qv_metrics_escape(col_vm_name(c, i), esc, sizeof(esc)), v);
		}
	}
}

#define RAW(field, scale, mask)                                                          \
	static double raw_##field(const qv_collector *c, size_t i, const hl_loop *l, bool *ok) \
	{                                                                                \
		const struct col_vm_raw *r = col_vm_raw(c, i);                           \
		*ok = r && (r->present & (mask));                                        \
		return r ? (double)r->field * (scale) : 0;                               \
	}
RAW(cpu_usage_usec, 1e-6, CG_CPU)
RAW(cpu_throttled_usec, 1e-6, CG_CPU)
RAW(mem_current, 1, CG_MEMORY)
RAW(mem_anon, 1, CG_MEMORY)
RAW(mem_ev_high, 1, CG_MEMORY)
RAW(mem_ev_oom_kill, 1, CG_MEMORY)
RAW(io_rbytes, 1, CG_IO)
RAW(io_wbytes, 1, CG_IO)
RAW(io_rios, 1, CG_IO)
RAW(io_wios, 1, CG_IO)

#define ALLOC(nm, expr)                                                                  \
	static double alloc_##nm(const qv_collector *c, size_t i, const hl_loop *l, bool *ok) \
	{                                                                                \
		const struct hl_alloc *a = l ? hl_loop_vm_alloc(l, col_vm_name(c, i)) : NULL; \
		*ok = a != NULL;                                                         \
		return a ? (double)(expr) : 0;                                           \
	}
ALLOC(weight, a->cpu_weight)
ALLOC(cpu_max, a->cpu_max_quota_us ? (double)a->cpu_max_quota_us / a->cpu_max_period_us : 0)
ALLOC(mem_low, a->mem_low)
ALLOC(mem_high, a->mem_high)
ALLOC(exclusive, a->exclusive)

#define DEMAND(nm, expr)                                                                 \
	static double demand_##nm(const qv_collector *c, size_t i, const hl_loop *l, bool *ok) \
	{                                                                                \
		const struct hl_demand *d = l ? hl_loop_vm_demand(l, col_vm_name(c, i)) : NULL; \
		*ok = d != NULL;                                                         \
		return d ? (double)(expr) : 0;                                           \
	}
DEMAND(cpu, d->cpu)
DEMAND(mem, d->mem)

#define GUEST(nm, expr)                                                                  \
	static double guest_##nm(const qv_collector *c, size_t i, const hl_loop *l, bool *ok) \
	{                                                                                \
		const struct col_guest *g = col_vm_guest(c, i);                          \
		*ok = g != NULL;                                                         \
		return g ? (double)(expr) : 0;                                           \
	}
GUEST(available, g->available)
GUEST(major_faults, g->major_faults)
GUEST(swap_in, g->swap_in)
GUEST(swap_out, g->swap_out)

/* In the order of the exposition: the cgroup's counters, (PSI,) what the
 * resource loop decided and estimated, (NICs, disks,) the guest's own. */
static const struct vm_family cgroup_fam[] = {
	{ "qvisor_vm_cpu_seconds_total", "counter", "CPU time used by the VM.", raw_cpu_usage_usec },
	{ "qvisor_vm_cpu_throttled_seconds_total", "counter", "Time the VM was throttled by cpu.max.",
	  raw_cpu_throttled_usec },
	{ "qvisor_vm_memory_bytes", "gauge",
	  "Memory charged to the VM (memory.current, or the QEMU RSS).", raw_mem_current },
	{ "qvisor_vm_memory_anon_bytes", "gauge", "Anonymous memory of the VM.", raw_mem_anon },
	{ "qvisor_vm_memory_high_events_total", "counter",
	  "Times the VM was throttled at memory.high.", raw_mem_ev_high },
	{ "qvisor_vm_oom_kills_total", "counter", "OOM kills in the VM's cgroup.",
	  raw_mem_ev_oom_kill },
	{ "qvisor_vm_io_read_bytes_total", "counter", "Bytes read.", raw_io_rbytes },
	{ "qvisor_vm_io_written_bytes_total", "counter", "Bytes written.", raw_io_wbytes },
	{ "qvisor_vm_io_reads_total", "counter", "Read operations.", raw_io_rios },
	{ "qvisor_vm_io_writes_total", "counter", "Write operations.", raw_io_wios },
};

static const struct vm_family loop_fam[] = {
	{ "qvisor_vm_cpu_weight", "gauge", "cpu.weight set by the resource loop.", alloc_weight },
	{ "qvisor_vm_cpu_limit_cores", "gauge",
	  "cpu.max set by the resource loop, in cores (0 = none).", alloc_cpu_max },
	{ "qvisor_vm_memory_low_bytes", "gauge", "memory.low (reservation).", alloc_mem_low },
	{ "qvisor_vm_memory_high_bytes", "gauge", "memory.high set by the resource loop (0 = max).",
	  alloc_mem_high },
	{ "qvisor_vm_cpu_exclusive", "gauge", "1 when the VM has cores of its own (latency class).",
	  alloc_exclusive },
	{ "qvisor_vm_cpu_demand_cores", "gauge",
	  "Estimated CPU demand (max of EWMA and p95, with headroom).", demand_cpu },
	{ "qvisor_vm_memory_demand_bytes", "gauge", "Estimated memory demand, with headroom.",
	  demand_mem },
};

static const struct vm_family guest_fam[] = {
	{ "qvisor_vm_guest_available_bytes", "gauge",
	  "Memory available inside the guest (its balloon statistics).", guest_available },
	{ "qvisor_vm_guest_major_faults_total", "counter",
	  "Major page faults inside the guest (its balloon statistics).", guest_major_faults },
	{ "qvisor_vm_guest_swap_in_bytes_total", "counter",
	  "Bytes the guest swapped in (its balloon statistics).", guest_swap_in },
	{ "qvisor_vm_guest_swap_out_bytes_total", "counter",
	  "Bytes the guest swapped out (its balloon statistics).", guest_swap_out },
};

static void psi(FILE *f, const qv_collector *c)
{
	static const char *const res[] = { "cpu", "cpu", "memory", "memory", "io", "io" };
	char esc[256];
	bool header = false;

	for (size_t i = 0; i < col_vm_count(c); i++) {
		const struct col_vm_raw *r = col_vm_raw(c, i);
		const struct col_point *p = col_vm_last(c, i);
		if (!r || !p || (!r->psi_cpu.present && !r->psi_memory.present))
			continue;
		if (!header)
			family(f, "qvisor_vm_pressure_ratio", "gauge",
			       "Share of the last 10 s in which some/all tasks of the VM stalled "
			       "(PSI avg10)."), header = true;
		for (int k = 0; k < COL_PSI_N; k++)
			fprintf(f, "qvisor_vm_pressure_ratio{vm=\"%s\",resource=\"%s\",kind=\"%s\"} %g\n",
				qv_metrics_escape(col_vm_name(c, i), esc, sizeof(esc)), res[k],
				k % 2 ? "full" : "some", p->psi[k] / 100.0);
	}
}

/* Per NIC and per disk: one sample per (vm, nic|disk) with a counter. */
struct io_family {
	const char *name, *help;
	size_t off; /* of the uint64_t in struct col_nic / col_disk */
};

/* The NICs or disks of VM i: their array (each starts with its name), the
 * element size, their number. */
typedef size_t (*io_items_fn)(const qv_collector *c, size_t i, const char **ret, size_t *stride);

static size_t nic_items(const qv_collector *c, size_t i, const char **ret, size_t *stride)
{
	const struct col_nic *v;
	size_t n = col_vm_nics(c, i, &v);
	*ret = (const char *)v, *stride = sizeof(*v);
	return n;
}

static size_t disk_items(const qv_collector *c, size_t i, const char **ret, size_t *stride)
{
	const struct col_disk *v;
	size_t n = col_vm_disks(c, i, &v);
	*ret = (const char *)v, *stride = sizeof(*v);
	return n;
}

static void io_families(FILE *f, const qv_collector *c, const struct io_family *fam, size_t nfam,
			const char *label, io_items_fn items)
{
	char esc[256], iesc[160];

	for (size_t k = 0; k < nfam; k++) {
		bool header = false;
		for (size_t i = 0; i < col_vm_count(c); i++) {
			const char *v;
			size_t stride, n = items(c, i, &v, &stride);
			for (size_t j = 0; j < n; j++) {
				const char *e = v + j * stride;
				uint64_t x;
				memcpy(&x, e + fam[k].off, sizeof(x));
				if (!header)
					family(f, fam[k].name, "counter", fam[k].help), header = true;
				fprintf(f, "%s{vm=\"%s\",%s=\"%s\"} %" PRIu64 "\n", fam[k].name,
					qv_metrics_escape(col_vm_name(c, i), esc, sizeof(esc)), label,
					qv_metrics_escape(e, iesc, sizeof(iesc)), x);
			}
		}
	}
}

static const struct io_family nic_fam[] = {
	{ "qvisor_vm_net_receive_bytes_total", "Bytes the VM received (its TAP sent).",
	  offsetof(struct col_nic, rx_bytes) },
	{ "qvisor_vm_net_transmit_bytes_total", "Bytes the VM sent.",
	  offsetof(struct col_nic, tx_bytes) },
	{ "qvisor_vm_net_receive_packets_total", "Packets the VM received.",
	  offsetof(struct col_nic, rx_packets) },
	{ "qvisor_vm_net_transmit_packets_total", "Packets the VM sent.",
	  offsetof(struct col_nic, tx_packets) },
	{ "qvisor_vm_net_receive_drops_total", "Packets to the VM its TAP dropped.",
	  offsetof(struct col_nic, rx_drops) },
	{ "qvisor_vm_net_transmit_drops_total", "Packets from the VM its TAP dropped.",
	  offsetof(struct col_nic, tx_drops) },
};

static const struct io_family disk_fam[] = {
	{ "qvisor_vm_disk_read_bytes_total", "Bytes read by the guest (QEMU block layer).",
	  offsetof(struct col_disk, rd_bytes) },
	{ "qvisor_vm_disk_written_bytes_total", "Bytes written by the guest.",
	  offsetof(struct col_disk, wr_bytes) },
	{ "qvisor_vm_disk_reads_total", "Read requests.", offsetof(struct col_disk, rd_ops) },
	{ "qvisor_vm_disk_writes_total", "Write requests.", offsetof(struct col_disk, wr_ops) },
	{ "qvisor_vm_disk_flushes_total", "Flush requests.", offsetof(struct col_disk, flush_ops) },
};

static void host(FILE *f, const qv_collector *c, const hl_loop *l)
{
	const struct col_host *h = col_host(c);

	family(f, "qvisor_host_cpus", "gauge", "Online CPUs.");
	fprintf(f, "qvisor_host_cpus %u\n", h->ncpus);
	family(f, "qvisor_host_cpu_busy_cores", "gauge", "CPUs busy over the last interval.");
	fprintf(f, "qvisor_host_cpu_busy_cores %g\n", h->valid ? h->rate.cpu : 0);
	family(f, "qvisor_host_memory_total_bytes", "gauge", "MemTotal.");
	fprintf(f, "qvisor_host_memory_total_bytes %" PRIu64 "\n", h->mem_total);
	family(f, "qvisor_host_memory_available_bytes", "gauge", "MemAvailable.");
	fprintf(f, "qvisor_host_memory_available_bytes %" PRIu64 "\n", h->mem_available);
	family(f, "qvisor_host_pressure_ratio", "gauge", "Host PSI avg10 (some).");
	fprintf(f, "qvisor_host_pressure_ratio{resource=\"cpu\"} %g\n", h->psi_cpu.some_avg10 / 100);
	fprintf(f, "qvisor_host_pressure_ratio{resource=\"memory\"} %g\n",
		h->psi_memory.some_avg10 / 100);
	fprintf(f, "qvisor_host_pressure_ratio{resource=\"io\"} %g\n", h->psi_io.some_avg10 / 100);
	if (!l)
		return;
	family(f, "qvisor_host_overloaded", "gauge",
	       "1 while the resource loop cannot meet reservations or pressure targets.");
	fprintf(f, "qvisor_host_overloaded %d\n", hl_loop_overloaded(l, NULL, 0) ? 1 : 0);
	family(f, "qvisor_resource_loop_changes_total", "counter",
	       "Allocation changes decided by the resource loop (applied or advised).");
	fprintf(f, "qvisor_resource_loop_changes_total %lu\n", hl_loop_changes(l));
}

int qv_metrics_render(const qv_collector *c, const hl_loop *l, FILE *f)
{
	per_vm(f, c, l, cgroup_fam, ARRAY_SIZE(cgroup_fam));
	psi(f, c);
	per_vm(f, c, l, loop_fam, ARRAY_SIZE(loop_fam));
	io_families(f, c, nic_fam, ARRAY_SIZE(nic_fam), "nic", nic_items);
	io_families(f, c, disk_fam, ARRAY_SIZE(disk_fam), "disk", disk_items);
	per_vm(f, c, l, guest_fam, ARRAY_SIZE(guest_fam));
	host(f, c, l);
	return ferror(f) ? -EIO : 0;
}
