/* SPDX-License-Identifier: MIT */
/* NIC and disk counters stored in the collector: rates over the NICs/disks
 * present in both sets (no spike on hot-plug or reset), the history ring,
 * and the per-NIC/per-disk Prometheus families. Real TAPs and QEMU:
 * tests/integration/test_net_guests.c and test_metrics.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/metrics.h"

Test(collect_io, rates_follow_names_and_survive_resets)
{
	qv_collector *c = NULL;
	struct col_nic n[2] = { { .name = "tap0", .rx_bytes = 1000, .tx_bytes = 500 } };
	struct col_disk d[1] = { { .name = "disk0", .rd_bytes = 0, .wr_bytes = 0 } };
	struct col_point pts[8];

	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(col_vm_set_nics(c, "x", n, 1, 0), -ENOENT);
	cr_assert_eq(col_add_vm_pid(c, "x", getpid()), 0);
	cr_assert_eq(col_vm_set_nics(c, "x", n, 1, 1000000), 0);
	cr_assert_eq(col_vm_set_disks(c, "x", d, 1, 1000000), 0);
	col_poll(c, 1000000);
	/* one second later: +2000 rx, +1000 tx; a hot-plugged NIC with big
	 * counters does not count before its second sample */
	n[0].rx_bytes = 3000, n[0].tx_bytes = 1500;
	n[1] = (struct col_nic){ .name = "tap1", .rx_bytes = 1ull << 40 };
	d[0].wr_bytes = 4 << 20;
	cr_assert_eq(col_vm_set_nics(c, "x", n, 2, 2000000), 0);
	cr_assert_eq(col_vm_set_disks(c, "x", d, 1, 2000000), 0);
	col_poll(c, 2000000);
	size_t k = col_vm_history(c, 0, false, pts, 8);
	cr_assert_geq(k, 1);
	cr_assert_float_eq(pts[k - 1].net_rx_bps, 2000, 1e-3);
	cr_assert_float_eq(pts[k - 1].net_tx_bps, 1000, 1e-3);
	cr_assert_float_eq(pts[k - 1].disk_wr_bps, 4 << 20, 1);
	/* a counter that goes back (device re-created) gives 0, not 2^64 */
	n[0].rx_bytes = 10, n[1].rx_bytes += 100;
	cr_assert_eq(col_vm_set_nics(c, "x", n, 2, 3000000), 0);
	col_poll(c, 3000000);
	k = col_vm_history(c, 0, false, pts, 8);
	cr_assert_float_eq(pts[k - 1].net_rx_bps, 100, 1e-3);
	const struct col_nic *nv;
	cr_assert_eq(col_vm_nics(c, 0, &nv), 2);
	cr_assert_str_eq(nv[1].name, "tap1");

	/* Prometheus: one sample per (vm, nic) and (vm, disk) */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_eq(qv_metrics_render(c, NULL, f), 0);
	fclose(f);
	cr_assert_not_null(strstr(text, "# TYPE qvisor_vm_net_receive_bytes_total counter\n"));
	cr_assert_not_null(strstr(text, "qvisor_vm_net_receive_bytes_total{vm=\"x\",nic=\"tap0\"} 10\n"),
			   "%s", text);
	cr_assert_not_null(strstr(text, "qvisor_vm_disk_written_bytes_total{vm=\"x\",disk=\"disk0\"} "
					"4194304\n"), "%s", text);
	free(text);
	col_free(c);
}
