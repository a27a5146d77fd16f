/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/backup-internal.h"
#include "daemon/fw.h"
#include "daemon/hooks.h"
#include "daemon/interop.h"
#include "daemon/netreg.h"
#include "daemon/vm-files.h"
#include "daemon/event-limit.h"
#include "daemon/vm-cidata.h"
#include "daemon/vm-queue.h"
#include "daemon/vm.h"
#include "net/ifname.h"
#include "qemu/argv.h"

static const char *const state_names[] = {
	[QV_VM_STOPPED] = "stopped",   [QV_VM_STARTING] = "starting",
	[QV_VM_RUNNING] = "running",   [QV_VM_PAUSED] = "paused",
	[QV_VM_STOPPING] = "stopping", [QV_VM_CRASHED] = "crashed",
	[QV_VM_MIGRATING] = "migrating",
};

const char *qv_vm_state_to_string(enum qv_vm_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

bool qv_vm_is_active(const struct qv_vm *vm)
{
	return vm->inst != NULL;
}

struct qv_vm *qv_vm_find(struct qv_daemon *d, const char *name)
{
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		if (streq(vm->name, name))
			return vm;
	return NULL;
}

static struct qv_vm *vm_free(struct qv_vm *vm)
{
	if (!vm)
		return NULL;
	qv_source_remove(vm->restart_timer);
	qv_vm_nics_forget(vm);
	qv_vm_sandbox_forget(vm);
	qv_vm_files_release(vm);
	qemu_instance_free(vm->inst); /* a start in progress is abandoned, QEMU kept */
	qv_start_queue_remove(vm->d, vm);
	qv_vm_starting_free(vm);
	vm_spec_free(vm->spec);
	free(vm->run_dir);
	free(vm->name);
	free(vm);
	return NULL;
}

static void vm_unlink(struct qv_daemon *d, struct qv_vm *vm)
{
	for (struct qv_vm **pp = &d->vms; *pp; pp = &(*pp)->next)
		if (*pp == vm) {
			*pp = vm->next;
			return;
		}
}

void qv_vm_registry_free(struct qv_daemon *d)
{
	qv_start_queue_free(d);
	while (d->vms) {
		struct qv_vm *vm = d->vms;
		d->vms = vm->next;
		if (vm->starting && !vm->inst) {
			/* Still queued: it never ran, the next daemon must not
			 * think it crashed. */
			vm->state = QV_VM_STOPPED;
			snprintf(vm->last_exit, sizeof(vm->last_exit),
				 "start cancelled: the daemon stopped");
			qv_vm_persist(vm);
		}
		vm_free(vm);
	}
}

void qv_vm_persist(struct qv_vm *vm)
{
	struct qv_runtime_record rec = {
		.state = (char *)qv_vm_state_to_string(vm->state),
		.restarts = vm->restarts,
		.started_at = vm->started_at,
		.last_exit = vm->last_exit[0] ? vm->last_exit : NULL,
		.run_dir = vm->run_dir,
	};
	_cleanup_free_ char *qmp = NULL;
	int r;

	if (vm->inst) {
		rec.pid = qemu_instance_pid(vm->inst);
		rec.pid_start_time = qemu_instance_start_time(vm->inst);
		qmp = vm->run_dir ? qemu_run_path(vm->run_dir, QEMU_QMP_SOCK) : NULL;
		rec.qmp_path = qmp;
	}
	r = qv_state_runtime_set(vm->d->state, vm->name, &rec);
	if (r < 0)
		log_error_errno(r, "Failed to persist runtime state of %s: %m", vm->name);
}

void qv_vm_set_state(struct qv_vm *vm, enum qv_vm_state s, json_object *extra)
{
	enum qv_vm_state old = vm->state;
	json_object *data = extra ? extra : json_object_new_object();

	vm->state = s;
	qv_vm_persist(vm);
	json_object_object_add(data, "from", json_object_new_string(qv_vm_state_to_string(old)));
	json_object_object_add(data, "to", json_object_new_string(qv_vm_state_to_string(s)));
	log_info("VM %s: %s -> %s", vm->name, qv_vm_state_to_string(old),
		 qv_vm_state_to_string(s));
	qv_daemon_emit(vm->d, vm->name, "state-changed", data);
}

/* Remove the per-VM run dir's sockets (QEMU is gone). Logs are kept. */
static void vm_cleanup_run_dir(struct qv_vm *vm)
{
	static const char *const files[] = { QEMU_QMP_SOCK, QEMU_SERIAL_SOCK };

	if (!vm->run_dir)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = qemu_run_path(vm->run_dir, files[i]);
		if (p)
			(void)unlink(p);
	}
}

/* QEMU is gone: sockets, TAPs, cgroup. */
static void vm_release_resources(struct qv_vm *vm)
{
	vm_cleanup_run_dir(vm);
	qv_vm_files_release(vm);
	qv_vm_nics_close(vm);
	qv_vm_sandbox_release(vm);
}

/* --- exit handling and restart policy ------------------------------------- */

static void vm_schedule_restart(struct qv_vm *vm);

static void vm_on_event(qemu_instance *inst, const char *name, json_object *event, void *ud)
{
	struct qv_vm *vm = ud;
	json_object *data = NULL, *payload;

	if (streq(name, "SHUTDOWN"))
		vm->saw_shutdown = true;
	if (streq(name, "JOB_STATUS_CHANGE"))
		bk_job_event(vm->d, vm->name, event);
	if (streq(name, "STOP") || streq(name, "RESUME")) {
		json_object *ts, *sec, *usec;
		int64_t us = qv_unix_ms() * 1000;
		if (json_object_object_get_ex(event, "timestamp", &ts) &&
		    json_object_object_get_ex(ts, "seconds", &sec) &&
		    json_object_object_get_ex(ts, "microseconds", &usec))
			us = json_object_get_int64(sec) * 1000000 + json_object_get_int64(usec);
		*(streq(name, "STOP") ? &vm->last_stop_us : &vm->last_resume_us) = us;
	}
	if (streq(name, "BALLOON_CHANGE"))
		qv_vm_balloon_event(vm, event);
	if (streq(name, "STOP") && vm->state == QV_VM_RUNNING)
		qv_vm_set_state(vm, QV_VM_PAUSED, NULL);
	else if (streq(name, "RESUME") && vm->state == QV_VM_PAUSED)
		qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	if (!qv_event_limit_admit(vm, name))
		return; /* over the VM's event rate: counted, not stored */
	payload = json_object_new_object();
	json_object_object_add(payload, "event", json_object_new_string(name));
	if (json_object_object_get_ex(event, "data", &data))
		json_object_object_add(payload, "data", json_object_get(data));
	qv_daemon_emit(vm->d, vm->name, "qemu-event", payload);
}

static bool vm_event_filter(qemu_instance *inst, const char *name, void *ud)
{
	return qv_event_limit_peek(ud, name);
}

static void vm_on_exit(qemu_instance *inst, const struct qemu_exit_status *st, void *ud)
{
	struct qv_vm *vm = ud;
	char buf[QEMU_EXIT_STATUS_MAX];
	/* QEMU exits 0 only on a shutdown request (guest power-off, quit, a
	 * handled SIGTERM). Its SHUTDOWN event can be lost: QEMU drops queued
	 * QMP output at exit, e.g. behind a guest's event storm. */
	bool clean = st->kind == QEMU_EXIT_EXITED && st->code == 0;
	json_object *data = json_object_new_object();

	qemu_exit_status_format(st, buf, sizeof(buf));
	snprintf(vm->last_exit, sizeof(vm->last_exit), "%s", buf);
	vm->inst = qemu_instance_free(vm->inst);
	vm_release_resources(vm);
	json_object_object_add(data, "exit", json_object_new_string(buf));
	if (clean) {
		log_info("VM %s: guest powered off (%s)", vm->name, buf);
		qv_vm_set_state(vm, QV_VM_STOPPED, data);
		return;
	}
	log_warning("VM %s: QEMU died unexpectedly: %s", vm->name, buf);
	qv_vm_set_state(vm, QV_VM_CRASHED, NULL);
	qv_daemon_emit(vm->d, vm->name, "crashed", data);
	vm_schedule_restart(vm);
}

static void vm_restart_done(struct qv_vm *vm, int error, const struct qv_error *errp, void *ud)
{
	json_object *data = json_object_new_object();

	json_object_object_add(data, "attempt", json_object_new_int64(vm->restarts));
	json_object_object_add(data, "ok", json_object_new_boolean(error >= 0));
	if (error < 0) {
		const char *msg = errp && errp->set ? errp->message : strerror(-error);
		log_error("VM %s: automatic restart failed: %s", vm->name, msg);
		json_object_object_add(data, "error", json_object_new_string(msg));
		qv_daemon_emit(vm->d, vm->name, "restarted", data);
		qv_vm_set_state(vm, QV_VM_CRASHED, NULL);
		vm_schedule_restart(vm);
		return;
	}
	qv_daemon_emit(vm->d, vm->name, "restarted", data);
}

static void vm_restart_timer(qv_source *s, void *ud)
{
	struct qv_vm *vm = ud;
	struct qv_error err = {};
	int r;

	vm->restart_timer = NULL;
	if (vm->state != QV_VM_CRASHED)
		return;
	vm->restarts++;
	r = qv_vm_start_async(vm, NULL, vm_restart_done, NULL, &err);
	if (r < 0)
		vm_restart_done(vm, r, &err, NULL);
}

static void vm_schedule_restart(struct qv_vm *vm)
{
	const struct vm_restart *p = &vm->spec->restart;
	int64_t now = qv_unix_ms(), window = (int64_t)p->window_s * 1000;
	unsigned recent = 0;

	if (p->policy != VM_RESTART_ON_FAILURE || vm->d->shutting_down)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(vm->restart_times); i++)
		if (vm->restart_times[i] && now - vm->restart_times[i] < window)
			recent++;
	if (recent >= p->max_restarts) {
		json_object *data = json_object_new_object();
		json_object_object_add(data, "max_restarts", json_object_new_int(p->max_restarts));
		json_object_object_add(data, "window_s", json_object_new_int(p->window_s));
		log_error("VM %s: %u restarts within %us, giving up", vm->name, recent,
			  p->window_s);
		qv_daemon_emit(vm->d, vm->name, "restart-limit", data);
		return;
	}
	uint64_t delay = p->backoff_ms;
	for (unsigned i = 0; i < recent && delay < 300000; i++)
		delay *= 2;
	memmove(vm->restart_times + 1, vm->restart_times,
		sizeof(vm->restart_times) - sizeof(vm->restart_times[0]));
	vm->restart_times[0] = now;
	json_object *data = json_object_new_object();
	json_object_object_add(data, "delay_ms", json_object_new_int64((int64_t)delay));
	json_object_object_add(data, "attempt", json_object_new_int64(vm->restarts + 1));
	qv_daemon_emit(vm->d, vm->name, "restart-scheduled", data);
	log_info("VM %s: restarting in %" PRIu64 " ms (policy on-failure)", vm->name, delay);
	if (qv_loop_add_timer(vm->d->loop, delay, vm_restart_timer, vm, &vm->restart_timer) < 0)
		log_error("VM %s: cannot arm restart timer, ignoring", vm->name);
}

void qv_vm_apply_restart_policy(struct qv_vm *vm)
{
	if (vm->state == QV_VM_CRASHED && !vm->inst && !vm->restart_timer)
		vm_schedule_restart(vm);
}

/* --- lifecycle ------------------------------------------------------------ */

void qv_vm_bind_instance_config(struct qv_vm *vm, struct qemu_instance_config *cfg)
{
	cfg->on_event = vm_on_event;
	cfg->event_filter = vm_event_filter;
	cfg->on_exit = vm_on_exit;
	cfg->userdata = vm;
}

struct stop_ctx {
	struct qv_vm *vm;
	qv_vm_stop_fn fn;
	void *userdata;
	int timeout_ms;
};

static void vm_stop_done(qemu_instance *inst, int error, enum qemu_stop_step step,
			 const struct qemu_exit_status *st, void *ud)
{
	struct stop_ctx *ctx = ud;
	struct qv_vm *vm = ctx->vm;
	char buf[QEMU_EXIT_STATUS_MAX] = "unknown";

	if (error == 0) {
		qemu_exit_status_format(st, buf, sizeof(buf));
		snprintf(vm->last_exit, sizeof(vm->last_exit), "%s (stopped by %s)", buf,
			 qemu_stop_step_to_string(step));
		vm->inst = qemu_instance_free(vm->inst);
		vm_release_resources(vm);
		json_object *data = json_object_new_object();
		json_object_object_add(data, "how",
				       json_object_new_string(qemu_stop_step_to_string(step)));
		json_object_object_add(data, "exit", json_object_new_string(buf));
		qv_vm_set_state(vm, QV_VM_STOPPED, data);
	} else {
		log_error_errno(error, "VM %s: QEMU did not exit even after SIGKILL", vm->name);
		qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	}
	if (ctx->fn)
		ctx->fn(vm, error, step, buf, ctx->userdata);
	free(ctx);
}

/* The guest agent had its turn (daemon/vm-agent.c): done, or ACPI next. */
static void vm_stop_after_agent(struct qv_vm *vm, bool exited, void *ud)
{
	struct stop_ctx *ctx = ud;
	int r = -ESRCH;

	if (!exited && vm->inst)
		r = qemu_instance_stop(vm->inst, QEMU_STOP_GRACEFUL, ctx->timeout_ms, vm_stop_done, ctx);
	if (r >= 0)
		return;
	if (!vm->inst && vm->state == QV_VM_STOPPING)
		qv_vm_set_state(vm, QV_VM_STOPPED, NULL);
	if (ctx->fn)
		ctx->fn(vm, vm->inst ? r : 0, QEMU_STOP_STEP_POWERDOWN, vm->last_exit, ctx->userdata);
	free(ctx);
}

static int vm_stop(struct qv_vm *vm, bool force, int timeout_ms, bool migration_owns,
		   qv_vm_stop_fn fn, void *userdata, struct qv_error *errp)
{
	struct stop_ctx *ctx;
	int r;

	if (vm->state == QV_VM_CRASHED && vm->restart_timer) {
		/* Stopping a VM waiting for its restart cancels the restart. */
		vm->restart_timer = qv_source_remove(vm->restart_timer);
		qv_vm_set_state(vm, QV_VM_STOPPED, NULL);
		if (fn)
			fn(vm, 0, QEMU_STOP_STEP_KILL, vm->last_exit, userdata);
		return 0;
	}
	if (vm->starting)
		return qv_vm_stop_starting(vm, force, timeout_ms, fn, userdata, errp);
	if (!vm->inst)
		return qv_error_set(errp, EALREADY, QV_REASON_CONFLICT, "VM %s is not running (%s)",
				    vm->name, qv_vm_state_to_string(vm->state));
	if (vm->state == QV_VM_STOPPING && !force)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is already stopping; use force to kill it", vm->name);
	if (vm->state == QV_VM_MIGRATING && !migration_owns)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is migrating; cancel the migration first", vm->name);
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	*ctx = (struct stop_ctx){ .vm = vm, .fn = fn, .userdata = userdata, .timeout_ms = timeout_ms };
	if (!force && !migration_owns && qv_vm_agent_stop(vm, timeout_ms, vm_stop_after_agent, ctx)) {
		qv_vm_set_state(vm, QV_VM_STOPPING, NULL);
		return 0;
	}
	r = qemu_instance_stop(vm->inst, force ? QEMU_STOP_FORCE : QEMU_STOP_GRACEFUL,
			       timeout_ms, vm_stop_done, ctx);
	if (r < 0) {
		free(ctx);
		return qv_error_set(errp, -r, NULL, "Cannot stop VM %s: %s", vm->name,
				    strerror(-r));
	}
	qv_vm_set_state(vm, QV_VM_STOPPING, NULL);
	return 0;
}

int qv_vm_stop(struct qv_vm *vm, bool force, int timeout_ms, qv_vm_stop_fn fn, void *userdata,
	       struct qv_error *errp)
{
	/* No QMP yet and the pidfd belongs to the re-attach (daemon/vm-load.c). */
	if (vm->attaching)
		return qv_error_set(errp, EAGAIN, QV_REASON_UNAVAILABLE,
				    "VM %s: the daemon is re-attaching to its QEMU; try again",
				    vm->name);
	return vm_stop(vm, force, timeout_ms, false, fn, userdata, errp);
}

int qv_vm_stop_migrated(struct qv_vm *vm, bool force, int timeout_ms, qv_vm_stop_fn fn,
			void *userdata, struct qv_error *errp)
{
	return vm_stop(vm, force, timeout_ms, true, fn, userdata, errp);
}

/* --- define / undefine ------------------------------------------------------ */

static struct qv_vm *vm_new(struct qv_daemon *d, struct vm_spec *spec)
{
	struct qv_vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->d = d;
	vm->spec = spec;
	vm->name = strdup(spec->name);
	if (!vm->name) {
		free(vm);
		return NULL;
	}
	vm->next = d->vms;
	d->vms = vm;
	return vm;
}

int qv_vm_define(struct qv_daemon *d, struct vm_spec *spec, struct qv_vm **ret_vm,
		 struct qv_error *errp)
{
	_cleanup_(vm_spec_freep) struct vm_spec *owned = spec;
	_cleanup_json_ json_object *j = NULL;
	struct qv_vm *vm;
	int r;

	if (qv_vm_find(d, spec->name))
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "VM %s is already defined",
				    spec->name);
	if (spec->ha && !d->cluster)
		return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "spec.ha needs a cluster: this qvisord runs without "
				    "--cluster-endpoints (docs/cluster.md \"HA restart\")");
	char tap[IFNAMSIZ], other[IFNAMSIZ];
	(void)qv_ifname_tap(spec->uuid, 0, tap);
	for (vm = d->vms; vm; vm = vm->next) {
		if (streq(vm->spec->uuid, spec->uuid))
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "uuid %s is already used by VM %s", spec->uuid,
					    vm->name);
		/* TAP names hash the uuid: two VMs must never share one. */
		if (qv_ifname_tap(vm->spec->uuid, 0, other) == 0 && strncmp(tap, other, 11) == 0)
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "uuid %s gives the same TAP names (%.10s...) as VM %s; "
					    "choose another uuid", spec->uuid, tap, vm->name);
	}
	r = qv_net_check_spec(d, spec, NULL, errp);
	if (r >= 0)
		r = qv_fw_check_spec(d, spec, errp);
	if (r < 0)
		return r;
	j = vm_spec_to_json(spec);
	if (!j)
		return -ENOMEM;
	r = qv_state_vm_put(d->state, spec->name, spec->uuid,
			    json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	if (r < 0)
		return qv_error_set(errp, r, NULL, "Cannot store VM %s: %s", spec->name,
				    strerror(-r));
	vm = vm_new(d, TAKE_PTR(owned));
	if (!vm)
		return -ENOMEM;
	qv_vm_persist(vm);
	qv_daemon_emit(d, vm->name, "defined", NULL);
	if (ret_vm)
		*ret_vm = vm;
	return 0;
}

int qv_vm_undefine(struct qv_vm *vm, struct qv_error *errp)
{
	struct qv_daemon *d = vm->d;
	int r;

	if (vm->inst || vm->state == QV_VM_STARTING || vm->state == QV_VM_STOPPING ||
	    vm->state == QV_VM_MIGRATING)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is %s; stop it before undefining it", vm->name,
				    qv_vm_state_to_string(vm->state));
	r = qv_state_vm_delete(d->state, vm->name);
	if (r < 0 && r != -ENOENT)
		return qv_error_set(errp, r, NULL, "Cannot delete VM %s: %s", vm->name,
				    strerror(-r));
	qv_daemon_emit(d, vm->name, "undefined", NULL);
	qv_vm_cidata_remove(vm);
	qv_vm_files_remove(vm);
	vm_unlink(d, vm);
	vm_free(vm);
	return 0;
}

/* --- JSON views ------------------------------------------------------------ */

json_object *qv_vm_summary_json(const struct qv_vm *vm)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(vm->name));
	json_object_object_add(o, "uuid", json_object_new_string(vm->spec->uuid));
	json_object_object_add(o, "state",
			       json_object_new_string(qv_vm_state_to_string(vm->state)));
	json_object_object_add(o, "pid",
			       json_object_new_int(vm->inst ? qemu_instance_pid(vm->inst) : 0));
	json_object_object_add(o, "vcpus", json_object_new_int((int)vm->spec->vcpus));
	json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)vm->spec->memory_mib));
	json_object_object_add(o, "accel", json_object_new_string(vm_accel_to_string(
						   vm->inst ? vm->accel : vm->spec->accel)));
	if (vm->attaching) /* re-attaching after a daemon restart: state is the recorded one */
		json_object_object_add(o, "attaching", json_object_new_boolean(true));
	return o;
}

json_object *qv_vm_info_json(const struct qv_vm *vm)
{
	json_object *o = qv_vm_summary_json(vm), *rt = json_object_new_object();

	json_object_object_add(o, "spec", vm_spec_to_json(vm->spec));
	json_object_object_add(rt, "started_at",
			       vm->inst ? json_object_new_int64(vm->started_at) : NULL);
	json_object_object_add(rt, "restarts", json_object_new_int64(vm->restarts));
	json_object_object_add(rt, "last_exit",
			       vm->last_exit[0] ? json_object_new_string(vm->last_exit) : NULL);
	json_object_object_add(rt, "run_dir",
			       vm->run_dir ? json_object_new_string(vm->run_dir) : NULL);
	if (vm->inst && vm->run_dir) {
		_cleanup_free_ char *q = qemu_run_path(vm->run_dir, QEMU_QMP_SOCK);
		_cleanup_free_ char *s = qemu_run_path(vm->run_dir, QEMU_SERIAL_SOCK);
		json_object_object_add(rt, "qmp_path", json_object_new_string(q));
		json_object_object_add(rt, "serial_path", json_object_new_string(s));
	}
	json_object_object_add(rt, "events_dropped",
			       json_object_new_int64((int64_t)vm->event_limit.dropped));
	json_object_object_add(rt, "restart_pending", json_object_new_boolean(vm->restart_timer != NULL));
	if (vm->spec->balloon.enabled)
		json_object_object_add(rt, "balloon", qv_vm_balloon_json(vm));
	json_object_object_add(o, "runtime", rt);
	return o;
}
