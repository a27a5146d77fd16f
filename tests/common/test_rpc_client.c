/* SPDX-License-Identifier: MIT */
/* common/rpc-client.c against a scripted fake daemon running in a thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/rpc-client.h"

typedef void (*server_fn)(int fd);

struct server {
	pthread_t thread;
	int fd;
	server_fn fn;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	s->fn(s->fd);
	return NULL;
}

/* Client conn over a socketpair; the server end runs fn in a thread. */
static qv_rpc_conn *start_pair(struct server *s, server_fn fn)
{
	int sv[2];
	qv_rpc_conn *c = NULL;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->fd = sv[1];
	s->fn = fn;
	cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
	cr_assert_eq(qv_rpc_conn_new_fds(sv[0], sv[0], &c), 0);
	return c;
}

static void stop_pair(struct server *s, qv_rpc_conn *c)
{
	qv_rpc_conn_free(c); /* EOF for the server */
	pthread_join(s->thread, NULL);
	close(s->fd);
}

/* Read one request line; returns NULL at EOF. */
static json_object *srv_read(int fd)
{
	char buf[4096];
	size_t n = 0;

	while (n < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			return NULL;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	json_object *o = json_tokener_parse(buf);
	cr_assert_not_null(o, "server got bad JSON: %s", buf);
	return o;
}

static void srv_send(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len) {
		ssize_t r = send(fd, s, len, MSG_NOSIGNAL);
		if (r <= 0)
			return;
		s += r;
		len -= (size_t)r;
	}
}

static int64_t req_id(json_object *req)
{
	json_object *v;
	cr_assert(json_object_object_get_ex(req, "id", &v));
	return json_object_get_int64(v);
}

static void srv_reply(int fd, int64_t id, const char *result)
{
	char line[4096];
	snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":%s}\n",
		 (long long)id, result);
	srv_send(fd, line);
}

static void drain(int fd)
{
	json_object *o;
	while ((o = srv_read(fd)))
		json_object_put(o);
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_get_string(v);
}

/* ---------------------------------------------------------------------------- */

static void echo_server(int fd)
{
	json_object *req;
	while ((req = srv_read(fd))) {
		json_object *params = NULL;
		char line[4096];
		cr_expect_str_eq(get_str(req, "jsonrpc"), "2.0");
		json_object_object_get_ex(req, "params", &params);
		snprintf(line, sizeof(line),
			 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"method\":\"%s\",\"params\":%s}}\n",
			 (long long)req_id(req), get_str(req, "method"),
			 params ? json_object_to_json_string(params) : "null");
		srv_send(fd, line);
		json_object_put(req);
	}
}

Test(rpc_client, call_roundtrip)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, echo_server);
	struct qv_error err = { 0 };
	json_object *res = NULL, *p = json_object_new_object();

	json_object_object_add(p, "name", json_object_new_string("web1"));
	cr_assert_eq(qv_rpc_invoke(c, "vm.start", p, 5000, &res, &err), 0, "%s", err.message);
	cr_assert_str_eq(get_str(res, "method"), "vm.start");
	json_object *echoed;
	cr_assert(json_object_object_get_ex(res, "params", &echoed));
	cr_assert_str_eq(get_str(echoed, "name"), "web1");
	cr_assert_eq(err.set, false);
	json_object_put(res);

	/* no params: the member is omitted, the server sees null */
	cr_assert_eq(qv_rpc_invoke(c, "vm.list", NULL, 5000, &res, &err), 0);
	cr_assert_null(get_str(res, "params"));
	json_object_put(res);
	cr_assert_eq(qv_rpc_outstanding(c), 0);
	stop_pair(&s, c);
}

static void reverse_server(int fd)
{
	json_object *reqs[3];
	for (int i = 0; i < 3; i++)
		cr_assert_not_null(reqs[i] = srv_read(fd));
	/* answer in reverse order, several messages in one write */
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":\"%s\"}\n"
		 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":\"%s\"}\n",
		 (long long)req_id(reqs[2]), get_str(reqs[2], "method"),
		 (long long)req_id(reqs[1]), get_str(reqs[1], "method"));
	srv_send(fd, buf);
	/* the last one split across writes */
	snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":\"%s\"}\n",
		 (long long)req_id(reqs[0]), get_str(reqs[0], "method"));
	size_t half = strlen(buf) / 2;
	char first[512];
	snprintf(first, sizeof(first), "%.*s", (int)half, buf);
	srv_send(fd, first);
	usleep(50 * 1000);
	srv_send(fd, buf + half);
	for (int i = 0; i < 3; i++)
		json_object_put(reqs[i]);
	drain(fd);
}

Test(rpc_client, pipelined_out_of_order_by_id)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, reverse_server);
	uint64_t id[3];
	const char *names[3] = { "a", "b", "c" };
	json_object *res;

	for (int i = 0; i < 3; i++)
		cr_assert_eq(qv_rpc_send(c, names[i], NULL, &id[i], NULL), 0);
	cr_assert_neq(id[0], id[1]);
	cr_assert_eq(qv_rpc_outstanding(c), 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(qv_rpc_recv_response(c, 5000, id[i], &res, NULL), 0);
		cr_assert_str_eq(json_object_get_string(res), names[i]);
		json_object_put(res);
	}
	cr_assert_eq(qv_rpc_outstanding(c), 0);
	stop_pair(&s, c);
}

Test(rpc_client, recv_any_in_arrival_order)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, reverse_server);
	uint64_t id[3], got;
	const char *names[3] = { "a", "b", "c" };
	json_object *res;

	for (int i = 0; i < 3; i++)
		cr_assert_eq(qv_rpc_send(c, names[i], NULL, &id[i], NULL), 0);
	for (int i = 2; i >= 0; i--) {
		cr_assert_eq(qv_rpc_recv_any(c, 5000, &got, &res, NULL), 0);
		cr_assert_eq(got, id[i]);
		cr_assert_str_eq(json_object_get_string(res), names[i]);
		json_object_put(res);
	}
	struct qv_error err = { 0 };
	cr_assert_eq(qv_rpc_recv_any(c, 100, &got, &res, &err), -ENOMSG);
	stop_pair(&s, c);
}

static void notify_server(int fd)
{
	json_object *req = srv_read(fd);
	cr_assert_not_null(req);
	srv_send(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"progress\",\"params\":{\"done\":1}}\n"
		     "{\"jsonrpc\":\"2.0\",\"method\":\"progress\",\"params\":{\"done\":2}}\n");
	usleep(20 * 1000);
	srv_send(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"started\"}}\n");
	srv_reply(fd, req_id(req), "{\"ok\":true}");
	srv_send(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"event\"}\n");
	json_object_put(req);
	drain(fd);
}

static char seen[256];
static void on_notify(qv_rpc_conn *c, const char *method, json_object *params, void *ud)
{
	int *count = ud;
	char item[64];
	json_object *v;
	int64_t done = -1;
	if (params && json_object_object_get_ex(params, "done", &v))
		done = json_object_get_int64(v);
	snprintf(item, sizeof(item), "%s:%lld;", method, (long long)done);
	strncat(seen, item, sizeof(seen) - strlen(seen) - 1);
	(*count)++;
}

Test(rpc_client, notifications_dispatched_in_order_during_call)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, notify_server);
	int count = 0;
	json_object *res;

	qv_rpc_set_notify_handler(c, on_notify, &count);
	cr_assert_eq(qv_rpc_invoke(c, "image.clone", NULL, 5000, &res, NULL), 0);
	json_object_put(res);
	/* everything sent before the response was dispatched, in order; the
	 * trailing notification may or may not have been read already */
	cr_assert_geq(count, 3);
	const char *want = "progress:1;progress:2;event:-1;";
	cr_assert_eq(strncmp(seen, want, strlen(want)), 0, "seen: %s", seen);
	stop_pair(&s, c);
}

Test(rpc_client, notifications_queued_without_handler)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, notify_server);
	json_object *res, *params;
	char *method;
	struct qv_error err = { 0 };

	cr_assert_eq(qv_rpc_invoke(c, "events.subscribe", NULL, 5000, &res, NULL), 0);
	json_object_put(res);
	const char *want[] = { "progress", "progress", "event", "event" };
	for (size_t i = 0; i < 4; i++) {
		params = NULL;
		cr_assert_eq(qv_rpc_wait_notification(c, 5000, &method, &params, &err), 0,
			     "%s", err.message);
		cr_assert_str_eq(method, want[i]);
		if (i == 3)
			cr_assert_null(params);
		else
			cr_assert_not_null(params);
		if (i < 2)
			cr_assert_eq(json_object_get_int64(json_object_object_get(params, "done")),
				     (int64_t)i + 1);
		free(method);
		json_object_put(params);
	}
	cr_assert_eq(qv_rpc_wait_notification(c, 50, &method, &params, &err), -ETIMEDOUT);
	cr_assert_str_eq(err.reason, "timeout");
	stop_pair(&s, c);
}

static void error_server(int fd)
{
	json_object *req;
	char line[1024];
	int n = 0;
	while ((req = srv_read(fd))) {
		const char *err = n++ == 0
			? "{\"code\":-32000,\"message\":\"no VM named web9\",\"data\":{\"reason\":\"not-found\"}}"
			: "{\"code\":-32603,\"message\":\"boom\"}";
		snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":%s}\n",
			 (long long)req_id(req), err);
		srv_send(fd, line);
		json_object_put(req);
	}
}

Test(rpc_client, error_response_mapping)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, error_server);
	struct qv_error err = { 0 };
	json_object *res = (json_object *)0x1;

	cr_assert_eq(qv_rpc_invoke(c, "vm.info", NULL, 5000, &res, &err), -EREMOTEIO);
	cr_assert_eq(res, (json_object *)0x1, "ret_result must stay untouched on failure");
	cr_assert(err.set);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert_str_eq(err.message, "no VM named web9");

	qv_error_clear(&err);
	cr_assert_eq(qv_rpc_invoke(c, "vm.info", NULL, 5000, &res, &err), -EREMOTEIO);
	cr_assert_str_eq(err.reason, "internal");
	cr_assert_str_eq(err.message, "boom");
	stop_pair(&s, c);
}

static void slow_server(int fd)
{
	json_object *first = srv_read(fd);
	json_object *second = srv_read(fd); /* sent after the first timed out */
	cr_assert_not_null(first);
	cr_assert_not_null(second);
	srv_reply(fd, req_id(first), "\"late\"");
	srv_reply(fd, req_id(second), "\"second\"");
	json_object_put(first);
	json_object_put(second);
	drain(fd);
}

Test(rpc_client, timeout_then_late_response_dropped)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, slow_server);
	struct qv_error err = { 0 };
	json_object *res = NULL;

	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qv_rpc_invoke(c, "vm.stop", NULL, 200, &res, &err), -ETIMEDOUT);
	uint64_t el = qv_now_ms() - t0;
	cr_assert_geq(el, 190);
	cr_assert_lt(el, 10000);
	cr_assert_str_eq(err.reason, "timeout");
	cr_assert_null(res);
	cr_assert_eq(qv_rpc_outstanding(c), 0);

	cr_assert_eq(qv_rpc_invoke(c, "vm.list", NULL, 5000, &res, NULL), 0);
	cr_assert_str_eq(json_object_get_string(res), "second");
	json_object_put(res);
	stop_pair(&s, c);
}

static void closing_server(int fd)
{
	json_object *req = srv_read(fd);
	json_object_put(req);
	/* a partial line, then hang up */
	srv_send(fd, "{\"jsonrpc\":\"2.0\",");
	shutdown(fd, SHUT_RDWR);
}

Test(rpc_client, server_closes)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, closing_server);
	struct qv_error err = { 0 };
	json_object *res = NULL;

	cr_assert_eq(qv_rpc_invoke(c, "vm.start", NULL, 5000, &res, &err), -ECONNRESET);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert_null(res);
	/* the connection stays broken, later calls fail fast */
	qv_error_clear(&err);
	cr_assert_lt(qv_rpc_invoke(c, "vm.list", NULL, 5000, &res, &err), 0);
	cr_assert_str_eq(err.reason, "unavailable");
	char *m;
	cr_assert_lt(qv_rpc_wait_notification(c, 5000, &m, NULL, NULL), 0);
	stop_pair(&s, c);
}

static void huge_server(int fd)
{
	json_object *req = srv_read(fd);
	size_t n = QV_RPC_MAX_MESSAGE + 4096;
	char *big = malloc(n + 1);
	memset(big, ' ', n);
	big[n] = '\0';
	srv_send(fd, big); /* never a newline */
	free(big);
	json_object_put(req);
	drain(fd);
}

Test(rpc_client, oversized_line_breaks_connection)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, huge_server);
	struct qv_error err = { 0 };

	cr_assert_eq(qv_rpc_invoke(c, "vm.list", NULL, 10000, NULL, &err), -EMSGSIZE);
	cr_assert_str_eq(err.reason, "io-error");
	stop_pair(&s, c);
}

static void garbage_server(int fd)
{
	json_object *req = srv_read(fd);
	srv_send(fd, "this is not json\n");
	json_object_put(req);
	drain(fd);
}

Test(rpc_client, malformed_message)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, garbage_server);
	struct qv_error err = { 0 };

	cr_assert_eq(qv_rpc_invoke(c, "vm.list", NULL, 5000, NULL, &err), -EPROTO);
	stop_pair(&s, c);
}

/* --- transports ----------------------------------------------------------- */

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 4), 0);
	return fd;
}

static int listen_fd;
static void accept_echo_server(int fd)
{
	for (int i = 0; i < 2; i++) {
		int cfd = accept(listen_fd, NULL, NULL);
		if (cfd < 0)
			return;
		echo_server(cfd);
		close(cfd);
	}
}

Test(rpc_client, connect_unix_uri_and_path)
{
	char dir[] = "/tmp/qv-rpc-XXXXXX", path[128], uri[160];
	struct server s = { .fd = -1, .fn = accept_echo_server };
	struct qv_error err = { 0 };
	qv_rpc_conn *c = NULL;
	json_object *res;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.sock", dir);
	snprintf(uri, sizeof(uri), "unix://%s", path);
	listen_fd = listen_unix(path);
	cr_assert_eq(pthread_create(&s.thread, NULL, server_main, &s), 0);

	cr_assert_eq(qv_rpc_connect(uri, &c, &err), 0, "%s", err.message);
	cr_assert_eq(qv_rpc_invoke(c, "host.info", NULL, 5000, &res, &err), 0);
	cr_assert_str_eq(get_str(res, "method"), "host.info");
	json_object_put(res);
	c = qv_rpc_conn_free(c);

	cr_assert_eq(qv_rpc_connect(path, &c, &err), 0, "%s", err.message);
	cr_assert_eq(qv_rpc_invoke(c, "vm.list", NULL, 5000, &res, &err), 0);
	json_object_put(res);
	qv_rpc_conn_free(c);
	pthread_join(s.thread, NULL);
	close(listen_fd);
	unlink(path);
	rmdir(dir);
}

Test(rpc_client, connect_failures)
{
	struct qv_error err = { 0 };
	qv_rpc_conn *c = NULL;

	cr_assert_eq(qv_rpc_connect("/nonexistent/qvisord.sock", &c, &err), -ENOENT);
	cr_assert_null(c);
	cr_assert_str_eq(err.reason, "unavailable");
	qv_error_clear(&err);
	cr_assert_eq(qv_rpc_connect("http://x", &c, &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_rpc_connect("ssh://-oProxyCommand=x", &c, &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_rpc_connect("ssh://host/bad;path", &c, &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_rpc_connect("ssh://host:", &c, &err), -EINVAL);
	cr_assert_null(c);
}

/* A fake ssh: answers the first request with its own argv. */
static const char fake_ssh[] =
	"#!/bin/sh\n"
	"read line\n"
	"id=$(echo \"$line\" | sed 's/.*\"id\":\\([0-9]*\\).*/\\1/')\n"
	"printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":\"%s\"}\\n' \"$id\" \"$*\"\n"
	"cat >/dev/null\n";

Test(rpc_client, connect_ssh_spawns_ssh_with_argv)
{
	char dir[] = "/tmp/qv-ssh-XXXXXX", path[128];
	struct qv_error err = { 0 };
	qv_rpc_conn *c = NULL;
	json_object *res;

	signal(SIGPIPE, SIG_IGN);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ssh", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(fake_ssh, f);
	fclose(f);
	chmod(path, 0755);
	setenv("QVISOR_SSH", path, 1);

	cr_assert_eq(qv_rpc_connect("ssh://root@hostb:2222/run/qv-b/qvisord.sock", &c, &err), 0,
		     "%s", err.message);
	cr_assert_eq(qv_rpc_invoke(c, "host.info", NULL, 10000, &res, &err), 0, "%s", err.message);
	cr_assert_str_eq(json_object_get_string(res),
			 "-T -p 2222 -- root@hostb qvisor --socket /run/qv-b/qvisord.sock rpc-stdio");
	json_object_put(res);
	qv_rpc_conn_free(c); /* closes the pipe: the fake exits and is reaped */

	cr_assert_eq(qv_rpc_connect("ssh://hostc", &c, &err), 0);
	cr_assert_eq(qv_rpc_invoke(c, "host.info", NULL, 10000, &res, &err), 0);
	cr_assert_str_eq(json_object_get_string(res), "-T -- hostc qvisor rpc-stdio");
	json_object_put(res);
	qv_rpc_conn_free(c);
	unlink(path);
	rmdir(dir);
}

static void flood_server(int fd)
{
	/* Read nothing until the client stops sending, while sending lots of
	 * notifications: the client must keep reading while it flushes. */
	for (int i = 0; i < 20000; i++)
		srv_send(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"x\"}}\n");
	echo_server(fd);
}

Test(rpc_client, big_pipeline_does_not_deadlock)
{
	struct server s;
	qv_rpc_conn *c = start_pair(&s, flood_server);
	enum { N = 2000 };
	uint64_t id[N];
	json_object *res;

	for (int i = 0; i < N; i++) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "pad", json_object_new_string(
			"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
		cr_assert_eq(qv_rpc_send(c, "vm.info", p, &id[i], NULL), 0);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(qv_rpc_recv_response(c, 20000, id[i], &res, NULL), 0);
		json_object_put(res);
	}
	/* the queue kept at most QV_RPC_MAX_QUEUED notifications */
	char *m;
	int n = 0;
	while (qv_rpc_wait_notification(c, 0, &m, NULL, NULL) == 0) {
		free(m);
		n++;
	}
	cr_assert_eq(n, QV_RPC_MAX_QUEUED);
	stop_pair(&s, c);
}
