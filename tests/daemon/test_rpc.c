/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "daemon/rpc.h"

/* A real server on a unix socket in a temp dir, its loop driven by a thread;
 * the test thread(s) act as clients over blocking sockets. Handler state is
 * only touched from the server thread, and read back over RPC. */

static char tmpdir[64], sock_path[128];
static qv_loop *loop;
static qv_rpc_server *server;
static pthread_t server_thread;
static int quit_pipe[2] = { -1, -1 };

/* server-thread-only state */
static int notifications_seen;
static int dropped_replies;
static int late_replies;
static qv_rpc_call *parked_call; /* a call nobody finishes until the test does */

/* --- handlers (run in the server thread) --------------------------------- */

static int h_echo(qv_rpc_call *call, json_object *params, void *ud)
{
	return qv_rpc_call_reply(call, params ? json_object_get(params) : NULL), 0;
}

static int h_add(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_error err = {};
	int64_t a, b;

	if (!params || !json_object_is_type(params, json_type_object) ||
	    json_get_int64(params, "a", "params.a", &a, &err) != 0 ||
	    json_get_int64(params, "b", "params.b", &b, &err) != 0) {
		qv_error_set(&err, EINVAL, QV_REASON_INVALID_ARGUMENT, "need integers a and b");
		return qv_rpc_call_error(call, &err), 0;
	}
	return qv_rpc_call_reply(call, json_object_new_int64(a + b)), 0;
}

static int h_fail(qv_rpc_call *call, json_object *params, void *ud)
{
	return -ENOENT; /* server answers from errno */
}

static int h_count(qv_rpc_call *call, json_object *params, void *ud)
{
	if (qv_rpc_call_is_notification(call))
		notifications_seen++;
	return qv_rpc_call_reply(call, json_object_new_int(notifications_seen)), 0;
}

static int h_len(qv_rpc_call *call, json_object *params, void *ud)
{
	const char *s = "";
	json_get_string(params, "s", "s", &s, NULL);
	return qv_rpc_call_reply(call, json_object_new_int64((int64_t)strlen(s))), 0;
}

static void late_fire(qv_source *src, void *ud)
{
	qv_rpc_call *call = ud;
	json_object *r = json_object_new_object();

	json_object_object_add(r, "late", json_object_new_boolean(true));
	if (qv_rpc_call_reply(call, r) == -ENOTCONN)
		dropped_replies++;
	else
		late_replies++;
}

static int h_later(qv_rpc_call *call, json_object *params, void *ud)
{
	int64_t ms = 50;
	json_get_int64(params, "ms", "ms", &ms, NULL);
	if (ms < 0) {
		parked_call = call;
		return 0;
	}
	/* the call is finished later, after this handler has returned */
	return qv_loop_add_timer(loop, (uint64_t)ms, late_fire, call, NULL);
}

static int h_stats(qv_rpc_call *call, json_object *params, void *ud)
{
	json_object *r = json_object_new_object();
	json_object_object_add(r, "dropped", json_object_new_int(dropped_replies));
	json_object_object_add(r, "late", json_object_new_int(late_replies));
	json_object_object_add(r, "clients",
			       json_object_new_int((int)qv_rpc_server_client_count(server)));
	return qv_rpc_call_reply(call, r), 0;
}

static int h_subscribe(qv_rpc_call *call, json_object *params, void *ud)
{
	qv_rpc_client_subscribe(qv_rpc_call_client(call), true);
	return qv_rpc_call_reply(call, json_object_new_boolean(true)), 0;
}

static int h_broadcast(qv_rpc_call *call, json_object *params, void *ud)
{
	int n = qv_rpc_server_broadcast(server, "event", params);
	return qv_rpc_call_reply(call, json_object_new_int(n)), 0;
}

static int h_peer(qv_rpc_call *call, json_object *params, void *ud)
{
	const struct qv_rpc_peer *p = qv_rpc_call_peer(call);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "pid", json_object_new_int(p->pid));
	json_object_object_add(r, "uid", json_object_new_int((int)p->uid));
	return qv_rpc_call_reply(call, r), 0;
}

static int h_big(qv_rpc_call *call, json_object *params, void *ud)
{
	size_t n = 2 * 1024 * 1024;
	char *s = malloc(n + 1);
	memset(s, 'y', n);
	s[n] = 0;
	json_object *r = json_object_new_string(s);
	free(s);
	return qv_rpc_call_reply(call, r), 0;
}

static const struct qv_rpc_method methods[] = {
	{ "test.big", h_big },
	{ "test.echo", h_echo },	   { "test.add", h_add },
	{ "test.fail", h_fail },	   { "test.count", h_count },
	{ "test.len", h_len },		   { "test.later", h_later },
	{ "test.stats", h_stats },	   { "test.subscribe", h_subscribe },
	{ "test.broadcast", h_broadcast }, { "test.peer", h_peer },
};

/* --- server thread ------------------------------------------------------- */

static void on_quit(qv_source *s, int fd, uint32_t ev, void *ud)
{
	qv_loop_quit(loop, 0);
}

static void *server_main(void *arg)
{
	qv_loop_run(loop);
	return NULL;
}

static void start_server(unsigned max_clients)
{
	struct qv_error err = {};

	cr_assert_eq(qv_loop_new(&loop), 0);
	cr_assert_eq(qv_rpc_server_new(loop, sock_path, 0660, &server, &err), 0, "%s",
		     err.message);
	if (max_clients)
		qv_rpc_server_set_max_clients(server, max_clients);
	cr_assert_eq(qv_rpc_server_add_methods(server, methods, ARRAY_SIZE(methods), NULL), 0);
	cr_assert_eq(qv_rpc_server_add_methods(server, methods, 1, NULL), -EEXIST);
	cr_assert_eq(pipe2(quit_pipe, O_CLOEXEC), 0);
	cr_assert_eq(qv_loop_add_io(loop, quit_pipe[0], EPOLLIN, on_quit, NULL, NULL), 0);
	cr_assert_eq(pthread_create(&server_thread, NULL, server_main, NULL), 0);
}

static void stop_server(void)
{
	cr_assert_eq(write(quit_pipe[1], "q", 1), 1);
	pthread_join(server_thread, NULL);
	server = qv_rpc_server_free(server);
	loop = qv_loop_free(loop);
	close(quit_pipe[0]);
	close(quit_pipe[1]);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/qv-rpc-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(sock_path, sizeof(sock_path), "%s/qvisord.sock", tmpdir);
}

static void teardown(void)
{
	unlink(sock_path);
	rmdir(tmpdir);
}

/* --- a tiny blocking client ---------------------------------------------- */

struct cli {
	int fd;
	char buf[1 << 16];
	size_t len;
};

static void cli_open(struct cli *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 20 };

	c->len = 0;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(c->fd, 0);
	strcpy(sa.sun_path, sock_path);
	cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %m");
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void cli_close(struct cli *c)
{
	close(c->fd);
	c->fd = -1;
}

static void cli_write(struct cli *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		cr_assert_gt(w, 0, "write: %m");
		p += w;
		n -= (size_t)w;
	}
}

static void cli_send(struct cli *c, const char *line)
{
	cli_write(c, line, strlen(line));
	cli_write(c, "\n", 1);
}

/* Next line as JSON; NULL on EOF. */
static json_object *cli_recv(struct cli *c)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			*nl = '\0';
			json_object *o = json_tokener_parse(c->buf);
			cr_assert_not_null(o, "response is not JSON: %.200s", c->buf);
			size_t used = (size_t)(nl - c->buf) + 1;
			memmove(c->buf, nl + 1, c->len - used);
			c->len -= used;
			return o;
		}
		cr_assert_lt(c->len, sizeof(c->buf), "response line too long");
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		cr_assert_geq(n, 0, "read: %m (timeout?)");
		if (n == 0)
			return NULL;
		c->len += (size_t)n;
	}
}

static json_object *call(struct cli *c, const char *line)
{
	cli_send(c, line);
	json_object *o = cli_recv(c);
	cr_assert_not_null(o, "EOF instead of a response to %s", line);
	return o;
}

static json_object *jget(json_object *o, const char *path)
{
	/* "a.b.c" */
	char buf[128], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		if (!json_object_object_get_ex(o, k, &o))
			return NULL;
	return o;
}

static void assert_error(json_object *o, int code, const char *reason)
{
	json_object *e = jget(o, "error");
	cr_assert_not_null(e, "not an error: %s", json_object_to_json_string(o));
	cr_assert_eq(json_object_get_int(jget(o, "error.code")), code, "%s",
		     json_object_to_json_string(o));
	cr_assert_str_eq(json_object_get_string(jget(o, "error.data.reason")), reason);
	cr_assert_str_eq(json_object_get_string(jget(o, "jsonrpc")), "2.0");
	cr_assert_null(jget(o, "result"));
}

TestSuite(rpc, .init = setup, .fini = teardown, .timeout = 60);

/* --- tests --------------------------------------------------------------- */

Test(rpc, valid_call_and_id_echo)
{
	struct cli c;
	start_server(0);
	cli_open(&c);
	_cleanup_json_ json_object *r1 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.add\",\"params\":{\"a\":2,\"b\":40}}");
	cr_assert_eq(json_object_get_int(jget(r1, "result")), 42);
	cr_assert_eq(json_object_get_int(jget(r1, "id")), 1);
	cr_assert_str_eq(json_object_get_string(jget(r1, "jsonrpc")), "2.0");

	_cleanup_json_ json_object *r2 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"test.echo\",\"params\":[1,\"x\"]}");
	cr_assert_str_eq(json_object_get_string(jget(r2, "id")), "abc");
	cr_assert_str_eq(json_object_to_json_string_ext(jget(r2, "result"), JSON_C_TO_STRING_PLAIN),
			 "[1,\"x\"]");

	/* id verbatim: a fractional number stays as written; \r\n is accepted */
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":1.50,\"method\":\"test.echo\"}\r");
	c.len = 0;
	char raw[256];
	ssize_t n = read(c.fd, raw, sizeof(raw) - 1);
	cr_assert_gt(n, 0);
	raw[n] = 0;
	cr_assert_not_null(strstr(raw, "\"id\":1.50"), "%s", raw);

	_cleanup_json_ json_object *r3 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"test.echo\"}");
	cr_assert(json_object_object_get_ex(r3, "id", NULL));
	cr_assert_null(jget(r3, "id"));
	cr_assert(json_object_object_get_ex(r3, "result", NULL));

	/* handler returning -errno */
	_cleanup_json_ json_object *r4 = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"test.fail\"}");
	assert_error(r4, -32001, "not-found");
	cr_assert_eq(json_object_get_int(jget(r4, "id")), 7);

	_cleanup_json_ json_object *r5 = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"test.peer\"}");
	cr_assert_eq(json_object_get_int(jget(r5, "result.pid")), getpid());
	cr_assert_eq(json_object_get_int(jget(r5, "result.uid")), (int)getuid());
	cli_close(&c);
	stop_server();
}

Test(rpc, notifications_get_no_response)
{
	struct cli c;
	start_server(0);
	cli_open(&c);
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.count\"}");
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"no.such.method\"}");
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.fail\"}");
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"test.count\",\"params\":{}}");
	_cleanup_json_ json_object *r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"test.count\"}");
	/* the first line back is the response to id 2: notifications got nothing */
	cr_assert_eq(json_object_get_int(jget(r, "id")), 2);
	cr_assert_eq(json_object_get_int(jget(r, "result")), 2);
	cli_close(&c);
	stop_server();
}

Test(rpc, malformed_and_invalid_requests)
{
	struct cli c;
	start_server(0);
	cli_open(&c);
	_cleanup_json_ json_object *r1 = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,");
	assert_error(r1, -32700, "invalid-argument");
	cr_assert(json_object_object_get_ex(r1, "id", NULL));
	cr_assert_null(jget(r1, "id"));

	_cleanup_json_ json_object *r2 = call(&c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.echo\"}]");
	assert_error(r2, -32600, "invalid-argument");
	cr_assert_not_null(strstr(json_object_get_string(jget(r2, "error.message")), "batch"));

	_cleanup_json_ json_object *r3 = call(&c, "{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"test.echo\"}");
	assert_error(r3, -32600, "invalid-argument");
	cr_assert_eq(json_object_get_int(jget(r3, "id")), 5, "id echoed when readable");

	_cleanup_json_ json_object *r4 = call(&c, "{\"id\":6,\"method\":\"test.echo\"}");
	assert_error(r4, -32600, "invalid-argument");
	_cleanup_json_ json_object *r5 = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":42}");
	assert_error(r5, -32600, "invalid-argument");
	_cleanup_json_ json_object *r6 = call(&c, "\"just a string\"");
	assert_error(r6, -32600, "invalid-argument");
	_cleanup_json_ json_object *r7 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"test.echo\",\"params\":\"s\"}");
	assert_error(r7, -32600, "invalid-argument");
	_cleanup_json_ json_object *r8 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":{\"x\":1},\"method\":\"test.echo\"}");
	assert_error(r8, -32600, "invalid-argument");

	_cleanup_json_ json_object *r9 = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"vm.nope\"}");
	assert_error(r9, -32601, "not-found");
	cr_assert_eq(json_object_get_int(jget(r9, "id")), 9);

	_cleanup_json_ json_object *r10 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"test.add\",\"params\":{\"a\":\"x\"}}");
	assert_error(r10, -32602, "invalid-argument");

	/* blank lines are ignored; the connection still works */
	cli_send(&c, "");
	cli_send(&c, "   ");
	_cleanup_json_ json_object *r11 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"test.add\",\"params\":{\"a\":1,\"b\":1}}");
	cr_assert_eq(json_object_get_int(jget(r11, "result")), 2);
	cli_close(&c);
	stop_server();
}

/* Build {"jsonrpc":"2.0","id":ID,"method":"test.len","params":{"s":"xxx"}}
 * padded to exactly total bytes. */
static char *sized_request(int id, size_t total)
{
	char head[96];
	const char *tail = "\"}}";
	int hl = snprintf(head, sizeof(head),
			  "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"test.len\",\"params\":{\"s\":\"", id);
	size_t pad = total - (size_t)hl - strlen(tail);
	char *m = malloc(total + 1);
	memcpy(m, head, (size_t)hl);
	memset(m + hl, 'x', pad);
	strcpy(m + hl + pad, tail);
	cr_assert_eq(strlen(m), total);
	return m;
}

Test(rpc, oversized_line_is_rejected_and_connection_survives)
{
	struct cli c;
	start_server(0);
	cli_open(&c);

	/* 2 MiB line */
	_cleanup_free_ char *big = sized_request(1, 2 * 1024 * 1024);
	cli_send(&c, big);
	_cleanup_json_ json_object *r1 = cli_recv(&c);
	cr_assert_not_null(r1);
	assert_error(r1, -32600, "invalid-argument");
	cr_assert_str_eq(json_object_get_string(jget(r1, "error.message")), "message exceeds 1 MiB");

	_cleanup_json_ json_object *r2 =
		call(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"test.add\",\"params\":{\"a\":1,\"b\":2}}");
	cr_assert_eq(json_object_get_int(jget(r2, "id")), 2);
	cr_assert_eq(json_object_get_int(jget(r2, "result")), 3);

	/* boundary: exactly 1 MiB is served, one byte more is not */
	_cleanup_free_ char *exact = sized_request(3, QV_RPC_MAX_MESSAGE);
	_cleanup_json_ json_object *r3 = call(&c, exact);
	cr_assert_eq(json_object_get_int(jget(r3, "id")), 3);
	cr_assert_gt(json_object_get_int(jget(r3, "result")), 1000000);
	_cleanup_free_ char *over = sized_request(4, QV_RPC_MAX_MESSAGE + 1);
	_cleanup_json_ json_object *r4 = call(&c, over);
	assert_error(r4, -32600, "invalid-argument");
	_cleanup_json_ json_object *r5 = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"test.echo\"}");
	cr_assert_eq(json_object_get_int(jget(r5, "id")), 5);
	cli_close(&c);
	stop_server();
}

#define N_CLIENTS 20
#define N_REQS 200

static void *client_worker(void *arg)
{
	int me = (int)(intptr_t)arg;
	struct cli *c = calloc(1, sizeof(*c));
	bool seen[N_REQS] = {};
	size_t cap = N_REQS * 128, len = 0;
	char *out = malloc(cap);

	cli_open(c);
	/* pipelined; every 10th request is answered asynchronously, out of order */
	for (int i = 0; i < N_REQS; i++) {
		if (i % 10 == 0)
			len += (size_t)snprintf(out + len, cap - len,
						"{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"test.later\",\"params\":{\"ms\":%d}}\n",
						i, (i * 7) % 30);
		else
			len += (size_t)snprintf(out + len, cap - len,
						"{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"test.add\",\"params\":{\"a\":%d,\"b\":%d}}\n",
						i, me, i * 1000);
	}
	cli_write(c, out, len);
	for (int k = 0; k < N_REQS; k++) {
		json_object *r = cli_recv(c);
		cr_assert_not_null(r, "client %d: EOF after %d responses", me, k);
		int id = json_object_get_int(jget(r, "id"));
		cr_assert(id >= 0 && id < N_REQS && !seen[id], "client %d: bad/duplicate id %d", me, id);
		seen[id] = true;
		if (id % 10 == 0)
			cr_assert(json_object_get_boolean(jget(r, "result.late")));
		else
			cr_assert_eq(json_object_get_int(jget(r, "result")), me + id * 1000,
				     "client %d got someone else's answer for id %d", me, id);
		json_object_put(r);
	}
	cli_close(c);
	free(c);
	free(out);
	return NULL;
}

Test(rpc, many_concurrent_clients)
{
	pthread_t th[N_CLIENTS];
	start_server(0);
	for (int i = 0; i < N_CLIENTS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, client_worker, (void *)(intptr_t)i), 0);
	for (int i = 0; i < N_CLIENTS; i++)
		pthread_join(th[i], NULL);
	struct cli c;
	cli_open(&c);
	_cleanup_json_ json_object *r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.stats\"}");
	cr_assert_eq(json_object_get_int(jget(r, "result.late")), N_CLIENTS * N_REQS / 10);
	cli_close(&c);
	stop_server();
}

Test(rpc, client_cap)
{
	struct cli c[3], extra;
	start_server(3);
	for (int i = 0; i < 3; i++) {
		cli_open(&c[i]);
		json_object_put(call(&c[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.echo\"}"));
	}
	cli_open(&extra);
	_cleanup_json_ json_object *r = cli_recv(&extra);
	cr_assert_not_null(r, "the extra client gets an error line");
	assert_error(r, -32003, "unavailable");
	cr_assert_null(cli_recv(&extra), "then EOF");
	cli_close(&extra);

	/* a slot frees up when a client leaves */
	cli_close(&c[0]);
	for (int tries = 0;; tries++) {
		cli_open(&extra);
		json_object *o = call(&extra, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"test.echo\"}");
		bool ok = jget(o, "result") || json_object_object_get_ex(o, "result", NULL);
		json_object_put(o);
		cli_close(&extra);
		if (ok)
			break;
		cr_assert_lt(tries, 200, "slot never freed");
		usleep(10000);
	}
	cli_close(&c[1]);
	cli_close(&c[2]);
	stop_server();
}

Test(rpc, async_reply_after_handler_returns)
{
	struct cli c;
	start_server(0);
	cli_open(&c);
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.later\",\"params\":{\"ms\":200}}");
	/* a sync call sent afterwards is answered first: the loop is not blocked */
	_cleanup_json_ json_object *r1 = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"test.echo\"}");
	cr_assert_eq(json_object_get_int(jget(r1, "id")), 2);
	_cleanup_json_ json_object *r2 = cli_recv(&c);
	cr_assert_eq(json_object_get_int(jget(r2, "id")), 1);
	cr_assert(json_object_get_boolean(jget(r2, "result.late")));

	/* half-close: the pending async answer still arrives, then EOF */
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"test.later\",\"params\":{\"ms\":100}}");
	cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
	_cleanup_json_ json_object *r3 = cli_recv(&c);
	cr_assert_not_null(r3);
	cr_assert_eq(json_object_get_int(jget(r3, "id")), 3);
	cr_assert_null(cli_recv(&c));
	cli_close(&c);
	stop_server();
}

Test(rpc, client_disconnects_before_async_reply)
{
	struct cli c;
	start_server(0);
	cli_open(&c);
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.later\",\"params\":{\"ms\":150}}");
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"test.later\",\"params\":{\"ms\":150}}");
	usleep(30000); /* let the server read both */
	cli_close(&c);

	/* both replies are dropped safely; the server keeps serving */
	int dropped = 0, clients = -1;
	for (int tries = 0; tries < 300 && dropped < 2; tries++) {
		usleep(10000);
		cli_open(&c);
		_cleanup_json_ json_object *r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"test.stats\"}");
		dropped = json_object_get_int(jget(r, "result.dropped"));
		clients = json_object_get_int(jget(r, "result.clients"));
		cli_close(&c);
	}
	cr_assert_eq(dropped, 2);
	cr_assert_geq(clients, 1);

	/* and: the server is freed while a call is still outstanding */
	cli_open(&c);
	cli_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"test.later\",\"params\":{\"ms\":-1}}");
	json_object_put(call(&c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"test.echo\"}"));
	stop_server();
	cr_assert_not_null(parked_call);
	cr_assert(qv_rpc_call_client_gone(parked_call));
	cr_assert_eq(qv_rpc_call_reply(parked_call, json_object_new_int(1)), -ENOTCONN);
	cli_close(&c);
}

Test(rpc, broadcast_reaches_only_subscribers)
{
	struct cli a, b, x;
	start_server(0);
	cli_open(&a);
	cli_open(&b);
	cli_open(&x);
	_cleanup_json_ json_object *s = call(&a, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.subscribe\"}");
	cr_assert(json_object_get_boolean(jget(s, "result")));
	json_object_put(call(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.echo\"}"));

	_cleanup_json_ json_object *r =
		call(&x, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.broadcast\",\"params\":{\"vm\":\"v1\",\"type\":\"started\"}}");
	cr_assert_eq(json_object_get_int(jget(r, "result")), 1, "queued for exactly one client");

	_cleanup_json_ json_object *ev = cli_recv(&a);
	cr_assert_str_eq(json_object_get_string(jget(ev, "method")), "event");
	cr_assert_str_eq(json_object_get_string(jget(ev, "params.vm")), "v1");
	cr_assert(!json_object_object_get_ex(ev, "id", NULL), "a notification has no id");

	/* b: the next line is its own response, not the event */
	_cleanup_json_ json_object *rb = call(&b, "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"test.echo\"}");
	cr_assert_eq(json_object_get_int(jget(rb, "id")), 42);
	cr_assert_null(jget(rb, "method"));
	cli_close(&a);
	cli_close(&b);
	cli_close(&x);
	stop_server();
}

Test(rpc, oversized_response_becomes_error_and_unterminated_last_line)
{
	struct cli c;
	start_server(0);
	cli_open(&c);
	_cleanup_json_ json_object *r = call(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.big\"}");
	assert_error(r, -32603, "internal");
	cr_assert_eq(json_object_get_int(jget(r, "id")), 1);

	/* a last message without '\n' before EOF is still answered */
	const char *m = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"test.echo\",\"params\":[2]}";
	cli_write(&c, m, strlen(m));
	cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
	_cleanup_json_ json_object *r2 = cli_recv(&c);
	cr_assert_not_null(r2);
	cr_assert_eq(json_object_get_int(jget(r2, "id")), 2);
	cr_assert_null(cli_recv(&c), "EOF after the last answer");
	cli_close(&c);
	stop_server();
}

/* --- socket ownership ---------------------------------------------------- */

Test(rpc, stale_live_and_foreign_socket_paths)
{
	struct qv_error err = {};
	qv_rpc_server *s1 = NULL, *s2 = NULL;
	qv_loop *l = NULL;
	struct stat sb;

	cr_assert_eq(qv_loop_new(&l), 0);
	/* stale: a socket file nobody listens on */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		strcpy(sa.sun_path, sock_path);
		cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
	cr_assert_eq(qv_rpc_server_new(l, sock_path, 0660, &s1, &err), 0, "%s", err.message);
	cr_assert_eq(stat(sock_path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0660);

	/* live: refused, and the live socket is left alone */
	cr_assert_eq(qv_rpc_server_new(l, sock_path, 0660, &s2, &err), -EADDRINUSE);
	cr_assert_str_eq(err.reason, "conflict");
	cr_assert_null(s2);
	cr_assert_eq(stat(sock_path, &sb), 0);

	qv_rpc_server_free(s1);
	cr_assert_neq(stat(sock_path, &sb), 0, "socket unlinked on free");

	/* a regular file is never replaced */
	FILE *f = fopen(sock_path, "w");
	fclose(f);
	qv_error_clear(&err);
	cr_assert_eq(qv_rpc_server_new(l, sock_path, 0660, &s2, &err), -EEXIST);
	cr_assert_eq(stat(sock_path, &sb), 0);
	cr_assert(S_ISREG(sb.st_mode));
	qv_loop_free(l);
}

/* --- the pure parser ----------------------------------------------------- */

static int parse(const char *s, struct qv_rpc_request *req)
{
	struct qv_error err = {};
	int r = qv_rpc_parse_request(s, strlen(s), req, &err);
	cr_assert_eq(r < 0, err.set);
	return r;
}

Test(rpc_parse, cases)
{
	struct qv_rpc_request q;

	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a.b\",\"params\":{}}", &q), 0);
	cr_assert_str_eq(q.method, "a.b");
	cr_assert(!q.is_notification);
	cr_assert_not_null(q.params);
	qv_rpc_request_done(&q);

	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\"}", &q), 0);
	cr_assert(q.is_notification);
	cr_assert_null(q.id);
	cr_assert_null(q.params);
	qv_rpc_request_done(&q);

	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":null}", &q), 0);
	cr_assert_null(q.params);
	qv_rpc_request_done(&q);

	cr_assert_eq(parse("nope", &q), -EBADMSG);
	qv_rpc_request_done(&q);
	cr_assert_eq(parse("{} {}", &q), -EBADMSG, "trailing garbage");
	qv_rpc_request_done(&q);
	cr_assert_eq(parse("{\"a\":1,}", &q), -EBADMSG, "strict JSON");
	qv_rpc_request_done(&q);
	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}", &q), -EBADMSG, "utf-8");
	qv_rpc_request_done(&q);
	cr_assert_eq(parse("123", &q), -EINVAL);
	qv_rpc_request_done(&q);
	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":\"k\",\"method\":\"\"}", &q), -EINVAL);
	cr_assert_str_eq(json_object_get_string(q.id), "k", "id kept for the error");
	qv_rpc_request_done(&q);
	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"extra\":1}", &q),
		     -EINVAL, "unknown members are rejected");
	qv_rpc_request_done(&q);
	cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"a\"}", &q), -EINVAL);
	cr_assert_null(q.id);
	qv_rpc_request_done(&q);

	char nul[] = "{\"jsonrpc\":\"2.0\",\"method\":\"a\"}";
	nul[3] = '\0';
	struct qv_error err = {};
	cr_assert_eq(qv_rpc_parse_request(nul, sizeof(nul) - 1, &q, &err), -EBADMSG);
	qv_rpc_request_done(&q);

	/* deep nesting is a parse error, not a stack overflow */
	size_t depth = 100000;
	char *deep = malloc(depth * 2 + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[depth * 2] = 0;
	cr_assert_eq(parse(deep, &q), -EBADMSG);
	qv_rpc_request_done(&q);
	free(deep);

	cr_assert_eq(qv_rpc_code_for_parse_error(-EBADMSG), -32700);
	cr_assert_eq(qv_rpc_code_for_parse_error(-EINVAL), -32600);
	cr_assert_eq(qv_rpc_code_for_parse_error(-EMSGSIZE), -32600);
	cr_assert_eq(qv_rpc_code_for_reason("invalid-argument"), -32602);
	cr_assert_eq(qv_rpc_code_for_reason("not-found"), -32001);
	cr_assert_eq(qv_rpc_code_for_reason("internal"), -32603);
	cr_assert_eq(qv_rpc_code_for_reason("something-new"), -32000);
}
