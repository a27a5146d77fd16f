/* SPDX-License-Identifier: MIT */
/* daemon/rpc-tls.c: the RPC server's mutual-TLS listener on 127.0.0.1
 * (ephemeral port), its loop in a thread, a lab PKI (common/pki.c):
 * - idle TCP connects (a slowloris) fill neither the client cap nor keep a
 *   real client's handshake out: handshakes have their own cap;
 * - a client that asks to renegotiate (TLS 1.2) is cut off cleanly and the
 *   server goes on serving. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "common/pki.h"
#include "common/tls.h"
#include "daemon/rpc-internal.h"
#include "daemon/rpc.h"

static char tmpdir[64], sock_path[128], ca_dir[128], pki_dir[128];
static qv_loop *loop;
static qv_rpc_server *server;
static qv_tls_creds *server_creds;
static pthread_t server_thread;
static int quit_pipe[2] = { -1, -1 };
static int port;

static int h_echo(qv_rpc_call *call, json_object *params, void *ud)
{
	return qv_rpc_call_reply(call, json_object_new_string("pong")), 0;
}

static const struct qv_rpc_method methods[] = { { "test.echo", h_echo } };

static void on_quit(qv_source *s, int fd, uint32_t ev, void *ud)
{
	qv_loop_quit(loop, 0);
}

static void *server_main(void *arg)
{
	qv_loop_run(loop);
	return NULL;
}

static void setup(void)
{
	struct qv_error err = {};
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	const char *names[] = { "127.0.0.1" };

	strcpy(tmpdir, "/tmp/qv-rpctls-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(sock_path, sizeof(sock_path), "%s/qvisord.sock", tmpdir);
	snprintf(ca_dir, sizeof(ca_dir), "%s/ca", tmpdir);
	snprintf(pki_dir, sizeof(pki_dir), "%s/pki", tmpdir);
	cr_assert_eq(qv_pki_init(ca_dir, "unit CA", 2, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(ca_dir, pki_dir, "rpc.test", names, 1, 2, &err), 0, "%s",
		     err.message);
	cr_assert_eq(qv_tls_creds_load(pki_dir, QV_TLS_SERVER, &server_creds, &err), 0, "%s",
		     err.message);
	cr_assert_eq(qv_loop_new(&loop), 0);
	cr_assert_eq(qv_rpc_server_new(loop, sock_path, 0600, &server, &err), 0, "%s",
		     err.message);
	/* small, so 100 idle connects would exceed it many times over */
	qv_rpc_server_set_max_clients(server, 8);
	cr_assert_eq(qv_rpc_server_add_methods(server, methods, ARRAY_SIZE(methods), NULL), 0);
	cr_assert_eq(qv_rpc_server_listen_tcp(server, "127.0.0.1", 0, server_creds, &err), 0,
		     "%s", err.message);
	cr_assert_eq(getsockname(server->tcp_fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	cr_assert_eq(pipe2(quit_pipe, O_CLOEXEC), 0);
	cr_assert_eq(qv_loop_add_io(loop, quit_pipe[0], EPOLLIN, on_quit, NULL, NULL), 0);
	cr_assert_eq(pthread_create(&server_thread, NULL, server_main, NULL), 0);
}

static void teardown(void)
{
	char cmd[128];

	cr_assert_eq(write(quit_pipe[1], "q", 1), 1);
	pthread_join(server_thread, NULL);
	server = qv_rpc_server_free(server);
	loop = qv_loop_free(loop);
	server_creds = qv_tls_creds_free(server_creds);
	close(quit_pipe[0]);
	close(quit_pipe[1]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
}

TestSuite(rpc_tls, .init = setup, .fini = teardown, .timeout = 120);

static int tcp_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %m");
	return fd;
}

/* A real client: mutual TLS, one test.echo; true when "pong" came back. */
static bool real_client_served(void)
{
	qv_tls_creds *cc = NULL;
	qv_tls *t = NULL;
	struct qv_error err = {};
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.echo\"}\n";
	char buf[512] = "";
	size_t got = 0;
	bool ok = false;
	int fd = tcp_connect();

	cr_assert_eq(qv_tls_creds_load(pki_dir, QV_TLS_CLIENT, &cc, &err), 0, "%s", err.message);
	cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(qv_tls_new(cc, fd, "127.0.0.1", &t, &err), 0, "%s", err.message);
	if (qv_tls_handshake_wait(t, 20000, &err) < 0) {
		fprintf(stderr, "real client: %s\n", err.message);
		goto out;
	}
	for (size_t off = 0; off < sizeof(req) - 1;) {
		ssize_t n = qv_tls_write(t, req + off, sizeof(req) - 1 - off);
		if (n == -EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			(void)poll(&p, 1, 1000);
			continue;
		}
		if (n < 0)
			goto out;
		off += (size_t)n;
	}
	for (int i = 0; i < 200 && !strchr(buf, '\n'); i++) {
		ssize_t n = qv_tls_read(t, buf + got, sizeof(buf) - 1 - got);
		if (n == -EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			(void)poll(&p, 1, 100);
			continue;
		}
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
	}
	ok = strstr(buf, "\"pong\"") != NULL;
	if (!ok)
		fprintf(stderr, "real client got: [%s]\n", buf);
out:
	qv_tls_free(t);
	qv_tls_creds_free(cc);
	close(fd);
	return ok;
}

Test(rpc_tls, idle_connects_do_not_lock_out_a_real_client)
{
	int idle[100];

	for (size_t i = 0; i < ARRAY_SIZE(idle); i++)
		idle[i] = tcp_connect(); /* and never a byte */
	/* The server accepts them all before the real client (one queue). */
	cr_assert(real_client_served(), "a real client was locked out by %zu idle connects",
		  ARRAY_SIZE(idle));
	/* Twice: the first one's verified slot did not come from luck. */
	cr_assert(real_client_served());
	for (size_t i = 0; i < ARRAY_SIZE(idle); i++)
		close(idle[i]);
}

Test(rpc_tls, renegotiation_is_refused_and_the_server_goes_on)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	char path[2][200], ca[200], buf[256];
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.echo\"}\n";
	struct timeval tv = { .tv_sec = 10 };
	int fd = tcp_connect(), r;
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(ca, sizeof(ca), "%s/%s", pki_dir, QV_PKI_CA_CERT);
	snprintf(path[0], sizeof(path[0]), "%s/%s", pki_dir, QV_PKI_CLIENT_CERT);
	snprintf(path[1], sizeof(path[1]), "%s/%s", pki_dir, QV_PKI_CLIENT_KEY);
	cr_assert_eq(gnutls_certificate_allocate_credentials(&cred), 0);
	cr_assert_gt(gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM), 0);
	cr_assert_eq(gnutls_certificate_set_x509_key_file(cred, path[0], path[1],
							  GNUTLS_X509_FMT_PEM), 0);
	cr_assert_eq(gnutls_init(&s, GNUTLS_CLIENT), 0);
	/* TLS 1.2: the only version with renegotiation */
	cr_assert_eq(gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL), 0);
	cr_assert_eq(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), 0);
	gnutls_transport_set_int(s, fd);
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	cr_assert_eq(r, 0, "TLS 1.2 handshake: %s", gnutls_strerror(r));
	cr_assert_eq(gnutls_record_send(s, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	n = gnutls_record_recv(s, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0, "%s", gnutls_strerror((int)n));
	buf[n] = '\0';
	cr_assert(strstr(buf, "pong"), "%s", buf);
	/* Ask to renegotiate: refused, and the session ends. */
	r = gnutls_handshake(s);
	cr_assert_lt(r, 0, "the server renegotiated");
	fprintf(stderr, "renegotiation: %s\n", gnutls_strerror(r));
	/* The server closed the connection (EOF), not just ignored us (a
	 * read timing out). */
	do
		n = read(fd, buf, sizeof(buf));
	while (n > 0);
	cr_assert_eq(n, 0, "the server kept the connection after a renegotiation request (%m)");
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	close(fd);
	cr_assert(real_client_served(), "the server stopped serving");
}
