/* SPDX-License-Identifier: MIT */
/* The migration families of the metrics endpoint (daemon/migrate-metrics.c):
 * totals by result, each VM's last outgoing migration from the engine's
 * stats, nothing in flight without migration records. Real migrations:
 * tests/integration/test_migrate*.c. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/migrate-internal.h"

static char *render(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	qv_migrate_metrics(f);
	fclose(f);
	return text;
}

Test(migrate_metrics, totals_and_last_migration_per_vm)
{
	json_object *st = json_tokener_parse("{\"status\": \"completed\", \"downtime_ms\": 42, "
					     "\"ram_transferred\": 123456, \"total_time_ms\": 2500}");
	char *t = render();

	cr_assert_not_null(strstr(t, "qvisor_migrations_in_flight{role=\"source\"} 0\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migrations_total{result=\"completed\"} 0\n"), "%s", t);
	cr_assert_null(strstr(t, "qvisor_vm_last_migration_downtime_seconds{"), "%s", t);
	free(t);
	qv_mig_metrics_done("web1", true, st);
	qv_mig_metrics_done("web1", false, NULL);
	qv_mig_metrics_done("db", true, NULL); /* stats unknown: no sample */
	t = render();
	cr_assert_not_null(strstr(t, "qvisor_migrations_total{result=\"completed\"} 2\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migrations_total{result=\"failed\"} 1\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_vm_last_migration_downtime_seconds{vm=\"web1\"} "
				     "0.042"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_vm_last_migration_ram_bytes{vm=\"web1\"} 123456\n"),
			   "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_vm_last_migration_duration_seconds{vm=\"web1\"} 2.5\n"),
			   "%s", t);
	cr_assert_null(strstr(t, "{vm=\"db\"}"), "%s", t);
	free(t);
	json_object_put(st);
}

Test(migrate_metrics, driven_migrations_fill_the_histograms)
{
	json_object *ok = json_tokener_parse("{\"downtime_ms\": 315, "
					     "\"downtime_source\": \"stop-to-resume\"}");
	json_object *qemu_only = json_tokener_parse("{\"downtime_ms\": 3, "
						    "\"downtime_source\": \"unknown\"}");

	qv_mig_metrics_driven(true, 13800, ok);
	qv_mig_metrics_driven(true, -1, qemu_only); /* resumed: no duration, no blackout */
	qv_mig_metrics_driven(false, 120000, NULL);
	char *t = render();
	cr_assert_not_null(strstr(t, "# TYPE qvisor_migration_duration_seconds histogram\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_duration_seconds_bucket{result=\"completed\","
				     "le=\"10\"} 0\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_duration_seconds_bucket{result=\"completed\","
				     "le=\"20\"} 1\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_duration_seconds_count{result=\"completed\"} 1\n"),
			   "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_duration_seconds_sum{result=\"failed\"} 120\n"),
			   "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_downtime_seconds_bucket{le=\"0.3\"} 0\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_downtime_seconds_bucket{le=\"0.5\"} 1\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_downtime_seconds_sum 0.315\n"), "%s", t);
	cr_assert_not_null(strstr(t, "qvisor_migration_downtime_seconds_count 1\n"), "%s", t);
	free(t);
	json_object_put(ok);
	json_object_put(qemu_only);
}
