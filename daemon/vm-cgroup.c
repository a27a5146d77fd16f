/* SPDX-License-Identifier: MIT */
/* Per-VM cgroups and the QEMU sandbox: the daemon side of sched/cgroup and
 * qemu/sandbox (hooks in daemon/hooks.h), plus vm.set-limits and vm.stats. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "qemu/sandbox.h"
#include "daemon/hostloop.h"
#include "daemon/vm-cgroup-internal.h"

#define DEFAULT_RUN_DIR "/run/qvisor"
#define GROUP_REMOVE_TIMEOUT_MS 2000

struct cg_daemon *qv_cgroup_state(struct qv_daemon *d)
{
	return d->cgroup_state;
}

/* One slice per daemon: "qvisor.slice" for the default run dir, else a
 * name derived from the run dir so daemons side by side (tests) do not see
 * each other's groups. */
static void slice_name(const char *run_dir, char *buf, size_t size)
{
	uint32_t h = 2166136261u;

	if (!run_dir || streq(run_dir, DEFAULT_RUN_DIR)) {
		snprintf(buf, size, "qvisor.slice");
		return;
	}
	for (const char *p = run_dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(buf, size, "qvisor-%08x.slice", h);
}

void qv_cgroup_group_name(const char *vm, char *buf, size_t size)
{
	snprintf(buf, size, "vm-%s", vm);
}

/* A systemd unit with Delegate=yes: VM groups go below our own cgroup
 * (systemd owns the rest of the tree), in <unit>/vms. */
static void delegation_opts(struct cg_manager_opts *o)
{
	struct cg_host self_host;
	char deleg[CG_PATH_MAX];

	cg_host_detect(NULL, NULL, &self_host);
	if (!getenv("INVOCATION_ID") || cg_delegated_root(self_host.self, deleg, sizeof(deleg)) < 0)
		return;
	o->delegated = o->move_self = true;
	if (streq(o->slice, "qvisor.slice"))
		o->slice = "vms";
	log_info("cgroup: started by systemd, using the delegated subtree %s", deleg);
	if (streq(self_host.self, deleg))
		log_warning("cgroup: systemd started qvisord in %s itself (no DelegateSubgroup=, "
			    "systemd < 254): VM limits stay off so that the unit can restart "
			    "while VMs run", deleg);
}

int qv_cgroup_registry_load(struct qv_daemon *d)
{
	struct cg_daemon *st = calloc(1, sizeof(*st));
	struct qv_error err = {};
	char slice[64], layout[512];
	int r;

	if (!st)
		return -ENOMEM;
	d->cgroup_state = st;
	slice_name(d->cfg.run_dir, slice, sizeof(slice));
	struct cg_manager_opts o = { .slice = slice, .move_self = streq(slice, "qvisor.slice") };
	delegation_opts(&o);
	r = cg_manager_new(&o, &st->mgr, &err);
	if (r < 0) {
		log_warning("cgroup: %s; VMs that request limits will be refused", err.message);
		qv_error_clear(&err);
		o.force_backend = "none";
		r = cg_manager_new(&o, &st->mgr, &err);
		if (r < 0)
			return r;
	}
	char ctrls[96];
	log_info("cgroup backend %s (%s); controllers for VMs: %s",
		 cg_manager_backend_id(st->mgr),
		 cg_host_describe(cg_manager_host(st->mgr), layout, sizeof(layout)),
		 cg_controllers_format(cg_manager_controllers(st->mgr), ctrls, sizeof(ctrls)));
	/* Before the VM registry loads: a group whose QEMU is gone is empty. */
	r = cg_manager_reconcile(st->mgr, NULL, NULL);
	if (r > 0)
		log_info("cgroup: removed %d stale VM group(s)", r);
	r = qemu_sandbox_new(&st->sb, &err);
	if (r < 0) {
		log_error("Cannot build the QEMU seccomp filter: %s", err.message);
		return r;
	}
	r = qemu_sandbox_lookup_user(QEMU_SANDBOX_USER, &st->uid, &st->gid, &st->user_err);
	st->have_user = r >= 0;
	if (!st->have_user)
		log_warning("%s; VMs cannot start", st->user_err.message);
	return 0;
}

static struct cg_vm *vm_state_free(struct cg_vm *v)
{
	if (v) {
		cg_group_free(v->g);
		free(v->io);
		free(v);
	}
	return NULL;
}

void qv_cgroup_registry_free(struct qv_daemon *d)
{
	struct cg_daemon *st = qv_cgroup_state(d);

	if (!st)
		return;
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		vm->cgroup_state = vm_state_free(vm->cgroup_state);
	cg_manager_free(st->mgr);
	qemu_sandbox_free(st->sb);
	free(st);
	d->cgroup_state = NULL;
}

/* Per-disk io limits -> whole-disk MAJ:MIN entries (merged by device: the
 * last disk on a device wins). */
int qv_cgroup_resolve_io(const struct vm_spec *spec, struct cg_io_limit **ret, size_t *ret_n,
		      struct qv_error *errp)
{
	_cleanup_free_ struct cg_io_limit *io = NULL;
	size_t n = 0;

	for (size_t i = 0; i < spec->n_disks; i++) {
		const struct vm_disk *dk = &spec->disks[i];
		unsigned ma, mi;
		size_t k;
		if (!dk->io_rbps && !dk->io_wbps && !dk->io_riops && !dk->io_wiops && !dk->io_weight)
			continue;
		int r = cg_blkdev_for_path(dk->path, &ma, &mi, errp);
		if (r < 0)
			return r;
		if (!io && !(io = calloc(spec->n_disks, sizeof(*io))))
			return -ENOMEM;
		for (k = 0; k < n; k++)
			if (io[k].major == ma && io[k].minor == mi)
				break;
		io[k] = (struct cg_io_limit){ .major = ma, .minor = mi, .rbps = dk->io_rbps,
					      .wbps = dk->io_wbps, .riops = dk->io_riops,
					      .wiops = dk->io_wiops, .weight = dk->io_weight };
		if (k == n)
			n++;
	}
	*ret = TAKE_PTR(io);
	*ret_n = n;
	return 0;
}

static int cgroup_prepare(struct qv_vm *vm, struct cg_daemon *st, struct cg_vm *v,
			  struct qemu_proc_opts *opts, struct qv_error *errp)
{
	char name[80];
	int r;

	r = qv_cgroup_resolve_io(vm->spec, &v->io, &v->n_io, errp);
	if (r < 0)
		return r;
	struct cg_limits lim = { .l = vm->spec->limits, .io = v->io, .n_io = v->n_io };
	r = cg_manager_check(st->mgr, &lim, errp);
	if (r < 0)
		return r;
	if (!cg_manager_slice_path(st->mgr))
		return 0; /* "none" backend, nothing requested: QEMU stays in our cgroup */
	qv_cgroup_group_name(vm->name, name, sizeof(name));
	r = cg_group_create(st->mgr, name, &v->g, errp);
	if (r < 0)
		return r;
	r = cg_group_apply(v->g, &lim, NULL, errp);
	if (r < 0)
		return r;
	opts->cgroup_fd = cg_group_fd(v->g);
	return 0;
}

/* May we add o+x to dir? Only to our own run dir tree, or to a directory
 * made directly in a sticky world-writable one (a test's mkdtemp dir in
 * /tmp holding --run-dir); never to an arbitrary host directory such as
 * /root. */
static bool may_open_up(const char *dir, const char *run_root)
{
	size_t n = strlen(run_root);
	char parent[PATH_MAX];
	struct stat sb;

	if (strncmp(dir, run_root, n) == 0 && (dir[n] == '\0' || dir[n] == '/'))
		return true;
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (!slash)
		return false;
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	return stat(parent, &sb) == 0 && (sb.st_mode & S_ISVTX) && (sb.st_mode & S_IWOTH);
}

/* Give o+x (search, not listing) to the ancestors of path that we own, that
 * lack it and that may_open_up() allows, so the QEMU user can reach its run
 * dir. Anything else is left for qemu_sandbox_check_access() to report. */
static void make_reachable(const char *path, const char *run_root)
{
	char buf[PATH_MAX];
	struct stat sb;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strchr(buf + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == geteuid() &&
		    !(sb.st_mode & 01) && may_open_up(buf, run_root)) {
			if (chmod(buf, (sb.st_mode & 07777) | 0111) == 0)
				log_info("Made %s searchable (o+x) for user " QEMU_SANDBOX_USER, buf);
		}
		*p = '/';
	}
}

/* The run dir belongs to the QEMU user (0700); the directories above it get
 * search permission. */
static int prepare_run_dir(struct qv_vm *vm, struct cg_daemon *st, struct qv_error *errp)
{
	_cleanup_free_ char *parent = strdup(vm->run_dir);
	char *slash;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		(void)mkdir(parent, 0711);
	}
	make_reachable(vm->run_dir, vm->d->cfg.run_dir);
	if (mkdir(vm->run_dir, 0700) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "Cannot create %s: %m",
				    vm->run_dir);
	if (chown(vm->run_dir, st->uid, st->gid) < 0 || chmod(vm->run_dir, 0700) < 0)
		return qv_error_set(errp, errno, QV_REASON_PERMISSION,
				    "Cannot hand %s to user " QEMU_SANDBOX_USER ": %m", vm->run_dir);
	/* Files a previous run left (serial.log) must stay writable by QEMU. */
	_cleanup_close_ int dfd = open(vm->run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (dir) {
		dfd = -1;
		for (struct dirent *de; (de = readdir(dir));)
			if (de->d_type == DT_REG || de->d_type == DT_SOCK)
				(void)fchownat(dirfd(dir), de->d_name, st->uid, st->gid,
					       AT_SYMLINK_NOFOLLOW);
		closedir(dir);
	}
	return qemu_sandbox_check_access(vm->run_dir, st->uid, st->gid, R_OK | W_OK | X_OK, errp);
}

static int sandbox_prepare(struct qv_vm *vm, struct cg_daemon *st, struct qemu_proc_opts *opts,
			   struct qv_error *errp)
{
	const struct vm_spec *s = vm->spec;
	int r;

	if (!st->have_user)
		return qv_error_set(errp, st->user_err.error, st->user_err.reason, "%s",
				    st->user_err.message);
	r = prepare_run_dir(vm, st, errp);
	if (r < 0)
		return r;
	const char *boot[] = { s->kernel, s->initrd };
	for (size_t i = 0; i < ARRAY_SIZE(boot); i++)
		if (boot[i] && (r = qemu_sandbox_check_access(boot[i], st->uid, st->gid, R_OK,
							      errp)) < 0)
			return r;
	/* Writable images are handed to the QEMU user (chown, mode kept);
	 * read-only ones must already be readable by it. */
	for (size_t i = 0; i < s->n_disks; i++) {
		const struct vm_disk *dk = &s->disks[i];
		if (!dk->readonly && chown(dk->path, st->uid, st->gid) < 0)
			return qv_error_set(errp, errno, QV_REASON_PERMISSION,
					    "Cannot hand disk image %s to user " QEMU_SANDBOX_USER
					    ": %m", dk->path);
		r = qemu_sandbox_check_access(dk->path, st->uid, st->gid,
					      dk->readonly ? R_OK : R_OK | W_OK, errp);
		if (r < 0)
			return r;
	}
	opts->drop_ids = true;
	opts->uid = st->uid;
	opts->gid = st->gid;
	opts->no_new_privs = true;
	opts->child_setup = qemu_sandbox_child_setup;
	opts->child_setup_userdata = st->sb;
	return 0;
}

int qv_vm_sandbox_prepare(struct qv_vm *vm, struct qemu_argv_opts *argv_opts,
			  struct qemu_proc_opts *opts, struct qv_error *errp)
{
	struct cg_daemon *st = qv_cgroup_state(vm->d);
	struct cg_vm *v;
	int r;

	if (!st)
		return qv_error_set(errp, EINVAL, QV_REASON_INTERNAL, "cgroups not initialised");
	if ((r = qv_hostloop_admit(vm, errp)) < 0)
		return r; /* the message names the VM */
	vm->cgroup_state = vm_state_free(vm->cgroup_state);
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	vm->cgroup_state = v;
	r = cgroup_prepare(vm, st, v, opts, errp);
	if (r < 0) {
		qv_error_prefix(errp, "VM %s", vm->name);
		return r;
	}
	r = sandbox_prepare(vm, st, opts, errp);
	if (r < 0)
		return r;
	argv_opts->sandbox = true;
	if (v->g)
		qv_hostloop_vm_added(vm, cg_group_path(v->g));
	return 0;
}

void qv_vm_sandbox_release(struct qv_vm *vm)
{
	struct cg_daemon *st = qv_cgroup_state(vm->d);
	struct cg_vm *v = vm->cgroup_state;
	cg_group *g = v ? TAKE_PTR(v->g) : NULL;
	char name[80];
	int r;

	qv_hostloop_vm_removed(vm);
	vm->cgroup_state = vm_state_free(v);
	if (!st || !cg_manager_slice_path(st->mgr))
		return;
	if (!g) {
		/* Re-attached after a daemon restart: find the group by name. */
		qv_cgroup_group_name(vm->name, name, sizeof(name));
		if (cg_group_open(st->mgr, name, &g, NULL) < 0)
			return;
	}
	r = cg_group_remove(g, GROUP_REMOVE_TIMEOUT_MS);
	if (r < 0)
		log_warning("VM %s: cannot remove its cgroup: %s, ignoring", vm->name, strerror(-r));
}
