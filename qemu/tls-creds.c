/* SPDX-License-Identifier: MIT */
/* TLS credentials, authorization and migration parameters in QEMU
 * (qemu/tls-creds.h). */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/tls.h"
#include "qemu/tls-creds.h"


static const char *const staged_files[] = {
	QV_PKI_CA_CERT, QV_PKI_SERVER_CERT, QV_PKI_SERVER_KEY, QV_PKI_CLIENT_CERT,
	QV_PKI_CLIENT_KEY,
};

void qemu_tls_unstage(const char *dir)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(staged_files); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, staged_files[i]);
		(void)unlink(p);
	}
	(void)rmdir(dir);
}

/* Copy src into dirfd/name (0400, uid:gid), never following links. */
static int copy_one(const char *src, int dirfd, const char *name, uid_t uid, gid_t gid,
		    struct qv_error *errp)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_close_ int out = -1;
	char buf[16384];
	ssize_t n;

	if (in < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND, "cannot read %s: %s", src,
				    strerror(errno));
	out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (out < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot create %s: %s", name,
				    strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return qv_error_set(errp, EIO, QV_REASON_IO_ERROR, "cannot write %s", name);
	if (n < 0 || fchown(out, uid, gid) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot copy %s: %s", src,
				    strerror(errno));
	return 0;
}

/* Whether files a and b hold the same bytes (both readable). */
static bool same_bytes(const char *a, const char *b)
{
	_cleanup_close_ int fa = open(a, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_close_ int fb = open(b, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char ba[4096], bb[4096];
	ssize_t na, nb;

	if (fa < 0 || fb < 0)
		return false;
	do {
		na = read(fa, ba, sizeof(ba));
		nb = read(fb, bb, sizeof(bb));
		if (na != nb || na < 0 || memcmp(ba, bb, (size_t)na) != 0)
			return false;
	} while (na > 0);
	return true;
}

/* The migration-only pair, never the daemon's own identity: the
 * certificate carries the migration marker and the key is neither of the
 * RPC keys (an operator copying server-key.pem over it is caught here). */
static int check_migration_pair(const char *pki_dir, struct qv_error *errp)
{
	char cert[PATH_MAX], key[PATH_MAX], rpc[PATH_MAX];
	bool mig = false;
	int r;

	snprintf(cert, sizeof(cert), "%s/%s", pki_dir, QV_PKI_MIGRATE_CERT);
	snprintf(key, sizeof(key), "%s/%s", pki_dir, QV_PKI_MIGRATE_KEY);
	if (access(cert, F_OK) < 0 || access(key, F_OK) < 0)
		return qv_error_set(errp, ENOENT, QV_REASON_UNAVAILABLE,
				    "%s has no migration-only certificate (%s, %s): create it with "
				    "`qvisor pki issue --migration-only HOST`", pki_dir,
				    QV_PKI_MIGRATE_CERT, QV_PKI_MIGRATE_KEY);
	r = qv_tls_cert_file_is_migration(cert, &mig, errp);
	if (r < 0)
		return r;
	if (!mig)
		return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
				    "%s is not a migration-only certificate (no OU=%s): QEMU gets "
				    "nothing else", cert, QV_PKI_MIGRATION_OU);
	for (int i = 0; i < 2; i++) {
		snprintf(rpc, sizeof(rpc), "%s/%s", pki_dir,
			 i ? QV_PKI_CLIENT_KEY : QV_PKI_SERVER_KEY);
		if (same_bytes(key, rpc))
			return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
					    "%s is the daemon's own key %s: QEMU never gets it", key,
					    rpc);
	}
	return 0;
}

int qemu_tls_stage(const char *pki_dir, bool server, const char *dir, uid_t uid, gid_t gid,
		   struct qv_error *errp)
{
	/* source in pki_dir -> QEMU's name in dir */
	const char *from[] = { QV_PKI_CA_CERT, QV_PKI_MIGRATE_CERT, QV_PKI_MIGRATE_KEY };
	const char *names[] = { QV_PKI_CA_CERT, server ? QV_PKI_SERVER_CERT : QV_PKI_CLIENT_CERT,
				server ? QV_PKI_SERVER_KEY : QV_PKI_CLIENT_KEY };
	_cleanup_close_ int dfd = -1;
	char src[PATH_MAX];
	int r;

	if ((r = check_migration_pair(pki_dir, errp)) < 0)
		return r;
	qemu_tls_unstage(dir);
	if (mkdir(dir, 0700) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot create %s: %s", dir,
				    strerror(errno));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || fchown(dfd, uid, gid) < 0) {
		r = qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot hand %s to QEMU: %s",
				 dir, strerror(errno));
		qemu_tls_unstage(dir);
		return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(src, sizeof(src), "%s/%s", pki_dir, from[i]);
		r = copy_one(src, dfd, names[i], uid, gid, errp);
		if (r < 0) {
			qemu_tls_unstage(dir);
			return r;
		}
	}
	return 0;
}

static json_object *id_args(const char *id)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "id", json_object_new_string(id));
	return a;
}

static int object_replace_steps(qmp_seq *s, json_object *a, const char *id)
{
	int r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "object-del",
						       .args = id_args(id),
						       .tolerate_error = true });
	if (r < 0) {
		json_object_put(a);
		return r;
	}
	return qmp_seq_add_cmd(s, "object-add", a);
}

static json_object *creds_args(const char *dir, bool server)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "qom-type", json_object_new_string("tls-creds-x509"));
	json_object_object_add(a, "id", json_object_new_string(QEMU_TLS_CREDS_ID));
	json_object_object_add(a, "dir", json_object_new_string(dir));
	json_object_object_add(a, "endpoint", json_object_new_string(server ? "server" : "client"));
	/* server: demand a client certificate; client: check the server's */
	json_object_object_add(a, "verify-peer", json_object_new_boolean(true));
	return a;
}

static json_object *authz_args(const char *dn)
{
	json_object *a = json_object_new_object();
	json_object *rules = json_object_new_array(), *rule = json_object_new_object();

	json_object_object_add(rule, "match", json_object_new_string(dn));
	json_object_object_add(rule, "policy", json_object_new_string("allow"));
	json_object_object_add(rule, "format", json_object_new_string("exact"));
	json_object_array_add(rules, rule);
	json_object_object_add(a, "qom-type", json_object_new_string("authz-list"));
	json_object_object_add(a, "id", json_object_new_string(QEMU_TLS_AUTHZ_ID));
	json_object_object_add(a, "policy", json_object_new_string("deny"));
	json_object_object_add(a, "rules", rules);
	return a;
}

static json_object *params_args(bool tls, bool incoming, const char *hostname)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "tls-creds", json_object_new_string(tls ? QEMU_TLS_CREDS_ID : ""));
	if (tls && incoming)
		json_object_object_add(a, "tls-authz", json_object_new_string(QEMU_TLS_AUTHZ_ID));
	if (tls && !incoming && hostname)
		json_object_object_add(a, "tls-hostname", json_object_new_string(hostname));
	return a;
}

int qemu_tls_creds_steps(qmp_seq *s, const char *dir, bool server)
{
	return object_replace_steps(s, creds_args(dir, server), QEMU_TLS_CREDS_ID);
}

int qemu_tls_authz_steps(qmp_seq *s, const char *dn)
{
	return object_replace_steps(s, authz_args(dn), QEMU_TLS_AUTHZ_ID);
}

int qemu_tls_migrate_params_step(qmp_seq *s, bool tls, bool incoming, const char *hostname)
{
	return qmp_seq_add_cmd(s, "migrate-set-parameters", params_args(tls, incoming, hostname));
}
