/* SPDX-License-Identifier: MIT */
/* cluster/etcd.c against a real etcd 3.4 started by each test. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/etcd.h"
#include "common/macro.h"
#include "common/pki.h"
#include "helpers/etcd.h"

static struct qvt_etcd member;
static char pki[64];

static void fini(void)
{
	qvt_etcd_cleanup(&member);
	if (pki[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", pki);
		(void)system(cmd);
	}
}

TestSuite(etcd, .fini = fini, .timeout = 60);

/* A plain member on 127.0.0.1 and a client for it. */
static qv_etcd *start_plain(void)
{
	const char *why = qvt_etcd_missing();
	struct qvt_etcd_opts o = {};
	struct qv_error err = {};
	qv_etcd *c = NULL;

	if (why)
		cr_skip_test("%s", why);
	cr_assert_eq(qvt_etcd_start(&member, &o), 0);
	cr_assert_eq(qvt_etcd_wait(&member, NULL, 20000), 0, "etcd did not come up (log %s)",
		     member.log);
	struct qv_etcd_opts co = { .endpoints = member.client_url };
	cr_assert_eq(qv_etcd_new(&co, &c, &err), 0, "%s", err.message);
	return c;
}

Test(etcd, put_get_list_delete)
{
	_cleanup_etcd_ qv_etcd *c = start_plain();
	struct qv_error err = {};
	struct qv_etcd_kv kv, *kvs = NULL;
	int64_t rev = 0;
	size_t n = 0;

	cr_assert_eq(qv_etcd_put(c, "/t/a", "{\"x\":1}", 0, &rev, &err), 0, "%s", err.message);
	cr_assert_gt(rev, 0);
	cr_assert_eq(qv_etcd_put(c, "/t/b", "two", 0, NULL, &err), 0);
	cr_assert_eq(qv_etcd_put(c, "/u/c", "other prefix", 0, NULL, &err), 0);
	cr_assert_eq(qv_etcd_get(c, "/t/a", &kv, &err), 0, "%s", err.message);
	cr_assert_str_eq(kv.value, "{\"x\":1}");
	cr_assert_eq(kv.mod_revision, rev);
	cr_assert_eq(kv.create_revision, rev);
	qv_etcd_kv_done(&kv);
	cr_assert_eq(qv_etcd_list(c, "/t/", &kvs, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(kvs[0].key, "/t/a");
	cr_assert_str_eq(kvs[1].key, "/t/b");
	cr_assert_str_eq(kvs[1].value, "two");
	qv_etcd_kvs_free(kvs, n);
	cr_assert_eq(qv_etcd_delete(c, "/t/a", &err), 0);
	err = (struct qv_error){};
	cr_assert_eq(qv_etcd_get(c, "/t/a", &kv, &err), -ENOENT);
	cr_assert_str_eq(err.reason, QV_REASON_NOT_FOUND);
	cr_assert_eq(qv_etcd_delete(c, "/t/a", &err), -ENOENT);
}

Test(etcd, txn_compare_on_revision)
{
	_cleanup_etcd_ qv_etcd *c = start_plain();
	struct qv_error err = {};
	int64_t r1 = 0, r2 = 0;

	/* Create only if absent: the second creator loses. */
	cr_assert_eq(qv_etcd_put_if(c, "/vm/x", "owner=a", 0, 0, &r1, &err), 0, "%s",
		     err.message);
	err = (struct qv_error){};
	cr_assert_eq(qv_etcd_put_if(c, "/vm/x", "owner=b", 0, 0, NULL, &err), -ESTALE);
	cr_assert_str_eq(err.reason, QV_REASON_CONFLICT);
	/* Update on the revision we read; a second update on the same (now
	 * stale) revision loses. */
	err = (struct qv_error){};
	cr_assert_eq(qv_etcd_put_if(c, "/vm/x", "owner=a,rev2", 0, r1, &r2, &err), 0, "%s",
		     err.message);
	cr_assert_gt(r2, r1);
	cr_assert_eq(qv_etcd_put_if(c, "/vm/x", "owner=b", 0, r1, NULL, &err), -ESTALE);
	cr_assert_eq(qv_etcd_delete_if(c, "/vm/x", r1, &err), -ESTALE);
	struct qv_etcd_kv kv;
	cr_assert_eq(qv_etcd_get(c, "/vm/x", &kv, &err), 0);
	cr_assert_str_eq(kv.value, "owner=a,rev2");
	qv_etcd_kv_done(&kv);
	cr_assert_eq(qv_etcd_delete_if(c, "/vm/x", r2, &err), 0, "%s", err.message);
	cr_assert_eq(qv_etcd_get(c, "/vm/x", &kv, &err), -ENOENT);
}

Test(etcd, lease_keepalive_and_expiry)
{
	_cleanup_etcd_ qv_etcd *c = start_plain();
	struct qv_error err = {};
	struct qv_etcd_kv kv;
	int64_t lease = 0, ttl = 0;

	cr_assert_eq(qv_etcd_lease_grant(c, 2, &lease, &err), 0, "%s", err.message);
	cr_assert_eq(qv_etcd_put(c, "/hosts/h1", "alive", lease, NULL, &err), 0);
	/* Kept alive past its TTL, the key stays. */
	for (int i = 0; i < 6; i++) {
		usleep(500 * 1000);
		cr_assert_eq(qv_etcd_lease_keepalive(c, lease, &ttl, &err), 0, "%s", err.message);
		cr_assert_gt(ttl, 0);
	}
	cr_assert_eq(qv_etcd_get(c, "/hosts/h1", &kv, &err), 0, "key gone while kept alive");
	cr_assert_eq(kv.lease, lease);
	qv_etcd_kv_done(&kv);
	/* Left alone, it expires with its key. */
	int r = 0;
	for (int t = 0; t < 100 && (r = qv_etcd_get(c, "/hosts/h1", &kv, &err)) == 0; t++) {
		qv_etcd_kv_done(&kv);
		usleep(100 * 1000);
	}
	cr_assert_eq(r, -ENOENT, "the key outlived its lease");
	cr_assert_eq(qv_etcd_lease_keepalive(c, lease, &ttl, &err), -ENOENT);
	/* Revoke drops the keys at once. */
	cr_assert_eq(qv_etcd_lease_grant(c, 30, &lease, &err), 0);
	cr_assert_eq(qv_etcd_put(c, "/hosts/h2", "alive", lease, NULL, &err), 0);
	cr_assert_eq(qv_etcd_lease_revoke(c, lease, &err), 0, "%s", err.message);
	cr_assert_eq(qv_etcd_get(c, "/hosts/h2", &kv, &err), -ENOENT);
}

Test(etcd, unreachable_is_clear)
{
	_cleanup_etcd_ qv_etcd *c = NULL;
	struct qv_error err = {};
	char url[64];
	struct qv_etcd_kv kv;
	struct qv_etcd_opts o = { .endpoints = url, .timeout_ms = 500 };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", qvt_free_port());
	cr_assert_eq(qv_etcd_new(&o, &c, &err), 0);
	cr_assert_eq(qv_etcd_get(c, "/x", &kv, &err), -EHOSTUNREACH);
	cr_assert_str_eq(err.reason, QV_REASON_UNAVAILABLE);
	cr_assert(strstr(err.message, "etcd unreachable"), "%s", err.message);
	qv_etcd_free(TAKE_PTR(c));
	o.endpoints = "ftp://x";
	err = (struct qv_error){};
	cr_assert_eq(qv_etcd_new(&o, &c, &err), -EINVAL);
	cr_assert(strstr(err.message, "invalid etcd endpoint"), "%s", err.message);
}

/* A second endpoint is used when the first is dead. */
Test(etcd, failover_to_next_endpoint)
{
	_cleanup_etcd_ qv_etcd *c = NULL;
	struct qvt_etcd_opts mo = {};
	struct qv_error err = {};
	struct qv_etcd_kv kv;
	char eps[256];

	if (qvt_etcd_missing())
		cr_skip_test("%s", qvt_etcd_missing());
	cr_assert_eq(qvt_etcd_start(&member, &mo), 0);
	cr_assert_eq(qvt_etcd_wait(&member, NULL, 20000), 0);
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s", qvt_free_port(), member.client_url);
	struct qv_etcd_opts o = { .endpoints = eps, .timeout_ms = 1000 };
	cr_assert_eq(qv_etcd_new(&o, &c, &err), 0);
	cr_assert_eq(qv_etcd_put(c, "/f", "v", 0, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(qv_etcd_get(c, "/f", &kv, &err), 0);
	qv_etcd_kv_done(&kv);
	cr_assert_str_eq(qv_etcd_endpoint(c), member.client_url);
}

Test(etcd, tls_needs_a_client_certificate)
{
	struct qv_error err = {};
	const char *names[] = { "127.0.0.1" };
	char tmpl[] = "/tmp/qvpki-XXXXXX", other[96];
	struct qv_etcd_kv kv;

	if (qvt_etcd_missing())
		cr_skip_test("%s", qvt_etcd_missing());
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(pki, sizeof(pki), "%s", tmpl);
	cr_assert_eq(qv_pki_init(pki, "qvisor test CA", 30, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(pki, pki, "127.0.0.1", names, 1, 30, &err), 0, "%s",
		     err.message);
	/* A stranger: certificates from another CA. */
	snprintf(other, sizeof(other), "%s/other", pki);
	cr_assert_eq(qv_pki_init(other, "stranger CA", 30, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(other, other, "127.0.0.1", names, 1, 30, &err), 0);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "cp %s/ca-cert.pem %s/ca-cert.pem", pki, other);
	cr_assert_eq(system(cmd), 0);

	struct qvt_etcd_opts mo = { .pki_dir = pki };
	cr_assert_eq(qvt_etcd_start(&member, &mo), 0);
	cr_assert_eq(qvt_etcd_wait(&member, pki, 20000), 0, "TLS etcd did not come up (log %s)",
		     member.log);

	/* With our client certificate: served. */
	_cleanup_etcd_ qv_etcd *ok = NULL, *bare = NULL, *stranger = NULL;
	struct qv_etcd_opts o = { .endpoints = member.client_url, .pki_dir = pki };
	cr_assert_eq(qv_etcd_new(&o, &ok, &err), 0, "%s", err.message);
	cr_assert_eq(qv_etcd_put(ok, "/tls", "yes", 0, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(qv_etcd_get(ok, "/tls", &kv, &err), 0, "%s", err.message);
	qv_etcd_kv_done(&kv);
	/* Without one: refused, nothing read. */
	o.no_client_cert = true;
	o.timeout_ms = 2000;
	cr_assert_eq(qv_etcd_new(&o, &bare, &err), 0);
	err = (struct qv_error){};
	int r = qv_etcd_get(bare, "/tls", &kv, &err);
	cr_assert_lt(r, 0, "etcd answered a client without a certificate");
	cr_log_info("no client cert: %s", err.message);
	/* With a certificate from another CA: refused too. */
	o.no_client_cert = false;
	o.pki_dir = other;
	cr_assert_eq(qv_etcd_new(&o, &stranger, &err), 0, "%s", err.message);
	r = qv_etcd_get(stranger, "/tls", &kv, &err);
	cr_assert_lt(r, 0, "etcd answered a stranger's certificate");
	/* Plain http to a TLS member: refused as well. */
	char plain[96];
	snprintf(plain, sizeof(plain), "http://%s", member.client_url + strlen("https://"));
	_cleanup_etcd_ qv_etcd *p = NULL;
	struct qv_etcd_opts po = { .endpoints = plain, .timeout_ms = 2000 };
	cr_assert_eq(qv_etcd_new(&po, &p, &err), 0);
	cr_assert_lt(qv_etcd_get(p, "/tls", &kv, &err), 0);
}
