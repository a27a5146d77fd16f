/* SPDX-License-Identifier: MIT */
/* Asynchronous QMP handshake on a loop: success, no greeting before the
 * deadline, a peer that hangs up, cancellation by free. */
#include "qmp-test-util.h"

struct hs {
	int calls;
	int error;
	char reason[32];
	char message[256];
	bool freed_client;
	qv_loop *loop;
};

static void on_hs(qmp_client *c, int error, const struct qv_error *errp, void *ud)
{
	struct hs *h = ud;

	h->calls++;
	h->error = error;
	if (errp && errp->set) {
		snprintf(h->reason, sizeof(h->reason), "%s", errp->reason);
		snprintf(h->message, sizeof(h->message), "%s", errp->message);
	}
	qv_loop_quit(h->loop, 0);
}

static void run_until_quit(qv_loop *loop, int safety_ms)
{
	qv_source *safety = NULL;

	cr_assert_eq(qv_loop_add_timer(loop, (uint64_t)safety_ms, on_safety, loop, &safety), 0);
	cr_assert_eq(qv_loop_run(loop), 0, "the loop hit its safety timeout");
	qv_source_remove(safety);
}

static void script_ok(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *c = fake_qmp_expect(f, "query-status");
	fake_qmp_reply(f, c, "{\"status\": \"running\"}");
	json_object_put(c);
	fake_qmp_wait_eof(f);
}

static void on_status(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		      void *ud)
{
	struct hs *h = ud;

	h->error = error;
	snprintf(h->message, sizeof(h->message), "%s", ret_str(ret, "status"));
	qv_loop_quit(h->loop, 0);
}

Test(qmp_handshake, completes_on_the_loop_then_commands_work)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct hs h = {};
	qmp_client *c = NULL;
	fake_qmp *f;
	int fd;

	cr_assert_eq(qv_loop_new(&loop), 0);
	h.loop = loop;
	cr_assert_eq(fake_qmp_start(script_ok, NULL, &f, &fd), 0);
	cr_assert_eq(qmp_client_handshake_async(loop, fd, 5000, on_hs, &h, &c), 0);
	cr_assert_eq(h.calls, 0, "the callback ran before the call returned");
	run_until_quit(loop, 10000);
	cr_assert_eq(h.calls, 1);
	cr_assert_eq(h.error, 0, "%s", h.message);
	cr_assert_str_eq(qmp_client_version(c), "7.2.22");
	cr_assert_eq(qmp_client_execute_async(c, "query-status", NULL, NULL, 0, 5000, on_status, &h),
		     0);
	run_until_quit(loop, 10000);
	cr_assert_eq(h.error, 0);
	cr_assert_str_eq(h.message, "running");
	finish(f, c);
}

static void script_silent(fake_qmp *f, void *ud)
{
	fake_qmp_wait_eof(f); /* never greets */
}

static void on_tick(qv_source *s, void *ud)
{
	(*(int *)ud)++;
}

Test(qmp_handshake, no_greeting_fails_at_the_deadline_without_blocking)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct hs h = {};
	qmp_client *c = NULL;
	fake_qmp *f;
	int fd, ticks = 0;

	cr_assert_eq(qv_loop_new(&loop), 0);
	h.loop = loop;
	cr_assert_eq(fake_qmp_start(script_silent, NULL, &f, &fd), 0);
	cr_assert_eq(qmp_client_handshake_async(loop, fd, 300, on_hs, &h, &c), 0);
	/* Another source on the same loop runs while the handshake waits. */
	cr_assert_eq(qv_loop_add_timer(loop, 50, on_tick, &ticks, NULL), 0);
	run_until_quit(loop, 10000);
	cr_assert_eq(ticks, 1, "the loop was blocked during the handshake");
	cr_assert_eq(h.calls, 1);
	cr_assert_eq(h.error, -ETIMEDOUT);
	cr_assert_str_eq(h.reason, "timeout");
	cr_assert(strstr(h.message, "no QMP greeting within 300 ms"), "%s", h.message);
	finish(f, c);
}

static void script_hangup(fake_qmp *f, void *ud)
{
	fake_qmp_greeting(f);
	json_object *c = fake_qmp_expect(f, "qmp_capabilities");
	json_object_put(c);
	fake_qmp_close(f);
}

Test(qmp_handshake, peer_hangup_fails_with_unavailable)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct hs h = {};
	qmp_client *c = NULL;
	fake_qmp *f;
	int fd;

	cr_assert_eq(qv_loop_new(&loop), 0);
	h.loop = loop;
	cr_assert_eq(fake_qmp_start(script_hangup, NULL, &f, &fd), 0);
	cr_assert_eq(qmp_client_handshake_async(loop, fd, 5000, on_hs, &h, &c), 0);
	run_until_quit(loop, 10000);
	cr_assert_eq(h.calls, 1);
	cr_assert_lt(h.error, 0);
	cr_assert_str_eq(h.reason, "unavailable", "%s", h.message);
	cr_assert(strstr(h.message, "qmp_capabilities"), "%s", h.message);
	cr_assert(!qmp_client_is_open(c));
	finish(f, c);
}

static void on_free_timer(qv_source *s, void *ud)
{
	struct hs *h = ud;

	qv_loop_quit(h->loop, 0);
}

Test(qmp_handshake, free_before_completion_cancels_silently)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct hs h = {};
	qmp_client *c = NULL;
	fake_qmp *f;
	int fd;

	cr_assert_eq(qv_loop_new(&loop), 0);
	h.loop = loop;
	cr_assert_eq(fake_qmp_start(script_silent, NULL, &f, &fd), 0);
	cr_assert_eq(qmp_client_handshake_async(loop, fd, 100, on_hs, &h, &c), 0);
	c = qmp_client_free(c);
	/* Past the handshake deadline: nothing may fire. */
	cr_assert_eq(qv_loop_add_timer(loop, 300, on_free_timer, &h, NULL), 0);
	run_until_quit(loop, 10000);
	cr_assert_eq(h.calls, 0, "the callback ran after the client was freed");
	finish(f, NULL);
}
