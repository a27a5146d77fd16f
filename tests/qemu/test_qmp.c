/* SPDX-License-Identifier: MIT */
/* QMP client protocol edge cases against a scriptable fake server. */
#include "qmp-test-util.h"

/* ---- greeting and negotiation --------------------------------------------- */

static void script_handshake_only(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
}

Test(qmp, greeting_and_negotiation)
{
	struct rec rec = {};
	fake_qmp *f;
	qmp_client *c = start(script_handshake_only, NULL, &f);

	cr_assert_str_eq(qmp_client_version(c), "7.2.22");
	cr_assert(qmp_client_is_open(c));
	cr_assert_geq(qmp_client_fd(c), 0);
	qmp_client_set_closed_handler(c, rec_closed, &rec);
	/* The script ends after negotiation: an orderly EOF. */
	cr_assert_eq(qmp_client_wait_closed(c, 5000, NULL), 0);
	cr_assert(!qmp_client_is_open(c));
	cr_assert_eq(qmp_client_fd(c), -1);
	cr_assert_eq(rec.closed_calls, 1);
	cr_assert_eq(rec.closed_error, 0);
	finish(f, c);
}

static void script_no_greeting(fake_qmp *f, void *ud)
{
	fake_qmp_wait_eof(f);
}

Test(qmp, silent_server_greeting_times_out)
{
	struct qv_error err = {};
	qmp_client *c = NULL;
	fake_qmp *f;
	int fd;

	cr_assert_eq(fake_qmp_start(script_no_greeting, NULL, &f, &fd), 0);
	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qmp_client_connect_fd(fd, 200, &c, &err), -ETIMEDOUT);
	uint64_t dt = qv_now_ms() - t0;
	cr_assert_null(c);
	cr_assert_str_eq(err.reason, "timeout");
	cr_assert_geq(dt, 190);
	cr_assert_lt(dt, 5000, "connect took %" PRIu64 " ms", dt);
	finish(f, NULL);
}

static void script_bad_greeting(fake_qmp *f, void *ud)
{
	fake_qmp_send(f, "{\"hello\": 1}\r\n", (size_t)-1);
	fake_qmp_wait_eof(f);
}

Test(qmp, bad_greeting_is_rejected)
{
	struct qv_error err = {};
	qmp_client *c = NULL;
	fake_qmp *f;
	int fd;

	cr_assert_eq(fake_qmp_start(script_bad_greeting, NULL, &f, &fd), 0);
	cr_assert_eq(qmp_client_connect_fd(fd, 5000, &c, &err), -EPROTO);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert(strstr(err.message, "greeting"), "%s", err.message);
	finish(f, NULL);
}

/* ---- replies split at every byte boundary ---------------------------------- */

/* An event followed by a reply, fixed length whatever the id (the id is
 * padded with spaces, which JSON allows). */
static char *split_text(json_object *cmd)
{
	json_object *id = NULL;
	char *s = NULL;

	json_object_object_get_ex(cmd, "id", &id);
	if (asprintf(&s,
		     "{\"event\": \"STOP\", \"data\": {}, \"timestamp\": {\"seconds\": 1, "
		     "\"microseconds\": 2}}\r\n"
		     "{\"return\": {\"status\": \"paused\", \"s\": \"a\xc3\xa9\\u00e9\\\"}\"}, "
		     "\"id\": %-8s}\r\n",
		     id ? json_object_to_json_string(id) : "1") < 0)
		return NULL;
	return s;
}

static size_t split_len(void)
{
	json_object *cmd = json_object_new_object();
	json_object_object_add(cmd, "id", json_object_new_int(1));
	char *s = split_text(cmd);
	size_t n = strlen(s);
	free(s);
	json_object_put(cmd);
	return n;
}

static void script_split(fake_qmp *f, void *ud)
{
	size_t len = split_len();

	fake_qmp_handshake(f);
	for (size_t k = 1; k < len; k++) {
		json_object *cmd = fake_qmp_expect(f, "query-status");
		if (!cmd)
			return;
		char *text = split_text(cmd);
		if (strlen(text) != len)
			fake_qmp_fail(f, "split text length changed");
		fake_qmp_send_split(f, text, k, 300);
		free(text);
		json_object_put(cmd);
	}
	json_object *cmd = fake_qmp_expect(f, "bytewise");
	if (!cmd)
		return;
	char *text = split_text(cmd);
	fake_qmp_send_bytewise(f, text, 50);
	free(text);
	json_object_put(cmd);
	cmd = fake_qmp_expect(f, "done");
	fake_qmp_reply(f, cmd, "{}");
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

static void count_event(qmp_client *c, const char *name, json_object *ev, void *ud)
{
	if (streq(name, "STOP"))
		(*(int *)ud)++;
}

static void check_split_reply(json_object *ret)
{
	cr_assert_str_eq(ret_str(ret, "status"), "paused");
	cr_assert_str_eq(ret_str(ret, "s"), "a\xc3\xa9\xc3\xa9\"}");
}

Test(qmp, reply_split_at_every_byte)
{
	int events = 0;
	fake_qmp *f;
	qmp_client *c = start(script_split, NULL, &f);
	size_t len = split_len();

	qmp_client_set_event_handler(c, count_event, &events);
	for (size_t k = 1; k < len; k++) {
		struct qv_error err = {};
		_cleanup_json_ json_object *ret = NULL;
		int r = qmp_client_execute(c, "query-status", NULL, 5000, &ret, &err);
		cr_assert_eq(r, 0, "split %zu: %s (%s)", k, err.message, fake_qmp_error(f));
		check_split_reply(ret);
		/* The event came first on the wire: it was dispatched before the reply. */
		cr_assert_eq(events, (int)k, "split %zu: %d events", k, events);
	}
	_cleanup_json_ json_object *ret = NULL;
	cr_assert_eq(qmp_client_execute(c, "bytewise", NULL, 10000, &ret, NULL), 0);
	check_split_reply(ret);
	cr_assert_eq(events, (int)len);
	cr_assert_eq(qmp_client_execute(c, "done", NULL, 5000, NULL, NULL), 0);
	finish(f, c);
}

/* ---- events interleaved with replies --------------------------------------- */

static void script_interleave(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *a = fake_qmp_expect(f, "cmd-a");
	if (!a)
		return;
	char *e1 = fake_qmp_format_event("EV1", NULL), *e2 = fake_qmp_format_event("EV2", NULL);
	char *ra = fake_qmp_format_reply(a, "{\"which\": \"a\"}");
	char *e3 = fake_qmp_format_event("EV3", "{\"n\": 3}");
	char *all = NULL;
	if (asprintf(&all, "%s%s%s%s", e1, e2, ra, e3) > 0)
		fake_qmp_send(f, all, (size_t)-1); /* one write */
	free(all), free(e1), free(e2), free(ra), free(e3);
	json_object_put(a);

	json_object *b = fake_qmp_expect(f, "cmd-b");
	fake_qmp_event(f, "EV4", NULL);
	fake_qmp_reply(f, b, "{\"which\": \"b\"}");
	fake_qmp_event(f, "EV5", "{\"n\": 5}");
	json_object_put(b);
	fake_qmp_wait_eof(f);
}

Test(qmp, events_interleaved_in_order)
{
	struct rec rec = {};
	fake_qmp *f;
	qmp_client *c = start(script_interleave, NULL, &f);
	json_object *ret = NULL, *ev = NULL;

	qmp_client_set_event_handler(c, rec_event, &rec);
	cr_assert_eq(qmp_client_execute(c, "cmd-a", NULL, 5000, &ret, NULL), 0);
	cr_assert_str_eq(ret_str(ret, "which"), "a");
	json_object_put(ret);
	rec_add(&rec, "A");
	cr_assert_eq(qmp_client_execute(c, "cmd-b", NULL, 5000, &ret, NULL), 0);
	cr_assert_str_eq(ret_str(ret, "which"), "b");
	json_object_put(ret);
	rec_add(&rec, "B");
	cr_assert_eq(qmp_client_wait_event(c, "EV5", 5000, &ev, NULL), 0);
	rec_add(&rec, "W5");
	json_object *data, *n;
	cr_assert(json_object_object_get_ex(ev, "data", &data));
	cr_assert(json_object_object_get_ex(data, "n", &n));
	cr_assert_eq(json_object_get_int(n), 5);
	json_object_put(ev);

	const char *want[] = { "EV1", "EV2", "A", "EV3", "EV4", "B", "EV5", "W5" };
	assert_log(&rec, want, ARRAY_SIZE(want));
	finish(f, c);
}

/* ---- silence, late replies, close mid-reply -------------------------------- */

static void script_silent(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "query-status");
	if (!cmd)
		return;
	usleep(600 * 1000); /* go silent well past the client's timeout */
	fake_qmp_reply(f, cmd, "{\"status\": \"late\"}");
	json_object_put(cmd);
	cmd = fake_qmp_expect(f, "query-version");
	fake_qmp_reply(f, cmd, "{\"v\": 2}");
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

Test(qmp, silent_server_times_out_and_late_reply_is_dropped)
{
	struct qv_error err = {};
	json_object *ret = NULL;
	fake_qmp *f;
	qmp_client *c = start(script_silent, NULL, &f);

	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 200, &ret, &err), -ETIMEDOUT);
	uint64_t dt = qv_now_ms() - t0;
	cr_assert_null(ret);
	cr_assert_str_eq(err.reason, "timeout");
	cr_assert(strstr(err.message, "query-status"), "%s", err.message);
	cr_assert_geq(dt, 190);
	cr_assert_lt(dt, 5000, "execute took %" PRIu64 " ms", dt);
	cr_assert(qmp_client_is_open(c));

	/* The late reply to the timed-out id must not complete this command. */
	cr_assert_eq(qmp_client_execute(c, "query-version", NULL, 5000, &ret, NULL), 0);
	json_object *v;
	cr_assert(json_object_object_get_ex(ret, "v", &v));
	cr_assert_eq(json_object_get_int(v), 2);
	json_object_put(ret);
	finish(f, c);
}

static void script_close_mid_reply(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "query-status");
	if (!cmd)
		return;
	char *text = fake_qmp_format_reply(cmd, "{\"status\": \"running\"}");
	fake_qmp_send(f, text, 10);
	usleep(20 * 1000);
	free(text);
	json_object_put(cmd);
	/* returning closes the socket */
}

Test(qmp, close_mid_reply_fails_pending_and_later_calls)
{
	struct rec rec = {};
	struct qv_error err = {};
	fake_qmp *f;
	qmp_client *c = start(script_close_mid_reply, NULL, &f);

	qmp_client_set_closed_handler(c, rec_closed, &rec);
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 30000, NULL, &err), -ECONNRESET);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert_str_eq(err.message, "QEMU closed the QMP connection during query-status");
	cr_assert_eq(rec.closed_calls, 1);
	cr_assert_eq(rec.closed_error, -ECONNRESET);
	cr_assert(!qmp_client_is_open(c));

	qv_error_clear(&err);
	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 30000, NULL, &err), -ENOTCONN);
	cr_assert_lt(qv_now_ms() - t0, 5000);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert_eq(qmp_client_execute_async(c, "x", NULL, NULL, 0, 0, NULL, NULL), -ENOTCONN);
	cr_assert_eq(qmp_client_wait_event(c, "X", 1000, NULL, NULL), -ENOTCONN);
	cr_assert_eq(rec.closed_calls, 1);
	finish(f, c);
}

/* ---- oversized and malformed input ----------------------------------------- */

struct big {
	size_t body; /* bytes of the message, without "\r\n" */
};

static void script_big(fake_qmp *f, void *ud)
{
	struct big *b = ud;

	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "big");
	if (!cmd)
		return;
	/* {"return": "aaa...", "id": N} padded to exactly b->body bytes */
	char head[] = "{\"return\": \"";
	char tail[64];
	snprintf(tail, sizeof(tail), "\", \"id\": %s}", json_object_to_json_string(
			     json_object_object_get(cmd, "id")));
	size_t fill = b->body - strlen(head) - strlen(tail);
	char *msg = malloc(b->body + 3);
	memcpy(msg, head, strlen(head));
	memset(msg + strlen(head), 'a', fill);
	memcpy(msg + strlen(head) + fill, tail, strlen(tail));
	memcpy(msg + b->body, "\r\n", 3);
	/* The client may drop the link mid-way: raw writes, errors ignored. */
	for (size_t off = 0; off < b->body + 2;) {
		ssize_t n = send(fake_qmp_fd(f), msg + off, b->body + 2 - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	free(msg);
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

Test(qmp, message_at_limit_is_accepted)
{
	struct big b = { .body = QMP_MAX_MESSAGE };
	_cleanup_json_ json_object *ret = NULL;
	struct qv_error err = {};
	fake_qmp *f;
	qmp_client *c = start(script_big, &b, &f);

	cr_assert_eq(qmp_client_execute(c, "big", NULL, 10000, &ret, &err), 0, "%s", err.message);
	cr_assert(json_object_is_type(ret, json_type_string));
	cr_assert_gt(json_object_get_string_len(ret), QMP_MAX_MESSAGE - 100);
	finish(f, c);
}

Test(qmp, oversized_message_drops_link)
{
	struct big b = { .body = QMP_MAX_MESSAGE + 1 };
	struct rec rec = {};
	struct qv_error err = {};
	fake_qmp *f;
	qmp_client *c = start(script_big, &b, &f);

	qmp_client_set_closed_handler(c, rec_closed, &rec);
	cr_assert_eq(qmp_client_execute(c, "big", NULL, 10000, NULL, &err), -EMSGSIZE);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert(strstr(err.message, "larger than 1048576 bytes"), "%s", err.message);
	cr_assert(strstr(err.message, "during big"), "%s", err.message);
	cr_assert_eq(rec.closed_calls, 1);
	cr_assert_eq(rec.closed_error, -EMSGSIZE);
	cr_assert(!qmp_client_is_open(c));
	finish(f, c);
}

static void script_garbage(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "query-status");
	fake_qmp_send(f, "{\"return\": {}, \"id\": 2}\r\nthis is not JSON\r\n", (size_t)-1);
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

Test(qmp, garbage_drops_link)
{
	struct qv_error err = {};
	fake_qmp *f;
	qmp_client *c = start(script_garbage, NULL, &f);

	/* The valid reply in front of the garbage still completes the command;
	 * the garbage fails the next command in flight, and the link. */
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 5000, NULL, NULL), 0);
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 5000, NULL, &err), -EPROTO);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert(strstr(err.message, "malformed"), "%s", err.message);
	qv_error_clear(&err);
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 5000, NULL, &err), -ENOTCONN);
	cr_assert(strstr(err.message, "malformed"), "%s", err.message);
	finish(f, c);
}

/* ---- QEMU error replies ------------------------------------------------------ */

static void script_errors(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "frob");
	fake_qmp_reply_error(f, cmd, "GenericError", "boom");
	json_object_put(cmd);
	cmd = fake_qmp_expect(f, "nope");
	fake_qmp_reply_error(f, cmd, "CommandNotFound", "The command nope has not been found");
	json_object_put(cmd);
	cmd = fake_qmp_expect(f, "query-status");
	fake_qmp_reply(f, cmd, "{\"status\": \"running\"}");
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

Test(qmp, qemu_error_reply)
{
	struct qv_error err = {};
	json_object *ret = NULL;
	fake_qmp *f;
	qmp_client *c = start(script_errors, NULL, &f);

	cr_assert_eq(qmp_client_execute(c, "frob", NULL, 5000, &ret, &err), -EIO);
	cr_assert_null(ret);
	cr_assert_str_eq(err.reason, "qemu-error");
	cr_assert_str_eq(err.message, "frob: boom (GenericError)");
	qv_error_clear(&err);
	cr_assert_eq(qmp_client_execute(c, "nope", NULL, 5000, &ret, &err), -EOPNOTSUPP);
	cr_assert_str_eq(err.reason, "qemu-error");
	cr_assert(strstr(err.message, "(CommandNotFound)"), "%s", err.message);
	cr_assert_eq(qmp_client_execute(c, "query-status", NULL, 5000, &ret, NULL), 0);
	cr_assert_str_eq(ret_str(ret, "status"), "running");
	json_object_put(ret);
	finish(f, c);
}

/* ---- fd passing ----------------------------------------------------------------- */

static void script_getfd(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "getfd");
	if (!cmd)
		return;
	json_object *args = json_object_object_get(cmd, "arguments");
	const char *name = json_object_get_string(json_object_object_get(args, "fdname"));
	if (!name || strcmp(name, "t1") != 0)
		fake_qmp_fail(f, "getfd without fdname t1");
	if (fake_qmp_n_fds(f) != 1)
		fake_qmp_fail(f, "got %zu fds with getfd", fake_qmp_n_fds(f));
	int fd = fake_qmp_take_fd(f);
	if (fd < 0 || write(fd, "hello", 5) != 5)
		fake_qmp_fail(f, "cannot write to the passed fd");
	if (fd >= 0)
		close(fd);
	fake_qmp_reply(f, cmd, "{}");
	json_object_put(cmd);

	cmd = fake_qmp_expect(f, "add-fd");
	if (fake_qmp_n_fds(f) != 2)
		fake_qmp_fail(f, "got %zu fds with add-fd", fake_qmp_n_fds(f));
	char buf[8] = "";
	int a = fake_qmp_take_fd(f), b = fake_qmp_take_fd(f);
	if (read(a, buf, sizeof(buf)) != 3 || memcmp(buf, "abc", 3) != 0)
		fake_qmp_fail(f, "cannot read from the first passed fd");
	if (write(b, "xy", 2) != 2)
		fake_qmp_fail(f, "cannot write to the second passed fd");
	close(a);
	close(b);
	fake_qmp_reply(f, cmd, "{\"fdset-id\": 0}");
	json_object_put(cmd);
	fake_qmp_wait_eof(f);
}

Test(qmp, fd_passing_scm_rights)
{
	struct qv_error err = {};
	fake_qmp *f;
	qmp_client *c = start(script_getfd, NULL, &f);
	int p[2], q[2], s[2];
	char buf[8] = "";

	cr_assert_eq(pipe(p), 0);
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string("t1"));
	int r = qmp_client_execute_fds(c, "getfd", args, &p[1], 1, 5000, NULL, &err);
	cr_assert_eq(r, 0, "%s (%s)", err.message, fake_qmp_error(f));
	close(p[1]); /* the caller keeps its copy; the client closed its own dup */
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	close(p[0]);

	/* Two fds at once. */
	cr_assert_eq(pipe(q), 0);
	cr_assert_eq(pipe(s), 0);
	cr_assert_eq(write(q[1], "abc", 3), 3);
	int fds[2] = { q[0], s[1] };
	cr_assert_eq(qmp_client_execute_fds(c, "add-fd", NULL, fds, 2, 5000, NULL, &err), 0,
		     "%s (%s)", err.message, fake_qmp_error(f));
	close(s[1]);
	cr_assert_eq(read(s[0], buf, sizeof(buf)), 2);
	cr_assert_eq(memcmp(buf, "xy", 2), 0);
	close(q[0]), close(q[1]), close(s[0]);
	finish(f, c);
}

/* ---- event pre-filter ------------------------------------------------------ */

static void script_filtered(fake_qmp *f, void *ud)
{
	fake_qmp_handshake(f);
	json_object *cmd = fake_qmp_expect(f, "go");
	if (!cmd)
		return;
	fake_qmp_reply(f, cmd, "{}");
	json_object_put(cmd);
	for (int i = 0; i < 50; i++)
		fake_qmp_event(f, "FLOOD", "{\"n\": 1}");
	/* A guest-influenced string in data must not rename the event. */
	fake_qmp_event(f, "FLOOD", "{\"s\": \"\\\"event\\\": \\\"KEEP\\\"\"}");
	fake_qmp_event(f, "KEEP", "{}");
	/* Not QEMU's line shape: parsed and delivered as usual. */
	const char odd[] = "{\"event\": \"FLOOD\", \"timestamp\": {\"seconds\": 1, "
			   "\"microseconds\": 2}}\r\n";
	fake_qmp_send(f, odd, sizeof(odd) - 1);
	fake_qmp_event(f, "WAITED", "{}");
	fake_qmp_event(f, "LAST", "{}");
	fake_qmp_wait_eof(f);
}

static int filter_calls;

static bool drop_flood(qmp_client *c, const char *name, void *ud)
{
	filter_calls++;
	return strcmp(name, "FLOOD") != 0 && strcmp(name, "WAITED") != 0;
}

Test(qmp, event_filter_drops_unparsed_but_not_waited_or_odd_events)
{
	struct rec rec = {};
	fake_qmp *f;
	qmp_client *c = start(script_filtered, NULL, &f);
	json_object *ret = NULL, *ev = NULL;

	qmp_client_set_event_handler(c, rec_event, &rec);
	qmp_client_set_event_filter(c, drop_flood, NULL);
	cr_assert_eq(qmp_client_execute(c, "go", NULL, 5000, &ret, NULL), 0);
	json_object_put(ret);
	/* WAITED is refused by the filter but a waiter wants it. */
	cr_assert_eq(qmp_client_wait_event(c, "WAITED", 5000, &ev, NULL), 0);
	json_object_put(ev);
	cr_assert_eq(qmp_client_wait_event(c, "LAST", 5000, &ev, NULL), 0);
	json_object_put(ev);
	const char *want[] = { "KEEP", "FLOOD", "WAITED", "LAST" };
	assert_log(&rec, want, ARRAY_SIZE(want));
	cr_assert_geq(filter_calls, 52, "filter asked %d times", filter_calls);
	finish(f, c);
}
