/* SPDX-License-Identifier: MIT */
/* The Prometheus text exposition from a collector over a fixture cgroup. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sched/metrics.h"
#include "sched/resloop.h"

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

/* Every per-VM family, with a resource loop, NICs, disks and the guest's
 * statistics, in its order and to the byte (the host's own families are
 * left out: they read this machine). */
static const char golden[] =
	"# HELP qvisor_vm_cpu_seconds_total CPU time used by the VM.\n"
	"# TYPE qvisor_vm_cpu_seconds_total counter\n"
	"qvisor_vm_cpu_seconds_total{vm=\"a\"} 1.5\n"
	"qvisor_vm_cpu_seconds_total{vm=\"b\"} 3\n"
	"# HELP qvisor_vm_cpu_throttled_seconds_total Time the VM was throttled by cpu.max.\n"
	"# TYPE qvisor_vm_cpu_throttled_seconds_total counter\n"
	"qvisor_vm_cpu_throttled_seconds_total{vm=\"a\"} 0.25\n"
	"qvisor_vm_cpu_throttled_seconds_total{vm=\"b\"} 0\n"
	"# HELP qvisor_vm_memory_bytes Memory charged to the VM (memory.current, or the"
	" QEMU RSS).\n"
	"# TYPE qvisor_vm_memory_bytes gauge\n"
	"qvisor_vm_memory_bytes{vm=\"a\"} 52428800\n"
	"qvisor_vm_memory_bytes{vm=\"b\"} 52428800\n"
	"# HELP qvisor_vm_memory_anon_bytes Anonymous memory of the VM.\n"
	"# TYPE qvisor_vm_memory_anon_bytes gauge\n"
	"qvisor_vm_memory_anon_bytes{vm=\"a\"} 20971520\n"
	"qvisor_vm_memory_anon_bytes{vm=\"b\"} 20971520\n"
	"# HELP qvisor_vm_memory_high_events_total Times the VM was throttled at memory.high.\n"
	"# TYPE qvisor_vm_memory_high_events_total counter\n"
	"qvisor_vm_memory_high_events_total{vm=\"a\"} 3\n"
	"qvisor_vm_memory_high_events_total{vm=\"b\"} 3\n"
	"# HELP qvisor_vm_oom_kills_total OOM kills in the VM's cgroup.\n"
	"# TYPE qvisor_vm_oom_kills_total counter\n"
	"qvisor_vm_oom_kills_total{vm=\"a\"} 2\n"
	"qvisor_vm_oom_kills_total{vm=\"b\"} 2\n"
	"# HELP qvisor_vm_io_read_bytes_total Bytes read.\n"
	"# TYPE qvisor_vm_io_read_bytes_total counter\n"
	"qvisor_vm_io_read_bytes_total{vm=\"a\"} 4096\n"
	"qvisor_vm_io_read_bytes_total{vm=\"b\"} 4096\n"
	"# HELP qvisor_vm_io_written_bytes_total Bytes written.\n"
	"# TYPE qvisor_vm_io_written_bytes_total counter\n"
	"qvisor_vm_io_written_bytes_total{vm=\"a\"} 8192\n"
	"qvisor_vm_io_written_bytes_total{vm=\"b\"} 8192\n"
	"# HELP qvisor_vm_io_reads_total Read operations.\n"
	"# TYPE qvisor_vm_io_reads_total counter\n"
	"qvisor_vm_io_reads_total{vm=\"a\"} 4\n"
	"qvisor_vm_io_reads_total{vm=\"b\"} 4\n"
	"# HELP qvisor_vm_io_writes_total Write operations.\n"
	"# TYPE qvisor_vm_io_writes_total counter\n"
	"qvisor_vm_io_writes_total{vm=\"a\"} 8\n"
	"qvisor_vm_io_writes_total{vm=\"b\"} 8\n"
	"# HELP qvisor_vm_pressure_ratio Share of the last 10 s in which some/all tasks"
	" of the VM stalled (PSI avg10).\n"
	"# TYPE qvisor_vm_pressure_ratio gauge\n"
	"qvisor_vm_pressure_ratio{vm=\"a\",resource=\"cpu\",kind=\"some\"} 0.125\n"
	"qvisor_vm_pressure_ratio{vm=\"a\",resource=\"cpu\",kind=\"full\"} 0.025\n"
	"qvisor_vm_pressure_ratio{vm=\"a\",resource=\"memory\",kind=\"some\"} 0.01\n"
	"qvisor_vm_pressure_ratio{vm=\"a\",resource=\"memory\",kind=\"full\"} 0.005\n"
	"qvisor_vm_pressure_ratio{vm=\"a\",resource=\"io\",kind=\"some\"} 0\n"
	"qvisor_vm_pressure_ratio{vm=\"a\",resource=\"io\",kind=\"full\"} 0\n"
	"qvisor_vm_pressure_ratio{vm=\"b\",resource=\"cpu\",kind=\"some\"} 0.125\n"
	"qvisor_vm_pressure_ratio{vm=\"b\",resource=\"cpu\",kind=\"full\"} 0.025\n"
	"qvisor_vm_pressure_ratio{vm=\"b\",resource=\"memory\",kind=\"some\"} 0.01\n"
	"qvisor_vm_pressure_ratio{vm=\"b\",resource=\"memory\",kind=\"full\"} 0.005\n"
	"qvisor_vm_pressure_ratio{vm=\"b\",resource=\"io\",kind=\"some\"} 0\n"
	"qvisor_vm_pressure_ratio{vm=\"b\",resource=\"io\",kind=\"full\"} 0\n"
	"# HELP qvisor_vm_cpu_weight cpu.weight set by the resource loop.\n"
	"# TYPE qvisor_vm_cpu_weight gauge\n"
	"qvisor_vm_cpu_weight{vm=\"a\"} 1000\n"
	"qvisor_vm_cpu_weight{vm=\"b\"} 500\n"
	"# HELP qvisor_vm_cpu_limit_cores cpu.max set by the resource loop, in cores (0 = none).\n"
	"# TYPE qvisor_vm_cpu_limit_cores gauge\n"
	"qvisor_vm_cpu_limit_cores{vm=\"a\"} 0\n"
	"qvisor_vm_cpu_limit_cores{vm=\"b\"} 0\n"
	"# HELP qvisor_vm_memory_low_bytes memory.low (reservation).\n"
	"# TYPE qvisor_vm_memory_low_bytes gauge\n"
	"qvisor_vm_memory_low_bytes{vm=\"a\"} 0\n"
	"qvisor_vm_memory_low_bytes{vm=\"b\"} 0\n"
	"# HELP qvisor_vm_memory_high_bytes memory.high set by the resource loop (0 = max).\n"
	"# TYPE qvisor_vm_memory_high_bytes gauge\n"
	"qvisor_vm_memory_high_bytes{vm=\"a\"} 186646528\n"
	"qvisor_vm_memory_high_bytes{vm=\"b\"} 186646528\n"
	"# HELP qvisor_vm_cpu_exclusive 1 when the VM has cores of its own (latency class).\n"
	"# TYPE qvisor_vm_cpu_exclusive gauge\n"
	"qvisor_vm_cpu_exclusive{vm=\"a\"} 0\n"
	"qvisor_vm_cpu_exclusive{vm=\"b\"} 0\n"
	"# HELP qvisor_vm_cpu_demand_cores Estimated CPU demand (max of EWMA and p95,"
	" with headroom).\n"
	"# TYPE qvisor_vm_cpu_demand_cores gauge\n"
	"qvisor_vm_cpu_demand_cores{vm=\"a\"} 0.59999999999999998\n"
	"qvisor_vm_cpu_demand_cores{vm=\"b\"} 0\n"
	"# HELP qvisor_vm_memory_demand_bytes Estimated memory demand, with headroom.\n"
	"# TYPE qvisor_vm_memory_demand_bytes gauge\n"
	"qvisor_vm_memory_demand_bytes{vm=\"a\"} 186646528\n"
	"qvisor_vm_memory_demand_bytes{vm=\"b\"} 186646528\n"
	"# HELP qvisor_vm_net_receive_bytes_total Bytes the VM received (its TAP sent).\n"
	"# TYPE qvisor_vm_net_receive_bytes_total counter\n"
	"qvisor_vm_net_receive_bytes_total{vm=\"a\",nic=\"tap0\"} 1\n"
	"qvisor_vm_net_receive_bytes_total{vm=\"a\",nic=\"tap\\\"1\"} 10\n"
	"# HELP qvisor_vm_net_transmit_bytes_total Bytes the VM sent.\n"
	"# TYPE qvisor_vm_net_transmit_bytes_total counter\n"
	"qvisor_vm_net_transmit_bytes_total{vm=\"a\",nic=\"tap0\"} 2\n"
	"qvisor_vm_net_transmit_bytes_total{vm=\"a\",nic=\"tap\\\"1\"} 20\n"
	"# HELP qvisor_vm_net_receive_packets_total Packets the VM received.\n"
	"# TYPE qvisor_vm_net_receive_packets_total counter\n"
	"qvisor_vm_net_receive_packets_total{vm=\"a\",nic=\"tap0\"} 3\n"
	"qvisor_vm_net_receive_packets_total{vm=\"a\",nic=\"tap\\\"1\"} 0\n"
	"# HELP qvisor_vm_net_transmit_packets_total Packets the VM sent.\n"
	"# TYPE qvisor_vm_net_transmit_packets_total counter\n"
	"qvisor_vm_net_transmit_packets_total{vm=\"a\",nic=\"tap0\"} 4\n"
	"qvisor_vm_net_transmit_packets_total{vm=\"a\",nic=\"tap\\\"1\"} 0\n"
	"# HELP qvisor_vm_net_receive_drops_total Packets to the VM its TAP dropped.\n"
	"# TYPE qvisor_vm_net_receive_drops_total counter\n"
	"qvisor_vm_net_receive_drops_total{vm=\"a\",nic=\"tap0\"} 5\n"
	"qvisor_vm_net_receive_drops_total{vm=\"a\",nic=\"tap\\\"1\"} 0\n"
	"# HELP qvisor_vm_net_transmit_drops_total Packets from the VM its TAP dropped.\n"
	"# TYPE qvisor_vm_net_transmit_drops_total counter\n"
	"qvisor_vm_net_transmit_drops_total{vm=\"a\",nic=\"tap0\"} 6\n"
	"qvisor_vm_net_transmit_drops_total{vm=\"a\",nic=\"tap\\\"1\"} 0\n"
	"# HELP qvisor_vm_disk_read_bytes_total Bytes read by the guest (QEMU block layer).\n"
	"# TYPE qvisor_vm_disk_read_bytes_total counter\n"
	"qvisor_vm_disk_read_bytes_total{vm=\"a\",disk=\"vda\"} 7\n"
	"# HELP qvisor_vm_disk_written_bytes_total Bytes written by the guest.\n"
	"# TYPE qvisor_vm_disk_written_bytes_total counter\n"
	"qvisor_vm_disk_written_bytes_total{vm=\"a\",disk=\"vda\"} 8\n"
	"# HELP qvisor_vm_disk_reads_total Read requests.\n"
	"# TYPE qvisor_vm_disk_reads_total counter\n"
	"qvisor_vm_disk_reads_total{vm=\"a\",disk=\"vda\"} 9\n"
	"# HELP qvisor_vm_disk_writes_total Write requests.\n"
	"# TYPE qvisor_vm_disk_writes_total counter\n"
	"qvisor_vm_disk_writes_total{vm=\"a\",disk=\"vda\"} 10\n"
	"# HELP qvisor_vm_disk_flushes_total Flush requests.\n"
	"# TYPE qvisor_vm_disk_flushes_total counter\n"
	"qvisor_vm_disk_flushes_total{vm=\"a\",disk=\"vda\"} 11\n"
	"# HELP qvisor_vm_guest_available_bytes Memory available inside the guest (its"
	" balloon statistics).\n"
	"# TYPE qvisor_vm_guest_available_bytes gauge\n"
	"qvisor_vm_guest_available_bytes{vm=\"b\"} 1073741824\n"
	"# HELP qvisor_vm_guest_major_faults_total Major page faults inside the guest"
	" (its balloon statistics).\n"
	"# TYPE qvisor_vm_guest_major_faults_total counter\n"
	"qvisor_vm_guest_major_faults_total{vm=\"b\"} 17\n"
	"# HELP qvisor_vm_guest_swap_in_bytes_total Bytes the guest swapped in (its"
	" balloon statistics).\n"
	"# TYPE qvisor_vm_guest_swap_in_bytes_total counter\n"
	"qvisor_vm_guest_swap_in_bytes_total{vm=\"b\"} 4096\n"
	"# HELP qvisor_vm_guest_swap_out_bytes_total Bytes the guest swapped out (its"
	" balloon statistics).\n"
	"# TYPE qvisor_vm_guest_swap_out_bytes_total counter\n"
	"qvisor_vm_guest_swap_out_bytes_total{vm=\"b\"} 8192\n"
	"# HELP qvisor_resource_loop_changes_total Allocation changes decided by the"
	" resource loop (applied or advised).\n"
	"# TYPE qvisor_resource_loop_changes_total counter\n"
	"qvisor_resource_loop_changes_total 14\n";

static void fixture_vm(const char *d, const char *usage)
{
	mkdir(d, 0755);
	put(d, "cpu.stat", usage);
	put(d, "memory.current", "52428800\n");
	put(d, "memory.stat", "anon 20971520\nfile 1048576\n");
	put(d, "memory.events", "low 0\nhigh 3\nmax 1\noom 0\noom_kill 2\n");
	put(d, "io.stat", "8:0 rbytes=4096 wbytes=8192 rios=4 wios=8\n");
	put(d, "cpu.pressure", "some avg10=12.50 avg60=0 avg300=0 total=1\n"
			       "full avg10=2.50 avg60=0 avg300=0 total=1\n");
	put(d, "memory.pressure", "some avg10=1.00 avg60=0 avg300=0 total=1\n"
				  "full avg10=0.50 avg60=0 avg300=0 total=1\n");
	put(d, "io.pressure", "some avg10=0.00 avg60=0 avg300=0 total=0\n"
			      "full avg10=0.00 avg60=0 avg300=0 total=0\n");
	static const char *const knobs[] = { "cpu.weight", "cpu.max", "cpuset.cpus", "memory.low",
					     "memory.high", "memory.max" };
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		put(d, knobs[i], "");
}

Test(metrics, exposition_of_every_vm_family_is_stable)
{
	char dir[] = "/tmp/qvt-metrics-XXXXXX", a[64], b[64], cmd[128];
	qv_collector *c = NULL;
	hl_loop *l = NULL;
	struct hl_loop_opts o = { .caps = { .ncpus = 2, .mem_total = 1ull << 32 },
				  .mode = VM_LOOP_ENFORCE };
	struct vm_resources ra = { .cpu_shares = 2000 }, rb = { .cpu_shares = 1000 };
	struct col_nic n[2] = { { .name = "tap0", .rx_bytes = 1, .tx_bytes = 2, .rx_packets = 3,
				  .tx_packets = 4, .rx_drops = 5, .tx_drops = 6 },
				{ .name = "tap\"1", .rx_bytes = 10, .tx_bytes = 20 } };
	struct col_disk dk[1] = { { .name = "vda", .rd_bytes = 7, .wr_bytes = 8, .rd_ops = 9,
				    .wr_ops = 10, .flush_ops = 11 } };
	struct col_guest g = { .valid = true, .available = 1 << 30, .free = 1 << 29,
			       .total = 2u << 30, .swap_in = 4096, .swap_out = 8192,
			       .major_faults = 17, .minor_faults = 99 };
	struct hl_change ch[64];
	char *buf = NULL, *out = NULL;
	size_t len = 0, olen = 0;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	fixture_vm(a, "usage_usec 1000000\nthrottled_usec 250000\n");
	fixture_vm(b, "usage_usec 3000000\nthrottled_usec 0\n");
	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(hl_loop_new(&o, c, &l), 0);
	cr_assert_eq(hl_loop_add_vm(l, "a", a, &ra, 1, 256 << 20), 0);
	cr_assert_eq(hl_loop_add_vm(l, "b", b, &rb, 2, 512 << 20), 0);
	cr_assert_eq(col_vm_set_nics(c, "a", n, 2, 1000000), 0);
	cr_assert_eq(col_vm_set_disks(c, "a", dk, 1, 1000000), 0);
	cr_assert_eq(col_vm_set_guest(c, "b", &g, 1000000), 0);
	col_poll(c, 1000000);
	hl_loop_tick(l, ch, 64);
	put(a, "cpu.stat", "usage_usec 1500000\nthrottled_usec 250000\n");
	col_poll(c, 2000000);
	hl_loop_tick(l, ch, 64);

	FILE *f = open_memstream(&buf, &len);
	cr_assert_eq(qv_metrics_render(c, l, f), 0);
	fclose(f);
	f = open_memstream(&out, &olen);
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (!strstr(line, "qvisor_host_"))
			fprintf(f, "%s\n", line);
	fclose(f);
	if (getenv("QVT_PRINT_GOLDEN"))
		fputs(out, stdout);
	cr_assert_str_eq(out, golden);
	free(out);
	free(buf);
	hl_loop_free(l);
	col_free(c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)system(cmd);
}
