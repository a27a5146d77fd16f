/* SPDX-License-Identifier: MIT */
/* Source side: migrate.perform / confirm / cancel / recover.
 *
 * Invariant: the source guest keeps running unless QEMU completed the
 * migration or switched it to postcopy (after which a failure leaves the
 * source paused: its RAM is stale); every other failure path ends with the
 * source QEMU running (cont if it was left paused) and the VM "running" in
 * the state store. migrate.recover lives in migrate-recover.c. The source
 * QEMU is quit only by migrate.confirm, which the coordinator calls after
 * the destination reported running. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"
#include "storage/image.h"

#define MIRROR_COMPLETE_MS 10000

qmp_client *qv_mig_source_qmp(void *ud)
{
	struct qv_mig *m = ud;
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);

	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return NULL;
	return qemu_instance_qmp(vm->inst);
}

static void on_mirror_completed(mig_mirror *mm, int error, const struct qv_error *errp, void *ud)
{
	struct qv_mig *m = ud;
	struct qv_error err = {};

	if (error < 0) {
		if (errp)
			err = *errp;
		qv_error_prefix(&err, "storage mirror");
	} else {
		log_info("VM %s: storage mirror completed in sync in %llu ms", m->vm,
			 (unsigned long long)(qv_now_ms() - m->mirror_t0));
	}
	mig_engine_before_continue_done(m->engine, error, &err);
}

/* Engine hook at pre-switchover (guest paused): end the mirror in sync, on
 * the loop (mig_mirror_complete_async); the engine sends migrate-continue
 * once it reported. */
static int before_continue(mig_engine *e, void *ud, struct qv_error *errp)
{
	struct qv_mig *m = ud;
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	int r;

	if (vm && vm->inst)
		qv_mig_test_stall_point(m->d, "source-switchover", qemu_instance_pid(vm->inst));
	if (!m->mirror || !mig_mirror_active(m->mirror)) {
		mig_engine_before_continue_done(e, 0, NULL);
		return 0;
	}
	m->mirror_t0 = qv_now_ms();
	r = mig_mirror_complete_async(m->mirror, MIRROR_COMPLETE_MS, on_mirror_completed, m, errp);
	if (r < 0)
		return qv_error_prefix(errp, "storage mirror"), r;
	return 0;
}

static void on_engine_event(mig_engine *e, const char *type, json_object *data, void *ud)
{
	struct qv_mig *m = ud;
	json_object *n, *storage = NULL;

	if (streq(type, "progress") && m->mirror && mig_mirror_active(m->mirror) &&
	    !mig_mirror_completing(m->mirror) && !mig_engine_finished(e)) {
		/* Asynchronous: the answer (mirror_watched) checks the jobs; the
		 * figures sent here are from the previous answer. */
		if (!m->mirror_query)
			qv_mig_mirror_query(m, true, NULL);
		storage = mig_mirror_progress_json(m->mirror);
	}

	if (streq(type, "decision"))
		qv_daemon_emit(m->d, m->vm, "migration-decision", json_object_get(data));
	if (m->perform_call && qv_rpc_call_client_gone(m->perform_call) &&
	    streq(type, "progress") && !mig_engine_finished(e)) {
		/* The coordinator is gone: nobody could finish this migration.
		 * After the postcopy switch it can only complete (the
		 * destination finishes by itself, see migrate-dest.c). */
		if (mig_engine_cancel(e, "the migration client disconnected") == 0) {
			log_warning("VM %s: the migration client disconnected, cancelling",
				    m->vm);
			return;
		}
	}
	if (!m->client) {
		json_object_put(storage);
		return;
	}
	n = json_object_new_object();
	json_object_object_add(n, "name", json_object_new_string(m->vm));
	json_object_object_add(n, "type", json_object_new_string(type));
	json_object_object_foreach(data, k, v)
		json_object_object_add(n, k, json_object_get(v));
	if (storage)
		json_object_object_add(n, "storage", storage);
	(void)qv_rpc_client_notify(m->client, "migrate.progress", n);
	json_object_put(n);
}

static void on_engine_done(mig_engine *e, int error, const struct qv_error *errp,
			   json_object *stats, void *ud)
{
	struct qv_mig *m = ud;
	qv_rpc_call *call = m->perform_call;
	struct qv_error err = {};
	json_object *st = json_object_get(stats), *pc;

	m->perform_call = NULL;
	m->engine = mig_engine_free(e);
	if (error == 0) {
		struct qv_vm *vm = qv_vm_find(m->d, m->vm);
		json_object *dt;
		m->mirror = mig_mirror_free(m->mirror); /* completed at pre-switchover */
		/* The blackout starts at the guest's last STOP (vm.migrate ends
		 * it at the destination's RESUME); QEMU's figure stays beside. */
		if (json_object_object_get_ex(st, "downtime_ms", &dt))
			json_object_object_add(st, "qemu_downtime_ms", json_object_get(dt));
		if (vm && vm->last_stop_us > 0)
			json_object_object_add(st, "stop_unix_us",
					       json_object_new_int64(vm->last_stop_us));
		log_info("VM %s: migration completed: %s", m->vm,
			 json_object_to_json_string_ext(stats, JSON_C_TO_STRING_PLAIN));
		snprintf(m->state, sizeof(m->state), "completed");
		json_object_put(m->stats);
		m->stats = json_object_get(st);
		qv_mig_persist(m);
		qv_mig_metrics_done(m->vm, true, st);
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
	qv_mig_metrics_done(m->vm, false, NULL);
	qv_mig_mirror_dispose(m->d, m->vm, TAKE_PTR(m->mirror));
	json_object *ev = json_object_new_object(), *data = json_object_new_object();
	json_object_object_add(ev, "error", json_object_new_string(err.message));
	json_object_object_add(ev, "stats", json_object_get(st));
	json_object_object_add(data, "stats", json_object_get(st));
	struct qv_mig_resume_tail tail = { .call = call, .err = err, .data = data, .ev = ev,
					   .what = " after a failed migration" };
	bool postcopy = json_object_object_get_ex(st, "postcopy", &pc) &&
			json_object_get_boolean(pc);
	json_object_put(st);
	char *name = strdup(m->vm);
	struct qv_daemon *d = m->d;
	if (postcopy || !name) {
		qv_mig_drop(m);
		/* After the postcopy switch the source's RAM is stale and the
		 * destination may have run: resuming here would run a second,
		 * older copy. Leave the source paused (docs/migration.md). */
		if (postcopy)
			log_error("VM %s: migration failed after the postcopy switch; the source "
				  "stays paused (not resumed): the guest is lost unless recovered "
				  "by hand", name);
		qv_daemon_emit(d, name, "migration-failed", TAKE_PTR(tail.ev));
		if (call)
			qv_rpc_call_error_data(call, &err, TAKE_PTR(tail.data));
		json_object_put(tail.data);
		free(name);
		return;
	}
	/* The reply and the event once the source runs again. */
	snprintf(tail.record_id, sizeof(tail.record_id), "%s", m->id);
	qv_mig_retire(m);
	qv_mig_resume_source_async(d, name, &tail);
	free(name);
}

/* The perform start or the mirror phase failed or was cancelled: nothing
 * was migrated yet. */
void qv_mig_start_failed(struct qv_mig *m, const struct qv_error *errp, const char *status)
{
	qv_rpc_call *call = m->perform_call;
	json_object *st = json_object_new_object(), *ev, *data;

	m->perform_call = NULL;
	m->mirror_timer = qv_source_remove(m->mirror_timer);
	m->start_seq = qmp_seq_cancel(m->start_seq);
	json_object_object_add(st, "status", json_object_new_string(status));
	if (m->mirror) {
		json_object_object_add(st, "storage", mig_mirror_progress_json(m->mirror));
		qv_mig_mirror_dispose(m->d, m->vm, TAKE_PTR(m->mirror));
	}
	log_warning("VM %s: migration %s before the RAM copy: %s", m->vm, status, errp->message);
	ev = json_object_new_object();
	json_object_object_add(ev, "error", json_object_new_string(errp->message));
	json_object_object_add(ev, "stats", json_object_get(st));
	data = json_object_new_object();
	json_object_object_add(data, "stats", json_object_get(st));
	json_object_put(st);
	/* The reply and the event once the source runs again. */
	struct qv_mig_resume_tail tail = { .call = call, .err = *errp, .data = data, .ev = ev,
					   .what = "" };
	snprintf(tail.record_id, sizeof(tail.record_id), "%s", m->id);
	char *name = strdup(m->vm);
	struct qv_daemon *d = m->d;
	qv_mig_retire(m);
	if (name)
		qv_mig_resume_source_async(d, name, &tail);
	else
		qv_mig_resume_source_async(d, "", &tail); /* replies: "VM  vanished" */
	free(name);
}

int qv_mig_start_engine(struct qv_mig *m, struct qv_error *errp)
{
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);

	if (!vm)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "VM %s vanished", m->vm);
	/* pause-before-switchover is on anyway unless plain: the hook costs
	 * nothing without a mirror (and carries the stall test point). */
	if (m->mirror || !m->opts.plain)
		m->opts.before_continue = before_continue;
	snprintf(m->state, sizeof(m->state), "performing");
	qv_mig_persist(m);
	return mig_engine_start(vm->d->loop, qv_mig_source_qmp, &m->opts, on_engine_event, on_engine_done,
				m, &m->engine, errp);
}

int qv_mig_plan(struct qv_daemon *d, struct qv_vm *vm, bool copy_storage, double bandwidth_bps,
		json_object **ret, struct qv_error *errp)
{
	json_object *res, *disks = json_object_new_array();
	char reason[200];
	unsigned ch;

	(void)d;
	for (size_t i = 0; i < vm->spec->n_disks; i++) {
		const struct vm_disk *dk = &vm->spec->disks[i];
		struct qv_image_info info = {};
		enum qv_image_format fmt = dk->format == VM_DISK_QCOW2 ? QV_IMAGE_QCOW2 : QV_IMAGE_RAW;
		json_object *o = json_object_new_object();
		int r = qv_image_info(dk->path, fmt, &info, errp);

		if (r < 0) {
			json_object_put(o);
			json_object_put(disks);
			return qv_error_prefix(errp, "disk %zu", i), r;
		}
		json_object_object_add(o, "index", json_object_new_int((int)i));
		json_object_object_add(o, "path", json_object_new_string(dk->path));
		json_object_object_add(o, "format", json_object_new_string(
					       vm_disk_format_to_string(dk->format)));
		json_object_object_add(o, "virtual_size", json_object_new_int64(
					       (int64_t)info.virtual_size));
		json_object_object_add(o, "copy", json_object_new_boolean(copy_storage &&
									  !dk->readonly));
		json_object_array_add(disks, o);
		qv_image_info_clear(&info);
	}
	ch = mig_multifd_plan((uint64_t)vm->spec->memory_mib << 20, bandwidth_bps,
			      mig_host_idle_cpus(), reason, sizeof(reason));
	log_info("VM %s: migration plan: multifd %s", vm->name, reason);
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "disks", disks);
	json_object_object_add(res, "multifd_channels", json_object_new_int((int)ch));
	json_object_object_add(res, "multifd_reason", json_object_new_string(reason));
	json_object_object_add(res, "mirror_cleanup",
			       json_object_new_boolean(qv_mig_mirror_cleanup_pending(vm->name)));
	*ret = res;
	return 0;
}

int qv_mig_perform(qv_rpc_call *call, struct qv_vm *vm, const struct mig_engine_opts *o,
		   const struct qv_mig_storage *st)
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
	if (st && st->copy && qv_mig_mirror_cleanup_pending(vm->name))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "a cancelled storage mirror of %s is still draining; retry "
				    "when migrate.plan no longer reports mirror_cleanup", vm->name);
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
	m->opts = *o;
	m->opts_uri = strdup(o->uri);
	m->opts_multifd_reason = o->multifd_reason ? strdup(o->multifd_reason) : NULL;
	m->opts.uri = m->opts_uri;
	m->opts.multifd_reason = m->opts_multifd_reason;
	if (!m->opts.deadline_s)
		m->opts.deadline_s = QV_MIG_DEFAULT_DEADLINE_S;
	if (!m->opts_uri)
		r = qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	else
		r = qv_mig_perform_start(m, vm, st, &err);
	if (r < 0) {
		/* The answer once the source runs again. */
		struct qv_mig_resume_tail tail = { .call = call, .err = err };
		m->perform_call = NULL;
		snprintf(tail.record_id, sizeof(tail.record_id), "%s", m->id);
		qv_mig_retire(m);
		qv_mig_resume_source_async(vm->d, vm->name, &tail);
		return 0;
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

int qv_mig_stop_outgoing(struct qv_mig *m, struct qv_error *errp)
{
	struct qv_error err = {};

	if (m->engine) {
		if (mig_engine_cancel(m->engine, "cancelled by the client") == -EBUSY)
			return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
					    "the migration of %s switched to postcopy: it can only "
					    "complete (cancelling would lose the guest)", m->vm);
		return 0;
	}
	if (m->mirror_timer || m->start_seq ||
	    (m->mirror_query && streq(m->state, "mirroring"))) {
		/* Starting or still mirroring storage (a poll may be in
		 * flight): the RAM migration never started. */
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED, "cancelled by the client");
		qv_mig_start_failed(m, &err, "cancelled");
		return 0;
	}
	return -EALREADY;
}

/* never_ran: the caller (the protocol) heard from the destination that it
 * tore the incoming VM down, so a completed source may take over again.
 * Without it a completed migration is never resumed here: the destination
 * may already run the guest (migrate.finish). */
int qv_mig_cancel_source(qv_rpc_call *call, struct qv_mig *m, bool never_ran)
{
	struct qv_error err = {};
	json_object *res;
	const char *action = m->engine ? "cancelling" : "cancelled";
	_cleanup_free_ char *name = strdup(m->vm);
	struct qv_daemon *d = m->d;
	json_object *pc;
	int r;

	if (!m->engine && m->stats && json_object_object_get_ex(m->stats, "postcopy", &pc) &&
	    json_object_get_boolean(pc))
		/* Completed via postcopy: the destination has been running the
		 * guest since the switch; the source copy is stale. */
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "the migration of %s completed via postcopy: the guest runs "
				    "on the destination and the source cannot take over (confirm)",
				    name);
	r = qv_mig_stop_outgoing(m, &err);
	if (r < 0 && r != -EALREADY)
		return qv_rpc_call_error(call, &err), 0;
	if (r == -EALREADY) {
		if (!never_ran)
			return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
					    "the migration of %s is %s: the destination may already "
					    "run the guest (migrate.finish), so the source is not "
					    "resumed; confirm it, or cancel on the destination first",
					    name, m->state);
		/* Answered once the source runs again (a failed resume is the
		 * answer then). */
		struct qv_mig_resume_tail tail = { .call = call, .resume_error_fails = true };
		snprintf(tail.record_id, sizeof(tail.record_id), "%s", m->id);
		qv_mig_retire(m);
		tail.data = json_object_new_object();
		json_object_object_add(tail.data, "name", json_object_new_string(name));
		json_object_object_add(tail.data, "role", json_object_new_string("source"));
		json_object_object_add(tail.data, "action", json_object_new_string("resumed"));
		qv_mig_resume_source_async(d, name, &tail);
		return 0;
	}
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "role", json_object_new_string("source"));
	json_object_object_add(res, "action", json_object_new_string(action));
	return qv_rpc_call_reply(call, res), 0;
}
