/* SPDX-License-Identifier: MIT */
/* systemd delegation: which subtree is ours, and where the unified backend
 * puts the slice and the daemon leaf below it. The layout test runs the real
 * backend on a plain directory tree standing in for /sys/fs/cgroup (the
 * kernel's rules are covered by tests/integration/test_cgroup_vm.c). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/cgroup.h"

Test(cgroup_delegate, the_deepest_unit_in_our_cgroup_is_the_delegated_root)
{
	char buf[CG_PATH_MAX];

	cr_assert_eq(cg_delegated_root("/qvisor.slice/qvisord.service", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/qvisor.slice/qvisord.service");
	/* DelegateSubgroup=daemon (systemd >= 254) or our own move. */
	cr_assert_eq(cg_delegated_root("/qvisor.slice/qvisord.service/daemon", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/qvisor.slice/qvisord.service");
	cr_assert_eq(cg_delegated_root("/system.slice/run-u7.scope/a/b", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/system.slice/run-u7.scope");
	/* Not a unit: the root, a slice, a name that only contains ".service". */
	cr_assert_eq(cg_delegated_root("/", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(cg_delegated_root("", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(cg_delegated_root("/user.slice", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(cg_delegated_root("/a.service.d/x", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(cg_delegated_root("/x/.service", buf, sizeof(buf)), -ENOENT);
	/* Too long for the buffer: an error, not a truncated path. */
	cr_assert_eq(cg_delegated_root("/qvisor.slice/qvisord.service", buf, 8), -ENAMETOOLONG);
}

static char root[64];

static void mk(const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	cr_assert(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s: %m", p);
}

static void touch(const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0, "%s: %m", p);
	close(fd);
}

static void put(const char *rel, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "%s: %m", p);
	fputs(text, f);
	fclose(f);
}

static size_t file_size(const char *rel)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	cr_assert_eq(stat(p, &st), 0, "%s: %m", p);
	return (size_t)st.st_size;
}

static bool is_dir(const char *rel)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void setup(void)
{
	snprintf(root, sizeof(root), "/tmp/qvt-cgdeleg-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	/* What systemd made for the unit: its cgroup, and the daemon in it. */
	mk("qvisor.slice");
	mk("qvisor.slice/qvisord.service");
	touch("qvisor.slice/qvisord.service/cgroup.procs");
	mk("qvisor.slice/qvisord.service/daemon");
	touch("qvisor.slice/qvisord.service/daemon/cgroup.procs");
	put("qvisor.slice/qvisord.service/cgroup.controllers", "cpu memory pids\n");
	touch("qvisor.slice/qvisord.service/cgroup.subtree_control");
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

Test(cgroup_delegate, slice_and_daemon_leaf_go_below_the_delegated_unit, .init = setup,
     .fini = teardown)
{
	struct cg_manager_opts o = { .root = root, .force_backend = "unified", .slice = "vms",
				     .move_self = true, .delegated = true,
				     .self = "/qvisor.slice/qvisord.service/daemon" };
	struct qv_error err = {};
	cg_manager *m = NULL;
	cg_group *g = NULL;
	char want[256], procs[64] = "";

	cr_assert_eq(cg_manager_new(&o, &m, &err), 0, "%s", err.message);
	snprintf(want, sizeof(want), "%s/qvisor.slice/qvisord.service/vms", root);
	cr_assert_str_eq(cg_manager_slice_path(m), want);
	cr_assert(!is_dir("vms"), "the slice must not sit at the cgroup root");
	/* We moved into <unit>/daemon, the leaf systemd restarts us in. */
	snprintf(want, sizeof(want), "%s/qvisor.slice/qvisord.service/daemon/cgroup.procs", root);
	FILE *f = fopen(want, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(procs, sizeof(procs), f));
	fclose(f);
	cr_assert_eq(atoi(procs), (int)getpid());
	cr_assert(!is_dir("qvisor.slice/qvisord.service/vms/daemon"));
	/* Started below the unit (DelegateSubgroup=daemon): controllers on. */
	cr_assert_gt(file_size("qvisor.slice/qvisord.service/cgroup.subtree_control"), 0);

	cr_assert_eq(cg_group_create(m, "vm-a", &g, &err), 0, "%s", err.message);
	cr_assert(is_dir("qvisor.slice/qvisord.service/vms/vm-a"));
	cg_group_free(g);
	cg_manager_free(m);
}

Test(cgroup_delegate, without_a_unit_the_slice_stays_at_the_root, .init = setup,
     .fini = teardown)
{
	struct cg_manager_opts o = { .root = root, .force_backend = "unified", .slice = "s",
				     .delegated = true, .self = "/user.slice" };
	struct qv_error err = {};
	cg_manager *m = NULL;
	char want[256];

	cr_assert_eq(cg_manager_new(&o, &m, &err), 0, "%s", err.message);
	snprintf(want, sizeof(want), "%s/s", root);
	cr_assert_str_eq(cg_manager_slice_path(m), want);
	cg_manager_free(m);
}

/* systemd < 254 starts the daemon in the unit's own cgroup: enabling
 * controllers there would make its next restart fail while VMs run. */
Test(cgroup_delegate, started_in_the_unit_root_no_controllers_at_its_top, .init = setup,
     .fini = teardown)
{
	struct cg_manager_opts o = { .root = root, .force_backend = "unified", .slice = "vms",
				     .move_self = true, .delegated = true,
				     .self = "/qvisor.slice/qvisord.service" };
	struct qv_error err = {};
	cg_manager *m = NULL;

	cr_assert_eq(cg_manager_new(&o, &m, &err), 0, "%s", err.message);
	cr_assert(is_dir("qvisor.slice/qvisord.service/vms"));
	cr_assert_gt(file_size("qvisor.slice/qvisord.service/daemon/cgroup.procs"), 0);
	cr_assert_eq(file_size("qvisor.slice/qvisord.service/cgroup.subtree_control"), 0);
	cr_assert_eq(cg_manager_controllers(m), 0);
	cg_manager_free(m);
}
