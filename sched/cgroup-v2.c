/* SPDX-License-Identifier: MIT */
/* The "unified" backend: a delegated cgroup-v2 subtree.
 *
 *   <mount>/<slice>/            controllers enabled in cgroup.subtree_control
 *   <mount>/<slice>/daemon      the daemon (when move_self)
 *   <mount>/<slice>/vm-<name>   one leaf per QEMU
 *
 * Started by systemd with Delegate=yes, the same below our unit instead:
 *   <mount>/<unit cgroup>/daemon, <mount>/<unit cgroup>/<slice>/vm-<name>
 *
 * Interface files are written in sched/cgroup-v2-files.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "sched/cgroup-internal.h"

#define DAEMON_LEAF "daemon"

static const char *const ctrl_order[] = { "cpuset", "cpu", "io", "memory", "pids" };

/* Enable each of our controllers listed in dirfd's cgroup.controllers in its
 * cgroup.subtree_control, one at a time (one refusal does not block the
 * others). */
void cg_v2_enable_controllers(int dirfd, const char *where)
{
	char avail[512];
	if (cg_read_at(dirfd, "cgroup.controllers", avail, sizeof(avail)) < 0)
		return;
	unsigned mask = cg_controllers_parse(avail);
	for (size_t i = 0; i < ARRAY_SIZE(ctrl_order); i++) {
		char cmd[32];
		if (!(mask & cg_controllers_parse(ctrl_order[i])))
			continue;
		snprintf(cmd, sizeof(cmd), "+%s", ctrl_order[i]);
		int r = cg_write_at(dirfd, "cgroup.subtree_control", cmd);
		if (r < 0)
			log_debug("Cannot enable %s in %s: %s, ignoring", ctrl_order[i], where,
				  strerror(-r));
	}
}

static int move_pid_to(const char *dir, pid_t pid)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char buf[32];

	if (fd < 0)
		return -errno;
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	return cg_write_at(fd, "cgroup.procs", buf);
}

/* <mount>, or below it the subtree systemd delegated to us. */
static int choose_base(cg_manager *m, const struct cg_manager_opts *o)
{
	char deleg[CG_PATH_MAX];
	int r;

	if (o->delegated && cg_delegated_root(m->host.self, deleg, sizeof(deleg)) == 0) {
		m->delegated = true;
		/* systemd >= 254 (DelegateSubgroup=) starts us in a subgroup of
		 * the unit; older ones in the unit's own cgroup, and they would
		 * fail to restart us (EBUSY) once that cgroup enables controllers
		 * while VMs run below it. */
		m->unit_controllers = !streq(m->host.self, deleg);
	} else if (o->delegated)
		log_debug("No systemd unit in our cgroup \"%s\": slice at the cgroup root",
			  m->host.self);
	r = asprintf(&m->base_path, "%s%s", m->host.mount, m->delegated ? deleg : "");
	if (r < 0) {
		m->base_path = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Move the calling process into dir/daemon (dir: the slice, or the delegated
 * subtree, where systemd's DelegateSubgroup=daemon starts us again). */
static int move_self(cg_manager *m, int dirfd, const char *dir, struct qv_error *errp)
{
	_cleanup_free_ char *leaf = NULL;
	int r;

	if (mkdirat(dirfd, DAEMON_LEAF, 0755) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, QV_REASON_PERMISSION,
				    "Cannot create cgroup %s/" DAEMON_LEAF ": %m", dir);
	if (asprintf(&m->parent_path, "%s%s", m->host.mount,
		     streq(m->host.self, "/") ? "" : m->host.self) < 0) {
		m->parent_path = NULL;
		return -ENOMEM;
	}
	if (asprintf(&leaf, "%s/" DAEMON_LEAF, dir) < 0) {
		leaf = NULL;
		return -ENOMEM;
	}
	r = move_pid_to(leaf, getpid());
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_PERMISSION,
				    "Cannot move qvisord into %s: %s", leaf, strerror(-r));
	m->moved_self = true;
	return 0;
}

int cg_v2_slice_open(int base_fd, const char *base_path, const char *name, bool create,
		     char **ret_path, int *ret_fd, struct qv_error *errp)
{
	free(*ret_path);
	if (asprintf(ret_path, "%s/%s", base_path, name) < 0) {
		*ret_path = NULL;
		return -ENOMEM;
	}
	if (create && mkdirat(base_fd, name, 0755) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, QV_REASON_PERMISSION,
				    "Cannot create cgroup %s: %m", *ret_path);
	*ret_fd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*ret_fd < 0)
		return qv_error_set(errp, errno,
				    errno == ENOENT ? QV_REASON_NOT_FOUND : QV_REASON_IO_ERROR,
				    "Cannot open cgroup %s: %m", *ret_path);
	return 0;
}

static int v2_setup(cg_manager *m, const struct cg_manager_opts *o, struct qv_error *errp)
{
	_cleanup_close_ int base_fd = -1;
	char ctl[512];
	int r;

	if (!m->host.mount[0])
		return qv_error_set(errp, ENOENT, QV_REASON_UNSUPPORTED,
				    "no cgroup2 file system is mounted");
	r = choose_base(m, o);
	if (r < 0)
		return r;
	base_fd = open(m->base_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (base_fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "Cannot open %s: %m",
				    m->base_path);
	r = cg_v2_slice_open(base_fd, m->base_path, m->slice_name, true, &m->slice_path,
			     &m->slice_fd, errp);
	if (r < 0)
		return r;
	if (o->move_self) {
		r = m->delegated ? move_self(m, base_fd, m->base_path, errp)
				 : move_self(m, m->slice_fd, m->slice_path, errp);
		if (r < 0)
			return r;
	}
	/* The root is exempt from no-internal-processes; a delegated subtree's
	 * top and the slice have no processes of their own once ours moved to
	 * the daemon leaf. */
	if (!m->delegated || m->unit_controllers)
		cg_v2_enable_controllers(base_fd, m->base_path);
	else
		log_debug("Started in the unit's own cgroup: no controllers for VMs in %s",
			  m->base_path);
	cg_v2_enable_controllers(m->slice_fd, m->slice_path);
	/* latency VMs of an earlier run may still be in the partition slice */
	(void)cg_part_slice_open(m, false, NULL);
	if (cg_read_at(m->slice_fd, "cgroup.subtree_control", ctl, sizeof(ctl)) >= 0)
		m->controllers = cg_controllers_parse(ctl);
	return 0;
}

/* The directory of g's slice: the slice, or the partition slice. */
static int parent_fd(const cg_group *g)
{
	return g->excl ? g->m->part_fd : g->m->slice_fd;
}

static int v2_group_open(cg_manager *m, cg_group *g, bool create, struct qv_error *errp)
{
	int r;

	if (g->excl && (r = cg_part_slice_open(m, create, errp)) < 0)
		return r;
	if (asprintf(&g->path, "%s/%s", g->excl ? m->part_path : m->slice_path, g->name) < 0) {
		g->path = NULL;
		return -ENOMEM;
	}
	if (create && mkdirat(parent_fd(g), g->name, 0755) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, QV_REASON_PERMISSION,
				    "Cannot create cgroup %s: %m", g->path);
	g->fd = openat(parent_fd(g), g->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g->fd < 0)
		return qv_error_set(errp, errno,
				    errno == ENOENT ? QV_REASON_NOT_FOUND : QV_REASON_IO_ERROR,
				    "Cannot open cgroup %s: %m", g->path);
	return 0;
}

static int v2_attach(cg_group *g, pid_t pid, struct qv_error *errp)
{
	char buf[32];
	int r;

	snprintf(buf, sizeof(buf), "%d", (int)pid);
	r = cg_write_at(g->fd, "cgroup.procs", buf);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "Cannot move %d into %s: %s",
				    (int)pid, g->path, strerror(-r));
	return 0;
}

static int kill_procs_at(int dirfd)
{
	char buf[8192];
	ssize_t n;
	int killed = 0;

	if (cg_write_at(dirfd, "cgroup.kill", "1") == 0)
		return 1;
	n = cg_read_at(dirfd, "cgroup.procs", buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	for (char *save = NULL, *t = strtok_r(buf, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
		if (kill(atoi(t), SIGKILL) == 0)
			killed++;
	return killed;
}

static int v2_kill(cg_group *g)
{
	return kill_procs_at(g->fd);
}

static bool populated_at(int dirfd)
{
	char buf[64];
	return cg_read_at(dirfd, "cgroup.procs", buf, sizeof(buf)) > 0;
}

static int rmdir_retry(int parent_fd, const char *name, int timeout_ms)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int waited = 0;

	for (;;) {
		if (unlinkat(parent_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || waited >= timeout_ms)
			return -errno;
		nanosleep(&ts, NULL);
		waited += 10;
	}
}

static int v2_remove(cg_group *g, int timeout_ms)
{
	if (g->fd >= 0) {
		close(g->fd);
		g->fd = -1;
	}
	int r = rmdir_retry(parent_fd(g), g->name, timeout_ms);
	/* its cores back to everyone (the slice goes with the last group) */
	if (g->excl)
		cg_part_slice_settle(g->m);
	return r;
}

int cg_each_group(int slice_fd, int (*fn)(int slice_fd, int group_fd, const char *name, void *ud),
		  void *ud)
{
	_cleanup_close_ int dfd = openat(slice_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	dfd = -1; /* owned by d */
	while (r == 0 && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		_cleanup_close_ int g = openat(slice_fd, de->d_name,
					       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = fn(slice_fd, g, de->d_name, ud);
	}
	closedir(d);
	return r;
}

struct reconcile {
	const char *slice_path;
	bool (*keep)(const char *, void *);
	void *ud;
	int removed;
};

static int reconcile_one(int slice_fd, int g, const char *name, void *ud)
{
	struct reconcile *rc = ud;

	if (streq(name, DAEMON_LEAF) || (rc->keep && rc->keep(name, rc->ud)))
		return 0;
	if (g < 0 || populated_at(g))
		return 0; /* a live QEMU is in there: leave it */
	if (rmdir_retry(slice_fd, name, 100) == 0) {
		log_debug("Removed stale cgroup %s/%s", rc->slice_path, name);
		rc->removed++;
	}
	return 0;
}

static int reconcile_at(int slice_fd, const char *slice_path,
			bool (*keep)(const char *, void *), void *ud)
{
	struct reconcile rc = { .slice_path = slice_path, .keep = keep, .ud = ud };
	int r = cg_each_group(slice_fd, reconcile_one, &rc);

	return r < 0 ? r : rc.removed;
}

/* Both slices; the partition slice's partition then fits the latency VMs
 * still running (a restarted daemon keeps their layout). */
static int v2_reconcile(cg_manager *m, bool (*keep)(const char *, void *), void *ud)
{
	int r = reconcile_at(m->slice_fd, m->slice_path, keep, ud);

	if (r >= 0 && m->part_fd >= 0) {
		int q = reconcile_at(m->part_fd, m->part_path, keep, ud);
		r = q < 0 ? q : r + q;
		cg_part_slice_settle(m);
	}
	return r;
}

/* Kill what is left in a group and remove it; the first error is kept. */
static int empty_one(int slice_fd, int g, const char *name, void *ud)
{
	int *r = ud;

	if (g >= 0 && populated_at(g))
		(void)kill_procs_at(g);
	int q = rmdir_retry(slice_fd, name, 2000);
	if (q < 0 && *r == 0)
		*r = q;
	return 0;
}

static int empty_slice(int slice_fd)
{
	int r = 0, q = cg_each_group(slice_fd, empty_one, &r);

	return q < 0 ? q : r;
}

static int v2_destroy(cg_manager *m)
{
	int r;

	if (m->moved_self && m->parent_path) {
		int q = move_pid_to(m->parent_path, getpid());
		if (q < 0)
			return q;
		m->moved_self = false;
	}
	if (m->part_fd >= 0 && (r = empty_slice(m->part_fd)) == 0)
		cg_part_slice_settle(m);
	r = empty_slice(m->slice_fd);
	if (r == 0) {
		close(m->slice_fd);
		m->slice_fd = -1;
		if (rmdir(m->slice_path) < 0 && errno != ENOENT)
			r = -errno;
	}
	return r;
}

const struct cgroup_backend cg_backend_unified = {
	.id = "unified",
	.setup = v2_setup,
	.group_open = v2_group_open,
	.apply = cg_v2_apply,
	.read_stats = cg_v2_read_stats,
	.attach = v2_attach,
	.kill = v2_kill,
	.remove = v2_remove,
	.reconcile = v2_reconcile,
	.destroy = v2_destroy,
};
