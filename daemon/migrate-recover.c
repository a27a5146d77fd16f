/* SPDX-License-Identifier: MIT */
/* Source side, after the fact: reaping storage mirrors that a cancelled or
 * interrupted migration left behind, and migrate.recover (resolving a
 * migration a previous daemon was driving when it died). */
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"

/* --- mirror cleanup ------------------------------------------------------------
 * A force-cancelled mirror may need seconds to drain its in-flight NBD writes
 * over a slow link. Rather than block the loop, the leftover is reaped from
 * a timer; a new copy_storage migration of that VM waits for it
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

static void reaper_tick(qv_source *s, void *ud)
{
	struct reaper *rp = ud;

	rp->timer = NULL;
	if (mig_mirror_reap(rp->mm)) {
		log_info("VM %s: leftover storage mirror cleaned up", rp->vm);
		return reaper_free(rp);
	}
	if (qv_now_ms() > rp->until) {
		log_warning("VM %s: storage mirror jobs still not gone after %d s, giving up",
			    rp->vm, REAP_GIVE_UP_MS / 1000);
		return reaper_free(rp);
	}
	if (qv_loop_add_timer(rp->d->loop, REAP_POLL_MS, reaper_tick, rp, &rp->timer) < 0)
		reaper_free(rp);
}

/* Abort mm (taken) for VM name: briefly in line, then from a timer. */
void qv_mig_mirror_dispose(struct qv_daemon *d, const char *name, mig_mirror *mm)
{
	struct reaper *rp;

	if (!mm)
		return;
	rp = calloc(1, sizeof(*rp));
	if (!rp || !(rp->vm = strdup(name))) {
		free(rp);
		(void)mig_mirror_abort(mm, 5000);
		mig_mirror_free(mm);
		return;
	}
	rp->d = d;
	rp->mm = mm;
	mig_mirror_set_qmp(mm, reaper_qmp, rp);
	rp->next = reapers;
	reapers = rp;
	if (mig_mirror_abort(mm, 1000))
		return reaper_free(rp);
	log_info("VM %s: cancelled storage mirror still draining, cleaning up in the background",
		 name);
	rp->until = qv_now_ms() + REAP_GIVE_UP_MS;
	if (qv_loop_add_timer(d->loop, REAP_POLL_MS, reaper_tick, rp, &rp->timer) < 0)
		reaper_free(rp);
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

/* Not switched yet: cancel, wait for QEMU to confirm, forget the migration
 * and let the source run again. */
static int cancel_and_resume(struct qv_daemon *d, qmp_client *c, const char *name,
			     const char *status, struct qv_mig *m, struct qv_error *errp)
{
	json_object *v;

	if (streq(status, "active") || streq(status, "setup") || streq(status, "pre-switchover") ||
	    streq(status, "device") || streq(status, "cancelling")) {
		(void)qmp_client_execute(c, "migrate_cancel", NULL, 5000, NULL, NULL);
		for (int i = 0; i < 100; i++) {
			_cleanup_json_ json_object *q = NULL;
			if (qmp_client_execute(c, "query-migrate", NULL, 5000, &q, NULL) < 0)
				break;
			if (json_object_object_get_ex(q, "status", &v) &&
			    (streq(json_object_get_string(v), "cancelled") ||
			     streq(json_object_get_string(v), "failed")))
				break;
			usleep(50 * 1000);
		}
	}
	if (m) {
		qv_mig_drop(m);
	} else {
		char id[96];
		snprintf(id, sizeof(id), "%s-out", name);
		(void)qv_state_migration_delete(d->state, id);
	}
	return qv_mig_resume_source(d, name, errp);
}

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

	if (m && (m->engine || m->mirror_timer || m->watch || m->querying))
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
	r = qmp_client_execute(c, "query-migrate", NULL, 5000, &q, errp);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(q, "status", &v))
		status = json_object_get_string(v);
	const char *outcome = "cancelled", *vm_state = "running";
	bool switched = streq(status, "completed") || is_postcopy_status(status);
	if (switched && !m && !(m = qv_mig_new(d, name, true)))
		return -ENOMEM;
	if (streq(status, "completed")) {
		mark_completed(m, vm);
		outcome = "completed";
		vm_state = "migrating";
	} else if (switched) {
		adopt_postcopy(vm, m);
		outcome = "postcopy";
		vm_state = "migrating";
	} else if ((r = cancel_and_resume(d, c, name, status, m, errp)) < 0) {
		return r;
	}
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "qemu_status", json_object_new_string(status));
	json_object_object_add(res, "status", json_object_new_string(outcome));
	json_object_object_add(res, "state", json_object_new_string(vm_state));
	*ret = res;
	return 0;
}
