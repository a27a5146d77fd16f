/* SPDX-License-Identifier: MIT */
/* QMP client on a qv_loop: async commands, partial writes, lifetime, re-entrancy. */
#include "qmp-test-util.h"

/* ---- async API on a loop ---------------------------------------------------------- */

struct async_ctx {
	struct rec rec;
	int replies;
};

static void async_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			void *ud)
{
	struct async_ctx *a = ud;
	char s[48];

	a->replies++;
	if (error == 0)
		snprintf(s, sizeof(s), "reply:%s", ret_str(ret, "which"));
	else
		snprintf(s, sizeof(s), "error:%s:%d", errp ? errp->reason : "?", error);
	rec_add(&a->rec, s);
}

static void script_async(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *a = fake_qmp_expect(f, "cmd-a");
	json_object *b = fake_qmp_expect(f, "cmd-b");
	json_object *c = fake_qmp_expect(f, "cmd-c");
	if (!c)
		goto out;
	fake_qmp_event(f, "EV1", NULL);
	fake_qmp_reply(f, b, "{\"which\": \"b\"}"); /* out of order on purpose */
	fake_qmp_event(f, "EV2", NULL);
	fake_qmp_reply(f, a, "{\"which\": \"a\"}");
	usleep(800 * 1000); /* cmd-c times out meanwhile */
	fake_qmp_reply(f, c, "{\"which\": \"c\"}");
	fake_qmp_event(f, "EV3", NULL);
	usleep(50 * 1000);
out:
	json_object_put(a), json_object_put(b), json_object_put(c);
}

Test(qmp, async_on_loop_out_of_order_replies)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct async_ctx ctx = {};
	fake_qmp *f;
	qmp_client *c = start(script_async, NULL, &f);

	cr_assert_eq(qv_loop_new(&loop), 0);
	ctx.rec.loop = loop;
	qmp_client_set_event_handler(c, rec_event, &ctx.rec);
	qmp_client_set_closed_handler(c, rec_closed, &ctx.rec);
	cr_assert_eq(qmp_client_attach(c, loop), 0);
	cr_assert_eq(qmp_client_attach(c, loop), -EBUSY);
	cr_assert_eq(qmp_client_execute_async(c, "cmd-a", NULL, NULL, 0, 5000, async_reply, &ctx), 0);
	cr_assert_eq(qmp_client_execute_async(c, "cmd-b", NULL, NULL, 0, 5000, async_reply, &ctx), 0);
	cr_assert_eq(qmp_client_execute_async(c, "cmd-c", NULL, NULL, 0, 300, async_reply, &ctx), 0);
	qv_source *safety = NULL;
	cr_assert_eq(qv_loop_add_timer(loop, 20000, on_safety, loop, &safety), 0);
	cr_assert_eq(qv_loop_run(loop), 0, "loop did not see the close");
	qv_source_remove(safety);

	char timeout_entry[48];
	snprintf(timeout_entry, sizeof(timeout_entry), "error:timeout:%d", -ETIMEDOUT);
	const char *want[] = { "EV1", "reply:b", "EV2", "reply:a", timeout_entry, "EV3", "closed" };
	assert_log(&ctx.rec, want, ARRAY_SIZE(want));
	cr_assert_eq(ctx.replies, 3); /* the late reply to cmd-c was dropped */
	cr_assert_eq(ctx.rec.closed_error, 0);
	finish(f, c);
}

/* ---- partial writes: a command bigger than the socket buffer -------------------------- */

#define BIG_ARG (600 * 1024)

static void script_big_command(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	for (int i = 0; i < 2; i++) {
		json_object *cmd = fake_qmp_expect(f, "big-in");
		if (!cmd)
			return;
		json_object *args = json_object_object_get(cmd, "arguments");
		json_object *s = json_object_object_get(args, "s");
		char reply[64];
		snprintf(reply, sizeof(reply), "{\"len\": %d}", json_object_get_string_len(s));
		fake_qmp_reply(f, cmd, reply);
		json_object_put(cmd);
	}
	fake_qmp_wait_eof(f);
}

static void big_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		      void *ud)
{
	json_object *len;

	*(int *)ud = error == 0 && json_object_object_get_ex(ret, "len", &len) ?
			     json_object_get_int(len) : error;
}

static void on_big_done(qv_source *s, void *ud)
{
	qv_loop_quit(ud, 0);
}

Test(qmp, command_larger_than_socket_buffer)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	_cleanup_free_ char *s = malloc(BIG_ARG + 1);
	json_object *ret = NULL, *len;
	struct qv_error err = {};
	fake_qmp *f;
	qmp_client *c = start(script_big_command, NULL, &f);

	memset(s, 'x', BIG_ARG);
	s[BIG_ARG] = 0;
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object_object_add(args, "s", json_object_new_string(s));

	/* Blocking: poll() for POLLOUT. */
	cr_assert_eq(qmp_client_execute(c, "big-in", args, 10000, &ret, &err), 0, "%s", err.message);
	cr_assert(json_object_object_get_ex(ret, "len", &len));
	cr_assert_eq(json_object_get_int(len), BIG_ARG);
	json_object_put(ret);

	/* Attached: EPOLLOUT. */
	int got = 0;
	cr_assert_eq(qv_loop_new(&loop), 0);
	cr_assert_eq(qmp_client_attach(c, loop), 0);
	cr_assert_eq(qmp_client_execute_async(c, "big-in", args, NULL, 0, 10000, big_reply, &got), 0);
	for (uint64_t t0 = qv_now_ms(); got == 0 && qv_now_ms() - t0 < 20000;)
		cr_assert_geq(qv_loop_run_once(loop, 100), 0);
	cr_assert_eq(got, BIG_ARG);
	(void)on_big_done;
	finish(f, c);
}

/* ---- lifetime: freeing from callbacks ------------------------------------------------- */

static void free_on_close(qmp_client *c, int error, void *ud)
{
	qmp_client **cp = ud;

	qmp_client_free(*cp);
	*cp = NULL;
}

static void script_pending_then_close(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "hang");
	json_object_put(cmd);
}

Test(qmp, free_from_closed_handler)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct async_ctx ctx = {};
	fake_qmp *f;
	qmp_client *c = start(script_pending_then_close, NULL, &f);

	cr_assert_eq(qv_loop_new(&loop), 0);
	qmp_client_set_closed_handler(c, free_on_close, &c);
	cr_assert_eq(qmp_client_attach(c, loop), 0);
	cr_assert_eq(qmp_client_execute_async(c, "hang", NULL, NULL, 0, 20000, async_reply, &ctx), 0);
	for (uint64_t t0 = qv_now_ms(); c && qv_now_ms() - t0 < 20000;)
		cr_assert_geq(qv_loop_run_once(loop, 100), 0);
	cr_assert_null(c);
	cr_assert_eq(ctx.replies, 1);
	char want[48];
	snprintf(want, sizeof(want), "error:unavailable:%d", -ECONNRESET);
	cr_assert_str_eq(ctx.rec.log[0], want);
	finish(f, NULL);
}

static void script_hang(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "hang");
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

Test(qmp, free_cancels_pending)
{
	struct async_ctx ctx = {};
	fake_qmp *f;
	qmp_client *c = start(script_hang, NULL, &f);

	cr_assert_eq(qmp_client_execute_async(c, "hang", NULL, NULL, 0, 20000, async_reply, &ctx), 0);
	qmp_client_free(c);
	cr_assert_eq(ctx.replies, 1);
	char want[48];
	snprintf(want, sizeof(want), "error:cancelled:%d", -ECANCELED);
	cr_assert_str_eq(ctx.rec.log[0], want);
	finish(f, NULL);
}

/* ---- blocking calls from inside loop callbacks ------------------------------------------ */

struct nested_ctx {
	struct rec rec;
	qmp_client *c;
};

static void nested_event(qmp_client *c, const char *name, json_object *ev, void *ud)
{
	struct nested_ctx *n = ud;

	rec_add(&n->rec, name);
	if (streq(name, "EV1")) {
		json_object *ret = NULL;
		int r = qmp_client_execute(c, "inner", NULL, 5000, &ret, NULL);
		rec_add(&n->rec, r == 0 && streq(ret_str(ret, "which"), "inner") ? "inner-ok" :
										 "inner-bad");
		json_object_put(ret);
	}
	if (streq(name, "EV3"))
		qv_loop_quit(n->rec.loop, 0);
}

static void script_nested(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	char *e1 = fake_qmp_format_event("EV1", NULL), *e2 = fake_qmp_format_event("EV2", NULL);
	char *both = NULL;
	if (asprintf(&both, "%s%s", e1, e2) > 0)
		fake_qmp_send(f, both, (size_t)-1);
	free(both), free(e1), free(e2);
	json_object *cmd = fake_qmp_expect(f, "inner");
	fake_qmp_reply(f, cmd, "{\"which\": \"inner\"}");
	json_object_put(cmd);

	/* A reply with an event behind it in the same write. */
	cmd = fake_qmp_expect(f, "outer");
	char *r = fake_qmp_format_reply(cmd, "{\"which\": \"outer\"}");
	char *e3 = fake_qmp_format_event("EV3", NULL), *all = NULL;
	if (asprintf(&all, "%s%s", r, e3) > 0)
		fake_qmp_send(f, all, (size_t)-1);
	free(all), free(r), free(e3);
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

Test(qmp, blocking_calls_inside_loop_callbacks)
{
	_cleanup_(qv_loop_freep) qv_loop *loop = NULL;
	struct nested_ctx n = {};
	json_object *ret = NULL;
	fake_qmp *f;
	qmp_client *c = start(script_nested, NULL, &f);

	cr_assert_eq(qv_loop_new(&loop), 0);
	n.rec.loop = loop;
	n.c = c;
	qmp_client_set_event_handler(c, nested_event, &n);
	cr_assert_eq(qmp_client_attach(c, loop), 0);
	/* EV1's handler runs a blocking command; EV2, already buffered, is
	 * dispatched (in order) while it waits. */
	for (uint64_t t0 = qv_now_ms(); n.rec.n < 3 && qv_now_ms() - t0 < 20000;)
		cr_assert_geq(qv_loop_run_once(loop, 100), 0);
	const char *want1[] = { "EV1", "EV2", "inner-ok" };
	assert_log(&n.rec, want1, ARRAY_SIZE(want1));

	/* A blocking call returns right after its reply; the event behind it is
	 * left for the loop, which still delivers it. */
	cr_assert_eq(qmp_client_execute(c, "outer", NULL, 5000, &ret, NULL), 0);
	cr_assert_str_eq(ret_str(ret, "which"), "outer");
	json_object_put(ret);
	cr_assert_eq(n.rec.n, 3);
	qv_source *safety = NULL;
	cr_assert_eq(qv_loop_add_timer(loop, 20000, on_safety, loop, &safety), 0);
	cr_assert_eq(qv_loop_run(loop), 0);
	qv_source_remove(safety);
	const char *want2[] = { "EV1", "EV2", "inner-ok", "EV3" };
	assert_log(&n.rec, want2, ARRAY_SIZE(want2));
	finish(f, c);
}
