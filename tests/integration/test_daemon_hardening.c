/* SPDX-License-Identifier: MIT */
/* qvisord's own hardening (docs/security.md): no core dumps of a process
 * that holds keys; no plain-HTTP etcd unless the operator says
 * --insecure. Real qvisord, no guest. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "helpers/netns.h"
#include "helpers/qvisord.h"

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(daemon_hardening, .init = setup, .fini = teardown, .timeout = 60);

Test(daemon_hardening, no_core_file_limit)
{
	char path[64], line[256];
	bool seen = false;

	QVT_REQUIRE_DAEMON(&D);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)D.pid);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Max core file size", 18) == 0) {
			unsigned long long soft, hard;
			cr_assert_eq(sscanf(line + 18, " %llu %llu", &soft, &hard), 2, "%s", line);
			cr_assert_eq(soft, 0, "%s", line);
			cr_assert_eq(hard, 0, "%s", line);
			seen = true;
		}
	fclose(f);
	cr_assert(seen);
}

Test(daemon_hardening, plain_http_etcd_needs_insecure)
{
	char dir[] = "/tmp/qvh-XXXXXX", state[64], run[64];
	_cleanup_free_ char *out = NULL;

	if (access(qvt_daemon_binary(), X_OK) < 0)
		cr_skip_test("qvisord not built");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(run, sizeof(run), "%s/run", dir);
	/* its stderr on our pipe */
	char *const argv[] = { "sh", "-c", "exec \"$@\" 2>&1", "sh",
			       (char *)qvt_daemon_binary(), "--state-dir", state, "--run-dir", run,
			       "--no-kvm-probe", "--cluster-endpoints", "http://127.0.0.1:9",
			       "--cluster-host", "h1", "--cluster-address", "127.0.0.1", NULL };
	int st = qvt_run(argv, &out);
	char *const rm[] = { "rm", "-rf", dir, NULL };
	qvt_run(rm, NULL);
	cr_assert_eq(st, 2, "exit %d: %s", st, out ? out : "");
	cr_assert(out && strstr(out, "plain http:// etcd endpoint") && strstr(out, "--insecure"),
		  "%s", out ? out : "");
}
