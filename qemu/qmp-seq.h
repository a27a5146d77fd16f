/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "common/error.h"
#include "qemu/qmp.h"

/* An asynchronous QMP command sequence on a client attached to a loop:
 * the steps go out one after another, each with its own deadline, and
 * nothing waits for QEMU on the loop. Used for the multi-command steps of
 * a migration (capabilities, parameters, `migrate`, the mirror's
 * completion) so that a QEMU which stalls fails only its own VM's
 * operation, at that step's deadline.
 *
 *   - A step's reply goes to its callback (if any), which may go on, ask
 *     for the same command again after retry_ms (polling, e.g. until block
 *     jobs ended), stop the sequence early with success, or abort it.
 *   - The first error aborts: a QEMU error reply, a step's timeout, the
 *     link's loss, the whole sequence's deadline (qmp_seq_set_deadline).
 *     A step with tolerate_error hands its error to its callback instead,
 *     which decides.
 *   - done runs exactly once, never before qmp_seq_start() returned, and
 *     the sequence frees itself after done returned; qmp_seq_cancel() (the
 *     owner is going away, e.g. VM teardown) frees it without calling done,
 *     and a reply still due is dropped by id.
 *   - Freeing the client ends the sequence with -ECANCELED (done runs).
 *
 * Library code: knows QMP only. */

typedef struct qmp_seq qmp_seq;

#define QMP_SEQ_AGAIN 1 /* reply_fn: send this step again after its retry_ms */
#define QMP_SEQ_STOP 2  /* reply_fn: skip the remaining steps, done(0) */

/* A step's outcome. error 0: ret (borrowed) holds "return". error < 0
 * (only with tolerate_error): err describes it and ret is NULL. Return 0 to
 * go on, QMP_SEQ_AGAIN, QMP_SEQ_STOP, or -errno to abort with *err (set it,
 * or keep the one passed in). May append steps (qmp_seq_add). */
typedef int (*qmp_seq_reply_fn)(qmp_seq *s, int error, json_object *ret, struct qv_error *err,
				void *userdata);
/* The end: 0, or -errno with errp (a QEMU error reads "<command>: <desc>
 * (<class>)", a timeout "<command>: QEMU did not reply within N ms"). */
typedef void (*qmp_seq_done_fn)(qmp_seq *s, int error, const struct qv_error *errp,
				void *userdata);

struct qmp_seq_step {
	const char *command;
	json_object *args;   /* TAKEN by qmp_seq_add (even on failure); NULL: none */
	int timeout_ms;      /* per send; <= 0: the sequence's default */
	qmp_seq_reply_fn fn; /* NULL: go on */
	void *userdata;
	bool tolerate_error; /* errors go to fn (or are ignored without fn) */
	int retry_ms;        /* delay before a QMP_SEQ_AGAIN resend (>= 0) */
};

/* c must be attached to a loop (-EINVAL otherwise). timeout_ms is the
 * default per-step deadline (<= 0: QMP_DEFAULT_TIMEOUT_MS). The sequence
 * holds a reference on c until it ends. */
int qmp_seq_new(qmp_client *c, int timeout_ms, qmp_seq_done_fn done, void *userdata,
		qmp_seq **ret);
/* Append a step; also from a reply_fn. 0, -EINVAL, -ENOMEM, -EALREADY
 * once the sequence ended. */
int qmp_seq_add(qmp_seq *s, const struct qmp_seq_step *step);
/* Shorthand: a plain step (args taken). */
int qmp_seq_add_cmd(qmp_seq *s, const char *command, json_object *args);
/* The whole sequence must end within ms of qmp_seq_start (-ETIMEDOUT,
 * reason "timeout", "<what> not done within N ms"). */
void qmp_seq_set_deadline(qmp_seq *s, int ms, const char *what);
/* Send the first step. 0: done will run later; < 0: not started (nothing
 * sent, done never runs, the caller still owns s and cancels it). An empty
 * sequence completes with 0 on the next loop iteration. */
int qmp_seq_start(qmp_seq *s);
/* Drop the sequence without calling done: the command in flight is
 * forgotten (its reply dropped by id), nothing more is sent. Safe from the
 * sequence's own callbacks; NULL is fine. Returns NULL. */
qmp_seq *qmp_seq_cancel(qmp_seq *s);
/* Steps answered so far (for tests and logs). */
unsigned qmp_seq_steps_done(const qmp_seq *s);
