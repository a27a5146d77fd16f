/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "helpers/netns.h"
#include "net/addr.h"
#include "net/bridge.h"
#include "net/dnsmasq.h"
#include "net/link.h"
#include "net/nl.h"
#include "net/tap.h"
#include "net/veth.h"

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/qvt-dnsmasq-XXXXXX";

	cr_assert_not_null(mkdtemp(tmpl));
	chmod(tmpl, 0755);
	return strdup(tmpl);
}

static void rm_rf(const char *dir)
{
	char *argv[] = { "rm", "-rf", (char *)dir, NULL };
	qvt_run(argv, NULL);
}

Test(dnsmasq, leases_file_parsing)
{
	char path[] = "/tmp/qvt-leases-XXXXXX";
	int fd = mkstemp(path);
	struct qv_lease *l = NULL;
	struct qv_error err = {};
	char mac[QV_MAC_STRLEN];
	size_t n = 0;

	cr_assert_geq(fd, 0);
	dprintf(fd, "1700000000 52:54:00:12:34:56 10.77.0.150 guest1 01:52:54:00:12:34:56\n"
		    "0 aa:bb:cc:dd:ee:02 10.77.0.151 * *\n"
		    "duid 00:01:00:01:2c:aa:bb:cc:52:54:00:12:34:56\n"
		    "1700000100 1234567 fd00::5 guest6 00:01:00:01\n"
		    "garbage line\n");
	close(fd);
	cr_assert_eq(qv_dnsmasq_read_leases(path, &l, &n, &err), 0, "%s", err.message);
	unlink(path);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(qv_mac_format(&l[0].mac, mac), "52:54:00:12:34:56");
	cr_assert_str_eq(l[0].ip, "10.77.0.150");
	cr_assert_str_eq(l[0].hostname, "guest1");
	cr_assert_eq(l[0].expiry, 1700000000);
	cr_assert_str_eq(l[1].hostname, "");
	cr_assert_eq(l[1].expiry, 0);
	free(l);

	/* missing file: no leases, no error */
	l = (void *)1;
	cr_assert_eq(qv_dnsmasq_read_leases("/nonexistent/leases", &l, &n, &err), 0);
	cr_assert_eq(n, 0);
	cr_assert_null(l);
}

Test(dnsmasq, bad_config_is_rejected)
{
	struct qv_dnsmasq_config c = {
		.network = "lab", .bridge = "br-lab", .run_dir = "/tmp/x",
		.range_start = "10.77.0.100", .range_end = "fd00::1",
	};
	struct qv_error err = {};
	qv_dnsmasq *d = NULL;

	cr_assert_eq(qv_dnsmasq_start(&c, &d, &err), -EINVAL);
	cr_assert(strstr(err.message, "same family"), "%s", err.message);
	qv_error_clear(&err);
	c.range_end = "10.77.0.200";
	c.lease_time = "12h\ndhcp-script=/bin/evil";
	cr_assert_eq(qv_dnsmasq_start(&c, &d, &err), -EINVAL);
	cr_assert_null(d);
}

Test(dnsmasq, missing_interface_fails_with_dnsmasq_message)
{
	QVT_REQUIRE_NETNS();
	if (access("/usr/sbin/dnsmasq", X_OK) < 0)
		cr_skip_test("dnsmasq-base not installed");
	_cleanup_free_ char *dir = make_tmpdir();
	struct qv_dnsmasq_config c = {
		.network = "lab", .bridge = "br-missing", .run_dir = dir,
		.range_start = "10.77.0.100", .range_end = "10.77.0.200",
	};
	struct qv_error err = {};
	qv_dnsmasq *d = NULL;

	cr_assert_lt(qv_dnsmasq_start(&c, &d, &err), 0);
	cr_assert_null(d);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert(strstr(err.message, "br-missing"), "message: %s", err.message);
	rm_rf(dir);
}

Test(dnsmasq, serves_a_lease_to_a_client_in_another_netns, .timeout = 60)
{
	QVT_REQUIRE_NETNS();
	if (access("/usr/sbin/dnsmasq", X_OK) < 0)
		cr_skip_test("dnsmasq-base not installed");
	if (access("/bin/busybox", X_OK) < 0)
		cr_skip_test("busybox not installed");
	_cleanup_netlink_ qv_netlink *nl = NULL;
	_cleanup_free_ char *dir = make_tmpdir();
	struct qv_error err = {};
	struct qv_link_info vc;
	qv_dnsmasq *d = NULL;
	int release = -1;
	pid_t child;

	cr_assert_eq(qv_netlink_open(&nl, &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_create(nl, "br-dhcp", &err), 0, "%s", err.message);
	cr_assert_eq(qv_addr_add(nl, "br-dhcp", "10.77.0.1/24", &err), 0, "%s", err.message);
	cr_assert_eq(qv_bridge_set_up(nl, "br-dhcp", true, &err), 0, "%s", err.message);
	cr_assert_eq(qv_veth_create(nl, "vh0", "vc0", &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_set_master(nl, "vh0", "br-dhcp", &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_set_up(nl, "vh0", true, &err), 0, "%s", err.message);
	cr_assert_eq(qv_link_lookup(nl, "vc0", &vc, &err), 0, "%s", err.message);

	child = qvt_netns_child(&release);
	cr_assert_gt(child, 0);
	cr_assert_eq(qv_link_move_to_netns_pid(nl, "vc0", child, &err), 0, "%s", err.message);

	struct qv_dnsmasq_config c = {
		.network = "lab", .bridge = "br-dhcp", .run_dir = dir,
		.range_start = "10.77.0.100", .range_end = "10.77.0.200",
	};
	cr_assert_eq(qv_dnsmasq_start(&c, &d, &err), 0, "%s", err.message);
	cr_assert_gt(qv_dnsmasq_pid(d), 0);
	cr_assert(qv_dnsmasq_running(d, NULL));
	cr_assert_geq(qv_dnsmasq_pidfd(d), 0);

	char *up[] = { "/bin/busybox", "ip", "link", "set", "vc0", "up", NULL };
	cr_assert_eq(qvt_run_netns(child, up, NULL), 0);
	char *dhcp[] = { "/bin/busybox", "udhcpc", "-i", "vc0", "-n", "-q", "-t", "10", "-T", "1",
			 "-x", "hostname:guest1", "-s", "/bin/true", NULL };
	char *out = NULL;
	int rc = qvt_run_netns(child, dhcp, &out);
	cr_assert_eq(rc, 0, "udhcpc failed (%d): %s", rc, out ? out : "");
	free(out);

	/* dnsmasq writes the lease right after the ACK; allow a moment. */
	struct qv_lease *leases = NULL;
	size_t n = 0;
	for (int i = 0; i < 100 && n == 0; i++) {
		free(leases);
		leases = NULL;
		cr_assert_eq(qv_dnsmasq_read_leases(qv_dnsmasq_leases_path(d), &leases, &n, &err),
			     0, "%s", err.message);
		if (!n)
			usleep(20000);
	}
	cr_assert_eq(n, 1, "expected one lease, got %zu", n);
	cr_assert_eq(memcmp(leases[0].mac.b, vc.mac.b, 6), 0, "lease MAC differs from vc0");
	cr_assert_eq(strncmp(leases[0].ip, "10.77.0.", 8), 0, "ip %s", leases[0].ip);
	int last = atoi(leases[0].ip + 8);
	cr_assert(last >= 100 && last <= 200, "ip %s outside the range", leases[0].ip);
	cr_assert_str_eq(leases[0].hostname, "guest1");
	cr_assert_gt(leases[0].expiry, (int64_t)time(NULL) + 3600, "12h lease expected");
	free(leases);

	pid_t pid = qv_dnsmasq_pid(d);
	cr_assert_eq(qv_dnsmasq_stop(d, 2000), 0);
	cr_assert_not(qv_dnsmasq_running(d, NULL));
	cr_assert_eq(kill(pid, 0), -1, "dnsmasq %d still alive after stop", (int)pid);
	qv_dnsmasq_free(d);
	qvt_netns_child_release(child, release);
	rm_rf(dir);
}
