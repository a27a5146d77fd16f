/* SPDX-License-Identifier: MIT */
/* Source side, after the fact: reaping storage mirrors that a cancelled or
 * interrupted migration left behind, and migrate.recover (resolving a
 * migration a previous daemon was driving when it died). */
#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"

/* --- mirror cleanup ------------------------------------------------------------
 * A force-cancelled mirror may need seconds to drain its in-flight NBD writes
 * over a slow link. Nothing waits for QEMU on the loop: the force-cancel and
 * each later cleanup step are QMP sequences (mig_mirror_reap_async), polled
 * from a timer; a new copy_storage migration of that VM waits for it
 * (migrate.plan says mirror_cleanup, perform refuses with conflict). */

#define REAP_POLL_MS 200
#define REAP_GIVE_UP_MS 120000

struct reaper {
	struct reaper *next;
	struct qv_daemon *d;
	char *vm;
	mig_mirror *mm;
	qv_source *timer;
	uint64_t until;
	bool announced; /* "still draining" logged */
};

static struct reaper *reapers;

static qmp_client *reaper_qmp(void *ud)
{
	struct reaper *rp = ud;
	struct qv_vm *vm = qv_vm_find(rp->d, rp->vm);

	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return NULL;
	return qemu_instance_qmp(vm->inst);
}

static void reaper_free(struct reaper *rp)
{
	for (struct reaper **p = &reapers; *p; p = &(*p)->next)
		if (*p == rp) {
			*p = rp->next;
			break;
		}
	qv_source_remove(rp->timer);
	mig_mirror_free(rp->mm);
	free(rp->vm);
	free(rp);
}

static void reaper_tick(qv_source *s, void *ud);

/* One cleanup step ended (or QEMU is gone: step 1). */
static void reaper_next(struct reaper *rp, int step)
{
	if (step == 1 || !mig_mirror_active(rp->mm)) {
		if (rp->announced)
			log_info("VM %s: leftover storage mirror cleaned up", rp->vm);
		return reaper_free(rp);
	}
	if (qv_now_ms() > rp->until) {
		log_warning("VM %s: storage mirror jobs still not gone after %d s, giving up",
			    rp->vm, REAP_GIVE_UP_MS / 1000);
		return reaper_free(rp);
	}
	if (!rp->announced) {
		log_info("VM %s: cancelled storage mirror still draining, cleaning up in the "
			 "background", rp->vm);
		rp->announced = true;
	}
	if (qv_loop_add_timer(rp->d->loop, REAP_POLL_MS, reaper_tick, rp, &rp->timer) < 0)
		reaper_free(rp);
}

static void on_reap_step(mig_mirror *mm, int error, const struct qv_error *errp, void *ud)
{
	struct reaper *rp = ud;

	if (error < 0)
		log_debug("VM %s: mirror cleanup step: %s", rp->vm,
			  errp && errp->set ? errp->message : strerror(-error));
	reaper_next(rp, 0);
}

/* Send a cleanup step (the force-cancel first): nothing waits for QEMU. */
static void reaper_step(struct reaper *rp, bool abort)
{
	struct qv_error err = {};
	int r = mig_mirror_reap_async(rp->mm, abort, 5000, on_reap_step, rp, &err);

	if (r < 0) {
		log_warning("VM %s: %s; leftover storage mirror not cleaned up", rp->vm,
			    err.message);
		return reaper_free(rp);
	}
	if (r == 1)
		reaper_next(rp, 1);
}

static void reaper_tick(qv_source *s, void *ud)
{
	struct reaper *rp = ud;

	rp->timer = NULL;
	reaper_step(rp, false);
}

/* Abort mm (taken) for VM name, on the loop: the force-cancel goes out now
 * and a timer polls until QEMU dropped the jobs and nodes. */
void qv_mig_mirror_dispose(struct qv_daemon *d, const char *name, mig_mirror *mm)
{
	struct reaper *rp;

	if (!mm)
		return;
	rp = calloc(1, sizeof(*rp));
	if (!rp || !(rp->vm = strdup(name))) {
		free(rp);
		log_warning("VM %s: out of memory, leftover storage mirror not cleaned up", name);
		mig_mirror_free(mm);
		return;
	}
	rp->d = d;
	rp->mm = mm;
	mig_mirror_set_qmp(mm, reaper_qmp, rp);
	rp->next = reapers;
	reapers = rp;
	rp->until = qv_now_ms() + REAP_GIVE_UP_MS;
	reaper_step(rp, true);
}

bool qv_mig_mirror_cleanup_pending(const char *name)
{
	for (struct reaper *rp = reapers; rp; rp = rp->next)
		if (streq(rp->vm, name))
			return true;
	return false;
}

/* After a daemon restart: QEMU kept migrating without us. An unfinished
 * migration is cancelled (the coordinator is gone with our connection) and
 * the guest resumed; a completed one is left for migrate.confirm or
 * migrate.cancel. */
static qmp_client *source_qmp_by_name(void *ud)
{
	struct qv_vm *vm = ud;
	return vm->inst && !qemu_instance_exited(vm->inst) ? qemu_instance_qmp(vm->inst) : NULL;
}

/* --- postcopy after a daemon restart -----------------------------------------
 * Postcopy under way when the previous daemon died: the destination already
 * runs the guest and pulls the rest of its memory from this QEMU, which
 * needs no daemon for that. Cancelling or resuming here would lose the
 * guest, so recovery only watches until QEMU reports the end; a completed
 * migration then waits for migrate.confirm like any other. */

#define POSTCOPY_WATCH_MS 500

static bool is_postcopy_status(const char *s)
{
	return streq(s, "postcopy-active") || streq(s, "postcopy-paused") ||
	       streq(s, "postcopy-recover");
}

static void mark_completed(struct qv_mig *m, struct qv_vm *vm)
{
	snprintf(m->state, sizeof(m->state), "completed");
	qv_mig_persist(m);
	if (vm->state != QV_VM_MIGRATING)
		qv_vm_set_state(vm, QV_VM_MIGRATING, NULL);
}

static void postcopy_watch(qv_source *s, void *ud);

/* What QEMU said (status NULL: it did not answer). */
static void postcopy_status(struct qv_mig *m, struct qv_vm *vm, const char *status)
{
	if (!status)
		status = "source QEMU gone";
	if (vm && streq(status, "completed")) {
		log_info("VM %s: postcopy migration completed; waiting for migrate.confirm",
			 m->vm);
		mark_completed(m, vm);
		return;
	}
	if (!is_postcopy_status(status)) {
		/* failed, cancelled or gone: part of the guest's memory never
		 * reached the destination. Nothing here can fix that. */
		log_error("VM %s: postcopy migration ended as \"%s\": the guest's memory is "
			  "split between the hosts; the source stays paused (docs/migration.md)",
			  m->vm, status);
		snprintf(m->state, sizeof(m->state), "failed");
		qv_mig_persist(m);
		return;
	}
	if (qv_loop_add_timer(m->d->loop, POSTCOPY_WATCH_MS, postcopy_watch, m, &m->watch) < 0)
		m->watch = NULL;
}

struct pc_query {
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
};

static void on_postcopy_query(qmp_client *c, int error, json_object *ret,
			      const struct qv_error *errp, void *ud)
{
	struct pc_query *q = ud;
	struct qv_mig *m = qv_mig_find(q->vm, true);
	struct qv_vm *vm = qv_vm_find(q->d, q->vm);
	json_object *v;
	char buf[32];

	free(q);
	if (!m || !m->querying)
		return; /* dropped meanwhile */
	m->querying = false;
	if (error >= 0 && json_object_object_get_ex(ret, "status", &v))
		snprintf(buf, sizeof(buf), "%s", json_object_get_string(v));
	else
		snprintf(buf, sizeof(buf), "%s", error >= 0 ? "unknown" : "source QEMU gone");
	postcopy_status(m, vm, buf);
}

/* query-migrate without waiting for it: a stalled QEMU leaves the loop
 * serving (the answer, or its 5 s deadline, comes back later). */
static void postcopy_watch(qv_source *s, void *ud)
{
	struct qv_mig *m = ud;
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	struct pc_query *q;

	m->watch = NULL;
	if (!vm || !vm->inst || !(q = calloc(1, sizeof(*q))))
		return postcopy_status(m, vm, NULL);
	q->d = m->d;
	snprintf(q->vm, sizeof(q->vm), "%s", m->vm);
	m->querying = true;
	if (qmp_client_execute_async(qemu_instance_qmp(vm->inst), "query-migrate", NULL, NULL, 0,
				     5000, on_postcopy_query, q) < 0) {
		m->querying = false;
		free(q);
		postcopy_status(m, vm, NULL);
	}
}

/* Adopt a postcopy migration found running: record it (a cancel is then
 * refused, as for one this daemon drove) and watch it. */
static void adopt_postcopy(struct qv_vm *vm, struct qv_mig *m)
{
	json_object_put(m->stats);
	m->stats = json_tokener_parse("{\"postcopy\": true}");
	snprintf(m->state, sizeof(m->state), "postcopy");
	qv_mig_persist(m);
	if (vm->state != QV_VM_MIGRATING)
		qv_vm_set_state(vm, QV_VM_MIGRATING, NULL);
	log_warning("VM %s: postcopy migration still running after a daemon restart; "
		    "leaving it to finish", vm->name);
	postcopy_watch(NULL, m);
}

/* --- migrate.recover, on the loop ------------------------------------------
 * query-migrate; if not switched yet: migrate_cancel and query-migrate
 * polled until QEMU says cancelled/failed (50 ms, at most 100 times), then
 * the record is dropped and the source resumed (migrate-resume.c). All of
 * it is one QMP sequence with per-step deadlines: a stalled QEMU fails only
 * this recovery, and the migrate.recover call is answered at the end. A
 * switched migration (completed, postcopy) is never resumed here. At
 * daemon start the drivers (vm.migrate) resume only once every recovery
 * ended, as when recovery ran in line. */

#define RECOVER_STEP_MS 5000
#define CANCEL_POLL_MS 50
#define CANCEL_POLLS 100

struct recovery {
	struct recovery *next;
	struct qv_daemon *d;
	char name[VM_NAME_MAX + 1];
	qv_rpc_call *call; /* migrate.recover, NULL at daemon start */
	bool at_start;
	char status[32];
	int polls;
};

static struct recovery *recoveries;
static unsigned start_pending;    /* recoveries started at daemon start, not ended */
static bool drivers_wait;         /* qv_mig_p2p_resume_all runs when they ended */

/* Another recovery of x's VM is under way (x is already listed). */
static bool recovering_twice(const struct recovery *x)
{
	for (const struct recovery *o = x->next; o; o = o->next)
		if (streq(o->name, x->name))
			return true;
	return false;
}

bool qv_mig_start_recovering(void)
{
	return start_pending > 0 || drivers_wait;
}

/* The recovery x is over (its call answered). */
static void recovery_free(struct recovery *x)
{
	struct qv_daemon *d = x->d;
	bool at_start = x->at_start;

	for (struct recovery **p = &recoveries; *p; p = &(*p)->next)
		if (*p == x) {
			*p = x->next;
			break;
		}
	free(x);
	if (at_start && start_pending > 0 && --start_pending == 0 && drivers_wait) {
		drivers_wait = false;
		qv_mig_p2p_resume_all(d);
	}
}

static void recovery_end(struct recovery *x, int error, const struct qv_error *errp,
			 json_object *res)
{
	if (error < 0)
		log_warning("Migration of %s: recovery failed: %s", x->name,
			    errp && errp->set ? errp->message : strerror(-error));
	else
		log_info("Migration of %s: recovered as %s", x->name,
			 json_object_to_json_string(res));
	if (x->call && error < 0)
		qv_rpc_call_error(x->call, errp);
	else if (x->call)
		qv_rpc_call_reply(x->call, json_object_get(res));
	json_object_put(res);
	recovery_free(x);
}

static void on_resumed(struct qv_daemon *d, const char *name, int error, void *ud)
{
	recovery_free(ud);
}

static json_object *result(const char *name, const char *qemu_status, const char *outcome,
			   const char *vm_state)
{
	json_object *res = json_object_new_object();

	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "qemu_status", json_object_new_string(qemu_status));
	json_object_object_add(res, "status", json_object_new_string(outcome));
	json_object_object_add(res, "state", json_object_new_string(vm_state));
	return res;
}

static int cancel_poll_reply(qmp_seq *s, int error, json_object *ret, struct qv_error *err,
			     void *ud)
{
	struct recovery *x = ud;
	json_object *v;
	const char *st = error >= 0 && json_object_object_get_ex(ret, "status", &v)
				 ? json_object_get_string(v) : NULL;

	if (!st || streq(st, "cancelled") || streq(st, "failed") || ++x->polls >= CANCEL_POLLS)
		return 0; /* as in line: a failed query ends the wait too */
	return QMP_SEQ_AGAIN;
}

static int query_reply(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct recovery *x = ud;
	json_object *v;
	const char *st = json_object_object_get_ex(ret, "status", &v) ? json_object_get_string(v)
								    : "none";
	int r;

	snprintf(x->status, sizeof(x->status), "%s", st ? st : "none");
	if (!(streq(st, "active") || streq(st, "setup") || streq(st, "pre-switchover") ||
	      streq(st, "device") || streq(st, "cancelling")))
		return 0;
	r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "migrate_cancel",
						   .tolerate_error = true });
	if (r >= 0)
		r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "query-migrate",
							   .fn = cancel_poll_reply, .userdata = x,
							   .tolerate_error = true,
							   .retry_ms = CANCEL_POLL_MS });
	return r;
}

static void recover_done(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	struct recovery *x = ud;
	struct qv_daemon *d = x->d;
	struct qv_vm *vm = qv_vm_find(d, x->name);
	struct qv_mig *m = qv_mig_find(x->name, true);
	struct qv_error err = {};
	const char *status = x->status;

	if (error < 0)
		return recovery_end(x, error, errp, NULL);
	if (!vm || !vm->inst) {
		qv_error_set(&err, ESRCH, QV_REASON_NOT_FOUND, "VM %s has no QEMU to recover",
			     x->name);
		return recovery_end(x, -ESRCH, &err, NULL);
	}
	bool switched = streq(status, "completed") || is_postcopy_status(status);
	if (switched && !m && !(m = qv_mig_new(d, x->name, true))) {
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		return recovery_end(x, -ENOMEM, &err, NULL);
	}
	if (streq(status, "completed")) {
		mark_completed(m, vm);
		return recovery_end(x, 0, NULL, result(x->name, status, "completed", "migrating"));
	}
	if (switched) {
		adopt_postcopy(vm, m);
		return recovery_end(x, 0, NULL, result(x->name, status, "postcopy", "migrating"));
	}
	/* Not switched: the destination never ran the guest. */
	if (m) {
		qv_mig_drop(m);
	} else {
		char id[96];
		snprintf(id, sizeof(id), "%s-out", x->name);
		(void)qv_state_migration_delete(d->state, id);
	}
	json_object *res = result(x->name, status, "cancelled", "running");
	log_info("Migration of %s: recovered as %s", x->name, json_object_to_json_string(res));
	struct qv_mig_resume_tail tail = {
		.call = TAKE_PTR(x->call),
		.data = res,
		.resume_error_fails = true,
		.what = " after recovering its migration",
		.done = on_resumed,
		.done_ud = x,
	};
	qv_mig_resume_source_async(d, x->name, &tail); /* frees x through on_resumed */
}

void qv_mig_recover_async(struct qv_daemon *d, const char *name, qv_rpc_call *call)
{
	struct qv_vm *vm = qv_vm_find(d, name);
	struct qv_mig *m = qv_mig_find(name, true);
	struct recovery *x = calloc(1, sizeof(*x));
	struct qv_error err = {};
	qmp_seq *s = NULL;
	int r;

	if (!x) {
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		if (call)
			qv_rpc_call_error(call, &err);
		return;
	}
	*x = (struct recovery){ .d = d, .call = call, .at_start = !call, .next = recoveries };
	snprintf(x->name, sizeof(x->name), "%s", name);
	recoveries = x;
	if (x->at_start)
		start_pending++;
	if ((m && (m->engine || m->mirror_timer || m->watch || m->querying)) ||
	    recovering_twice(x)) {
		qv_error_set(&err, EBUSY, QV_REASON_CONFLICT,
			     "the migration of %s is still being driven", name);
		return recovery_end(x, -EBUSY, &err, NULL);
	}
	if (!vm || !vm->inst) {
		char id[96];
		snprintf(id, sizeof(id), "%s-out", name);
		(void)qv_state_migration_delete(d->state, id);
		if (m)
			qv_mig_drop(m);
		qv_error_set(&err, ESRCH, QV_REASON_NOT_FOUND, "VM %s has no QEMU to recover", name);
		return recovery_end(x, -ESRCH, &err, NULL);
	}
	if (vm->attaching) {
		qv_error_set(&err, EAGAIN, QV_REASON_UNAVAILABLE,
			     "VM %s: the daemon is still re-attaching to its QEMU", name);
		return recovery_end(x, -EAGAIN, &err, NULL);
	}
	/* A storage mirror a previous daemon left (mirror phase or RAM phase
	 * of a copy_storage migration): end it, the source keeps its disk. */
	if (!qv_mig_mirror_cleanup_pending(name)) {
		mig_mirror *mm = NULL;
		int n = mig_mirror_adopt_stale(source_qmp_by_name, vm, &mm);
		if (n > 0) {
			log_info("VM %s: cancelling %d storage mirror(s) left by a previous daemon",
				 name, n);
			qv_mig_mirror_dispose(d, name, mm);
		}
	}
	r = qmp_seq_new(qemu_instance_qmp(vm->inst), RECOVER_STEP_MS, recover_done, x, &s);
	if (r >= 0)
		r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "query-migrate",
							   .fn = query_reply, .userdata = x });
	if (r >= 0)
		r = qmp_seq_start(s);
	if (r < 0) {
		qmp_seq_cancel(s);
		qv_error_set(&err, -r, QV_REASON_INTERNAL, "cannot query the source QEMU of %s: %s",
			     name, strerror(-r));
		recovery_end(x, r, &err, NULL);
	}
}

void qv_mig_resume_drivers_after_recovery(struct qv_daemon *d)
{
	if (start_pending > 0) {
		drivers_wait = true;
		return;
	}
	qv_mig_p2p_resume_all(d);
}
