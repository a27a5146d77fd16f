/* SPDX-License-Identifier: MIT */
/* Source side: resuming the guest after a failed or cancelled migration,
 * on the loop. query-status (polled every 20 ms while QEMU is still in
 * "finish-migrate", at most 50 times), then `cont` unless it runs, as one
 * QMP sequence (qemu/qmp-seq.h); only then is the caller's reply sent and
 * the event emitted, so a client that has the answer finds the source
 * running. Until then the VM stays "migrating": no new migration and no
 * vm.* operation starts in between. migrate.recover (migrate-recover.c)
 * ends with it too. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"

#define RESUME_STEP_MS 5000
#define RESUME_POLL_MS 20
#define RESUME_POLLS 50

struct resume {
	struct qv_daemon *d;
	char name[VM_NAME_MAX + 1];
	int polls;
	struct qv_mig_resume_tail t;
};

static void tail_run(struct qv_daemon *d, const char *name, struct qv_mig_resume_tail *t,
		     int error, const struct qv_error *errp)
{
	if (t->record_id[0])
		(void)qv_state_migration_delete(d->state, t->record_id);
	if (error < 0)
		log_error("VM %s: cannot resume the source%s: %s", name, t->what ? t->what : "",
			  errp && errp->set ? errp->message : strerror(-error));
	if (t->ev)
		qv_daemon_emit(d, name, "migration-failed", TAKE_PTR(t->ev));
	if (t->call && error < 0 && t->resume_error_fails)
		qv_rpc_call_error(TAKE_PTR(t->call), errp);
	else if (t->call && t->err.set)
		qv_rpc_call_error_data(TAKE_PTR(t->call), &t->err, TAKE_PTR(t->data));
	else if (t->call)
		qv_rpc_call_reply(TAKE_PTR(t->call), TAKE_PTR(t->data));
	json_object_put(TAKE_PTR(t->data));
	if (t->done)
		t->done(d, name, error, t->done_ud);
}

static void resume_end(struct resume *x, int error, const struct qv_error *errp)
{
	tail_run(x->d, x->name, &x->t, error, errp);
	free(x);
}

static int status_reply(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct resume *x = ud;
	json_object *v;
	const char *status = json_object_object_get_ex(ret, "status", &v)
				     ? json_object_get_string(v) : "";

	/* "finish-migrate" is transient. */
	if (streq(status, "finish-migrate") && ++x->polls < RESUME_POLLS)
		return QMP_SEQ_AGAIN;
	if (streq(status, "running"))
		return 0;
	log_info("VM %s: source QEMU is %s after the migration, resuming it", x->name, status);
	return qmp_seq_add(s, &(struct qmp_seq_step){ .command = "cont",
						      .timeout_ms = RESUME_STEP_MS });
}

static void resume_done(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	struct resume *x = ud;
	struct qv_vm *vm = qv_vm_find(x->d, x->name);

	if (error >= 0 && vm && vm->state != QV_VM_RUNNING)
		qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	resume_end(x, error, errp);
}

void qv_mig_resume_source_async(struct qv_daemon *d, const char *name,
				struct qv_mig_resume_tail *tail)
{
	struct resume *x = calloc(1, sizeof(*x));
	struct qv_vm *vm = qv_vm_find(d, name);
	struct qv_error err = {};
	qmp_seq *s = NULL;
	int r;

	if (!x) { /* answer without resuming rather than never */
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		tail_run(d, name, tail, -ENOMEM, &err);
		return;
	}
	*x = (struct resume){ .d = d, .t = *tail };
	*tail = (struct qv_mig_resume_tail){};
	snprintf(x->name, sizeof(x->name), "%s", name);
	if (!vm) {
		qv_error_set(&err, ENOENT, QV_REASON_NOT_FOUND, "VM %s vanished", name);
		return resume_end(x, -ENOENT, &err);
	}
	if (!vm->inst || qemu_instance_exited(vm->inst)) {
		if (vm->state == QV_VM_MIGRATING)
			qv_vm_set_state(vm, QV_VM_CRASHED, NULL);
		qv_error_set(&err, ESRCH, QV_REASON_UNAVAILABLE, "the source QEMU of %s is gone", name);
		return resume_end(x, -ESRCH, &err);
	}
	r = qmp_seq_new(qemu_instance_qmp(vm->inst), RESUME_STEP_MS, resume_done, x, &s);
	if (r >= 0)
		r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "query-status",
							   .fn = status_reply, .userdata = x,
							   .retry_ms = RESUME_POLL_MS });
	if (r >= 0)
		r = qmp_seq_start(s);
	if (r < 0) {
		qmp_seq_cancel(s);
		qv_error_set(&err, -r, QV_REASON_INTERNAL, "cannot query the source QEMU: %s",
			     strerror(-r));
		resume_end(x, r, &err);
	}
}
