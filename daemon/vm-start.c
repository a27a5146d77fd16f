/* SPDX-License-Identifier: MIT */
/* Starting a VM, asynchronously: queued by daemon/vm-queue.c, spawned with
 * qemu_instance_start_async; answers vm.start and the incoming QEMU of
 * migrate.prepare. */
#include <signal.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/backup-internal.h"
#include "daemon/cluster.h"
#include "daemon/fw.h"
#include "daemon/hooks.h"
#include "daemon/vm-cidata.h"
#include "daemon/vm-files.h"
#include "daemon/netreg.h"
#include "daemon/vm-queue.h"
#include "daemon/vm.h"
#include "qemu/argv.h"

static char *vm_run_dir(struct qv_daemon *d, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/vms/%s", d->cfg.run_dir, name) < 0)
		return NULL;
	return p;
}

static struct qemu_instance_config vm_instance_config(struct qv_vm *vm)
{
	struct qemu_instance_config cfg = {};

	qv_vm_bind_instance_config(vm, &cfg);
	return cfg;
}

static int vm_check_startable(struct qv_vm *vm, struct qv_error *errp)
{
	if (vm->inst || vm->starting ||
	    (vm->state != QV_VM_STOPPED && vm->state != QV_VM_CRASHED))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "VM %s is already %s",
				    vm->name, qv_vm_state_to_string(vm->state));
	const char *copy = qv_image_vm_disk_busy(vm->d, vm);
	if (copy)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "Cannot start VM %s: image copy %s is reading its disk; "
				    "wait for it or cancel it", vm->name, copy);
	if ((copy = bk_run_offline(vm->d, vm->name)))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "Cannot start VM %s: backup %s is reading its disks; "
				    "wait for it or cancel it (backup cancel)", vm->name, copy);
	int r = qv_cluster_start_check(vm->d, vm, errp);
	if (r < 0)
		return r;
	vm->restart_timer = qv_source_remove(vm->restart_timer);
	return 0;
}

/* Everything before the spawn: run dir, accel, sandbox, TAPs. On success the
 * caller spawns with *opts and *proc (which point into nic_fds). */
static int vm_start_prepare(struct qv_vm *vm, const struct qv_vm_start_opts *so,
			    struct qemu_argv_opts *opts, struct qemu_proc_opts *proc,
			    struct qemu_instance_config *cfg, int **ret_nic_fds, char **ret_cidata,
			    struct qv_error *errp)
{
	struct qv_daemon *d = vm->d;
	_cleanup_free_ char *vms_dir = NULL;
	size_t n_nic_fds = 0;
	int r;

	if (asprintf(&vms_dir, "%s/vms", d->cfg.run_dir) < 0)
		return -ENOMEM;
	(void)mkdir(vms_dir, 0700);
	if (!vm->run_dir) {
		vm->run_dir = vm_run_dir(d, vm->name);
		if (!vm->run_dir)
			return -ENOMEM;
	}
	vm->accel = qemu_accel_resolve(vm->spec->accel, &d->accel);
	*opts = (struct qemu_argv_opts){
		.qemu_binary = d->cfg.qemu_binary,
		.run_dir = vm->run_dir,
		.accel = vm->accel,
		.incoming = so ? so->incoming : NULL,
		.start_paused = so ? so->paused : false,
	};
	*proc = (struct qemu_proc_opts){ .cgroup_fd = -1 };
	r = qv_vm_sandbox_prepare(vm, opts, proc, errp);
	if (r >= 0)
		r = qv_vm_cidata_prepare(vm, proc, opts, ret_cidata, errp);
	/* Run files, logs and disks as fds (daemon/vm-files.h). */
	if (r >= 0)
		r = qv_vm_files_prepare(vm, opts, cfg, errp);
	if (r >= 0)
		r = qv_vm_nics_open(vm, ret_nic_fds, &n_nic_fds, errp);
	if (r >= 0) /* rules in place before the guest can send */
		r = qv_fw_vm_start(vm, errp);
	if (r < 0 && *ret_nic_fds)
		qv_vm_nics_close(vm);
	if (r < 0) {
		qv_vm_files_release(vm);
		qv_vm_sandbox_release(vm);
		return r;
	}
	opts->nic_fds = *ret_nic_fds;
	opts->n_nic_fds = n_nic_fds;
	vm->saw_shutdown = false;
	return 0;
}

/* QEMU never came up (and is gone): release, back to stopped. */
static void vm_start_failed(struct qv_vm *vm, int r, const struct qv_error *errp)
{
	qv_vm_files_release(vm);
	qv_vm_nics_close(vm);
	qv_vm_sandbox_release(vm);
	snprintf(vm->last_exit, sizeof(vm->last_exit), "start failed: %s",
		 errp && errp->set ? errp->message : strerror(-r));
	json_object *data = json_object_new_object();
	json_object_object_add(data, "error", json_object_new_string(vm->last_exit));
	qv_vm_set_state(vm, QV_VM_STOPPED, data);
}

static void vm_start_succeeded(struct qv_vm *vm, bool paused)
{
	vm->started_at = qv_unix_ms();
	vm->last_exit[0] = '\0';
	json_object *data = json_object_new_object();
	json_object_object_add(data, "pid", json_object_new_int(qemu_instance_pid(vm->inst)));
	json_object_object_add(data, "accel",
			       json_object_new_string(vm_accel_to_string(vm->accel)));
	vm->state = QV_VM_STARTING; /* so the event reads starting -> running */
	qv_vm_set_state(vm, paused ? QV_VM_PAUSED : QV_VM_RUNNING, data);
	qv_vm_balloon_started(vm, paused);
}

/* A vm.stop that arrived while the VM was starting. */
struct pending_stop {
	bool active;
	bool force;
	int timeout_ms;
	qv_vm_stop_fn fn;
	void *userdata;
};

struct qv_vm_starting {
	qv_vm_start_fn fn;
	void *userdata;
	char *incoming;
	bool paused;
	bool spawned; /* left the queue: counts against --max-starts */
	struct pending_stop stop;
};

void qv_vm_starting_free(struct qv_vm *vm)
{
	if (vm->starting)
		free(vm->starting->incoming);
	free(TAKE_PTR(vm->starting));
}

/* The start the stop waited for is over: stop the VM if it runs. */
static void run_pending_stop(struct qv_vm *vm, const struct pending_stop *ps)
{
	struct qv_error err = {};

	if (!vm->inst) {
		ps->fn(vm, 0, QEMU_STOP_STEP_KILL, vm->last_exit, ps->userdata);
		return;
	}
	if (qv_vm_stop(vm, ps->force, ps->timeout_ms, ps->fn, ps->userdata, &err) < 0) {
		log_warning("VM %s: stop after its start: %s", vm->name, err.message);
		ps->fn(vm, -err.error, QEMU_STOP_STEP_KILL, err.message, ps->userdata);
	}
}

/* The start is over, either way: report and make room in the queue. */
static void vm_start_complete(struct qv_vm *vm, int error, const struct qv_error *errp)
{
	struct qv_vm_starting ctx = *vm->starting;

	vm->starting->incoming = NULL;
	qv_vm_starting_free(vm);
	if (error < 0) {
		log_warning("VM %s: start failed: %s", vm->name,
			    errp && errp->set ? errp->message : strerror(-error));
		vm_start_failed(vm, error, errp);
	} else {
		vm_start_succeeded(vm, ctx.paused);
	}
	if (ctx.spawned)
		qv_start_queue_done(vm->d);
	if (ctx.fn)
		ctx.fn(vm, error, errp, ctx.userdata);
	free(ctx.incoming);
	if (ctx.stop.active)
		run_pending_stop(vm, &ctx.stop);
}

static void vm_started(qemu_instance *inst, int error, const struct qv_error *errp, void *ud)
{
	struct qv_vm *vm = ud;

	if (error < 0)
		vm->inst = qemu_instance_free(vm->inst);
	vm_start_complete(vm, error, errp);
}

void qv_vm_start_queued(struct qv_vm *vm)
{
	struct qemu_instance_config cfg = vm_instance_config(vm);
	struct qv_vm_start_opts so = { .incoming = vm->starting->incoming,
				       .paused = vm->starting->paused };
	struct qemu_argv_opts opts;
	struct qemu_proc_opts proc;
	_cleanup_free_ int *nic_fds = NULL;
	_cleanup_free_ char *cidata = NULL; /* opts.cidata_path: spawned below */
	struct qv_error err = {};
	int r;

	vm->starting->spawned = true;
	r = vm_start_prepare(vm, &so, &opts, &proc, &cfg, &nic_fds, &cidata, &err);
	if (r < 0) {
		vm_start_complete(vm, r, &err);
		return;
	}
	cfg.proc = &proc;
	r = qemu_instance_start_async(vm->d->loop, vm->spec, &opts, &cfg, vm_started, vm,
				      &vm->inst, &err);
	qv_vm_nics_started(vm);
	qv_vm_files_started(vm); /* QEMU holds its copies from the spawn on */
	if (r < 0)
		vm_start_complete(vm, r, &err); /* releases TAPs and sandbox */
}

int qv_vm_start_async(struct qv_vm *vm, const struct qv_vm_start_opts *so, qv_vm_start_fn fn,
		      void *userdata, struct qv_error *errp)
{
	int r = vm_check_startable(vm, errp);

	if (r < 0)
		return r;
	vm->starting = calloc(1, sizeof(*vm->starting));
	if (!vm->starting)
		return -ENOMEM;
	*vm->starting = (struct qv_vm_starting){
		.fn = fn, .userdata = userdata, .paused = so && (so->paused || so->incoming),
	};
	if ((so && so->incoming && !(vm->starting->incoming = strdup(so->incoming))) ||
	    qv_start_queue_push(vm->d, vm) < 0) {
		qv_vm_starting_free(vm);
		return -ENOMEM;
	}
	qv_vm_set_state(vm, QV_VM_STARTING, NULL);
	return 0;
}


int qv_vm_stop_starting(struct qv_vm *vm, bool force, int timeout_ms, qv_vm_stop_fn fn,
			void *userdata, struct qv_error *errp)
{
	struct qv_vm_starting *st = vm->starting;
	struct qv_error err = {};

	if (st->stop.active)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is starting and a stop is already waiting for it",
				    vm->name);
	if (!st->spawned) {
		/* Still queued: nothing to stop, the start is cancelled. */
		qv_start_queue_remove(vm->d, vm);
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED,
			     "start of VM %s cancelled by vm.stop", vm->name);
		st->stop = (struct pending_stop){ .active = true, .fn = fn, .userdata = userdata };
		vm_start_complete(vm, -ECANCELED, &err);
		return 0;
	}
	st->stop = (struct pending_stop){ .active = true, .force = force,
					  .timeout_ms = timeout_ms, .fn = fn,
					  .userdata = userdata };
	log_info("VM %s: stop waits for its start to complete", vm->name);
	return 0;
}

bool qv_vm_start_is_queued(const struct qv_vm *vm)
{
	return vm->starting && !vm->starting->spawned;
}

int qv_vm_start_drop(struct qv_vm *vm, const char *why)
{
	struct qv_error err = {};

	if (!vm->starting)
		return -ENOENT;
	if (vm->starting->spawned) {
		/* The pidfd ends the start at once (start failed, released). */
		if (!vm->inst)
			return -ENOENT;
		log_info("VM %s: killing its starting QEMU: %s", vm->name, why);
		return qemu_proc_signal(qemu_instance_proc(vm->inst), SIGKILL);
	}
	/* Still queued: nothing runs; the start fails "cancelled" now. */
	qv_start_queue_remove(vm->d, vm);
	qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED, "start of VM %s cancelled: %s",
		     vm->name, why);
	vm_start_complete(vm, -ECANCELED, &err);
	return 0;
}
