/* SPDX-License-Identifier: MIT */
/* common/rpc-connect-async.c: the connect runs off the loop; its result,
 * its deadline and a cancel come back (or not) on the loop. Peers: a unix
 * listener, a TCP listener that never speaks TLS, a closed port. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/pki.h"
#include "common/rpc-connect-async.h"

static char base[64];
static qv_loop *loop;

struct outcome {
	bool called;
	int error;
	qv_rpc_conn *conn;
	struct qv_error err;
	uint64_t at_ms;
	int ticks_before; /* loop timer ticks seen when the result came */
};

static int ticks;

static void setup(void)
{
	struct qv_error err = {};
	char ca[96], pki[96];

	snprintf(base, sizeof(base), "/tmp/qvca-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(ca, sizeof(ca), "%s/ca", base);
	snprintf(pki, sizeof(pki), "%s/pki", base);
	cr_assert_eq(qv_pki_init(ca, "unit CA", 2, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(ca, pki, "127.0.0.1", NULL, 0, 2, &err), 0, "%s", err.message);
	cr_assert_eq(qv_rpc_set_pki_dir(pki), 0);
	cr_assert_eq(qv_loop_new(&loop), 0);
	ticks = 0;
}

static void teardown(void)
{
	char cmd[128];

	qv_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	(void)!system(cmd);
}

TestSuite(rpc_connect_async, .init = setup, .fini = teardown, .timeout = 60);

static void on_done(int error, qv_rpc_conn *conn, const struct qv_error *errp, void *ud)
{
	struct outcome *o = ud;

	cr_assert_not(o->called, "the callback ran twice");
	o->called = true;
	o->error = error;
	o->conn = conn;
	if (errp)
		o->err = *errp;
	o->at_ms = qv_now_ms();
	o->ticks_before = ticks;
}

static void on_tick(qv_source *s, void *ud)
{
	ticks++;
	qv_loop_add_timer(loop, 20, on_tick, NULL, NULL);
}

static void run_until(struct outcome *o, int max_ms)
{
	uint64_t end = qv_now_ms() + (uint64_t)max_ms;

	while (!o->called && qv_now_ms() < end)
		qv_loop_run_once(loop, 50);
}

/* 127.0.0.1 listener with a kernel-chosen port; never accepts or speaks. */
static int silent_listener(int *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

Test(rpc_connect_async, unix_socket_connects_on_the_loop)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct outcome o = {};
	qv_rpc_connecting *c = NULL;
	struct qv_error err = {};
	char uri[128];
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s.sock", base);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	snprintf(uri, sizeof(uri), "unix://%s", sa.sun_path);
	cr_assert_eq(qv_rpc_connect_async(loop, uri, 2000, on_done, &o, &c, &err), 0, "%s",
		     err.message);
	cr_assert_not(o.called, "the callback must not run from inside the call");
	run_until(&o, 5000);
	cr_assert(o.called);
	cr_assert_eq(o.error, 0, "%s", o.err.message);
	cr_assert_not_null(o.conn);
	cr_assert_gt(qv_rpc_conn_fd(o.conn), 2);
	qv_rpc_conn_free(o.conn);
	close(lfd);
}

Test(rpc_connect_async, silent_tls_peer_times_out_while_the_loop_runs)
{
	struct outcome o = {};
	qv_rpc_connecting *c = NULL;
	struct qv_error err = {};
	char uri[64];
	int port, lfd = silent_listener(&port);
	uint64_t t0;

	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", port);
	cr_assert_eq(qv_loop_add_timer(loop, 20, on_tick, NULL, NULL), 0);
	t0 = qv_now_ms();
	cr_assert_eq(qv_rpc_connect_async(loop, uri, 500, on_done, &o, &c, &err), 0, "%s",
		     err.message);
	run_until(&o, 10000);
	printf("silent peer: failed after %llu ms, %d loop ticks meanwhile: %s\n",
	       (unsigned long long)(o.at_ms - t0), o.ticks_before, o.err.message);
	cr_assert(o.called, "no result after 10 s for a 500 ms deadline");
	cr_assert_eq(o.error, -ETIMEDOUT, "%d %s", o.error, o.err.message);
	cr_assert_null(o.conn);
	cr_assert_str_eq(o.err.reason, QV_REASON_TIMEOUT);
	cr_assert(strstr(o.err.message, "did not answer"), "%s", o.err.message);
	cr_assert(strstr(o.err.message, "127.0.0.1"), "the peer is not named: %s", o.err.message);
	/* The loop kept running its timers while the handshake waited. */
	cr_assert_geq(o.ticks_before, 5, "loop timers did not run during the connect");
	close(lfd);
}

Test(rpc_connect_async, cancel_means_no_callback)
{
	struct outcome o = {};
	qv_rpc_connecting *c = NULL;
	struct qv_error err = {};
	char uri[64];
	int port, lfd = silent_listener(&port);
	uint64_t end;

	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", port);
	cr_assert_eq(qv_rpc_connect_async(loop, uri, 200, on_done, &o, &c, &err), 0, "%s",
		     err.message);
	cr_assert_null(qv_rpc_connect_cancel(c));
	end = qv_now_ms() + 3000; /* past the worker's deadline and the backstop */
	while (qv_now_ms() < end)
		qv_loop_run_once(loop, 100);
	cr_assert_not(o.called, "the callback ran after cancel");
	close(lfd);
}

Test(rpc_connect_async, refused_port_is_unavailable)
{
	struct outcome o = {};
	qv_rpc_connecting *c = NULL;
	struct qv_error err = {};
	char uri[64];
	int port, lfd = silent_listener(&port);

	close(lfd); /* nothing listens there now */
	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", port);
	cr_assert_eq(qv_rpc_connect_async(loop, uri, 2000, on_done, &o, &c, &err), 0, "%s",
		     err.message);
	run_until(&o, 10000);
	cr_assert(o.called);
	cr_assert_lt(o.error, 0);
	cr_assert_null(o.conn);
	cr_assert_str_eq(o.err.reason, QV_REASON_UNAVAILABLE, "%s", o.err.message);
}

/* A fake ssh answering its first request with its blocked-signal mask. */
static const char fake_ssh[] =
	"#!/bin/sh\n"
	"read line\n"
	"id=$(echo \"$line\" | sed 's/.*\"id\":\\([0-9]*\\).*/\\1/')\n"
	"blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status)\n"
	"printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":\"%s\"}\\n' \"$id\" \"$blk\"\n"
	"cat >/dev/null\n";

/* ssh:// from the worker thread (which blocks every signal): the child
 * still starts with nothing blocked, so reaping's SIGTERM reaches it. */
Test(rpc_connect_async, ssh_child_starts_with_no_signal_blocked)
{
	struct outcome o = {};
	qv_rpc_connecting *c = NULL;
	struct qv_error err = {};
	json_object *res = NULL;
	char path[128];

	signal(SIGPIPE, SIG_IGN);
	snprintf(path, sizeof(path), "%s/ssh", base);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(fake_ssh, f);
	fclose(f);
	chmod(path, 0755);
	setenv("QVISOR_SSH", path, 1);
	cr_assert_eq(qv_rpc_connect_async(loop, "ssh://hostb", 5000, on_done, &o, &c, &err), 0,
		     "%s", err.message);
	run_until(&o, 10000);
	cr_assert(o.called);
	cr_assert_eq(o.error, 0, "%s", o.err.message);
	cr_assert_eq(qv_rpc_invoke(o.conn, "host.info", NULL, 10000, &res, &err), 0, "%s",
		     err.message);
	cr_assert_str_eq(json_object_get_string(res), "0000000000000000");
	json_object_put(res);
	qv_rpc_conn_free(o.conn);
}
