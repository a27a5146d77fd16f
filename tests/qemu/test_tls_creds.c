/* SPDX-License-Identifier: MIT */
/* qemu/tls-creds.c: what a QEMU may read for TLS is the CA certificate and
 * the host's migration-only pair, never one of the daemon's RPC keys. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/pki.h"
#include "common/tls.h"
#include "qemu/tls-creds.h"

static char base[64], ca[96], host[96], stage[96];

static void setup(void)
{
	struct qv_error err = {};

	snprintf(base, sizeof(base), "/tmp/qvtlscreds-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(ca, sizeof(ca), "%s/ca", base);
	snprintf(host, sizeof(host), "%s/host", base);
	snprintf(stage, sizeof(stage), "%s/stage", base);
	cr_assert_eq(qv_pki_init(ca, "unit CA", 2, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(ca, host, "h.test", NULL, 0, 2, &err), 0, "%s", err.message);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	(void)!system(cmd);
}

TestSuite(tls_creds, .init = setup, .fini = teardown, .timeout = 60);

static char *slurp(const char *dir, const char *name, size_t *ret_len)
{
	char p[256], *buf = NULL;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "r");
	if (!f)
		return NULL;
	buf = calloc(1, 65536);
	*ret_len = fread(buf, 1, 65535, f);
	fclose(f);
	return buf;
}

static bool same(const char *d1, const char *n1, const char *d2, const char *n2)
{
	size_t a = 0, b = 0;
	char *x = slurp(d1, n1, &a), *y = slurp(d2, n2, &b);
	bool eq = x && y && a == b && memcmp(x, y, a) == 0;

	free(x);
	free(y);
	return eq;
}

/* Every file QEMU's directory holds, against every key of the daemon. */
static void assert_no_rpc_key(void)
{
	static const char *const qemu_names[] = { QV_PKI_CA_CERT, QV_PKI_SERVER_CERT,
						  QV_PKI_SERVER_KEY, QV_PKI_CLIENT_CERT,
						  QV_PKI_CLIENT_KEY };
	static const char *const rpc_keys[] = { QV_PKI_SERVER_KEY, QV_PKI_CLIENT_KEY,
						QV_PKI_CA_KEY };

	for (size_t i = 0; i < 5; i++)
		for (size_t j = 0; j < 3; j++)
			cr_assert_not(same(stage, qemu_names[i], host, rpc_keys[j]),
				      "QEMU's %s is the daemon's %s", qemu_names[i], rpc_keys[j]);
}

Test(tls_creds, qemu_gets_the_migration_pair_only)
{
	struct qv_error err = {};
	struct stat sb;
	char p[256];

	for (int server = 0; server < 2; server++) {
		cr_assert_eq(qemu_tls_stage(host, server, stage, getuid(), getgid(), &err), 0, "%s",
			     err.message);
		cr_assert(same(stage, server ? QV_PKI_SERVER_KEY : QV_PKI_CLIENT_KEY, host,
			       QV_PKI_MIGRATE_KEY));
		cr_assert(same(stage, server ? QV_PKI_SERVER_CERT : QV_PKI_CLIENT_CERT, host,
			       QV_PKI_MIGRATE_CERT));
		snprintf(p, sizeof(p), "%s/%s", stage, server ? QV_PKI_SERVER_KEY : QV_PKI_CLIENT_KEY);
		cr_assert_eq(stat(p, &sb), 0);
		cr_assert_eq(sb.st_mode & 07777, 0400);
		assert_no_rpc_key();
		qemu_tls_unstage(stage);
		cr_assert_neq(access(stage, F_OK), 0, "unstage left %s", stage);
	}
}

Test(tls_creds, no_migration_pair_no_staging)
{
	struct qv_error err = {};
	char cmd[512];

	/* missing: refused, with the command that fixes it */
	snprintf(cmd, sizeof(cmd), "rm '%s/%s' '%s/%s'", host, QV_PKI_MIGRATE_CERT, host,
		 QV_PKI_MIGRATE_KEY);
	cr_assert_eq(system(cmd), 0);
	cr_assert_lt(qemu_tls_stage(host, true, stage, getuid(), getgid(), &err), 0);
	cr_assert(strstr(err.message, "--migration-only"), "%s", err.message);
	cr_assert_neq(access(stage, F_OK), 0);
	qv_error_clear(&err);
	/* an operator's "fix" with the RPC pair: refused (no marker) */
	snprintf(cmd, sizeof(cmd), "cp '%s/%s' '%s/%s' && cp -p '%s/%s' '%s/%s'", host,
		 QV_PKI_SERVER_CERT, host, QV_PKI_MIGRATE_CERT, host, QV_PKI_SERVER_KEY, host,
		 QV_PKI_MIGRATE_KEY);
	cr_assert_eq(system(cmd), 0);
	cr_assert_lt(qemu_tls_stage(host, true, stage, getuid(), getgid(), &err), 0);
	cr_assert_str_eq(err.reason, "permission-denied", "%s", err.message);
	qv_error_clear(&err);
	/* a real migration certificate, but the RPC key next to it: refused */
	snprintf(cmd, sizeof(cmd), "rm '%s/%s' '%s/%s'", host, QV_PKI_MIGRATE_CERT, host,
		 QV_PKI_MIGRATE_KEY);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(qv_pki_issue_migration(ca, host, "h.test", NULL, 0, 2, &err), 0, "%s",
		     err.message);
	snprintf(cmd, sizeof(cmd), "cp -p '%s/%s' '%s/%s'", host, QV_PKI_CLIENT_KEY, host,
		 QV_PKI_MIGRATE_KEY);
	cr_assert_eq(system(cmd), 0);
	cr_assert_lt(qemu_tls_stage(host, false, stage, getuid(), getgid(), &err), 0);
	cr_assert(strstr(err.message, "own key"), "%s", err.message);
	cr_assert_neq(access(stage, F_OK), 0);
}
