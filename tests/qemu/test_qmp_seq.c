/* SPDX-License-Identifier: MIT */
/* Asynchronous QMP sequences (qemu/qmp-seq.c) against a fake QMP peer:
 * order, polling steps, error replies, timeouts, the peer closing,
 * cancel, the client freed, the whole sequence's deadline. */
#include "qemu/qmp-seq.h"
#include "qmp-test-util.h"

struct seq_ctx {
	struct rec rec;
	qv_loop *loop;
	int done_calls;
	int error;
	struct qv_error err;
	int polls;     /* answers to the polling step */
	int poll_until;
	qmp_seq *seq;  /* for cancel from a callback */
	qmp_client *c; /* for free from a callback */
};

static void on_done(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	struct seq_ctx *x = ud;

	x->done_calls++;
	x->error = error;
	if (errp)
		x->err = *errp;
	x->seq = NULL;
	qv_loop_quit(x->loop, 0);
}

static int on_step(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct seq_ctx *x = ud;
	char e[48];

	if (error < 0)
		snprintf(e, sizeof(e), "err:%s:%d", err->reason, error);
	else
		snprintf(e, sizeof(e), "ret:%s", ret_str(ret, "which"));
	rec_add(&x->rec, e);
	return 0;
}

static int on_poll(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct seq_ctx *x = ud;

	return ++x->polls < x->poll_until ? QMP_SEQ_AGAIN : 0;
}

static qmp_seq *new_seq(qmp_client *c, struct seq_ctx *x, qv_loop **loop)
{
	qmp_seq *s = NULL;

	cr_assert_eq(qv_loop_new(loop), 0);
	x->loop = *loop;
	cr_assert_eq(qmp_client_attach(c, *loop), 0);
	cr_assert_eq(qmp_seq_new(c, 5000, on_done, x, &s), 0);
	x->seq = s;
	return s;
}

static void add_step(qmp_seq *s, const char *cmd, struct seq_ctx *x, int timeout_ms,
		     bool tolerate)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "n", json_object_new_int(1));
	cr_assert_eq(qmp_seq_add(s, &(struct qmp_seq_step){ .command = cmd, .args = a,
							    .timeout_ms = timeout_ms,
							    .fn = on_step, .userdata = x,
							    .tolerate_error = tolerate }), 0);
}

/* Run until done (or 20 s); returns the loop's result. */
static int run(qv_loop *loop)
{
	qv_source *safety = NULL;
	int r;

	cr_assert_eq(qv_loop_add_timer(loop, 20000, on_safety, loop, &safety), 0);
	r = qv_loop_run(loop);
	qv_source_remove(safety);
	return r;
}

/* The peer sees the marker next: nothing of the sequence was sent after
 * its end. */
static void send_marker(qmp_client *c)
{
	cr_assert_eq(qmp_client_execute_async(c, "marker", NULL, NULL, 0, 5000, NULL, NULL), 0);
}

static void reply_which(fake_qmp *f, json_object *cmd, const char *which)
{
	char r[64];

	snprintf(r, sizeof(r), "{\"which\": \"%s\"}", which);
	fake_qmp_reply(f, cmd, r);
	json_object_put(cmd);
}

static void expect_marker_then_eof(fake_qmp *f)
{
	json_object_put(fake_qmp_expect(f, "marker"));
	fake_qmp_wait_eof(f);
}

static void marker_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			 void *ud)
{
	qv_loop_quit(ud, error);
}

/* ---- order, arguments, polling ---------------------------------------------------- */

static void script_ok(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *a = fake_qmp_expect(f, "cmd-a");
	json_object *n = json_object_object_get(json_object_object_get(a, "arguments"), "n");
	if (a && json_object_get_int(n) != 1)
		fake_qmp_fail(f, "cmd-a lost its arguments");
	reply_which(f, a, "a");
	for (int i = 0; i < 3; i++)
		reply_which(f, fake_qmp_expect(f, "poll"), "p");
	reply_which(f, fake_qmp_expect(f, "cmd-b"), "b");
	expect_marker_then_eof(f);
}

Test(qmp_seq, steps_in_order_with_a_polling_step)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = { .poll_until = 3 };
	fake_qmp *f;
	qmp_client *c = start(script_ok, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	add_step(s, "cmd-a", &x, 0, false);
	cr_assert_eq(qmp_seq_add(s, &(struct qmp_seq_step){ .command = "poll", .fn = on_poll,
							    .userdata = &x, .retry_ms = 5 }), 0);
	add_step(s, "cmd-b", &x, 0, false);
	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(x.done_calls, 0, "done must not run inside start");
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.done_calls, 1);
	cr_assert_eq(x.error, 0, "%s", x.err.message);
	cr_assert_eq(x.polls, 3);
	const char *want[] = { "ret:a", "ret:b" };
	assert_log(&x.rec, want, 2);
	send_marker(c);
	finish(f, c);
}

/* ---- an error reply aborts; tolerate_error hands it to the step ---------------------- */

static void script_error(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *t = fake_qmp_expect(f, "tolerated");
	fake_qmp_reply_error(f, t, "GenericError", "ignored");
	json_object_put(t);
	reply_which(f, fake_qmp_expect(f, "cmd-a"), "a");
	json_object *b = fake_qmp_expect(f, "cmd-b");
	fake_qmp_reply_error(f, b, "GenericError", "boom");
	json_object_put(b);
	expect_marker_then_eof(f);
}

Test(qmp_seq, error_reply_aborts_the_rest)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = {};
	fake_qmp *f;
	qmp_client *c = start(script_error, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	add_step(s, "tolerated", &x, 0, true);
	add_step(s, "cmd-a", &x, 0, false);
	add_step(s, "cmd-b", &x, 0, false);
	add_step(s, "cmd-c", &x, 0, false);
	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.done_calls, 1);
	cr_assert_eq(x.error, -EIO);
	cr_assert_str_eq(x.err.reason, QV_REASON_QEMU_ERROR);
	cr_assert_str_eq(x.err.message, "cmd-b: boom (GenericError)");
	char tol[48];
	snprintf(tol, sizeof(tol), "err:qemu-error:%d", -EIO);
	const char *want[] = { tol, "ret:a" };
	assert_log(&x.rec, want, 2);
	cr_assert_eq(qmp_seq_steps_done(NULL), 0);
	send_marker(c); /* cmd-c was never sent */
	finish(f, c);
}

/* ---- a step's deadline mid-sequence; its late reply is dropped ------------------------ */

static void script_timeout(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	reply_which(f, fake_qmp_expect(f, "cmd-a"), "a");
	json_object *b = fake_qmp_expect(f, "cmd-b");
	json_object *m = fake_qmp_expect(f, "marker"); /* sent after the timeout */
	reply_which(f, b, "late");
	json_object_put(m);
	fake_qmp_wait_eof(f);
}

Test(qmp_seq, step_timeout_mid_sequence)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = {};
	fake_qmp *f;
	qmp_client *c = start(script_timeout, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	add_step(s, "cmd-a", &x, 0, false);
	add_step(s, "cmd-b", &x, 200, false);
	add_step(s, "cmd-c", &x, 0, false);
	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.error, -ETIMEDOUT);
	cr_assert_str_eq(x.err.reason, QV_REASON_TIMEOUT);
	cr_assert(strstr(x.err.message, "cmd-b: QEMU did not reply within 200 ms"), "%s",
		  x.err.message);
	send_marker(c);
	for (uint64_t t0 = qv_now_ms(); qv_now_ms() - t0 < 300;)
		cr_assert_geq(qv_loop_run_once(loop, 50), 0);
	const char *want[] = { "ret:a" };
	assert_log(&x.rec, want, 1); /* the late reply reached nobody */
	cr_assert_eq(x.done_calls, 1);
	finish(f, c);
}

/* ---- the peer closes mid-sequence ------------------------------------------------------ */

static void script_close(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	reply_which(f, fake_qmp_expect(f, "cmd-a"), "a");
	json_object_put(fake_qmp_expect(f, "cmd-b"));
	fake_qmp_close(f);
}

Test(qmp_seq, peer_closes_mid_sequence)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = {};
	fake_qmp *f;
	qmp_client *c = start(script_close, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	add_step(s, "cmd-a", &x, 0, false);
	add_step(s, "cmd-b", &x, 0, false);
	add_step(s, "cmd-c", &x, 0, false);
	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.done_calls, 1);
	cr_assert_eq(x.error, -ECONNRESET);
	cr_assert_str_eq(x.err.reason, QV_REASON_UNAVAILABLE);
	cr_assert(strstr(x.err.message, "cmd-b"), "%s", x.err.message);
	finish(f, c);
}

/* ---- cancel: in flight, and from a step's callback ------------------------------------- */

static void script_cancel(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *a = fake_qmp_expect(f, "cmd-a");
	json_object *m = fake_qmp_expect(f, "marker");
	reply_which(f, a, "a"); /* to a cancelled sequence */
	reply_which(f, m, "m");
	/* a second sequence, cancelled from its step */
	reply_which(f, fake_qmp_expect(f, "cmd-x"), "x");
	expect_marker_then_eof(f);
}

static int cancel_in_step(qmp_seq *s, int error, json_object *ret, struct qv_error *err,
			  void *ud)
{
	struct seq_ctx *x = ud;

	x->seq = qmp_seq_cancel(s);
	qv_loop_quit(x->loop, 0);
	return 0;
}

Test(qmp_seq, cancel_never_calls_done)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = {};
	fake_qmp *f;
	qmp_client *c = start(script_cancel, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	add_step(s, "cmd-a", &x, 0, false);
	add_step(s, "cmd-b", &x, 0, false);
	cr_assert_eq(qmp_seq_start(s), 0);
	x.seq = qmp_seq_cancel(s);
	cr_assert_eq(qmp_client_execute_async(c, "marker", NULL, NULL, 0, 5000, marker_reply,
					      loop), 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.done_calls, 0);
	cr_assert_eq(x.rec.n, 0, "the reply to a cancelled step reached it");

	cr_assert_eq(qmp_seq_new(c, 5000, on_done, &x, &s), 0);
	cr_assert_eq(qmp_seq_add(s, &(struct qmp_seq_step){ .command = "cmd-x",
							    .fn = cancel_in_step,
							    .userdata = &x }), 0);
	add_step(s, "cmd-y", &x, 0, false);
	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_null(x.seq);
	cr_assert_eq(x.done_calls, 0);
	send_marker(c); /* cmd-y never went out */
	finish(f, c);
}

/* ---- the client freed (VM teardown) mid-sequence ---------------------------------------- */

static void script_hang_b(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	reply_which(f, fake_qmp_expect(f, "cmd-a"), "a");
	json_object_put(fake_qmp_expect(f, "cmd-b"));
	fake_qmp_wait_eof(f);
}

static int free_client_in_step(qmp_seq *s, int error, json_object *ret, struct qv_error *err,
			       void *ud)
{
	struct seq_ctx *x = ud;

	return on_step(s, error, ret, err, x);
}

static void free_client_soon(qv_source *src, void *ud)
{
	struct seq_ctx *x = ud;

	x->c = qmp_client_free(x->c);
}

Test(qmp_seq, client_freed_ends_with_ecanceled)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = {};
	fake_qmp *f;
	qmp_client *c = start(script_hang_b, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	x.c = c;
	cr_assert_eq(qmp_seq_add(s, &(struct qmp_seq_step){ .command = "cmd-a",
							    .fn = free_client_in_step,
							    .userdata = &x }), 0);
	add_step(s, "cmd-b", &x, 0, false);
	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(qv_loop_add_timer(loop, 300, free_client_soon, &x, NULL), 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.done_calls, 1);
	cr_assert_eq(x.error, -ECANCELED);
	cr_assert_str_eq(x.err.reason, QV_REASON_CANCELLED);
	cr_assert_null(x.c);
	finish(f, NULL);
}

/* ---- the whole sequence's deadline over a polling step ----------------------------------- */

static void script_poll_forever(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	for (;;) {
		json_object *p = fake_qmp_expect(f, NULL);
		if (!p)
			return;
		bool marker = streq(ret_str(p, "execute"), "marker");
		reply_which(f, p, "p");
		if (marker)
			break;
	}
	fake_qmp_wait_eof(f);
}

Test(qmp_seq, sequence_deadline_over_polling)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = { .poll_until = 1 << 30 };
	fake_qmp *f;
	qmp_client *c = start(script_poll_forever, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	cr_assert_eq(qmp_seq_add(s, &(struct qmp_seq_step){ .command = "poll", .fn = on_poll,
							    .userdata = &x, .retry_ms = 10 }), 0);
	qmp_seq_set_deadline(s, 300, "mirror completion");
	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.error, -ETIMEDOUT);
	cr_assert_str_eq(x.err.message, "mirror completion not done within 300 ms");
	cr_assert_gt(x.polls, 1);
	/* Wait for the marker's answer: the fake answered the last poll
	 * before it, so it never writes to a closed socket. */
	cr_assert_eq(qmp_client_execute_async(c, "marker", NULL, NULL, 0, 5000, marker_reply,
					      loop), 0);
	cr_assert_eq(run(loop), 0);
	finish(f, c);
}

/* ---- empty sequence; start on a closed link ---------------------------------------------- */

static void script_idle(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	fake_qmp_wait_eof(f);
}

Test(qmp_seq, empty_sequence_completes_later)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct seq_ctx x = {};
	fake_qmp *f;
	qmp_client *c = start(script_idle, NULL, &f);
	qmp_seq *s = new_seq(c, &x, &loop);

	cr_assert_eq(qmp_seq_start(s), 0);
	cr_assert_eq(x.done_calls, 0);
	cr_assert_eq(run(loop), 0);
	cr_assert_eq(x.done_calls, 1);
	cr_assert_eq(x.error, 0);
	cr_assert_eq(qmp_seq_new(c, 0, on_done, &x, &s), 0);
	cr_assert_eq(qmp_seq_add_cmd(s, "", NULL), -EINVAL);
	s = qmp_seq_cancel(s);
	finish(f, c);
}
