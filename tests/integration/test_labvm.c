/* SPDX-License-Identifier: MIT */
/* Runs the lab-VM suites (tests/lab/test_*, with the test guest's kernel
 * and initramfs for qvisord's inner VMs) inside the lab VM
 * (scripts/labvm.sh): a TCG guest with a whole cgroup v2 in which inner
 * QEMUs are the VMs. We assert that the guest's run exited 0 and that every
 * expected test PASSed there (none skipped). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "helpers/guest.h"

static const char *const expected[] = {
	"hostloop::shares_2_to_1_then_the_idle_neighbour_frees_the_core",
	"hostloop::a_half_core_reservation_holds_against_three_spinners",
	"hostloop::a_latency_vm_gets_an_exclusive_core",
	"hostloop::a_steady_workload_settles_and_never_oscillates",
	"hostloop::a_best_effort_vm_is_an_idle_group_that_yields_and_fills",
	"daemon_loop::qvisord_allocates_reports_and_exports",
};

Test(labvm, resource_loop_suites_pass_in_the_lab_vm, .timeout = 1500)
{
	QVT_REQUIRE_GUEST();
	const char *bd = getenv("QV_BUILD_DIR") ?: "build", *src = getenv("QV_SRC_DIR") ?: ".";
	char bin[512], bin2[512], tmp[] = "/tmp/qvt-lab-XXXXXX", cmd[4096], log[600];

	snprintf(bin, sizeof(bin), "%s/tests/lab/test_hostloop", bd);
	snprintf(bin2, sizeof(bin2), "%s/tests/lab/test_daemon_loop", bd);
	if (access(bin, X_OK) < 0 || access(bin2, X_OK) < 0)
		cr_skip_test("%s not built (make tests)", bin);
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(log, sizeof(log), "%s/out.log", tmp);
	snprintf(cmd, sizeof(cmd),
		 "'%s/scripts/labvm.sh' --quiet --timeout 1400 --base '%s' --build '%s' --keep '%s/w' "
		 "--add '%s' --add '%s' --add '%s/vmlinuz' --add '%s/initrd.img' -- /lab/run-all.sh "
		 ">'%s' 2>&1; cat '%s/w/serial.log' >>'%s'",
		 src, qvt_guest_dir(), bd, tmp, bin, bin2, qvt_guest_dir(), qvt_guest_dir(), log,
		 tmp, log);
	int rc = system(cmd);
	FILE *f = fopen(log, "re");
	cr_assert_not_null(f);
	char *out = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&out, &size);
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		fputs(line, m);
		if (strstr(line, "[PASS]") || strstr(line, "[FAIL]") || strstr(line, "Assert") ||
		    strstr(line, "ratio") || strstr(line, "shares") || strstr(line, "used") || strstr(line, "allocation changes") ||
		    strstr(line, "labvm:") || strstr(line, "QVISOR-RUN"))
			printf("lab: %s", line);
	}
	fclose(m);
	fclose(f);
	cr_assert_not_null(strstr(out, "QVISOR-RUN-EXIT 0"), "the lab run failed (rc %d)", rc);
	for (size_t i = 0; i < ARRAY_SIZE(expected); i++) {
		char pass[200];
		snprintf(pass, sizeof(pass), "[PASS] %s", expected[i]);
		cr_expect_not_null(strstr(out, pass), "%s did not pass in the lab VM", expected[i]);
	}
	cr_assert_null(strstr(out, "[SKIP]"), "a test skipped inside the lab VM");
	free(out);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	(void)system(cmd);
}
