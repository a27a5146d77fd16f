/* SPDX-License-Identifier: MIT */
/* Runs tests/sched/test_cgroup inside the TCG test guest, whose Debian kernel
 * has a full cgroup v2 (this host's has no cpu/memory controllers). The
 * binary, its shared libraries and a wrapper go into an extra initramfs
 * (scripts/mkguest.sh --extra); the guest runs the wrapper through qv.run
 * with QV_IN_TEST_VM=1 (a missing controller then fails instead of
 * skipping), psi=1 (Debian boots with PSI off) and a small virtio disk for
 * io.max. We assert QVISOR-RUN-EXIT 0 and that every expected test PASSed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "helpers/guest.h"

extern char **environ;

static const char *const expected[] = {
	"cpu_max_holds_a_busy_loop_at_20_percent",
	"cpu_max_live_change_takes_effect_within_a_period",
	"memory_max_triggers_an_oom_kill",
	"memory_high_holds_usage_near_the_limit",
	"pids_max_stops_a_fork_bomb",
	"stats_pressure_and_json",
	"changing_limits_resets_removed_fields",
	"io_max_on_the_disk_behind_a_file",
	"reconcile_removes_only_empty_unkept_groups",
	"daemon_leaf_and_no_internal_processes",
};

static int run_wait(char *const argv[], int timeout_s)
{
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	for (int i = 0; i < timeout_s * 10; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -ETIMEDOUT;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&buf, &size);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(m);
	fclose(f);
	return buf;
}

Test(cgroup_vm, sched_cgroup_tests_pass_on_a_real_cgroup2_in_the_guest, .timeout = 1200)
{
	QVT_REQUIRE_GUEST();
	const char *bd = getenv("QV_BUILD_DIR"), *src = getenv("QV_SRC_DIR");
	char bin[512], tmp[] = "/tmp/qvt-cgvm-XXXXXX", path[640], cmd[2048];

	snprintf(bin, sizeof(bin), "%s/tests/sched/test_cgroup", bd ? bd : "build");
	if (access(bin, X_OK) < 0)
		cr_skip_test("%s not built (make tests)", bin);
	cr_assert_not_null(mkdtemp(tmp));

	/* payload: /t/test_cgroup + /t/run.sh */
	snprintf(path, sizeof(path), "%s/x/t", tmp);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s' '%s/test_cgroup'", path, bin, path);
	cr_assert_eq(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/x/t/run.sh", tmp);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\nexport QV_IN_TEST_VM=1\n"
		   "exec /t/test_cgroup --verbose --color=never --jobs 1 2>&1\n");
	fclose(f);
	chmod(path, 0755);

	char xdir[600], img[600], mk[600], disk[600], log[600], kernel[600], append[256];
	snprintf(xdir, sizeof(xdir), "%s/x", tmp);
	snprintf(img, sizeof(img), "%s/cg.img", tmp);
	snprintf(mk, sizeof(mk), "%s/scripts/mkguest.sh", src ? src : ".");
	snprintf(disk, sizeof(disk), "file=%s/disk.raw,format=raw,if=virtio", tmp);
	snprintf(log, sizeof(log), "file:%s/serial.log", tmp);
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", qvt_guest_dir());
	snprintf(append, sizeof(append),
		 "console=ttyS0 quiet panic=-1 psi=1 qv.run=/t/run.sh");
	char *mkargv[] = { mk, "--extra", xdir, "--out", img, "--base", (char *)qvt_guest_dir(),
			   NULL };
	cr_assert_eq(run_wait(mkargv, 300), 0, "mkguest --extra failed");
	snprintf(path, sizeof(path), "%s/disk.raw", tmp);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(truncate(path, 16 << 20), 0);

	char *qargv[] = { "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine",
			  "q35", "-accel", "tcg", "-smp", "2", "-m", "512", "-kernel", kernel,
			  "-initrd", img, "-append", append, "-serial", log, "-display", "none",
			  "-no-reboot", "-drive", disk, NULL };
	int rc = run_wait(qargv, 1100);
	snprintf(path, sizeof(path), "%s/serial.log", tmp);
	_cleanup_free_ char *out = slurp(path);
	cr_assert_not_null(out, "no serial log");
	/* Keep the guest's report visible in the test output. */
	for (const char *p = out; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		if (strstr(line, "cgroup::") || strstr(line, "Synthesis") ||
		    strstr(line, "cpu.max") || strstr(line, "memory.high") ||
		    strstr(line, "QVISOR-RUN") || strstr(line, "Assertion"))
			printf("guest: %s\n", line);
		p = eol ? eol + 1 : NULL;
	}
	cr_assert_eq(rc, 0, "QEMU exited with %d", rc);
	cr_assert_not_null(strstr(out, "QVISOR-RUN-EXIT 0"), "the in-guest suite failed:\n%s",
			   out);
	for (size_t i = 0; i < ARRAY_SIZE(expected); i++) {
		char pass[160];
		snprintf(pass, sizeof(pass), "[PASS] cgroup::%s", expected[i]);
		cr_expect_not_null(strstr(out, pass), "%s did not pass in the guest", expected[i]);
	}
	cr_assert_null(strstr(out, "[SKIP]"), "a test skipped inside the guest");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	(void)system(cmd);
}
