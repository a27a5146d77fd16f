/* SPDX-License-Identifier: MIT */
/* sched/cgroup pieces that need no cgroup2 controllers: layout detection from
 * mountinfo, the refusal message, the stats parsers, the "none" backend. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/cgroup.h"

/* The mountinfo of this development host (hybrid). */
static const char hybrid_mountinfo[] =
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/qvt-mountinfo-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(cgroup_parse, hybrid_layout_is_detected_and_described)
{
	char *mi = write_tmp(hybrid_mountinfo), desc[512];
	struct cg_host h;

	/* Point the v2 root at an empty dir: "controllers: (none)". */
	char dir[] = "/tmp/qvt-cgroot-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	cg_host_detect(mi, NULL, &h);
	cr_assert_eq(h.layout, CG_LAYOUT_HYBRID);
	cr_assert_str_eq(h.mount, "/sys/fs/cgroup/unified");
	cr_assert_eq(h.v1_bound, CG_CPU | CG_CPUSET | CG_MEMORY | CG_IO | CG_PIDS);
	cg_host_detect(mi, dir, &h);
	cg_host_describe(&h, desc, sizeof(desc));
	cr_assert(strstr(desc, "hybrid: cgroup v2 at /tmp/qvt-cgroot-"));
	cr_assert(strstr(desc, "has controllers: (none); cpu, cpuset, io, memory, pids are "
			       "bound to cgroup v1"), "%s", desc);
	rmdir(dir);
	unlink(mi);
	free(mi);
}

Test(cgroup_parse, unified_and_missing_layouts)
{
	char *mi = write_tmp("25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
	struct cg_host h;
	char desc[512];

	cg_host_detect(mi, NULL, &h);
	cr_assert_eq(h.layout, CG_LAYOUT_UNIFIED);
	cr_assert_str_eq(h.mount, "/sys/fs/cgroup");
	cr_assert_eq(h.v1_bound, 0);
	unlink(mi);
	free(mi);
	mi = write_tmp("22 1 0:5 / /proc rw - proc proc rw\n");
	cg_host_detect(mi, NULL, &h);
	cr_assert_eq(h.layout, CG_LAYOUT_NONE);
	cg_host_describe(&h, desc, sizeof(desc));
	cr_assert_str_eq(desc, "none: no cgroup2 file system is mounted");
	unlink(mi);
	free(mi);
}

Test(cgroup_parse, controller_names)
{
	char buf[96];
	cr_assert_eq(cg_controllers_parse("cpuset cpu io memory hugetlb pids rdma misc"), CG_ALL);
	cr_assert_eq(cg_controllers_parse("hugetlb"), 0);
	cr_assert_str_eq(cg_controllers_format(CG_CPU | CG_MEMORY, buf, sizeof(buf)), "cpu, memory");
	cr_assert_str_eq(cg_controllers_format(0, buf, sizeof(buf)), "(none)");
}

Test(cgroup_parse, required_controllers)
{
	struct cg_limits lim = { .l = { .memory_swap_max = -1 } };
	struct cg_io_limit io = { 8, 0, .wbps = 1 };

	cr_assert_eq(cg_limits_required(&lim), 0);
	lim.l.cpu_weight = 10;
	lim.l.pids_max = 5;
	cr_assert_eq(cg_limits_required(&lim), CG_CPU | CG_PIDS);
	lim.l.memory_swap_max = 0; /* "no swap" is a limit */
	lim.io = &io;
	lim.n_io = 1;
	lim.l.cpuset_cpus = "0";
	cr_assert_eq(cg_limits_required(&lim), CG_ALL);
}

Test(cgroup_parse, none_backend_refuses_limits_naming_the_layout)
{
	char *mi = write_tmp(hybrid_mountinfo);
	struct cg_manager_opts o = { .mountinfo = mi, .force_backend = "none" };
	struct qv_error err = {};
	cg_manager *m = NULL;
	cg_group *g = NULL;

	cr_assert_eq(cg_manager_new(&o, &m, &err), 0, "%s", err.message);
	cr_assert_str_eq(cg_manager_backend_id(m), "none");
	cr_assert_null(cg_manager_slice_path(m));
	struct cg_limits none = { .l = { .memory_swap_max = -1 } };
	cr_assert_eq(cg_manager_check(m, &none, &err), 0, "no limits must pass");
	struct cg_limits lim = { .l = { .memory_swap_max = -1, .cpu_max_quota_us = 50000,
					.memory_max = 1 << 30 } };
	cr_assert_eq(cg_manager_check(m, &lim, &err), -EOPNOTSUPP);
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert(strstr(err.message, "controllers cpu, memory not available"), "%s", err.message);
	cr_assert(strstr(err.message, "hybrid: cgroup v2 at /sys/fs/cgroup/unified"), "%s",
		  err.message);
	cr_assert(strstr(err.message, "are bound to cgroup v1"), "%s", err.message);
	/* Groups are no-ops: QEMU stays where the daemon is. */
	cr_assert_eq(cg_group_create(m, "vm-a", &g, &err), 0);
	cr_assert_eq(cg_group_fd(g), -1);
	struct cg_stats s;
	qv_error_clear(&err);
	cr_assert_lt(cg_group_read_stats(g, &s, &err), 0);
	cr_assert_eq(cg_group_remove(g, 10), 0);
	cg_manager_free(m);
	unlink(mi);
	free(mi);
}

Test(cgroup_parse, stat_files)
{
	struct cg_stats s = {};
	cg_parse_cpu_stat("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\n"
			  "nr_throttled 4\nthrottled_usec 777\n", &s);
	cr_assert_eq(s.cpu_usage_usec, 1500);
	cr_assert_eq(s.cpu_system_usec, 500);
	cr_assert_eq(s.cpu_nr_throttled, 4);
	cr_assert_eq(s.cpu_throttled_usec, 777);
	cg_parse_memory_stat("anon 4096\nfile 8192\nkernel_stack 16384\nslab 100\n"
			     "pgfault 7\npgmajfault 1\n", &s);
	cr_assert_eq(s.mem_anon, 4096);
	cr_assert_eq(s.mem_file, 8192);
	cr_assert_eq(s.mem_pgmajfault, 1);
	cg_parse_memory_events("low 0\nhigh 12\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n", &s);
	cr_assert_eq(s.mem_ev_high, 12);
	cr_assert_eq(s.mem_ev_oom_kill, 1);
	cg_parse_io_stat("254:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n"
			 "8:0 rbytes=5 wbytes=6 rios=7 wios=8 dbytes=0 dios=0\n", &s);
	cr_assert_eq(s.n_io, 2);
	cr_assert_eq(s.io[0].major, 254);
	cr_assert_eq(s.io[0].wbytes, 2048);
	cr_assert_eq(s.io[1].wios, 8);
	struct cg_psi p;
	cr_assert_eq(cg_parse_psi("some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\n"
				  "full avg10=0.10 avg60=0.00 avg300=0.00 total=99\n", &p), 0);
	cr_assert(p.present && p.has_full);
	cr_assert_float_eq(p.some_avg10, 1.5, 1e-9);
	cr_assert_eq(p.some_total, 12345);
	cr_assert_eq(p.full_total, 99);
	cr_assert_eq(cg_parse_psi("garbage", &p), -EINVAL);
	s.controllers = CG_ALL;
	s.psi_cpu = p;
	json_object *j = cg_stats_to_json(&s), *v, *w;
	cr_assert(json_object_object_get_ex(j, "cpu", &v));
	cr_assert(json_object_object_get_ex(v, "nr_throttled", &w));
	cr_assert_eq(json_object_get_int64(w), 4);
	cr_assert(json_object_object_get_ex(j, "io", &v));
	cr_assert_eq(json_object_array_length(v), 2);
	cr_assert(json_object_object_get_ex(j, "pressure", &v));
	cr_assert(json_object_object_get_ex(v, "cpu", &w));
	json_object_put(j);
}

Test(cgroup_parse, blkdev_of_a_file_is_a_whole_disk_or_a_clear_error)
{
	unsigned ma = 0, mi = 0;
	struct qv_error err = {};
	char path[64];

	/* /dev/shm is tmpfs: no block device. */
	snprintf(path, sizeof(path), "/dev/shm/qvt-blk-%d", (int)getpid());
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(cg_blkdev_for_path(path, &ma, &mi, &err), -ENODEV);
	cr_assert(strstr(err.message, "not a block device"), "%s", err.message);
	unlink(path);
	/* A file on a real disk maps to a disk (never a partition). */
	qv_error_clear(&err);
	if (cg_blkdev_for_path("/etc/hostname", &ma, &mi, &err) == 0) {
		char sys[96];
		snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/partition", ma, mi);
		cr_assert_neq(access(sys, F_OK), 0, "%u:%u is a partition", ma, mi);
	}
}
