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
#include "daemon/vm-files.h"
#include "daemon/vm-identity.h"

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
	return 0;
}

static struct cg_vm *vm_state_free(struct cg_vm *v)
{
	if (v) {
		qemu_mountns_free(v->mountns);
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
	/* a latency VM beside the slice, where its cores can be a partition */
	r = qv_hostloop_wants_partition(vm) ? cg_group_create_exclusive(st->mgr, name, &v->g, errp)
					    : cg_group_create(st->mgr, name, &v->g, errp);
	if (r < 0)
		return r;
	r = cg_group_apply(v->g, &lim, NULL, errp);
	if (r < 0)
		return r;
	opts->cgroup_fd = cg_group_fd(v->g);
	return 0;
}

/* QEMU runs as the VM's own uid/gid (daemon/vm-identity.c) and gets every
 * file as an fd (daemon/vm-files.c): nothing is chown'ed or chmod'ed. Only
 * the kernel and initrd are opened by QEMU by path, so they must be
 * readable by any uid. */
static int sandbox_prepare(struct qv_vm *vm, struct cg_daemon *st, bool incoming,
			   struct qemu_proc_opts *opts, struct qv_error *errp)
{
	const struct vm_spec *s = vm->spec;
	const char *qemu = vm->d->cfg.qemu_binary;
	const char *boot[] = { s->kernel, s->initrd, qemu && qemu[0] == '/' ? qemu : NULL };
	struct cg_vm *v = vm->cgroup_state;
	uid_t uid;
	int r;

	r = qv_vm_identity_acquire(vm, &uid, errp);
	if (r < 0)
		return r;
	for (size_t i = 0; i < 2; i++)
		if (boot[i] && (r = qemu_sandbox_check_access(boot[i], uid, uid, R_OK, errp)) < 0)
			return r;
	/* Its own mount namespace, rooted on a tmpfs mounted on <run dir>/root
	 * (only the namespace sees it), with <run dir>/share bound in
	 * (daemon/vm-files.c creates both). */
	char root[PATH_MAX], share[PATH_MAX];
	snprintf(root, sizeof(root), "%s/" QV_VM_ROOT_DIR, vm->run_dir);
	snprintf(share, sizeof(share), "%s/" QV_VM_SHARE_DIR, vm->run_dir);
	r = qemu_mountns_new(root, boot, ARRAY_SIZE(boot), share, &v->mountns, errp);
	if (r < 0)
		return r;
	opts->child_setup_privileged = qemu_mountns_child_apply;
	opts->child_setup_privileged_userdata = v->mountns;
	opts->drop_ids = true;
	opts->uid = uid;
	opts->gid = uid;
	opts->no_new_privs = true;
	opts->child_setup = qemu_sandbox_child_setup;
	/* userfaultfd only for an incoming migration, which may go postcopy. */
	opts->child_setup_userdata = (void *)qemu_sandbox_variant(st->sb, incoming);
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
	r = sandbox_prepare(vm, st, argv_opts->incoming != NULL, opts, errp);
	if (r < 0)
		return r;
	argv_opts->sandbox = true;
	if (v->g)
		qv_hostloop_vm_added(vm, cg_group_path(v->g));
	return 0;
}

void qv_vm_sandbox_forget(struct qv_vm *vm)
{
	vm->cgroup_state = vm_state_free(vm->cgroup_state);
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
