/* SPDX-License-Identifier: MIT */
/* The Prometheus text exposition from a collector over a fixture cgroup. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sched/metrics.h"

static void put(const char *d, const char *file, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", d, file);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(metrics, exposition_has_each_vm_and_valid_families)
{
	char dir[] = "/tmp/qvt-metrics-XXXXXX", vm[64], cmd[128];
	qv_collector *c = NULL;
	char *buf = NULL, esc[64];
	size_t len = 0;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(vm, sizeof(vm), "%s/vm", dir);
	mkdir(vm, 0755);
	put(vm, "cpu.stat", "usage_usec 2500000\nthrottled_usec 500000\n");
	put(vm, "memory.current", "1048576\n");
	put(vm, "io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n");
	put(vm, "cpu.pressure", "some avg10=50.00 avg60=0 avg300=0 total=1\n"
				"full avg10=25.00 avg60=0 avg300=0 total=1\n");
	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(col_add_vm(c, "web\"1", vm), 0);
	col_poll(c, 1000000);
	col_poll(c, 2000000);
	FILE *f = open_memstream(&buf, &len);
	cr_assert_eq(qv_metrics_render(c, NULL, f), 0);
	fclose(f);
	cr_assert_not_null(strstr(buf, "# TYPE qvisor_vm_cpu_seconds_total counter\n"
				       "qvisor_vm_cpu_seconds_total{vm=\"web\\\"1\"} 2.5\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "qvisor_vm_cpu_throttled_seconds_total{vm=\"web\\\"1\"} 0.5\n"));
	cr_assert_not_null(strstr(buf, "qvisor_vm_memory_bytes{vm=\"web\\\"1\"} 1048576\n"));
	cr_assert_not_null(strstr(buf, "qvisor_vm_io_written_bytes_total{vm=\"web\\\"1\"} 20\n"));
	cr_assert_not_null(strstr(buf, "qvisor_vm_pressure_ratio{vm=\"web\\\"1\",resource=\"cpu\","
				       "kind=\"full\"} 0.25\n"), "%s", buf);
	cr_assert_null(strstr(buf, "qvisor_vm_cpu_weight"), "no loop: no allocation families");
	cr_assert_not_null(strstr(buf, "qvisor_host_cpus "));
	/* every sample line belongs to a family declared just before it */
	char *save = NULL, family[128] = "";
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "# TYPE %127s", family) == 1 || line[0] == '#')
			continue;
		cr_assert_eq(strncmp(line, family, strlen(family)), 0, "%s outside %s", line, family);
	}
	cr_assert_str_eq(qv_metrics_escape("a\\b\nc", esc, sizeof(esc)), "a\\\\b\\nc");
	free(buf);
	col_free(c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)system(cmd);
}

Test(metrics, histogram_buckets_are_cumulative_with_sum_and_count)
{
	static const double b[] = { 0.1, 1, 10 };
	struct qv_hist h = { 0 };
	char *buf = NULL;
	size_t len = 0;

	qv_hist_init(&h, b, 3);
	qv_hist_observe(&h, 0.05);
	qv_hist_observe(&h, 0.1); /* le is inclusive */
	qv_hist_observe(&h, 5);
	qv_hist_observe(&h, 100); /* only +Inf */
	FILE *f = open_memstream(&buf, &len);
	qv_metrics_family(f, "x_seconds", "histogram", "X.");
	qv_hist_render(f, "x_seconds", "m=\"a\"", &h);
	qv_hist_render(f, "x_seconds", "", &h);
	fclose(f);
	cr_assert_str_eq(buf, "# HELP x_seconds X.\n# TYPE x_seconds histogram\n"
			      "x_seconds_bucket{m=\"a\",le=\"0.1\"} 2\n"
			      "x_seconds_bucket{m=\"a\",le=\"1\"} 2\n"
			      "x_seconds_bucket{m=\"a\",le=\"10\"} 3\n"
			      "x_seconds_bucket{m=\"a\",le=\"+Inf\"} 4\n"
			      "x_seconds_sum{m=\"a\"} 105.15\n"
			      "x_seconds_count{m=\"a\"} 4\n"
			      "x_seconds_bucket{le=\"0.1\"} 2\n"
			      "x_seconds_bucket{le=\"1\"} 2\n"
			      "x_seconds_bucket{le=\"10\"} 3\n"
			      "x_seconds_bucket{le=\"+Inf\"} 4\n"
			      "x_seconds_sum 105.15\n"
			      "x_seconds_count 4\n");
	free(buf);
}
