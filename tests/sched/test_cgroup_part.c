/* SPDX-License-Identifier: MIT */
/* The partition slice (sched/cgroup-part.c) on a plain directory tree
 * standing in for /sys/fs/cgroup: where latency VMs' groups go, how the
 * slice's cpus follow its partition roots, the kernel's refusal reported,
 * the slice gone with its last group. The kernel's side runs in the lab VM
 * (tests/lab/test_daemon_loop.c). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "helpers/file.h"
#include "sched/cgroup.h"
#include "sched/resloop.h"

static char root[64];

static void path(const char *rel, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", root, rel);
}

static void mk(const char *rel)
{
	char p[256];
	path(rel, p, sizeof(p));
	cr_assert(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s: %m", p);
}

static void put(const char *rel, const char *text)
{
	char p[256];
	path(rel, p, sizeof(p));
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "%s: %m", p);
	fputs(text, f);
	fclose(f);
}

static const char *get(const char *rel, char *buf, size_t size)
{
	char p[256];
	path(rel, p, sizeof(p));
	return qvt_first_line(p, buf, size);
}

static bool is_dir(const char *rel)
{
	char p[256];
	struct stat st;
	path(rel, p, sizeof(p));
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void setup(void)
{
	snprintf(root, sizeof(root), "/tmp/qvt-cgpart-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	put("cgroup.controllers", "cpuset cpu memory\n");
	put("cgroup.subtree_control", "");
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

Test(cgroup_part, cpu_lists_parse_into_masks)
{
	uint64_t m = 0;

	cr_assert_eq(cg_cpulist_parse("0-2,5\n", &m), 0);
	cr_assert_eq(m, 0x27);
	cr_assert_eq(cg_cpulist_parse("", &m), 0);
	cr_assert_eq(m, 0);
	cr_assert_eq(cg_cpulist_parse("63", &m), 0);
	cr_assert_eq(m, 1ull << 63);
	cr_assert_eq(cg_cpulist_parse("64", &m), -ERANGE);
	cr_assert_eq(cg_cpulist_parse("3-1", &m), -EINVAL);
	cr_assert_eq(cg_cpulist_parse("1;2", &m), -EINVAL);
	cr_assert_eq(cg_cpulist_parse("x", &m), -EINVAL);
}

/* The slice becomes a root of its partition roots' cores plus the new
 * ones; a member child's cores do not count; no cores left: a member. */
Test(cgroup_part, the_slice_fits_the_cores_of_its_partition_roots, .init = setup,
     .fini = teardown)
{
	char b[128], why[160], p[256];

	mk("lat.slice");
	put("lat.slice/cpuset.cpus.partition", "");
	put("lat.slice/cpuset.cpus", "");
	mk("lat.slice/vm-a");
	put("lat.slice/vm-a/cpuset.cpus.partition", "root\n");
	put("lat.slice/vm-a/cpuset.cpus", "3\n");
	mk("lat.slice/vm-b");
	put("lat.slice/vm-b/cpuset.cpus.partition", "member\n");
	put("lat.slice/vm-b/cpuset.cpus", "0-1\n");
	path("lat.slice", p, sizeof(p));
	int fd = open(p, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);

	cr_assert_eq(cg_partition_slice_fit(fd, "2", why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(get("lat.slice/cpuset.cpus", b, sizeof(b)), "2-3");
	cr_assert_str_eq(get("lat.slice/cpuset.cpus.partition", b, sizeof(b)), "root");

	/* the kernel's refusal, as cpuset.cpus.partition reads it back */
	put("lat.slice/cpuset.cpus.partition", "root invalid (Parent is not a partition root)\n");
	cr_assert_eq(cg_partition_slice_fit(fd, "2", why, sizeof(why)), -EPERM);
	cr_assert_str_eq(why, "root invalid (Parent is not a partition root)");
	cr_assert_eq(strncmp(get("lat.slice/cpuset.cpus.partition", b, sizeof(b)), "member", 6), 0,
		     "a refused slice is left a member: %s", b);

	/* its last partition root gone: a member again */
	put("lat.slice/cpuset.cpus.partition", "root\n");
	put("lat.slice/vm-a/cpuset.cpus.partition", "member\n");
	put("lat.slice/cpuset.cpus.partition", "root\n");
	cr_assert_eq(cg_partition_slice_fit(fd, NULL, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(strncmp(get("lat.slice/cpuset.cpus.partition", b, sizeof(b)), "member", 6), 0);
	cr_assert_eq(cg_partition_slice_fit(fd, "1-2,x", why, sizeof(why)), -EINVAL);
	close(fd);
}

/* Exclusive groups go in "<stem>-latency.slice" beside the slice; open
 * finds them there (a restarted daemon); the slice goes with its last
 * group, and a new manager finds one left by an earlier run. */
Test(cgroup_part, exclusive_groups_live_beside_the_slice, .init = setup, .fini = teardown)
{
	struct cg_manager_opts o = { .root = root, .force_backend = "unified",
				     .slice = "qvisor-1.slice" };
	struct qv_error err = {};
	cg_manager *m = NULL;
	cg_group *g = NULL, *s = NULL;
	char want[256];

	cr_assert_eq(cg_manager_new(&o, &m, &err), 0, "%s", err.message);
	cr_assert_null(cg_manager_part_slice_path(m), "made with the first exclusive group");
	cr_assert_eq(cg_group_create(m, "vm-t", &s, &err), 0, "%s", err.message);
	cr_assert_not(cg_group_is_exclusive(s));
	s = cg_group_free(s);
	cr_assert_eq(cg_group_create_exclusive(m, "vm-lat", &g, &err), 0, "%s", err.message);
	cr_assert(cg_group_is_exclusive(g));
	snprintf(want, sizeof(want), "%s/qvisor-1-latency.slice", root);
	cr_assert_str_eq(cg_manager_part_slice_path(m), want);
	snprintf(want, sizeof(want), "%s/qvisor-1-latency.slice/vm-lat", root);
	cr_assert_str_eq(cg_group_path(g), want);
	cg_group_free(g);

	/* a new manager (a restarted daemon) opens it in either slice */
	cg_manager *m2 = NULL;
	cr_assert_eq(cg_manager_new(&o, &m2, &err), 0, "%s", err.message);
	cr_assert_not_null(cg_manager_part_slice_path(m2));
	cr_assert_eq(cg_group_open(m2, "vm-lat", &g, &err), 0, "%s", err.message);
	cr_assert(cg_group_is_exclusive(g));
	cr_assert_str_eq(cg_group_path(g), want);
	cr_assert_eq(cg_group_open(m2, "vm-none", &s, &err), -ENOENT);
	cr_assert_str_eq(err.reason, "not-found", "%s", err.message);
	cr_assert(is_dir("qvisor-1.slice/vm-t"));

	/* the last exclusive group removed: the slice goes too */
	cr_assert_eq(cg_group_remove(g, 100), 0);
	cr_assert_not(is_dir("qvisor-1-latency.slice"));
	cr_assert_null(cg_manager_part_slice_path(m2));
	cg_manager_free(m2);
	cg_manager_free(m);
}

/* The loop (sched/resloop-part.c) with a latency VM in a partition slice:
 * the slice becomes a root of the VM's core before the VM's group does;
 * a slice the kernel refuses leaves the VM on the cpuset fallback, with
 * the kernel's reason in policy.show. */
static const char *loop_exclusive_by(const char *slice_state, char *why, size_t size)
{
	static const char *const knobs[] = { "cpu.weight", "cpu.max", "cpuset.cpus",
					     "memory.low", "memory.high", "memory.max",
					     "cpuset.cpus.partition" };
	static char by[32];
	struct hl_loop_opts o = { .caps = { .ncpus = 2, .mem_total = 1ull << 32 },
				  .mode = VM_LOOP_ENFORCE };
	struct vm_resources lat = { .cpu_shares = 1000, .klass = VM_CLASS_LATENCY };
	struct hl_change ch[32];
	qv_collector *c = NULL;
	hl_loop *l = NULL;
	char d[256], s[256];

	mk("lat.slice");
	put("lat.slice/cpuset.cpus.partition", slice_state);
	put("lat.slice/cpuset.cpus", "");
	mk("lat.slice/vm-l");
	for (size_t i = 0; i < ARRAY_SIZE(knobs); i++) {
		snprintf(d, sizeof(d), "lat.slice/vm-l/%s", knobs[i]);
		put(d, "");
	}
	put("lat.slice/vm-l/cpu.stat", "usage_usec 0\n");
	put("lat.slice/vm-l/memory.current", "0\n");
	path("lat.slice/vm-l", d, sizeof(d));
	path("lat.slice", s, sizeof(s));
	cr_assert_eq(col_new(NULL, &c), 0);
	cr_assert_eq(hl_loop_new(&o, c, &l), 0);
	cr_assert_eq(hl_loop_add_vm(l, "l", d, &lat, 1, 256 << 20), 0);
	cr_assert_eq(hl_loop_vm_set_partition_slice(l, "nope", s), -ENOENT);
	cr_assert_eq(hl_loop_vm_set_partition_slice(l, "l", s), 0);
	col_poll(c, 1000000);
	/* the first tick writes the cpuset; the partition waits for a tick
	 * without a cpuset write (sched/resloop-tick.c) */
	cr_assert_gt(hl_loop_tick(l, ch, 32), 0);
	cr_assert_str_eq(get("lat.slice/vm-l/cpuset.cpus", d, sizeof(d)), "1");
	cr_assert_str_eq(get("lat.slice/vm-l/cpuset.cpus.partition", d, sizeof(d)), "",
			 "a partition root in the tick of the cpuset write");
	path("lat.slice/vm-l", d, sizeof(d));
	col_poll(c, 2000000);
	hl_loop_tick(l, ch, 32);
	json_object *j = hl_loop_vm_json(l, "l"), *a, *v;
	cr_assert(json_object_object_get_ex(j, "allocation", &a));
	snprintf(by, sizeof(by), "%s",
		 json_object_object_get_ex(a, "exclusive_by", &v) ? json_object_get_string(v) : "");
	snprintf(why, size, "%s",
		 json_object_object_get_ex(a, "partition_refused", &v) ? json_object_get_string(v)
								       : "");
	json_object_put(j);
	hl_loop_free(l);
	col_free(c);
	return by;
}

Test(cgroup_part, the_loop_makes_the_slice_a_root_before_the_group, .init = setup,
     .fini = teardown)
{
	char b[128], why[256];

	cr_assert_str_eq(loop_exclusive_by("", why, sizeof(why)), "partition", "%s", why);
	cr_assert_str_eq(get("lat.slice/cpuset.cpus", b, sizeof(b)), "1");
	cr_assert_str_eq(get("lat.slice/cpuset.cpus.partition", b, sizeof(b)), "root");
	cr_assert_str_eq(get("lat.slice/vm-l/cpuset.cpus", b, sizeof(b)), "1");
	cr_assert_str_eq(get("lat.slice/vm-l/cpuset.cpus.partition", b, sizeof(b)), "root");

	cr_assert_str_eq(loop_exclusive_by("root invalid (Cpu list in cpuset.cpus not exclusive)\n",
					   why, sizeof(why)), "cpuset");
	cr_assert_str_eq(why, "the kernel refused the latency slice a partition root of 1: root "
			      "invalid (Cpu list in cpuset.cpus not exclusive)");
	cr_assert_str_eq(get("lat.slice/vm-l/cpuset.cpus.partition", b, sizeof(b)), "",
			 "the group is not tried after its slice was refused");
}
