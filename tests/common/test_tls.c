/* SPDX-License-Identifier: MIT */
/* common/pki.c and common/tls.c: a lab PKI, then real GnuTLS handshakes
 * between a server and a client on a non-blocking socketpair. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/pki.h"
#include "common/tls.h"

static char base[64], ca[96], host_a[96], host_b[96], rogue[96];

static void setup(void)
{
	struct qv_error err = {};
	char rogue_ca[96];

	snprintf(base, sizeof(base), "/tmp/qvtls-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(ca, sizeof(ca), "%s/ca", base);
	snprintf(host_a, sizeof(host_a), "%s/a", base);
	snprintf(host_b, sizeof(host_b), "%s/b", base);
	snprintf(rogue_ca, sizeof(rogue_ca), "%s/rogue-ca", base);
	snprintf(rogue, sizeof(rogue), "%s/rogue", base);
	cr_assert_eq(qv_pki_init(ca, "unit CA", 2, &err), 0, "%s", err.message);
	const char *names[] = { "127.0.0.1" };
	cr_assert_eq(qv_pki_issue(ca, host_a, "host-a.test", names, 1, 2, &err), 0, "%s",
		     err.message);
	cr_assert_eq(qv_pki_issue(ca, host_b, "host-b.test", NULL, 0, 2, &err), 0, "%s",
		     err.message);
	cr_assert_eq(qv_pki_init(rogue_ca, "rogue CA", 2, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(rogue_ca, rogue, "host-a.test", NULL, 0, 2, &err), 0, "%s",
		     err.message);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	(void)!system(cmd);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

static mode_t mode_of(const char *dir, const char *name)
{
	char p[200];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	cr_assert_eq(stat(p, &sb), 0, "%s", p);
	return sb.st_mode & 07777;
}

Test(tls, pki_layout_and_modes)
{
	struct qv_error err = {};

	cr_assert_eq(mode_of(ca, QV_PKI_CA_KEY), 0600);
	cr_assert_eq(mode_of(ca, QV_PKI_CA_CERT), 0644);
	cr_assert_eq(mode_of(host_a, QV_PKI_SERVER_KEY), 0600);
	cr_assert_eq(mode_of(host_a, QV_PKI_CLIENT_KEY), 0600);
	cr_assert_eq(mode_of(host_a, QV_PKI_SERVER_CERT), 0644);
	cr_assert_eq(mode_of(host_a, QV_PKI_CA_CERT), 0644);
	/* never overwritten */
	cr_assert_lt(qv_pki_init(ca, "again", 2, &err), 0);
	cr_assert_str_eq(err.reason, "conflict");
	qv_error_clear(&err);
	cr_assert_lt(qv_pki_issue(ca, host_a, "host-a.test", NULL, 0, 2, &err), 0);
	qv_error_clear(&err);
	cr_assert_lt(qv_pki_issue(ca, host_b, "bad name!", NULL, 0, 2, &err), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");
}

Test(tls, key_readable_by_others_is_refused)
{
	struct qv_error err = {};
	qv_tls_creds *c = NULL;
	char p[200];

	snprintf(p, sizeof(p), "%s/%s", host_b, QV_PKI_CLIENT_KEY);
	cr_assert_eq(chmod(p, 0644), 0);
	cr_assert_lt(qv_tls_creds_load(host_b, QV_TLS_CLIENT, &c, &err), 0);
	cr_assert_str_eq(err.reason, "permission-denied", "%s", err.message);
	cr_assert_null(c);
}

/* After a handshake the client finished: does the server's certificate
 * name host-a.test / host-b.test / h-other (qv_tls_peer_has_name)? */
static bool srv_names[3];

/* Drive both handshakes on a socketpair until both end. */
static void handshake(const char *srv_dir, const char *cli_dir, const char *hostname,
		      int *ret_srv, int *ret_cli, char *srv_peer_dn, size_t dn_size)
{
	qv_tls_creds *sc = NULL, *cc = NULL;
	qv_tls *s = NULL, *c = NULL;
	struct qv_error serr = {}, cerr = {};
	int sv[2], rs = -EAGAIN, rc = -EAGAIN;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cr_assert_eq(qv_tls_creds_load(srv_dir, QV_TLS_SERVER, &sc, &serr), 0, "%s", serr.message);
	cr_assert_eq(qv_tls_creds_load(cli_dir, QV_TLS_CLIENT, &cc, &cerr), 0, "%s", cerr.message);
	cr_assert_eq(qv_tls_new(sc, sv[0], NULL, &s, &serr), 0);
	cr_assert_eq(qv_tls_new(cc, sv[1], hostname, &c, &cerr), 0);
	for (int i = 0; i < 1000 && (rs == -EAGAIN || rc == -EAGAIN); i++) {
		if (rc == -EAGAIN)
			rc = qv_tls_handshake(c, &cerr);
		if (rs == -EAGAIN)
			rs = qv_tls_handshake(s, &serr);
		if (rc < 0 && rc != -EAGAIN && rs == -EAGAIN)
			shutdown(sv[1], SHUT_RDWR); /* let the server see the end */
	}
	/* TLS 1.3: the server's verdict on our certificate comes after the
	 * client finished; a refused client sees it on the first read. */
	if (rc == 0 && rs < 0) {
		char b[16];
		ssize_t n = -EAGAIN;
		for (int i = 0; i < 100 && n == -EAGAIN; i++)
			n = qv_tls_read(c, b, sizeof(b));
		rc = n < 0 ? (int)n : -ECONNRESET;
	}
	if (rs < 0)
		fprintf(stderr, "server: %s\n", serr.message);
	memset(srv_names, 0, sizeof(srv_names));
	if (rc == 0) {
		srv_names[0] = qv_tls_peer_has_name(c, "host-a.test");
		srv_names[1] = qv_tls_peer_has_name(c, "host-b.test");
		srv_names[2] = qv_tls_peer_has_name(c, "h-other");
	}
	if (rs == 0 && srv_peer_dn)
		snprintf(srv_peer_dn, dn_size, "%s", qv_tls_peer_dn(s));
	if (rs == 0 && rc == 0) { /* data both ways */
		char b[8] = "";
		ssize_t n = qv_tls_write(c, "ping", 4);
		cr_assert_eq(n, 4);
		for (int i = 0; i < 100 && (n = qv_tls_read(s, b, sizeof(b))) == -EAGAIN; i++)
			;
		cr_assert_eq(n, 4);
		cr_assert_eq(memcmp(b, "ping", 4), 0);
	}
	*ret_srv = rs;
	*ret_cli = rc;
	qv_tls_free(s);
	qv_tls_free(c);
	qv_tls_creds_free(sc);
	qv_tls_creds_free(cc);
	close(sv[0]);
	close(sv[1]);
}

Test(tls, mutual_handshake_names_the_peer)
{
	char dn[QV_TLS_DN_MAX] = "", own[QV_TLS_DN_MAX];
	struct qv_error err = {};
	char p[200];
	int rs, rc;

	handshake(host_a, host_b, "host-a.test", &rs, &rc, dn, sizeof(dn));
	cr_assert_eq(rs, 0);
	cr_assert_eq(rc, 0);
	/* the server sees the client's DN exactly as the file gives it (what
	 * QEMU's tls-authz is matched against) */
	snprintf(p, sizeof(p), "%s/%s", host_b, QV_PKI_CLIENT_CERT);
	cr_assert_eq(qv_tls_cert_file_dn(p, own, sizeof(own), &err), 0, "%s", err.message);
	cr_assert_str_eq(dn, own);
	cr_assert(strstr(dn, "CN=host-b.test"), "%s", dn);
	/* an extra SAN works as the name too */
	handshake(host_a, host_b, "127.0.0.1", &rs, &rc, NULL, 0);
	cr_assert_eq(rc, 0);
	/* the name a cluster peer must carry (cl_peer_check): the server's
	 * certificate names host-a.test, not another host of the same CA */
	cr_assert(srv_names[0]);
	cr_assert_not(srv_names[1]);
	cr_assert_not(srv_names[2]);
	cr_assert_not(qv_tls_peer_has_name(NULL, "host-a.test"));
}

Test(tls, wrong_server_name_is_refused)
{
	int rs, rc;

	handshake(host_b, host_a, "host-a.test", &rs, &rc, NULL, 0);
	cr_assert_eq(rc, -EACCES, "client accepted a certificate for another host (%d)", rc);
	cr_assert_neq(rs, 0);
}

Test(tls, foreign_client_certificate_is_refused)
{
	char p[200], q[200];
	int rs, rc;

	/* the rogue client trusts our CA (to verify the server) but presents
	 * a certificate of its own CA */
	snprintf(p, sizeof(p), "%s/%s", rogue, QV_PKI_CA_CERT);
	snprintf(q, sizeof(q), "cp '%s/%s' '%s'", ca, QV_PKI_CA_CERT, p);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(system(q), 0);
	handshake(host_a, rogue, "host-a.test", &rs, &rc, NULL, 0);
	cr_assert_eq(rs, -EACCES, "server accepted a foreign client certificate (%d)", rs);
	cr_assert_neq(rc, 0);
}

Test(tls, host_port_parsing)
{
	char h[64];
	int port;

	cr_assert_eq(qv_parse_host_port("10.0.0.1:99", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_str_eq(h, "10.0.0.1");
	cr_assert_eq(port, 99);
	cr_assert_eq(qv_parse_host_port("host.example", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_eq(port, 5);
	cr_assert_eq(qv_parse_host_port("[::1]:7", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_str_eq(h, "::1");
	cr_assert_eq(port, 7);
	cr_assert_lt(qv_parse_host_port("::1", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_lt(qv_parse_host_port("a:0", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_lt(qv_parse_host_port("a:70000", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_lt(qv_parse_host_port("-x", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_lt(qv_parse_host_port("a b", 5, h, sizeof(h), &port, NULL), 0);
	cr_assert_lt(qv_parse_host_port("", 5, h, sizeof(h), &port, NULL), 0);
}

/* dir/ holding ca-cert.pem and host_a's migration-only pair under the
 * names a role loads (what a QEMU taken over by its guest could present). */
static void migration_as(const char *dir, bool server)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd),
		 "mkdir -p '%s' && cp '%s/%s' '%s/' && cp '%s/%s' '%s/%s' && "
		 "install -m 0600 '%s/%s' '%s/%s'",
		 dir, host_a, QV_PKI_CA_CERT, dir, host_a, QV_PKI_MIGRATE_CERT, dir,
		 server ? QV_PKI_SERVER_CERT : QV_PKI_CLIENT_CERT, host_a, QV_PKI_MIGRATE_KEY, dir,
		 server ? QV_PKI_SERVER_KEY : QV_PKI_CLIENT_KEY);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(tls, migration_pair_is_marked_and_separate)
{
	struct qv_error err = {};
	char p[200], dn[QV_TLS_DN_MAX];
	bool mig = true;

	cr_assert_eq(mode_of(host_a, QV_PKI_MIGRATE_KEY), 0600);
	cr_assert_eq(mode_of(host_a, QV_PKI_MIGRATE_CERT), 0644);
	snprintf(p, sizeof(p), "%s/%s", host_a, QV_PKI_MIGRATE_CERT);
	cr_assert_eq(qv_tls_cert_file_is_migration(p, &mig, &err), 0, "%s", err.message);
	cr_assert(mig);
	cr_assert_eq(qv_tls_cert_file_dn(p, dn, sizeof(dn), &err), 0);
	cr_assert(strstr(dn, "OU=" QV_PKI_MIGRATION_OU) && strstr(dn, "CN=host-a.test"), "%s", dn);
	snprintf(p, sizeof(p), "%s/%s", host_a, QV_PKI_CLIENT_CERT);
	cr_assert_eq(qv_tls_cert_file_is_migration(p, &mig, &err), 0);
	cr_assert_not(mig, "the RPC client certificate carries the migration marker");
	/* --migration-only for a host issued before: only the pair, once */
	snprintf(p, sizeof(p), "%s/%s", host_b, QV_PKI_MIGRATE_CERT);
	cr_assert_eq(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/%s", host_b, QV_PKI_MIGRATE_KEY);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(qv_pki_issue_migration(ca, host_b, "host-b.test", NULL, 0, 2, &err), 0, "%s",
		     err.message);
	cr_assert_eq(mode_of(host_b, QV_PKI_MIGRATE_KEY), 0600);
	cr_assert_lt(qv_pki_issue_migration(ca, host_b, "host-b.test", NULL, 0, 2, &err), 0);
	cr_assert_str_eq(err.reason, "conflict");
}

Test(tls, migration_certificate_is_refused_as_rpc_client)
{
	char dir[128];
	int rs, rc;

	snprintf(dir, sizeof(dir), "%s/mig-client", base);
	migration_as(dir, false);
	handshake(host_a, dir, "host-a.test", &rs, &rc, NULL, 0);
	cr_assert_eq(rs, -EACCES, "the RPC server accepted a migration-only certificate (%d)", rs);
	cr_assert_neq(rc, 0);
}

Test(tls, migration_certificate_is_refused_as_rpc_server)
{
	char dir[128];
	int rs, rc;

	snprintf(dir, sizeof(dir), "%s/mig-server", base);
	migration_as(dir, true);
	handshake(dir, host_b, "host-a.test", &rs, &rc, NULL, 0);
	cr_assert_eq(rc, -EACCES, "a client accepted a server with a migration-only certificate "
				  "(%d)", rc);
	/* (TLS 1.3: the server may have finished before the client's verdict;
	 * it reads the alert next.) */
}
