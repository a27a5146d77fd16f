/* SPDX-License-Identifier: MIT */
/* The Debian package end to end: scripts/test-package.sh builds it, installs
 * it into a throwaway root, boots the test guest through the installed
 * daemon and CLI, and purges it (docs/install.md). Each step fails the
 * script with the reason, which this test shows. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static bool have(const char *prog)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

Test(package, build_install_boot_purge, .timeout = 600)
{
	const char *src = getenv("QV_SRC_DIR");
	char log[] = "/tmp/qvt-package-XXXXXX", cmd[1024], line[512];

	if (geteuid() != 0)
		cr_skip_test("needs root (dpkg --root, the daemon)");
	if (!have("dpkg-buildpackage") || !have("dh"))
		cr_skip_test("dpkg-dev and debhelper are not installed (scripts/install-deps.sh)");
	int fd = mkstemp(log);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "'%s/scripts/test-package.sh' >'%s' 2>&1", src ? src : ".",
		 log);
	int st = system(cmd);

	FILE *f = fopen(log, "r");
	cr_assert_not_null(f);
	bool ok_line = false;
	while (fgets(line, sizeof(line), f)) {
		fputs(line, stderr);
		if (strcmp(line, "test-package: ok\n") == 0)
			ok_line = true;
	}
	fclose(f);
	unlink(log);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "scripts/test-package.sh failed (above)");
	cr_assert(ok_line, "the script did not reach its end");
}
