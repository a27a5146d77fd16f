/* SPDX-License-Identifier: MIT */
/* Asynchronous QMP command sequences (see qmp-seq.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "qemu/qmp-internal.h"
#include "qemu/qmp-seq.h"

struct seq_step {
	char *command;
	json_object *args;
	int timeout_ms;
	qmp_seq_reply_fn fn;
	void *userdata;
	bool tolerate_error;
	int retry_ms;
	struct seq_step *next;
};

struct qmp_seq {
	unsigned n_ref;
	qmp_client *c;
	qv_loop *loop;
	int timeout_ms;
	struct seq_step *head, **tail; /* head: the step being run */
	qmp_seq_done_fn done;
	void *userdata;
	bool started, ended, in_start;
	bool inflight;
	uint64_t inflight_id;
	unsigned steps_done;
	qv_source *timer;    /* retry, or the deferred end */
	qv_source *deadline; /* the whole sequence's */
	int deadline_ms;
	char what[96];
	int end_error;       /* deferred end (inside qmp_seq_start) */
	struct qv_error end_err;
};

static void step_free(struct seq_step *st)
{
	if (!st)
		return;
	json_object_put(st->args);
	free(st->command);
	free(st);
}

static qmp_seq *seq_ref(qmp_seq *s)
{
	s->n_ref++;
	return s;
}

static void seq_unref(qmp_seq *s)
{
	if (!s || --s->n_ref > 0)
		return;
	while (s->head) {
		struct seq_step *st = s->head;
		s->head = st->next;
		step_free(st);
	}
	qv_source_remove(s->timer);
	qv_source_remove(s->deadline);
	qmp_client_unref(s->c);
	free(s);
}

/* Forget the command in flight and the timers: nothing more happens. */
static void seq_quiesce(qmp_seq *s)
{
	if (s->inflight && !qmp_client_gone(s->c))
		qmp_cancel_pending(s->c, s->inflight_id);
	s->inflight = false;
	s->timer = qv_source_remove(s->timer);
	s->deadline = qv_source_remove(s->deadline);
}

static void seq_end_now(qmp_seq *s, int error, const struct qv_error *errp)
{
	s->ended = true;
	seq_quiesce(s);
	if (s->done)
		s->done(s, error, error < 0 ? errp : NULL, s->userdata);
	seq_unref(s); /* the reference qmp_seq_new() gave */
}

static void on_deferred_end(qv_source *src, void *ud)
{
	qmp_seq *s = ud;

	s->timer = NULL;
	seq_end_now(s, s->end_error, &s->end_err);
}

/* done never runs inside qmp_seq_start(): defer it to the loop there. */
static void seq_end(qmp_seq *s, int error, const struct qv_error *errp)
{
	if (s->ended)
		return;
	if (error < 0 && (!errp || !errp->set)) {
		qv_error_set(&s->end_err, -error, qv_reason_from_errno(-error), "%s",
			     strerror(-error));
		errp = &s->end_err;
	}
	if (!s->in_start)
		return seq_end_now(s, error, errp);
	s->end_error = error;
	if (errp && errp != &s->end_err)
		s->end_err = *errp;
	seq_quiesce(s);
	s->ended = true; /* no more steps; on_deferred_end reports */
	if (qv_loop_add_timer(s->loop, 0, on_deferred_end, s, &s->timer) < 0)
		s->timer = NULL; /* cannot happen short of ENOMEM; start fails */
}

static int send_current(qmp_seq *s);
static void on_retry(qv_source *src, void *ud);

static void on_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *userdata)
{
	qmp_seq *s = userdata;
	struct seq_step *st = s->head;
	struct qv_error err = {};
	int rc = 0;

	s->inflight = false;
	if (s->ended || !st)
		return;
	s->steps_done++;
	if (error < 0) {
		if (errp && errp->set)
			err = *errp;
		else
			qv_error_set(&err, -error, qv_reason_from_errno(-error), "%s: %s",
				     st->command, strerror(-error));
		if (!st->tolerate_error)
			return seq_end(s, error, &err);
	}
	if (st->fn) {
		seq_ref(s);
		rc = st->fn(s, error, error < 0 ? NULL : ret, &err, st->userdata);
		if (s->ended) { /* cancelled from the callback */
			seq_unref(s);
			return;
		}
		seq_unref(s);
	}
	if (rc < 0) {
		if (!err.set)
			qv_error_set(&err, -rc, qv_reason_from_errno(-rc), "%s: %s", st->command,
				     strerror(-rc));
		return seq_end(s, rc, &err);
	}
	if (rc == QMP_SEQ_STOP)
		return seq_end(s, 0, NULL);
	if (rc == QMP_SEQ_AGAIN) {
		if (qv_loop_add_timer(s->loop, (uint64_t)(st->retry_ms > 0 ? st->retry_ms : 0),
				      on_retry, s, &s->timer) < 0) {
			qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "cannot arm a timer");
			seq_end(s, -ENOMEM, &err);
		}
		return;
	}
	s->head = st->next;
	if (!s->head)
		s->tail = &s->head;
	step_free(st);
	(void)send_current(s);
}

static void on_retry(qv_source *src, void *ud)
{
	qmp_seq *s = ud;

	s->timer = NULL;
	(void)send_current(s);
}

static void on_deadline(qv_source *src, void *ud)
{
	qmp_seq *s = ud;
	struct qv_error err = {};

	s->deadline = NULL;
	qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT, "%s not done within %d ms", s->what,
		     s->deadline_ms);
	seq_end(s, -ETIMEDOUT, &err);
}

/* Send the head step (or end when there is none). In qmp_seq_start a
 * send failure is returned rather than reported through done. */
static int send_current(qmp_seq *s)
{
	struct seq_step *st = s->head;
	struct qv_error err = {};
	uint64_t id = 0;
	int r;

	if (s->ended)
		return 0;
	if (!st) {
		seq_end(s, 0, NULL);
		return 0;
	}
	seq_ref(s);
	s->inflight = true;
	r = qmp_execute_internal(s->c, st->command, st->args, NULL, 0,
				 st->timeout_ms > 0 ? st->timeout_ms : s->timeout_ms, on_reply, s,
				 &id);
	if (r >= 0 && s->inflight)
		s->inflight_id = id;
	if (r < 0) {
		s->inflight = false;
		if (!s->in_start || s->steps_done > 0) {
			qv_error_set(&err, -r, QV_REASON_UNAVAILABLE, "cannot send %s to QEMU: %s",
				     st->command, strerror(-r));
			seq_end(s, r, &err);
			r = 0;
		}
	}
	seq_unref(s);
	return r;
}

int qmp_seq_new(qmp_client *c, int timeout_ms, qmp_seq_done_fn done, void *userdata,
		qmp_seq **ret)
{
	qmp_seq *s;

	if (!c || !c->loop || !ret)
		return -EINVAL;
	if (qmp_client_gone(c))
		return -ENOTCONN;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n_ref = 1;
	s->c = qmp_client_ref(c);
	s->loop = c->loop;
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS;
	s->tail = &s->head;
	s->done = done;
	s->userdata = userdata;
	*ret = s;
	return 0;
}

int qmp_seq_add(qmp_seq *s, const struct qmp_seq_step *step)
{
	struct seq_step *st;

	if (!s || !step || !step->command || !*step->command || step->retry_ms < 0) {
		if (step)
			json_object_put(step->args);
		return -EINVAL;
	}
	if (s->ended) {
		json_object_put(step->args);
		return -EALREADY;
	}
	st = calloc(1, sizeof(*st));
	if (!st || !(st->command = strdup(step->command))) {
		free(st);
		json_object_put(step->args);
		return -ENOMEM;
	}
	st->args = step->args;
	st->timeout_ms = step->timeout_ms;
	st->fn = step->fn;
	st->userdata = step->userdata;
	st->tolerate_error = step->tolerate_error;
	st->retry_ms = step->retry_ms;
	*s->tail = st;
	s->tail = &st->next;
	return 0;
}

int qmp_seq_add_cmd(qmp_seq *s, const char *command, json_object *args)
{
	return qmp_seq_add(s, &(struct qmp_seq_step){ .command = command, .args = args });
}

void qmp_seq_set_deadline(qmp_seq *s, int ms, const char *what)
{
	s->deadline_ms = ms;
	snprintf(s->what, sizeof(s->what), "%s", what ? what : "QMP sequence");
}

int qmp_seq_start(qmp_seq *s)
{
	int r;

	if (!s || s->started)
		return -EINVAL;
	if (qmp_client_gone(s->c))
		return -ENOTCONN;
	s->started = true;
	s->in_start = true;
	if (s->deadline_ms > 0 &&
	    (r = qv_loop_add_timer(s->loop, (uint64_t)s->deadline_ms, on_deadline, s,
				   &s->deadline)) < 0)
		goto fail;
	if (!s->head) {
		r = qv_loop_add_timer(s->loop, 0, on_deferred_end, s, &s->timer);
		s->ended = r >= 0;
		if (r < 0)
			goto fail;
		s->in_start = false;
		return 0;
	}
	r = send_current(s);
	if (r < 0)
		goto fail;
	s->in_start = false;
	return 0;
fail:
	s->in_start = false;
	s->started = false;
	s->deadline = qv_source_remove(s->deadline);
	return r;
}

qmp_seq *qmp_seq_cancel(qmp_seq *s)
{
	if (!s)
		return NULL;
	if (s->ended && !s->timer)
		return NULL; /* done is running: it frees the sequence after */
	s->ended = true;
	s->done = NULL;
	seq_quiesce(s);
	seq_unref(s);
	return NULL;
}

unsigned qmp_seq_steps_done(const qmp_seq *s)
{
	return s ? s->steps_done : 0;
}
