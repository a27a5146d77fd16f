/* SPDX-License-Identifier: MIT */
/* Loading the registry at daemon start and re-attaching to live QEMUs. */
#include <sys/socket.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/vm.h"
#include "daemon/migrate.h"
#include "daemon/netreg.h"
#include "daemon/snapshot.h"
#include "daemon/vm-files.h"
#include "qemu/argv.h"

/* A QEMU started just before a daemon crash may not be recorded with its pid
 * yet: ask the kernel who listens on its QMP socket. */
static int pid_from_qmp_socket(const char *path, pid_t *ret_pid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	/* Non-blocking: a stopped QEMU's full backlog must not stall the loop. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return negative_errno();
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return negative_errno();
	if (cred.pid <= 0)
		return -ESRCH;
	*ret_pid = cred.pid;
	return 0;
}

struct load_ctx {
	struct qv_daemon *d;
	int error;
};

static int load_one(const struct qv_vm_record *rec, void *ud)
{
	struct load_ctx *ctx = ud;
	struct qv_error err = {};
	struct vm_spec *spec = NULL;
	struct qv_vm *vm;
	int r;

	r = vm_spec_from_string(rec->spec_json, &spec, &err);
	if (r < 0) {
		log_error("Stored spec of VM %s does not validate (%s), skipping it", rec->name,
			  err.message);
		return 0;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		vm_spec_free(spec);
		return -ENOMEM;
	}
	vm->d = ctx->d;
	vm->spec = spec;
	vm->name = strdup(rec->name);
	vm->next = ctx->d->vms;
	ctx->d->vms = vm;
	return vm->name ? 0 : -ENOMEM;
}

/* The end of a VM's load: what qv_vm_registry_load did for every VM when
 * re-attaching was synchronous. */
static void settle(struct qv_vm *vm)
{
	bool lost = vm->state == QV_VM_CRASHED && vm->lost_at_load;

	qv_vm_persist(vm);
	if (lost)
		qv_vm_apply_restart_policy(vm);
}

static void mark_gone(struct qv_vm *vm, const char *was)
{
	vm->inst = qemu_instance_free(vm->inst);
	vm->lost_at_load = true;
	snprintf(vm->last_exit, sizeof(vm->last_exit),
		 "QEMU exited while the daemon was not running; status unknown");
	vm->state = QV_VM_CRASHED;
	log_warning("VM %s: QEMU is gone (it was %s)", vm->name, was);
	qv_daemon_emit(vm->d, vm->name, "crashed",
		       json_tokener_parse("{\"exit\":\"QEMU exited while the daemon was not running; status unknown\"}"));
}

/* settle_it false: QEMU exited meanwhile and the exit handler already
 * recorded it (and applied the restart policy). */
static void attach_end(struct qv_vm *vm, bool settle_it)
{
	struct qv_daemon *d = vm->d;

	vm->attaching = false;
	if (settle_it)
		settle(vm);
	qv_snapshot_recover_vm(vm);
	if (d->n_attaching > 0 && --d->n_attaching == 0 && d->mig_load_deferred) {
		d->mig_load_deferred = false;
		log_info("All VMs re-attached; resolving migration records");
		qv_migrate_registry_load(d);
	}
}

static void on_status(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		      void *userdata)
{
	struct qv_vm *vm = userdata;
	const char *status = NULL;
	json_object *v;

	if (error == -ECANCELED || !vm->inst || qemu_instance_exited(vm->inst)) {
		/* QEMU exited (vm_on_exit recorded it) or the daemon is going away. */
		if (vm->d->shutting_down) {
			vm->attaching = false;
			return;
		}
		return attach_end(vm, false);
	}
	if (error >= 0 && json_object_object_get_ex(ret, "status", &v))
		status = json_object_get_string(v);
	vm->state = streq_ptr(status, "paused") ? QV_VM_PAUSED : QV_VM_RUNNING;
	if (streq_ptr(status, "inmigrate") || streq_ptr(status, "postmigrate") ||
	    streq_ptr(status, "finish-migrate"))
		vm->state = QV_VM_PAUSED;
	log_info("VM %s: re-attached to QEMU pid %d (%s)", vm->name,
		 (int)qemu_instance_pid(vm->inst), status ? status : "status unknown");
	qv_daemon_emit(vm->d, vm->name, "reattached", NULL);
	qv_vm_nics_adopt_after_attach(vm);
	qv_vm_files_attached(vm);
	attach_end(vm, true);
}

static void on_attached(qemu_instance *inst, int error, const struct qv_error *errp,
			void *userdata)
{
	struct qv_vm *vm = userdata;
	pid_t pid = qemu_instance_pid(inst);
	const char *why = errp && errp->set ? errp->message : strerror(-error);

	if (error < 0) {
		log_warning("VM %s: cannot re-attach to QEMU pid %d: %s", vm->name, (int)pid, why);
		if (error == -ESRCH || qemu_instance_exited(inst)) {
			mark_gone(vm, qv_vm_state_to_string(vm->state));
		} else {
			/* Alive but deaf (stopped, hung): never start a second copy. */
			log_error("VM %s: QEMU pid %d is alive but its QMP does not answer; "
				  "leaving it running and marking the VM crashed", vm->name, (int)pid);
			vm->inst = qemu_instance_free(vm->inst);
			snprintf(vm->last_exit, sizeof(vm->last_exit),
				 "QMP of QEMU pid %d did not answer after the daemon restarted (%s); "
				 "QEMU left running", (int)pid, why);
			vm->state = QV_VM_CRASHED;
			json_object *ex = json_object_new_object();
			json_object_object_add(ex, "exit", json_object_new_string(vm->last_exit));
			qv_daemon_emit(vm->d, vm->name, "crashed", ex);
		}
		return attach_end(vm, true);
	}
	struct qv_error err = {};
	if (qemu_instance_execute_async(inst, "query-status", NULL, QV_VM_QMP_TIMEOUT_MS, on_status,
					vm, &err) < 0)
		on_status(NULL, -EIO, NULL, &err, vm);
}

static void reattach(struct qv_vm *vm, const struct qv_runtime_record *rec)
{
	struct qv_daemon *d = vm->d;
	struct qv_error err = {};
	pid_t pid = (pid_t)rec->pid;
	uint64_t start_time = rec->pid_start_time;
	int r;

	_cleanup_free_ char *qmp = rec->qmp_path ? strdup(rec->qmp_path)
						: (vm->run_dir ? qemu_run_path(vm->run_dir,
									       QEMU_QMP_SOCK)
							       : NULL);
	if (!qmp)
		return mark_gone(vm, rec->state);
	if (pid <= 0) {
		/* "starting" without pid: the daemon died while spawning. */
		r = pid_from_qmp_socket(qmp, &pid);
		if (r < 0 || qemu_proc_read_start_time(pid, &start_time) < 0)
			return mark_gone(vm, rec->state);
	}
	struct qemu_instance_config cfg = {};
	qv_vm_bind_instance_config(vm, &cfg);
	/* Tests only: a re-attach deadline other than QEMU_CONNECT_TIMEOUT_MS. */
	const char *tmo = getenv("QVISORD_TEST_ATTACH_TIMEOUT_MS");
	if (tmo && atoi(tmo) > 0)
		cfg.connect_timeout_ms = atoi(tmo);
	vm->started_at = rec->started_at;
	r = qemu_instance_attach_async(d->loop, pid, start_time, qmp, &cfg, on_attached, vm,
				       &vm->inst, &err);
	if (r < 0) {
		log_warning("VM %s: cannot re-attach to QEMU pid %d: %s", vm->name, (int)pid,
			    err.set ? err.message : strerror(-r));
		vm->inst = NULL;
		return mark_gone(vm, rec->state);
	}
	vm->attaching = true;
	d->n_attaching++;
}

static int runtime_one(const char *name, const struct qv_runtime_record *rec, void *ud)
{
	struct load_ctx *ctx = ud;
	struct qv_vm *vm = qv_vm_find(ctx->d, name);
	enum qv_vm_state st = QV_VM_STOPPED;

	if (!vm)
		return 0;
	vm->restarts = rec->restarts;
	if (rec->last_exit)
		snprintf(vm->last_exit, sizeof(vm->last_exit), "%s", rec->last_exit);
	if (rec->run_dir)
		vm->run_dir = strdup(rec->run_dir);
	for (size_t i = 0; i <= QV_VM_MIGRATING; i++)
		if (streq_ptr(rec->state, qv_vm_state_to_string((enum qv_vm_state)i)))
			st = (enum qv_vm_state)i;
	vm->state = st;
	if (st == QV_VM_STOPPED || (st == QV_VM_CRASHED && rec->pid <= 0))
		return 0;
	reattach(vm, rec);
	return 0;
}

int qv_vm_registry_load(struct qv_daemon *d)
{
	struct load_ctx ctx = { .d = d };
	int r;

	r = qv_state_vm_list(d->state, load_one, &ctx);
	if (r < 0)
		return r;
	r = qv_state_runtime_list(d->state, runtime_one, &ctx);
	if (r < 0)
		return r;
	/* Persist the reconciled states (and apply restart policies); a VM
	 * still re-attaching does so when its attach ends. */
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		if (!vm->attaching)
			settle(vm);
	if (d->n_attaching)
		log_info("Re-attaching to %u QEMU(s) in the background", d->n_attaching);
	return 0;
}

void qv_vm_load_migrations_when_attached(struct qv_daemon *d)
{
	if (d->n_attaching) {
		d->mig_load_deferred = true; /* attach_end runs it */
		return;
	}
	qv_migrate_registry_load(d);
}

/* While a VM re-attaches, only reads may name it; while the migration
 * records wait for the re-attaches, migrations wait too. "unavailable" is
 * what a migration peer retries (migrate/protocol-answer.c). */
bool qv_vm_attach_gate(const char *method, json_object *params, struct qv_error *errp,
		       void *userdata)
{
	struct qv_daemon *d = userdata;
	const char *name = NULL;
	json_object *v;
	struct qv_vm *vm;

	bool mig = strncmp(method, "migrate.", 8) == 0 || streq(method, "vm.migrate");
	if (mig && (d->mig_load_deferred || qv_mig_start_recovering())) {
		qv_error_set(errp, EAGAIN, QV_REASON_UNAVAILABLE,
			     "%s: the daemon is still re-attaching to its VMs and resolving "
			     "migrations cut by its restart; try again",
			     method);
		return false;
	}
	if (!d->n_attaching)
		return true;
	if (streq(method, "vm.list") || streq(method, "vm.info") || !params ||
	    !json_object_is_type(params, json_type_object) ||
	    (!json_object_object_get_ex(params, "name", &v) &&
	     !json_object_object_get_ex(params, "vm", &v)) ||
	    !(name = json_object_get_string(v)) || !(vm = qv_vm_find(d, name)) ||
	    !vm->attaching)
		return true;
	qv_error_set(errp, EAGAIN, QV_REASON_UNAVAILABLE,
		     "VM %s: the daemon is re-attaching to its QEMU (pid %d) after a restart; "
		     "try again", name, (int)qemu_instance_pid(vm->inst));
	return false;
}
