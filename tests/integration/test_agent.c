/* SPDX-License-Identifier: MIT */
/* QEMU guest agent end to end: Debian's qemu-ga bundled into the test guest
 * (mkguest.sh --extra), real qvisord and QEMU (TCG). The agent reports the
 * guest's IP addresses (vm.agent-info, `qvisor info`) and fsfreeze status;
 * an agent flooding garbage is cut off while the daemon keeps serving. */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 120000

static struct qvt_daemon D;
static char agent_img[256];

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(agent, .init = setup, .fini = teardown);

/* The test guest plus /usr/sbin/qemu-ga and its libraries. */
static void build_agent_initrd(void)
{
	const char *src = getenv("QV_SRC_DIR");
	struct stat st;
	char cmd[1024];

	if (stat("/usr/sbin/qemu-ga", &st) != 0)
		cr_skip_test("qemu-guest-agent is not installed (scripts/install-deps.sh)");
	snprintf(agent_img, sizeof(agent_img), "%s/qga.img", D.dir);
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p %s/qga-extra/usr/sbin; cp /usr/sbin/qemu-ga %s/qga-extra/usr/sbin/; "
		 "%s/scripts/mkguest.sh --extra %s/qga-extra --out %s --base %s >%s/mkguest.log 2>&1",
		 D.dir, D.dir, src && *src ? src : ".", D.dir, agent_img, qvt_guest_dir(), D.dir);
	cr_assert_eq(system(cmd), 0, "building the agent guest failed (%s/mkguest.log)", D.dir);
}

static void boot(const char *name, const char *cmdline_extra, const char *marker)
{
	struct qv_error err = {};
	char extra[1024];

	snprintf(extra, sizeof(extra),
		 "{\"memory\": 192, \"guest_agent\": true, \"initrd\": \"%s\", "
		 "\"cmdline\": \"console=ttyS0 panic=-1 %s\"}", agent_img, cmdline_extra);
	cr_assert_eq(qvt_define_guest(&D, name, extra, &err), 0, "%s", err.message);
	json_object_put(qvt_call_name(&D, "vm.start", name, &err));
	cr_assert(!err.set, "vm.start %s: %s", name, err.message);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, name), marker, BOOT_TIMEOUT_MS), 0,
		     "%s: no %s on the console", name, marker);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, name), QVT_GUEST_READY, 30000), 0);
}

static bool has_ip(json_object *info, const char *ifname, const char *ip)
{
	json_object *ifs, *n, *ips;

	if (!json_object_object_get_ex(info, "interfaces", &ifs))
		return false;
	for (size_t i = 0; i < json_object_array_length(ifs); i++) {
		json_object *it = json_object_array_get_idx(ifs, i);
		if (!json_object_object_get_ex(it, "name", &n) || strcmp(json_object_get_string(n), ifname) ||
		    !json_object_object_get_ex(it, "ips", &ips))
			continue;
		for (size_t k = 0; k < json_object_array_length(ips); k++)
			if (!strcmp(json_object_get_string(json_object_array_get_idx(ips, k)), ip))
				return true;
	}
	return false;
}

static int run_cli(const char *args, char *out, size_t size)
{
	return qvt_cli(&D, args, out, size);
}

Test(agent, reports_ips_freezes_and_cuts_off_a_flooding_agent, .timeout = 400)
{
	QVT_REQUIRE_DAEMON(&D);
	build_agent_initrd();
	struct qv_error err = {};
	json_object *r;
	char out[16384];

	boot("ga", "qv.ip=lo:10.9.8.7/32", "QVISOR-AGENT started");
	r = qvt_call_name(&D, "vm.agent-info", "ga", &err);
	cr_assert_not_null(r, "vm.agent-info: %s", err.message);
	cr_assert(has_ip(r, "lo", "10.9.8.7/32"), "%s", json_object_to_json_string(r));
	json_object_put(r);
	cr_assert_eq(run_cli("info ga", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "10.9.8.7/32"), "qvisor info shows no agent IP:\n%s", out);
	cr_assert_eq(qvt_callf(&D, "vm.agent-fsfreeze", &r, &err,
			       "{\"name\": \"ga\", \"action\": \"status\"}"), 0, "%s", err.message);
	cr_assert(strstr(json_object_to_json_string(r), "thawed"), "%s", json_object_to_json_string(r));
	json_object_put(r);
	/* freeze and thaw: the test guest's filesystems are all in memory (no
	 * FIFREEZE), so the agent freezes none and stays "thawed"; the status
	 * must agree with the count it reports. */
	json_object *n;
	cr_assert_eq(qvt_callf(&D, "vm.agent-fsfreeze", &r, &err,
			       "{\"name\": \"ga\", \"action\": \"freeze\"}"), 0, "%s", err.message);
	cr_assert(json_object_object_get_ex(r, "filesystems", &n), "%s", json_object_to_json_string(r));
	bool frozen = json_object_get_int64(n) > 0;
	json_object_put(r);
	cr_assert_eq(qvt_callf(&D, "vm.agent-fsfreeze", &r, &err,
			       "{\"name\": \"ga\", \"action\": \"status\"}"), 0, "%s", err.message);
	cr_assert(strstr(json_object_to_json_string(r), frozen ? "\"frozen\"" : "\"thawed\""), "%s",
		  json_object_to_json_string(r));
	json_object_put(r);
	cr_assert_eq(qvt_callf(&D, "vm.agent-fsfreeze", &r, &err,
			       "{\"name\": \"ga\", \"action\": \"thaw\"}"), 0, "%s", err.message);
	json_object_put(r);

	/* a hostile agent: garbage, endlessly */
	boot("flood", "qv.agent=flood", "QVISOR-AGENT flood");
	qv_error_clear(&err);
	cr_assert_null(qvt_call_name(&D, "vm.agent-info", "flood", &err));
	cr_assert_str_eq(err.reason, "unavailable", "%s", err.message);
	cr_assert(strstr(err.message, "cut off"), "%s", err.message);
	qv_error_clear(&err);
	cr_assert_null(qvt_call_name(&D, "vm.agent-info", "flood", &err));
	cr_assert(strstr(err.message, "until QEMU restarts"), "%s", err.message);
	cr_assert_eq(qvt_wait_for_line_in_file(D.log, "guest agent cut off", 1000), 0);

	/* the daemon and the good agent keep serving */
	qv_error_clear(&err);
	r = qvt_call_name(&D, "vm.agent-info", "ga", &err);
	cr_assert_not_null(r, "%s", err.message);
	json_object_put(r);
	char st[32];
	cr_assert_str_eq(qvt_vm_state(&D, "flood", st, sizeof(st)), "running");

	/* stop goes through the agent first (the guest's /sbin/shutdown says so) */
	r = qvt_call_name(&D, "vm.stop", "ga", &err);
	cr_assert_not_null(r, "%s", err.message);
	cr_assert(strstr(json_object_to_json_string(r), "\"stopped\""), "%s",
		  json_object_to_json_string(r));
	json_object_put(r);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "ga"), "QVISOR-AGENT-SHUTDOWN", 1000),
		     0, "the guest was not shut down through its agent");
	/* the cut-off agent is skipped: ACPI */
	r = qvt_call_name(&D, "vm.stop", "flood", &err);
	cr_assert_not_null(r, "%s", err.message);
	cr_assert(strstr(json_object_to_json_string(r), "powerdown"), "%s",
		  json_object_to_json_string(r));
	json_object_put(r);
}
