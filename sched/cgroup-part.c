/* SPDX-License-Identifier: MIT */
/* The partition slice: a second slice beside the manager's, for groups
 * whose cores are exclusive (latency VMs).
 *
 *   <base>/<slice>            the shared VMs (a member: its cpus are everyone's)
 *   <base>/<stem>-latency.slice  a cpuset partition root of the union of its
 *                             children's partition cores; each child a
 *                             partition root of its own cores
 *
 * On 6.1 (no cpuset.cpus.exclusive, so no remote partitions) a group can be
 * a partition root only when its parent is one. The cgroup root always is,
 * so the latency VMs' groups live in a slice directly below it that becomes
 * a partition root of exactly their cores: those cores then leave the
 * root's effective cpus and every other group's (the shared slice, system
 * services, qvisord). The slice is created with the first exclusive group
 * and, after the last one is removed, made a member again and removed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "sched/alloc.h" /* hl_cpuset_format */
#include "sched/cgroup-internal.h"

#define PART_FILE "cpuset.cpus.partition"

int cg_cpulist_parse(const char *s, uint64_t *ret)
{
	uint64_t mask = 0;

	while (s && *s && *s != '\n') {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;
		if (end == s)
			return -EINVAL;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s || b < a)
				return -EINVAL;
		}
		if (b >= 64)
			return -ERANGE; /* like the allocator: at most 64 CPUs */
		for (unsigned long c = a; c <= b; c++)
			mask |= 1ull << c;
		if (*end == ',')
			s = end + 1;
		else if (!*end || *end == '\n')
			s = end;
		else
			return -EINVAL;
	}
	*ret = mask;
	return 0;
}

/* "root", "member", "root invalid (...)": the first line, no newline. */
static int read_state(int fd, char *buf, size_t size)
{
	ssize_t n = cg_read_at(fd, PART_FILE, buf, size);
	if (n < 0)
		return (int)n;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int add_root(int slice_fd, int g, const char *name, void *ud)
{
	uint64_t *mask = ud, m;
	char st[128], cpus[256];

	if (g >= 0 && read_state(g, st, sizeof(st)) == 0 && streq(st, "root") &&
	    cg_read_at(g, "cpuset.cpus", cpus, sizeof(cpus)) >= 0 && cg_cpulist_parse(cpus, &m) == 0)
		*mask |= m;
	return 0;
}

/* The cores of slice_fd's children that are partition roots now. */
static uint64_t children_roots(int slice_fd)
{
	uint64_t mask = 0;

	(void)cg_each_group(slice_fd, add_root, &mask);
	return mask;
}

int cg_partition_slice_fit(int slice_fd, const char *adding, char *why, size_t size)
{
	char st[128], cpus[256];
	uint64_t mask = 0;
	int r;

	if (why && size)
		why[0] = '\0';
	if (adding && (r = cg_cpulist_parse(adding, &mask)) < 0) {
		if (why)
			snprintf(why, size, "cpus \"%s\" not understood", adding);
		return r;
	}
	if ((r = read_state(slice_fd, st, sizeof(st))) < 0) {
		if (why)
			snprintf(why, size, "the kernel has no cpuset partitions (%s)", PART_FILE);
		return r;
	}
	mask |= children_roots(slice_fd);
	if (!mask) /* nobody left: its cores go back to everyone */
		return streq(st, "member") ? 0 : cg_write_at(slice_fd, PART_FILE, "member");
	hl_cpuset_format(mask, cpus, sizeof(cpus));
	r = cg_write_at(slice_fd, "cpuset.cpus", cpus);
	if (r < 0) {
		if (why)
			snprintf(why, size, "cpuset.cpus %s: %s", cpus, strerror(-r));
		return r;
	}
	if (!streq(st, "root"))
		(void)cg_write_at(slice_fd, PART_FILE, "root");
	if ((r = read_state(slice_fd, st, sizeof(st))) == 0 && streq(st, "root"))
		return 0;
	if (why)
		snprintf(why, size, "%s", r < 0 ? strerror(-r) : st);
	(void)cg_write_at(slice_fd, PART_FILE, "member");
	return -EPERM;
}

/* "qvisor.slice" -> "qvisor-latency.slice"; "vms" -> "vms-latency". */
static int part_name(const char *slice, char **ret)
{
	size_t n = strlen(slice);
	bool dot = n > 6 && streq(slice + n - 6, ".slice");

	if (asprintf(ret, "%.*s-latency%s", (int)(dot ? n - 6 : n), slice, dot ? ".slice" : "") < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

int cg_part_slice_open(cg_manager *m, bool create, struct qv_error *errp)
{
	_cleanup_free_ char *name = NULL;
	_cleanup_close_ int base_fd = -1;
	int r;

	if (m->part_fd >= 0)
		return 0;
	if (!m->base_path)
		return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED, "no cgroup v2 slice");
	if ((r = part_name(m->slice_name, &name)) < 0)
		return r;
	base_fd = open(m->base_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (base_fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "Cannot open %s: %m",
				    m->base_path);
	r = cg_v2_slice_open(base_fd, m->base_path, name, create, &m->part_path, &m->part_fd, errp);
	if (r < 0)
		return r;
	if (create)
		cg_v2_enable_controllers(m->part_fd, m->part_path);
	return 0;
}

static int found(int slice_fd, int g, const char *name, void *ud)
{
	return 1;
}

static bool has_children(int fd)
{
	return cg_each_group(fd, found, NULL) != 0; /* an error: keep it */
}

void cg_part_slice_settle(cg_manager *m)
{
	char why[160];

	if (m->part_fd < 0)
		return;
	int r = cg_partition_slice_fit(m->part_fd, NULL, why, sizeof(why));
	if (r < 0 && r != -ENOENT) /* ENOENT: no cpuset partitions at all */
		log_warning("cgroup: %s: cannot fit the partition to its groups: %s", m->part_path,
			    why);
	if (has_children(m->part_fd))
		return;
	(void)cg_write_at(m->part_fd, PART_FILE, "member");
	close(m->part_fd);
	m->part_fd = -1;
	if (rmdir(m->part_path) < 0 && errno != ENOENT)
		log_warning("cgroup: cannot remove %s: %m", m->part_path);
	else
		log_debug("Removed the partition slice %s", m->part_path);
}

const char *cg_manager_part_slice_path(const cg_manager *m)
{
	return m->part_fd >= 0 ? m->part_path : NULL;
}

bool cg_group_is_exclusive(const cg_group *g)
{
	return g->excl;
}
