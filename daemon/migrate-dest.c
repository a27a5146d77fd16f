/* SPDX-License-Identifier: MIT */
/* Destination side: migrate.finish, the incoming watchdog and teardown
 * (migrate.prepare: migrate-dest-prepare.c; copy_storage images and NBD
 * exports: migrate-dest-storage.c).
 *
 * The incoming QEMU runs with -S -incoming defer: it never starts the guest
 * by itself; migrate.finish sends `cont` once the incoming migration is
 * completed. With allow_postcopy the watchdog sends `cont` as soon as the
 * incoming side reports postcopy-active (the source is stopped by then);
 * finish then only waits for completed. While prepared, the VM's restart policy is off, so a QEMU that
 * exits (the source cancelled, the link broke) is not restarted as a fresh
 * boot; the watchdog then removes it. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster.h"
#include "daemon/migrate-internal.h"

#define WATCH_MS 300
#define FINISH_POLL_MS 20 /* blackout: the source is stopped for good */
#define FINISH_TIMEOUT_MS 60000
#define POSTCOPY_POLL_MS 20 /* the guest is paused from the switch until our cont */
#define DEST_CONT_TIMEOUT_MS 5000

static void dest_watch(qv_source *s, void *ud);

void qv_mig_dest_rearm(struct qv_mig *m)
{
	m->watch = qv_source_remove(m->watch);
	if (!m->expires_ms)
		m->expires_ms = qv_now_ms() + 600 * 1000;
	if (qv_loop_add_timer(m->d->loop,
			      m->finish_call ? FINISH_POLL_MS
			      : m->postcopy && !m->postcopy_running ? POSTCOPY_POLL_MS : WATCH_MS,
			      dest_watch,
			      m, &m->watch) < 0)
		m->watch = NULL;
}

static void restore_policy(struct qv_mig *m, struct qv_vm *vm)
{
	if (vm && vm->spec)
		vm->spec->restart.policy = m->saved_policy;
}

static void teardown_stopped(struct qv_vm *vm, int error, enum qemu_stop_step step,
			     const char *exit_text, void *ud)
{
	struct qv_error err = {};

	if ((uintptr_t)ud && !vm->inst && qv_vm_undefine(vm, &err) < 0)
		log_warning("VM %s: cannot undefine the torn-down destination: %s", vm->name,
			    err.message);
}

void qv_mig_teardown_dest(struct qv_mig *m, const char *why)
{
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	struct qv_error err = {};
	bool created = m->created;

	/* Still preparing: cancel its steps and answer it, or (QEMU still
	 * starting) come back here once the start ended. */
	if (m->prep && !qv_mig_prep_abort(m, why))
		return;
	log_warning("VM %s: tearing down the incoming migration: %s", m->vm, why);
	if (m->finish_call) {
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED,
			     "incoming migration of %s torn down: %s", m->vm, why);
		qv_rpc_call_error(m->finish_call, &err);
		m->finish_call = NULL;
		qv_error_clear(&err);
	}
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "reason", json_object_new_string(why));
	qv_daemon_emit(m->d, m->vm, "migration-failed", ev);
	restore_policy(m, vm);
	/* QEMU may still hold them open: unlinking is fine, it is killed next. */
	qv_mig_dest_delete_images(m);
	qv_mig_drop(m);
	if (!vm)
		return;
	if (vm->inst) {
		if (qv_vm_stop_migrated(vm, true, 0, teardown_stopped, (void *)(uintptr_t)created, &err) < 0)
			log_warning("VM %s: cannot stop the incoming QEMU: %s", vm->name,
				    err.message);
		return;
	}
	if (vm->state == QV_VM_MIGRATING || vm->state == QV_VM_CRASHED)
		qv_vm_set_state(vm, QV_VM_STOPPED, NULL);
	teardown_stopped(vm, 0, QEMU_STOP_STEP_KILL, NULL, (void *)(uintptr_t)created);
}

/* An asynchronous command's answer finds its migration again by VM and
 * token: it may have been finished, torn down or replaced meanwhile. */
struct dest_query {
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	char token[33];
};

static struct dest_query *dest_query_new(const struct qv_mig *m)
{
	struct dest_query *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->d = m->d;
	snprintf(q->vm, sizeof(q->vm), "%s", m->vm);
	snprintf(q->token, sizeof(q->token), "%s", m->token);
	return q;
}

/* The migration q names (NULL if gone), its VM in *ret_vm; frees q. */
static struct qv_mig *dest_query_take(struct dest_query *q, struct qv_vm **ret_vm)
{
	struct qv_mig *m = qv_mig_find(q->vm, false);

	*ret_vm = qv_vm_find(q->d, q->vm);
	if (m && !streq(m->token, q->token))
		m = NULL;
	free(q);
	return m;
}

/* The guest runs here: answer finish, keep the record as a tombstone. */
static void finish_done(struct qv_mig *m, struct qv_vm *vm)
{
	qv_rpc_call *call = TAKE_PTR(m->finish_call);
	json_object *res;

	restore_policy(m, vm);
	m->n_images = 0; /* they are the VM's disks now */
	/* RESUME arrives before cont's reply; fall back to now. */
	m->resume_unix_us = vm->last_resume_us > 0 ? vm->last_resume_us : qv_unix_ms() * 1000;
	qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	qv_daemon_emit(m->d, m->vm, "migration-finished", NULL);
	qv_cluster_vm_arrived(m->d, m->vm);
	log_info("VM %s: incoming migration finished%s, guest running", m->vm,
		 m->postcopy_running ? " (postcopy)" : "");
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(m->vm));
	json_object_object_add(res, "state", json_object_new_string("running"));
	if (m->postcopy_running)
		json_object_object_add(res, "postcopy", json_object_new_boolean(true));
	json_object_object_add(res, "resume_unix_us", json_object_new_int64(m->resume_unix_us));
	/* Keep the record as a tombstone: a repeated finish (the source lost
	 * our answer) is answered again, a cancel refused. */
	snprintf(m->state, sizeof(m->state), "finished");
	qv_mig_persist(m);
	qv_mig_test_crash_point("dest-finished");
	qv_mig_retire(m);
	if (call)
		qv_rpc_call_reply(call, res);
	else
		json_object_put(res);
}

static void on_finish_cont(qmp_client *c, int error, json_object *ret,
			   const struct qv_error *errp, void *userdata)
{
	struct qv_vm *vm;
	struct qv_mig *m = dest_query_take(userdata, &vm);
	struct qv_error err = {};

	if (!m)
		return; /* torn down meanwhile (its QEMU is killed) */
	m->cont_finish = false;
	if (error < 0 || !vm || !vm->inst) {
		if (errp && errp->set)
			err = *errp;
		else
			qv_error_set(&err, error < 0 ? -error : ESRCH, QV_REASON_UNAVAILABLE,
				     "the incoming QEMU is gone");
		if (m->finish_call)
			qv_rpc_call_error(TAKE_PTR(m->finish_call), &err);
		return qv_mig_teardown_dest(m, "cont failed on the destination");
	}
	finish_done(m, vm);
}

/* Send `cont` to the incoming QEMU without waiting; *flag is set while it
 * is out and fn (given a dest_query) clears it. */
static int send_cont(struct qv_mig *m, struct qv_vm *vm, bool *flag, qmp_reply_fn fn)
{
	struct dest_query *q = dest_query_new(m);

	*flag = true;
	if (!q || qmp_client_execute_async(qemu_instance_qmp(vm->inst), "cont", NULL, NULL, 0,
					   DEST_CONT_TIMEOUT_MS, fn, q) < 0) {
		free(q);
		*flag = false;
		return -EIO;
	}
	return 0;
}

/* Completed: give the disks back (nbd-server-stop), then `cont`, both
 * sent without waiting; QEMU runs them in order and the answer to cont
 * finishes the migration (on_finish_cont). */
static void finish_now(struct qv_mig *m, struct qv_vm *vm)
{
	struct qv_error err = {};

	if (m->cont_finish)
		return;
	/* The exports hold write access the guest device must get back. */
	qv_mig_dest_nbd_stop(m, vm);
	/* After postcopy the guest already runs (cont at postcopy-active). */
	if (m->postcopy_running)
		return finish_done(m, vm);
	qv_mig_test_stall_point(m->d, "dest-finish-cont", qemu_instance_pid(vm->inst));
	if (send_cont(m, vm, &m->cont_finish, on_finish_cont) < 0) {
		qv_error_set(&err, EIO, QV_REASON_UNAVAILABLE, "cannot send cont to the incoming QEMU");
		if (m->finish_call)
			qv_rpc_call_error(TAKE_PTR(m->finish_call), &err);
		qv_mig_teardown_dest(m, "cont failed on the destination");
	}
}

static void on_postcopy_cont(qmp_client *c, int error, json_object *ret,
			     const struct qv_error *errp, void *userdata)
{
	struct qv_vm *vm;
	struct qv_mig *m = dest_query_take(userdata, &vm);

	if (!m)
		return;
	m->cont_postcopy = false;
	if (m->postcopy_running || streq(m->state, "finished"))
		return; /* finish got there first */
	if (error < 0) { /* the watch tries again while postcopy-active */
		log_warning("VM %s: cont at postcopy-active failed: %s", m->vm,
			    errp && errp->set ? errp->message : strerror(-error));
		return;
	}
	m->postcopy_running = true;
	snprintf(m->state, sizeof(m->state), "postcopy-running");
	qv_mig_persist(m);
	log_info("VM %s: postcopy switch: guest running here, pages fetched from the source",
		 m->vm);
	qv_daemon_emit(m->d, m->vm, "migration-postcopy", NULL);
}

/* Postcopy: QEMU leaves a -S destination paused at the switch (it starts
 * the guest itself only with autostart). postcopy-active on the
 * destination means the source has stopped its vCPUs and sent the device
 * state, so starting here cannot make two copies run. */
static void postcopy_cont(struct qv_mig *m, struct qv_vm *vm)
{
	if (!m->cont_postcopy && send_cont(m, vm, &m->cont_postcopy, on_postcopy_cont) < 0)
		log_warning("VM %s: cannot send cont at postcopy-active", m->vm);
}

/* What the watch does with the incoming side's status (st: QEMU's
 * query-migrate status, NULL when QEMU did not answer). */
static void dest_decide(struct qv_mig *m, struct qv_vm *vm, const char *st)
{
	if (m->finish_call) {
		if (st && streq(st, "completed"))
			return finish_now(m, vm);
		if (!st || streq(st, "failed"))
			return qv_mig_teardown_dest(m, "the incoming migration failed");
		if (qv_now_ms() > m->finish_deadline) {
			struct qv_error err = {};
			qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT,
				     "incoming migration of %s still %s", m->vm, st);
			qv_rpc_call_error(m->finish_call, &err);
			m->finish_call = NULL;
		}
	} else if (m->postcopy) {
		if (st && streq(st, "postcopy-active") && !m->postcopy_running)
			postcopy_cont(m, vm);
		else if (st && streq(st, "completed") && m->postcopy_running &&
			 qv_now_ms() > m->expires_ms)
			return finish_now(m, vm); /* nobody finishes: it runs here anyway */
		else if (st && streq(st, "failed") && m->postcopy_running)
			return qv_mig_teardown_dest(m, "the incoming migration failed during "
						       "postcopy (guest lost)");
		else if (qv_now_ms() > m->expires_ms && !m->postcopy_running)
			return qv_mig_teardown_dest(m, "not finished before its timeout");
	} else if (qv_now_ms() > m->expires_ms) {
		return qv_mig_teardown_dest(m, "not finished before its timeout");
	} else if (m->source_uri && !m->asking) {
		qv_mig_dest_check_stuck(m, st);
	}
	qv_mig_dest_rearm(m);
}

static void on_incoming_status(qmp_client *c, int error, json_object *ret,
			       const struct qv_error *errp, void *userdata)
{
	struct qv_vm *vm;
	struct qv_mig *m = dest_query_take(userdata, &vm);
	char buf[32];
	const char *st = NULL;
	json_object *v;

	if (!m)
		return;
	m->querying = false;
	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return qv_mig_teardown_dest(m, "the incoming QEMU exited");
	if (error >= 0) {
		snprintf(buf, sizeof(buf), "%s", json_object_object_get_ex(ret, "status", &v)
							 ? json_object_get_string(v) : "none");
		st = buf;
	}
	dest_decide(m, vm, st);
}

/* Looks at the incoming QEMU without waiting for it: the status comes
 * back to on_incoming_status() (within 3 s, else as "no answer"), and the
 * loop serves everything else meanwhile. */
static void dest_watch(qv_source *s, void *ud)
{
	struct qv_mig *m = ud;
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	struct dest_query *q;

	m->watch = NULL;
	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return qv_mig_teardown_dest(m, "the incoming QEMU exited");
	if (m->querying)
		return; /* the answer decides and re-arms */
	if (!m->finish_call && !m->postcopy && (qv_now_ms() > m->expires_ms ||
						 !m->source_uri || m->asking))
		return dest_decide(m, vm, NULL); /* no status needed */
	q = dest_query_new(m);
	if (!q)
		return qv_mig_dest_rearm(m);
	m->querying = true;
	if (qmp_client_execute_async(qemu_instance_qmp(vm->inst), "query-migrate", NULL, NULL, 0,
				     3000, on_incoming_status, q) < 0) {
		m->querying = false;
		free(q);
		dest_decide(m, vm, NULL);
	}
}

int qv_mig_finish(qv_rpc_call *call, struct qv_mig *m)
{
	if (m->cont_finish) {
		/* cont is out: its answer finishes. A repeated finish (the
		 * source reconnected) takes over the reply. */
		if (m->finish_call)
			(void)qv_call_fail(TAKE_PTR(m->finish_call), ECANCELED,
					   QV_REASON_CANCELLED,
					   "superseded by a repeated migrate.finish of %s", m->vm);
		m->finish_call = call;
		return 0;
	}
	if (m->finish_call)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "migrate.finish of %s is already waiting", m->vm);
	m->finish_call = call;
	m->finish_deadline = qv_now_ms() + FINISH_TIMEOUT_MS;
	snprintf(m->state, sizeof(m->state), "finishing");
	/* The guest is paused until our cont: look at once, not after a poll
	 * interval (every ms here is blackout). */
	m->watch = qv_source_remove(m->watch);
	if (qv_loop_add_timer(m->d->loop, 0, dest_watch, m, &m->watch) < 0)
		qv_mig_dest_rearm(m);
	return 0;
}
