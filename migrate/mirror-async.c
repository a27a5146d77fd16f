/* SPDX-License-Identifier: MIT */
/* The storage mirror's steps on the daemon loop (see mirror.h): the start's
 * blockdev-add/blockdev-mirror appended to the caller's QMP sequence, and
 * the completion at pre-switchover as a sequence of its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "migrate/mirror-internal.h"

static int on_node_added(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct mirror_disk *d = ud;

	if (error < 0)
		return qv_error_prefix(err, "NBD client for disk %u", d->index), error;
	d->node_added = true;
	return 0;
}

static int on_job_started(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct mirror_disk *d = ud;

	if (error < 0)
		return qv_error_prefix(err, "mirror of disk %u", d->index), error;
	d->job_started = true;
	snprintf(d->status, sizeof(d->status), "created");
	return 0;
}

int mig_mirror_start_steps(mig_mirror_qmp_fn get_qmp, void *userdata,
			   const struct mig_mirror_target *target,
			   const struct mig_mirror_disk *disks, size_t n, qmp_seq *s,
			   mig_mirror **ret, struct qv_error *errp)
{
	mig_mirror *m;
	int r = 0;

	if (!mirror_target_ok(target, n))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "storage mirror needs disks and an NBD address");
	m = mirror_alloc(get_qmp, userdata, disks, n);
	if (!m)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct mirror_disk *d = &m->disks[i];
		r = qmp_seq_add(s, &(struct qmp_seq_step){
			.command = "blockdev-add", .args = mirror_nbd_node_args(d, &disks[i], target),
			.fn = on_node_added, .userdata = d, .tolerate_error = true });
		if (r >= 0)
			r = qmp_seq_add(s, &(struct qmp_seq_step){
				.command = "blockdev-mirror", .args = mirror_job_args(d, &disks[i]),
				.fn = on_job_started, .userdata = d, .tolerate_error = true });
	}
	if (r < 0) {
		mig_mirror_free(m);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue the mirror start");
	}
	*ret = m;
	return 0;
}

/* ---- completion on the loop ----------------------------------------------------------- */

static int seq_fail(struct qv_error *err, int error, const char *fmt, const char *arg)
{
	qv_error_clear(err);
	return qv_error_set(err, error, error == EAGAIN ? QV_REASON_UNAVAILABLE : QV_REASON_QEMU_ERROR,
			    fmt, arg);
}

/* First query: every job must be READY (in sync). */
static int on_ready_check(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	mig_mirror *m = ud;
	bool ready = false;
	int r = mirror_parse_jobs(m, ret, &ready, err);

	if (r < 0 || (r = mirror_check_jobs(m, ready, &ready, err)) < 0)
		return r;
	if (!ready)
		return seq_fail(err, EAGAIN, "%s", "storage mirror is not in sync");
	return 0;
}

static int on_dismissed(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct mirror_disk *d = ud;

	if (error < 0)
		log_debug("mirror: job-dismiss %s: %s, ignoring", d->job, err->message);
	d->job_started = false;
	return 0;
}

static int on_node_deleted(qmp_seq *s, int error, json_object *ret, struct qv_error *err,
			   void *ud)
{
	struct mirror_disk *d = ud;

	if (error < 0)
		log_debug("mirror: blockdev-del %s: %s, ignoring", d->node, err->message);
	d->node_added = false;
	return 0;
}

/* Polled until no job of ours runs; then dismiss and delete the nodes. */
static int on_ended_check(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	mig_mirror *m = ud;
	struct qv_error jerr = {};
	bool running = false;

	if (mirror_parse_jobs(m, ret, NULL, &jerr) < 0 && !m->job_err.set)
		m->job_err = jerr; /* a job ended with an error: report it */
	for (size_t i = 0; i < m->n; i++) {
		struct mirror_disk *d = &m->disks[i];
		if (!d->job_started)
			continue;
		if (streq(d->status, "gone") || streq(d->status, "null"))
			d->job_started = false;
		else if (!streq(d->status, "concluded"))
			running = true;
	}
	if (running)
		return QMP_SEQ_AGAIN;
	for (size_t i = 0; i < m->n; i++) {
		struct mirror_disk *d = &m->disks[i];
		if (d->job_started)
			(void)qmp_seq_add(s, &(struct qmp_seq_step){
				.command = "job-dismiss", .args = mirror_id_arg("id", d->job),
				.fn = on_dismissed, .userdata = d, .tolerate_error = true });
		if (d->node_added)
			(void)qmp_seq_add(s, &(struct qmp_seq_step){
				.command = "blockdev-del", .args = mirror_id_arg("node-name", d->node),
				.fn = on_node_deleted, .userdata = d, .tolerate_error = true });
	}
	return 0;
}

static void on_completed(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	mig_mirror *m = ud;
	mig_mirror_done_fn done = m->done;

	m->seq = NULL;
	m->done = NULL;
	if (error >= 0 && m->job_err.set)
		return done(m, -EIO, &m->job_err, m->done_userdata);
	done(m, error, errp, m->done_userdata);
}

int mig_mirror_complete_async(mig_mirror *m, int timeout_ms, mig_mirror_done_fn done,
			      void *userdata, struct qv_error *errp)
{
	qmp_client *c = m->get_qmp(m->userdata);
	qmp_seq *s = NULL;
	int r;

	if (m->seq)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "mirror completion under way");
	if (!c || !qmp_client_is_open(c))
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE, "the source QEMU is gone");
	r = qmp_seq_new(c, QMP_TIMEOUT_MS, on_completed, m, &s);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_UNAVAILABLE, "cannot talk to the source "
				    "QEMU: %s", strerror(-r));
	r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "query-block-jobs",
						   .fn = on_ready_check, .userdata = m });
	for (size_t i = 0; i < m->n && r >= 0; i++) {
		json_object *a = mirror_job_arg(m->disks[i].job);
		/* Soft cancel of a READY mirror: ends in sync, no pivot. */
		json_object_object_add(a, "force", json_object_new_boolean(false));
		r = qmp_seq_add_cmd(s, "block-job-cancel", a);
	}
	if (r >= 0)
		r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "query-block-jobs",
							   .fn = on_ended_check, .userdata = m,
							   .retry_ms = 5 });
	qmp_seq_set_deadline(s, timeout_ms, "storage mirror completion");
	if (r >= 0)
		r = qmp_seq_start(s);
	if (r < 0) {
		qmp_seq_cancel(s);
		return qv_error_set(errp, -r, QV_REASON_UNAVAILABLE,
				    "cannot complete the storage mirror: %s", strerror(-r));
	}
	qv_error_clear(&m->job_err);
	m->seq = s;
	m->done = done;
	m->done_userdata = userdata;
	return 0;
}

bool mig_mirror_completing(const mig_mirror *m)
{
	return m && m->seq;
}

