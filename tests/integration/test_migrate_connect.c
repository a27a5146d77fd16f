/* SPDX-License-Identifier: MIT */
/* Dialling a peer daemon never blocks the loop (issue 11, "nothing blocks
 * the loop"): a real qvisord with a lab PKI runs a real guest (TCG) and is
 * asked to vm.migrate it to tls://127.0.0.1:PORT, a TCP listener made here
 * that completes the TCP handshake and then never answers TLS. While the
 * source waits for it, vm.list on the same daemon answers at once; the
 * migration then fails with "did not answer" after the connect deadline
 * (QV_RPC_CONNECT_TIMEOUT_MS) and the guest still runs on the source. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/pki.h"
#include "common/rpc-connect-async.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/qvisord.h"

#define VM "conn1"
#define LIST_BOUND_MS 1000 /* generous: a blocked loop answers after ~10 s */

static struct qvt_daemon D;
static char pki_root[64];

static void setup(void)
{
	struct qv_error err = {};
	char ca[96];

	if (!qvt_guest_dir())
		return;
	snprintf(pki_root, sizeof(pki_root), "/tmp/qvc-XXXXXX");
	cr_assert_not_null(mkdtemp(pki_root));
	snprintf(ca, sizeof(ca), "%s/ca", pki_root);
	snprintf(D.pki_dir, sizeof(D.pki_dir), "%s/pki", pki_root);
	cr_assert_eq(qv_pki_init(ca, "test CA", 30, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(ca, D.pki_dir, "127.0.0.1", NULL, 0, 30, &err), 0, "%s",
		     err.message);
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
	if (pki_root[0] && !getenv("QVT_KEEP")) {
		char *rm[] = { "rm", "-rf", pki_root, NULL };
		(void)qvt_run(rm, NULL);
	}
}

TestSuite(migrate_connect, .init = setup, .fini = teardown, .timeout = 180);

/* A listener on 127.0.0.1 with a kernel-chosen port (no fixed port); the
 * test accepts on it and never says a word of TLS. */
static int silent_listener(int *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static void start_guest(void)
{
	struct qv_error err = {};
	char state[32];

	cr_assert_eq(qvt_define_guest(&D, VM, NULL, &err), 0, "%s", err.message);
	json_object *r = qvt_call_name(&D, "vm.start", VM, &err);
	cr_assert_not_null(r, "vm.start: %s", err.message);
	json_object_put(r);
	for (int i = 0; i < 600 && !streq(qvt_vm_state(&D, VM, state, sizeof(state)), "running");
	     i++)
		qvt_sleep_ms(100);
	cr_assert_str_eq(state, "running");
}

/* One vm.list on c: its latency in ms; asserts it answered and names VM. */
static uint64_t timed_list(qv_rpc_conn *c)
{
	_cleanup_json_ json_object *r = NULL;
	struct qv_error err = {};
	uint64_t t0 = qv_now_ms();

	cr_assert_eq(qv_rpc_invoke(c, "vm.list", NULL, 30000, &r, &err), 0, "vm.list: %s",
		     err.message);
	cr_assert(strstr(json_object_to_json_string(r), VM), "vm.list lost %s", VM);
	return qv_now_ms() - t0;
}

Test(migrate_connect, silent_tls_peer_does_not_block_the_loop)
{
	_cleanup_rpc_conn_ qv_rpc_conn *mig = NULL, *lister = NULL;
	_cleanup_json_ json_object *res = NULL;
	struct qv_error err = {};
	char to[64], state[32];
	uint64_t id, t0, worst = 0;
	int port, n = 0, afd = -1;

	QVT_REQUIRE_DAEMON(&D);
	int lfd = silent_listener(&port);
	start_guest();
	snprintf(to, sizeof(to), "tls://127.0.0.1:%d", port);
	mig = qvt_connect(&D);
	lister = qvt_connect(&D);
	cr_assert(mig && lister);

	json_object *p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "to", json_object_new_string(to));
	t0 = qv_now_ms();
	cr_assert_eq(qv_rpc_send(mig, "vm.migrate", p, &id, &err), 0, "%s", err.message);

	/* While the source dials the silent peer (well inside its deadline). */
	while (qv_now_ms() - t0 < 4000) {
		if (afd < 0)
			afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); /* and say nothing */
		uint64_t ms = timed_list(lister);
		printf("vm.list during the connect: %llu ms\n", (unsigned long long)ms);
		worst = ms > worst ? ms : worst;
		n++;
		qvt_sleep_ms(100);
	}
	printf("vm.list: %d calls, worst %llu ms (bound %d ms)\n", n, (unsigned long long)worst,
	       LIST_BOUND_MS);
	cr_assert_lt(worst, LIST_BOUND_MS, "the loop was blocked for %llu ms",
		     (unsigned long long)worst);

	int r = qv_rpc_recv_response(mig, 60000, id, &res, &err);
	printf("vm.migrate failed after %llu ms: %s\n", (unsigned long long)(qv_now_ms() - t0),
	       err.message);
	cr_assert_eq(r, -EREMOTEIO, "vm.migrate to a silent peer: %d %s", r, err.message);
	cr_assert(strstr(err.message, "did not answer"), "unclear error: %s", err.message);
	cr_assert_str_eq(err.reason, QV_REASON_TIMEOUT, "%s", err.message);
	cr_assert(strstr(err.message, to + 6), "the error does not name the peer: %s",
		  err.message);

	/* The daemon did reach the listener: it was the handshake that hung. */
	cr_assert_geq(afd, 0, "the daemon never connected to the listener");
	close(afd);
	close(lfd);

	cr_assert_str_eq(qvt_vm_state(&D, VM, state, sizeof(state)), "running",
			 "the guest must keep running on the source");
	cr_assert_lt(timed_list(lister), LIST_BOUND_MS);
}
