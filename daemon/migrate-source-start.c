/* SPDX-License-Identifier: MIT */
/* Source side: the start of migrate.perform on the loop (TLS objects,
 * parameters and the mirror's blockdev-add/blockdev-mirror as one QMP
 * sequence), then the storage mirror's phase (asynchronous
 * query-block-jobs polls until every job is READY), then the engine. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"
#include "qemu/tls-creds.h"

#define MIRROR_POLL_MS 200

static void mirror_tick(qv_source *s, void *ud);

/* The mirror's poll is asynchronous: its answer finds the migration again
 * by VM and query id (it may have failed or been cancelled meanwhile). */
struct mirror_query {
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	uint64_t id;
	bool during_ram; /* the RAM copy runs: check the jobs, do not start */
};

/* During the RAM copy: a job that failed or vanished cancels the migration. */
static void mirror_watched(struct qv_mig *m, int r, json_object *jobs, struct qv_error *qerr)
{
	struct qv_error err = {};
	bool ready;

	if (!m->engine || mig_engine_finished(m->engine) || mig_mirror_completing(m->mirror))
		return;
	if (r < 0)
		err = *qerr;
	else if (mig_mirror_poll_reply(m->mirror, jobs, &ready, &err) >= 0)
		return;
	log_warning("VM %s: %s, cancelling the migration", m->vm, err.message);
	mig_engine_cancel(m->engine, err.message);
}

static void mirror_polled(struct qv_mig *m, int r, json_object *jobs, struct qv_error *qerr);

static void on_mirror_jobs(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			   void *userdata)
{
	struct mirror_query *q = userdata;
	struct qv_mig *m = qv_mig_find(q->vm, true);
	struct qv_error err = {};
	bool during_ram = q->during_ram;

	if (!m || !m->mirror || m->mirror_query != q->id) {
		free(q);
		return;
	}
	free(q);
	m->mirror_query = 0;
	if (error < 0) {
		if (errp)
			err = *errp;
		qv_error_prefix(&err, "query-block-jobs");
	}
	if (during_ram)
		return mirror_watched(m, error, ret, &err);
	mirror_polled(m, error, ret, &err);
}

/* query-block-jobs, asynchronously (on_mirror_jobs). */
void qv_mig_mirror_query(struct qv_mig *m, bool during_ram, struct qv_error *errp)
{
	static uint64_t next_id;
	qmp_client *c = qv_mig_source_qmp(m);
	struct mirror_query *q;

	if (!c || !(q = calloc(1, sizeof(*q)))) {
		qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE, "the source QEMU is gone");
		return;
	}
	*q = (struct mirror_query){ .d = m->d, .id = ++next_id, .during_ram = during_ram };
	snprintf(q->vm, sizeof(q->vm), "%s", m->vm);
	m->mirror_query = q->id;
	if (qmp_client_execute_async(c, "query-block-jobs", NULL, NULL, 0, 5000, on_mirror_jobs,
				     q) < 0) {
		m->mirror_query = 0;
		free(q);
		qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE, "the source QEMU is gone");
	}
}

static void mirror_tick(qv_source *s, void *ud)
{
	struct qv_mig *m = ud;
	struct qv_error err = {};

	m->mirror_timer = NULL;
	if (m->perform_call && qv_rpc_call_client_gone(m->perform_call)) {
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED,
			     "the migration client disconnected");
		return qv_mig_start_failed(m, &err, "cancelled");
	}
	if (m->mirror_query)
		return; /* the answer goes on */
	qv_mig_mirror_query(m, false, &err);
	if (err.set)
		return qv_mig_start_failed(m, &err, "failed");
}

static void mirror_polled(struct qv_mig *m, int r, json_object *jobs, struct qv_error *qerr)
{
	struct qv_error err = {};
	json_object *n, *prog;
	bool ready = false;

	if (r < 0)
		return qv_mig_start_failed(m, qerr, "failed");
	if (mig_mirror_poll_reply(m->mirror, jobs, &ready, &err) < 0)
		return qv_mig_start_failed(m, &err, "failed");
	if (!ready && qv_now_ms() > m->mirror_deadline) {
		qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT,
			     "deadline reached while mirroring storage");
		return qv_mig_start_failed(m, &err, "cancelled");
	}
	prog = mig_mirror_progress_json(m->mirror);
	if (m->client) {
		n = json_object_new_object();
		json_object_object_add(n, "name", json_object_new_string(m->vm));
		json_object_object_add(n, "type", json_object_new_string("progress"));
		json_object_object_add(n, "status", json_object_new_string(ready ? "mirror-ready"
										  : "mirroring"));
		json_object_object_add(n, "elapsed_ms", json_object_new_int64(
			(int64_t)(qv_now_ms() + (uint64_t)m->opts.deadline_s * 1000 -
				  m->mirror_deadline)));
		json_object_object_add(n, "storage", json_object_get(prog));
		(void)qv_rpc_client_notify(m->client, "migrate.progress", n);
		json_object_put(n);
	}
	json_object_put(prog);
	if (!ready) {
		if (qv_loop_add_timer(m->d->loop, MIRROR_POLL_MS, mirror_tick, m,
				      &m->mirror_timer) < 0)
			m->mirror_timer = NULL;
		return;
	}
	log_info("VM %s: storage mirror in sync, starting RAM migration", m->vm);
	if (qv_mig_start_engine(m, &err) < 0)
		return qv_mig_start_failed(m, &err, "failed");
}

/* The mirror's blockdev-add/blockdev-mirror, appended to the start sequence. */
static int mirror_steps(struct qv_mig *m, struct qv_vm *vm, const struct qv_mig_storage *st,
			qmp_seq *s, struct qv_error *errp)
{
	struct mig_mirror_disk disks[VM_DISKS_MAX];
	char dev[VM_DISKS_MAX][48], exp[VM_DISKS_MAX][32];
	size_t n = 0;

	for (size_t i = 0; i < vm->spec->n_disks && i < VM_DISKS_MAX; i++) {
		const struct vm_disk *dk = &vm->spec->disks[i];
		bool thr = dk->io_rbps || dk->io_wbps || dk->io_riops || dk->io_wiops;
		if (dk->readonly)
			continue; /* shared, same path on the destination */
		/* blockdev-mirror wants the root node the device uses. */
		snprintf(dev[n], sizeof(dev[n]), thr ? "disk%zu-throttle" : "disk%zu", i);
		snprintf(exp[n], sizeof(exp[n]), "disk%zu", i);
		disks[n] = (struct mig_mirror_disk){ (unsigned)i, dev[n], exp[n] };
		n++;
	}
	if (!n)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "copy_storage: VM %s has no writable disk", vm->name);
	log_info("VM %s: mirroring %zu disk(s) to nbd %s:%d", vm->name, n, st->nbd_host,
		 st->nbd_port);
	return mig_mirror_start_steps(qv_mig_source_qmp, m,
				      &(struct mig_mirror_target){ st->nbd_host, st->nbd_port,
								   st->tls ? QEMU_TLS_CREDS_ID : NULL,
								   st->tls_hostname },
				      disks, n, s, &m->mirror, errp);
}

static void unstage(struct qv_mig *m)
{
	if (m->tls_stage_dir)
		qemu_tls_unstage(m->tls_stage_dir);
	free(m->tls_stage_dir);
	m->tls_stage_dir = NULL;
}

/* The start sequence ended: mirror (until every job is READY) or engine. */
static void on_perform_started(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	struct qv_mig *m = ud;
	struct qv_error err = {};

	m->start_seq = NULL;
	unstage(m);
	if (error < 0) {
		if (errp)
			err = *errp;
		qv_error_prefix(&err, "starting the migration");
		return qv_mig_start_failed(m, &err, "failed");
	}
	if (m->mirror) {
		m->mirror_deadline = qv_now_ms() + (uint64_t)m->opts.deadline_s * 1000;
		snprintf(m->state, sizeof(m->state), "mirroring");
		qv_mig_persist(m);
		if (qv_loop_add_timer(m->d->loop, MIRROR_POLL_MS, mirror_tick, m,
				      &m->mirror_timer) < 0)
			m->mirror_timer = NULL;
		return;
	}
	if (qv_mig_start_engine(m, &err) < 0)
		qv_mig_start_failed(m, &err, "failed");
}

/* TLS objects, parameters and the mirror's start as one QMP sequence on
 * the loop: a stalled source QEMU fails this migration at a step's
 * deadline and holds nothing else. */
int qv_mig_perform_start(struct qv_mig *m, struct qv_vm *vm, const struct qv_mig_storage *st,
			 struct qv_error *errp)
{
	qmp_client *c = qv_mig_source_qmp(m);
	qmp_seq *s = NULL;
	int r;

	if (!c)
		return qv_error_set(errp, ESRCH, QV_REASON_UNAVAILABLE, "the source QEMU is gone");
	r = qmp_seq_new(c, 5000, on_perform_started, m, &s);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_UNAVAILABLE, "cannot talk to the source "
				    "QEMU: %s", strerror(-r));
	r = qv_mig_tls_source_steps(vm->d, vm, st && st->tls, st ? st->tls_hostname : NULL, s,
				    &m->tls_stage_dir, errp);
	if (r >= 0 && st && st->copy)
		r = mirror_steps(m, vm, st, s, errp);
	if (r >= 0 && (r = qmp_seq_start(s)) < 0)
		qv_error_set(errp, -r, QV_REASON_UNAVAILABLE, "cannot talk to the source QEMU: %s",
			     strerror(-r));
	if (r < 0) {
		qmp_seq_cancel(s);
		unstage(m);
		m->mirror = mig_mirror_free(m->mirror); /* nothing was sent */
		return r;
	}
	m->start_seq = s;
	return 0;
}

