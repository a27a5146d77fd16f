/* SPDX-License-Identifier: MIT */
/* Migration metrics for the Prometheus endpoint: what is in flight now,
 * how many outgoing migrations ended and how, and each VM's last one. */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "daemon/migrate-internal.h"
#include "sched/metrics.h"

#define LAST_MAX 64 /* VMs whose last migration is remembered */

struct mig_last {
	char vm[VM_NAME_MAX + 1];
	int64_t downtime_ms, ram_bytes, total_ms; /* -1: unknown */
};

/* One daemon per process, like the migration list. */
static struct mig_last last[LAST_MAX];
static size_t n_last, next_slot;
static uint64_t completed, failed;

static int64_t stat_i64(json_object *st, const char *key)
{
	json_object *v;

	return st && json_object_object_get_ex(st, key, &v) && json_object_is_type(v, json_type_int)
		       ? json_object_get_int64(v) : -1;
}

/* Migrations this daemon drove: wall time from vm.migrate to the end, by
 * result, and the guest's blackout (source STOP to destination RESUME). */
static const double dur_bounds[] = { 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600 };
static const double down_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3,
				      0.5, 1, 2, 5, 10 };
static struct qv_hist dur_ok, dur_failed, downtime;

static void hists_init(void)
{
	if (!downtime.bounds) {
		qv_hist_init(&dur_ok, dur_bounds, ARRAY_SIZE(dur_bounds));
		qv_hist_init(&dur_failed, dur_bounds, ARRAY_SIZE(dur_bounds));
		qv_hist_init(&downtime, down_bounds, ARRAY_SIZE(down_bounds));
	}
}

void qv_mig_metrics_driven(bool ok, int64_t duration_ms, json_object *stats)
{
	json_object *v;

	hists_init();
	if (duration_ms >= 0)
		qv_hist_observe(ok ? &dur_ok : &dur_failed, (double)duration_ms / 1000);
	if (ok && json_object_object_get_ex(stats, "downtime_source", &v) &&
	    streq(json_object_get_string(v), "stop-to-resume") && stat_i64(stats, "downtime_ms") >= 0)
		qv_hist_observe(&downtime, (double)stat_i64(stats, "downtime_ms") / 1000);
}


void qv_mig_metrics_done(const char *vm, bool ok, json_object *stats)
{
	struct mig_last *l = NULL;

	if (!ok) {
		failed++;
		return;
	}
	completed++;
	for (size_t i = 0; i < n_last && !l; i++)
		if (streq(last[i].vm, vm))
			l = &last[i];
	if (!l) { /* a new VM: a free slot, else the oldest one */
		l = &last[n_last < LAST_MAX ? n_last++ : next_slot];
		next_slot = (next_slot + 1) % LAST_MAX;
	}
	snprintf(l->vm, sizeof(l->vm), "%s", vm);
	l->downtime_ms = stat_i64(stats, "downtime_ms");
	l->ram_bytes = stat_i64(stats, "ram_transferred");
	l->total_ms = stat_i64(stats, "total_time_ms");
}

static void last_family(FILE *f, const char *name, const char *help, size_t off, double scale)
{
	char esc[256];

	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (size_t i = 0; i < n_last; i++) {
		int64_t v;
		memcpy(&v, (const char *)&last[i] + off, sizeof(v));
		if (v >= 0)
			fprintf(f, "%s{vm=\"%s\"} %.17g\n", name,
				qv_metrics_escape(last[i].vm, esc, sizeof(esc)), (double)v * scale);
	}
}

void qv_migrate_metrics(FILE *f)
{
	unsigned out = 0, in = 0;

	for (const struct qv_mig *m = qv_mig_first(); m; m = m->next) {
		/* ended records stay until confirmed: only these are under way */
		static const char *const live[] = { "prepared", "mirroring", "performing",
						    "postcopy", "postcopy-running", "finishing" };
		bool under_way = false;
		for (size_t k = 0; k < ARRAY_SIZE(live); k++)
			under_way |= streq(m->state, live[k]);
		if (!under_way)
			continue;
		if (m->source)
			out++;
		else
			in++;
	}
	fprintf(f, "# HELP qvisor_migrations_in_flight Migrations under way on this host.\n"
		   "# TYPE qvisor_migrations_in_flight gauge\n"
		   "qvisor_migrations_in_flight{role=\"source\"} %u\n"
		   "qvisor_migrations_in_flight{role=\"destination\"} %u\n", out, in);
	fprintf(f, "# HELP qvisor_migrations_total Outgoing migrations that ended, by result.\n"
		   "# TYPE qvisor_migrations_total counter\n"
		   "qvisor_migrations_total{result=\"completed\"} %" PRIu64 "\n"
		   "qvisor_migrations_total{result=\"failed\"} %" PRIu64 "\n", completed, failed);
	hists_init();
	qv_metrics_family(f, "qvisor_migration_duration_seconds", "histogram",
			  "Migrations this daemon drove (vm.migrate), from the call to the end.");
	qv_hist_render(f, "qvisor_migration_duration_seconds", "result=\"completed\"", &dur_ok);
	qv_hist_render(f, "qvisor_migration_duration_seconds", "result=\"failed\"", &dur_failed);
	qv_metrics_family(f, "qvisor_migration_downtime_seconds", "histogram",
			  "Blackout of completed migrations this daemon drove: the source "
			  "QEMU's STOP to the destination QEMU's RESUME.");
	qv_hist_render(f, "qvisor_migration_downtime_seconds", "", &downtime);
	last_family(f, "qvisor_vm_last_migration_downtime_seconds",
		    "Downtime of the VM's last outgoing migration (QEMU's figure).",
		    offsetof(struct mig_last, downtime_ms), 1e-3);
	last_family(f, "qvisor_vm_last_migration_ram_bytes",
		    "RAM bytes sent by the VM's last outgoing migration.",
		    offsetof(struct mig_last, ram_bytes), 1);
	last_family(f, "qvisor_vm_last_migration_duration_seconds",
		    "Duration of the VM's last outgoing migration.",
		    offsetof(struct mig_last, total_ms), 1e-3);
}
