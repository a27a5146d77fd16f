/* SPDX-License-Identifier: MIT */
/* Loading the registry at daemon start and re-attaching to live QEMUs. */
#include <sys/socket.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/vm.h"
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
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

static void reattach(struct qv_vm *vm, const struct qv_runtime_record *rec)
{
	struct qv_daemon *d = vm->d;
	struct qv_error err = {};
	pid_t pid = (pid_t)rec->pid;
	uint64_t start_time = rec->pid_start_time;
	_cleanup_free_ char *status = NULL;
	int r;

	_cleanup_free_ char *qmp = rec->qmp_path ? strdup(rec->qmp_path)
						: (vm->run_dir ? qemu_run_path(vm->run_dir,
									       QEMU_QMP_SOCK)
							       : NULL);
	if (!qmp)
		goto gone;
	if (pid <= 0) {
		/* "starting" without pid: the daemon died while spawning. */
		r = pid_from_qmp_socket(qmp, &pid);
		if (r < 0 || qemu_proc_read_start_time(pid, &start_time) < 0)
			goto gone;
	}
	struct qemu_instance_config cfg = {};
	qv_vm_bind_instance_config(vm, &cfg);
	r = qemu_instance_attach(d->loop, pid, start_time, qmp, &cfg, &vm->inst, &err);
	if (r < 0) {
		log_warning("VM %s: cannot re-attach to QEMU pid %d: %s", vm->name, (int)pid,
			    err.set ? err.message : strerror(-r));
		if (r != -ESRCH && pid > 0 && qemu_proc_read_start_time(pid, &start_time) >= 0 &&
		    start_time == rec->pid_start_time)
			log_error("VM %s: QEMU pid %d is alive but its QMP does not answer; "
				  "leaving it running and marking the VM crashed",
				  vm->name, (int)pid);
		goto gone;
	}
	r = qemu_instance_query_status(vm->inst, &status, &err);
	vm->state = (r >= 0 && streq(status, "paused")) ? QV_VM_PAUSED : QV_VM_RUNNING;
	if (r >= 0 && (streq(status, "inmigrate") || streq(status, "postmigrate") ||
		       streq(status, "finish-migrate")))
		vm->state = QV_VM_PAUSED;
	vm->started_at = rec->started_at;
	log_info("VM %s: re-attached to QEMU pid %d (%s)", vm->name, (int)pid,
		 status ? status : "status unknown");
	qv_daemon_emit(d, vm->name, "reattached", NULL);
	qv_vm_files_attached(vm);
	return;
gone:
	vm->inst = NULL;
	vm->lost_at_load = true;
	snprintf(vm->last_exit, sizeof(vm->last_exit),
		 "QEMU exited while the daemon was not running; status unknown");
	vm->state = QV_VM_CRASHED;
	log_warning("VM %s: QEMU is gone (it was %s)", vm->name, rec->state);
	qv_daemon_emit(d, vm->name, "crashed",
		       json_tokener_parse("{\"exit\":\"QEMU exited while the daemon was not running; status unknown\"}"));
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
	/* Persist the reconciled states (and apply restart policies). */
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next) {
		bool lost = vm->state == QV_VM_CRASHED && vm->lost_at_load;
		qv_vm_persist(vm);
		if (lost)
			qv_vm_apply_restart_policy(vm);
	}
	return 0;
}
