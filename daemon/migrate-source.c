/* SPDX-License-Identifier: MIT */
/* Source side: migrate.perform / confirm / cancel / recover.
 *
 * Invariant: the source guest keeps running unless QEMU completed the
 * migration; every failure path ends with the source QEMU running (cont if
 * it was left paused) and the VM "running" in the state store. The source
 * QEMU is quit only by migrate.confirm, which the coordinator calls after
 * the destination reported running. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"

static qmp_client *source_qmp(void *ud)
{
	struct qv_mig *m = ud;
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);

	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return NULL;
	return qemu_instance_qmp(vm->inst);
}

/* Make sure the source guest runs again after a failed/cancelled migration.
 * QEMU restarts the vCPUs itself on failure; `cont` covers the rest
 * (stopped at pre-switchover, or postmigrate after a completed migration
 * whose destination never started). */
static int resume_source(struct qv_daemon *d, const char *name, struct qv_error *errp)
{
	struct qv_vm *vm = qv_vm_find(d, name);
	_cleanup_free_ char *status = NULL;
	int r;

	if (!vm)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "VM %s vanished", name);
	if (!vm->inst || qemu_instance_exited(vm->inst)) {
		if (vm->state == QV_VM_MIGRATING)
			qv_vm_set_state(vm, QV_VM_CRASHED, NULL);
		return qv_error_set(errp, ESRCH, QV_REASON_UNAVAILABLE,
				    "the source QEMU of %s is gone", name);
	}
	for (int i = 0; i < 50; i++) {
		free(status);
		status = NULL;
		r = qemu_instance_query_status(vm->inst, &status, errp);
		if (r < 0)
			return r;
		/* "finish-migrate"/"cancelling" are transient. */
		if (!streq(status, "finish-migrate"))
			break;
		usleep(20 * 1000);
	}
	if (!streq(status, "running")) {
		log_info("VM %s: source QEMU is %s after the migration, resuming it", name, status);
		r = qmp_client_execute(qemu_instance_qmp(vm->inst), "cont", NULL, 5000, NULL, errp);
		if (r < 0)
			return r;
	}
	if (vm->state != QV_VM_RUNNING)
		qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	return 0;
}

static void on_engine_event(mig_engine *e, const char *type, json_object *data, void *ud)
{
	struct qv_mig *m = ud;
	json_object *n;

	if (streq(type, "decision"))
		qv_daemon_emit(m->d, m->vm, "migration-decision", json_object_get(data));
	if (m->perform_call && qv_rpc_call_client_gone(m->perform_call) &&
	    streq(type, "progress") && !mig_engine_finished(e)) {
		/* The coordinator is gone: nobody could finish this migration. */
		log_warning("VM %s: the migration client disconnected, cancelling", m->vm);
		mig_engine_cancel(e, "the migration client disconnected");
		return;
	}
	if (!m->client)
		return;
	n = json_object_new_object();
	json_object_object_add(n, "name", json_object_new_string(m->vm));
	json_object_object_add(n, "type", json_object_new_string(type));
	json_object_object_foreach(data, k, v)
		json_object_object_add(n, k, json_object_get(v));
	(void)qv_rpc_client_notify(m->client, "migrate.progress", n);
	json_object_put(n);
}

static void on_engine_done(mig_engine *e, int error, const struct qv_error *errp,
			   json_object *stats, void *ud)
{
	struct qv_mig *m = ud;
	qv_rpc_call *call = m->perform_call;
	struct qv_error err = {};
	json_object *st = json_object_get(stats);

	m->perform_call = NULL;
	m->engine = mig_engine_free(e);
	if (error == 0) {
		log_info("VM %s: migration completed: %s", m->vm,
			 json_object_to_json_string_ext(stats, JSON_C_TO_STRING_PLAIN));
		snprintf(m->state, sizeof(m->state), "completed");
		json_object_put(m->stats);
		m->stats = json_object_get(st);
		qv_mig_persist(m);
		qv_daemon_emit(m->d, m->vm, "migration-completed", json_object_get(st));
		if (call)
			qv_rpc_call_reply(call, st);
		else
			json_object_put(st);
		return;
	}
	if (errp && errp->set)
		err = *errp;
	else
		qv_error_set(&err, -error, NULL, "migration failed: %s", strerror(-error));
	log_warning("VM %s: migration failed: %s", m->vm, err.message);
	{
		struct qv_error rerr = {};
		if (resume_source(m->d, m->vm, &rerr) < 0)
			log_error("VM %s: cannot resume the source after a failed migration: %s",
				  m->vm, rerr.message);
	}
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "error", json_object_new_string(err.message));
	json_object_object_add(ev, "stats", json_object_get(st));
	qv_daemon_emit(m->d, m->vm, "migration-failed", ev);
	if (call) {
		json_object *data = json_object_new_object();
		json_object_object_add(data, "stats", json_object_get(st));
		qv_rpc_call_error_data(call, &err, data);
	}
	json_object_put(st);
	qv_mig_drop(m);
}

int qv_mig_perform(qv_rpc_call *call, struct qv_vm *vm, const struct mig_engine_opts *o)
{
	struct qv_error err = {};
	struct qv_mig *m;
	int r;

	if (qv_mig_find(vm->name, true) || qv_mig_find(vm->name, false))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "VM %s already has a migration in progress", vm->name);
	if (vm->state != QV_VM_RUNNING || !vm->inst)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is %s; only a running VM can be migrated", vm->name,
				    qv_vm_state_to_string(vm->state));
	m = qv_mig_new(vm->d, vm->name, true);
	if (!m)
		return -ENOMEM;
	m->peer = strdup(o->uri);
	snprintf(m->state, sizeof(m->state), "performing");
	qv_mig_persist(m);
	json_object *extra = json_object_new_object();
	json_object_object_add(extra, "role", json_object_new_string("source"));
	json_object_object_add(extra, "uri", json_object_new_string(o->uri));
	qv_vm_set_state(vm, QV_VM_MIGRATING, extra);
	m->perform_call = call;
	m->client = qv_rpc_client_ref(qv_rpc_call_client(call));
	r = mig_engine_start(vm->d->loop, source_qmp, o, on_engine_event, on_engine_done, m,
			     &m->engine, &err);
	if (r < 0) {
		m->perform_call = NULL;
		(void)resume_source(vm->d, vm->name, NULL);
		qv_mig_drop(m);
		return qv_rpc_call_error(call, &err), 0;
	}
	log_info("VM %s: migrating to %s (downtime <= %d ms, deadline %u s%s)", vm->name, o->uri,
		 o->max_downtime_ms, o->deadline_s, o->plain ? ", plain" : "");
	return 0;
}

struct confirm_ctx {
	qv_rpc_call *call;
	bool keep;
};

static void confirm_stopped(struct qv_vm *vm, int error, enum qemu_stop_step step,
			    const char *exit_text, void *ud)
{
	struct confirm_ctx *c = ud;
	struct qv_error err = {};
	json_object *res = json_object_new_object();
	bool undefined = false;

	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "how", json_object_new_string(qemu_stop_step_to_string(step)));
	if (!c->keep && !vm->inst) {
		_cleanup_free_ char *name = strdup(vm->name);
		if (qv_vm_undefine(vm, &err) == 0) {
			undefined = true;
			json_object_object_add(res, "name", json_object_new_string(name));
		} else {
			log_warning("VM %s: cannot undefine after migration: %s", vm->name,
				    err.message);
		}
	}
	json_object_object_add(res, "state", json_object_new_string(
				       undefined ? "undefined" : "stopped"));
	json_object_object_add(res, "error", error ? json_object_new_int(error) : NULL);
	qv_rpc_call_reply(c->call, res);
	free(c);
}

int qv_mig_confirm(qv_rpc_call *call, struct qv_mig *m, bool keep)
{
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	struct qv_error err = {};
	struct confirm_ctx *c;

	if (!streq(m->state, "completed"))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "the migration of %s is %s, not completed", m->vm, m->state);
	if (!vm)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s vanished", m->vm);
	qv_mig_drop(m);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct confirm_ctx){ call, keep };
	if (!vm->inst) {
		confirm_stopped(vm, 0, QEMU_STOP_STEP_QUIT, NULL, c);
		return 0;
	}
	/* The guest is postmigrate (paused for good). A 1 ms power-down window
	 * makes the stop go straight to QMP quit. */
	if (qv_vm_stop_migrated(vm, false, 1, confirm_stopped, c, &err) < 0) {
		free(c);
		return qv_rpc_call_error(call, &err), 0;
	}
	return 0;
}

int qv_mig_cancel_source(qv_rpc_call *call, struct qv_mig *m)
{
	struct qv_error err = {};
	json_object *res = json_object_new_object();
	const char *action;
	_cleanup_free_ char *name = strdup(m->vm);
	struct qv_daemon *d = m->d;

	if (m->engine) {
		mig_engine_cancel(m->engine, "cancelled by the client");
		action = "cancelling";
	} else {
		/* Completed but not confirmed: the destination never ran, so the
		 * source takes over again. */
		qv_mig_drop(m);
		if (resume_source(d, name, &err) < 0) {
			json_object_put(res);
			return qv_rpc_call_error(call, &err), 0;
		}
		action = "resumed";
	}
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "role", json_object_new_string("source"));
	json_object_object_add(res, "action", json_object_new_string(action));
	return qv_rpc_call_reply(call, res), 0;
}

/* After a daemon restart: QEMU kept migrating without us. An unfinished
 * migration is cancelled (the coordinator is gone with our connection) and
 * the guest resumed; a completed one is left for migrate.confirm or
 * migrate.cancel. */
int qv_mig_recover(struct qv_daemon *d, const char *name, json_object **ret,
		   struct qv_error *errp)
{
	struct qv_vm *vm = qv_vm_find(d, name);
	struct qv_mig *m = qv_mig_find(name, true);
	_cleanup_json_ json_object *q = NULL;
	const char *status = "none";
	json_object *v, *res;
	qmp_client *c;
	int r;

	if (m && m->engine)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "the migration of %s is still being driven", name);
	if (!vm || !vm->inst) {
		char id[96];
		snprintf(id, sizeof(id), "%s-out", name);
		(void)qv_state_migration_delete(d->state, id);
		if (m)
			qv_mig_drop(m);
		return qv_error_set(errp, ESRCH, QV_REASON_NOT_FOUND,
				    "VM %s has no QEMU to recover", name);
	}
	c = qemu_instance_qmp(vm->inst);
	r = qmp_client_execute(c, "query-migrate", NULL, 5000, &q, errp);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(q, "status", &v))
		status = json_object_get_string(v);
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "qemu_status", json_object_new_string(status));
	if (streq(status, "completed")) {
		if (!m) {
			m = qv_mig_new(d, name, true);
			if (!m) {
				json_object_put(res);
				return -ENOMEM;
			}
		}
		snprintf(m->state, sizeof(m->state), "completed");
		qv_mig_persist(m);
		if (vm->state != QV_VM_MIGRATING)
			qv_vm_set_state(vm, QV_VM_MIGRATING, NULL);
		json_object_object_add(res, "status", json_object_new_string("completed"));
		json_object_object_add(res, "state", json_object_new_string("migrating"));
		*ret = res;
		return 0;
	}
	if (streq(status, "active") || streq(status, "setup") || streq(status, "pre-switchover") ||
	    streq(status, "device") || streq(status, "postcopy-active") ||
	    streq(status, "cancelling")) {
		(void)qmp_client_execute(c, "migrate_cancel", NULL, 5000, NULL, NULL);
		for (int i = 0; i < 100; i++) {
			_cleanup_json_ json_object *q2 = NULL;
			if (qmp_client_execute(c, "query-migrate", NULL, 5000, &q2, NULL) < 0)
				break;
			if (json_object_object_get_ex(q2, "status", &v) &&
			    (streq(json_object_get_string(v), "cancelled") ||
			     streq(json_object_get_string(v), "failed")))
				break;
			usleep(50 * 1000);
		}
	}
	if (m)
		qv_mig_drop(m);
	else {
		char id[96];
		snprintf(id, sizeof(id), "%s-out", name);
		(void)qv_state_migration_delete(d->state, id);
	}
	r = resume_source(d, name, errp);
	if (r < 0) {
		json_object_put(res);
		return r;
	}
	json_object_object_add(res, "status", json_object_new_string("cancelled"));
	json_object_object_add(res, "state", json_object_new_string("running"));
	*ret = res;
	return 0;
}
