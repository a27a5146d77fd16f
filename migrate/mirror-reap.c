/* SPDX-License-Identifier: MIT */
/* Aborting and reaping a storage mirror without blocking (see mirror.h):
 * one QMP sequence per step on the source QEMU's client. The caller polls
 * with a timer until nothing is left in QEMU. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "migrate/mirror-internal.h"

struct reap_step {
	mig_mirror *m;
	mig_mirror_reap_fn fn;
	void *userdata;
};

static int del_reply(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct mirror_disk *d = ud;

	if (error < 0)
		log_debug("mirror: blockdev-del %s: %s, ignoring", d->node, err->message);
	d->node_added = false;
	return 0;
}

/* query-block-jobs: dismiss the concluded jobs, forget the gone ones, and
 * once none runs delete the NBD nodes. */
static int jobs_reply(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct reap_step *x = ud;
	mig_mirror *m = x->m;
	bool running = false;
	int r = 0;

	(void)mirror_parse_jobs(m, ret, NULL, NULL);
	for (size_t i = 0; r >= 0 && i < m->n; i++) {
		struct mirror_disk *d = &m->disks[i];
		if (!d->job_started)
			continue;
		if (streq(d->status, "concluded")) {
			r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "job-dismiss",
						.args = mirror_id_arg("id", d->job),
						.tolerate_error = true });
			d->job_started = false;
		} else if (streq(d->status, "gone") || streq(d->status, "null")) {
			d->job_started = false;
		} else {
			running = true;
		}
	}
	for (size_t i = 0; r >= 0 && !running && i < m->n; i++) {
		struct mirror_disk *d = &m->disks[i];
		if (d->node_added && !d->job_started)
			r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "blockdev-del",
						.args = mirror_id_arg("node-name", d->node),
						.fn = del_reply, .userdata = d,
						.tolerate_error = true });
	}
	return r;
}

static void step_done(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	struct reap_step *x = ud;
	mig_mirror *m = x->m;
	mig_mirror_reap_fn fn = x->fn;
	void *userdata = x->userdata;

	free(x);
	m->seq = NULL;
	fn(m, error, errp, userdata);
}

int mig_mirror_reap_async(mig_mirror *m, bool abort, int timeout_ms, mig_mirror_reap_fn fn,
			  void *userdata, struct qv_error *errp)
{
	qmp_client *c = m->get_qmp(m->userdata);
	struct reap_step *x;
	int r;

	m->seq = qmp_seq_cancel(m->seq);
	if (!c || !qmp_client_is_open(c)) {
		/* QEMU is gone: nothing is left in it. */
		for (size_t i = 0; i < m->n; i++)
			m->disks[i].job_started = m->disks[i].node_added = false;
		return 1;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	*x = (struct reap_step){ .m = m, .fn = fn, .userdata = userdata };
	r = qmp_seq_new(c, timeout_ms > 0 ? timeout_ms : QMP_TIMEOUT_MS, step_done, x, &m->seq);
	for (size_t i = 0; r >= 0 && abort && i < m->n; i++) {
		json_object *a;
		if (!m->disks[i].job_started)
			continue;
		a = mirror_job_arg(m->disks[i].job);
		json_object_object_add(a, "force", json_object_new_boolean(true));
		r = qmp_seq_add(m->seq, &(struct qmp_seq_step){ .command = "block-job-cancel",
							       .args = a, .tolerate_error = true });
	}
	if (r >= 0)
		r = qmp_seq_add(m->seq, &(struct qmp_seq_step){ .command = "query-block-jobs",
							       .fn = jobs_reply, .userdata = x });
	if (r >= 0)
		r = qmp_seq_start(m->seq);
	if (r < 0) {
		m->seq = qmp_seq_cancel(m->seq);
		free(x);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL,
				    "cannot run the mirror cleanup steps: %s", strerror(-r));
	}
	return 0;
}
