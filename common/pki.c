/* SPDX-License-Identifier: MIT */
/* A lab CA and host certificates with the GnuTLS x509 API (common/pki.h). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "common/pki.h"
#include "common/tls.h"

#define KEY_BITS 2048

static void crtp(gnutls_x509_crt_t *c)
{
	if (*c)
		gnutls_x509_crt_deinit(*c);
}

static void keyp(gnutls_x509_privkey_t *k)
{
	if (*k)
		gnutls_x509_privkey_deinit(*k);
}

#define _cleanup_crt_ _cleanup_(crtp)
#define _cleanup_key_ _cleanup_(keyp)

static int gerr(struct qv_error *errp, int gr, const char *what)
{
	return qv_error_set(errp, EINVAL, QV_REASON_INTERNAL, "%s: %s", what, gnutls_strerror(gr));
}

static int mkdir_one(const char *dir, struct qv_error *errp)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot create %s: %s", dir,
				    strerror(errno));
	return 0;
}

/* Write data to dir/name with mode, refusing to replace anything. */
static int write_new(const char *dir, const char *name, const gnutls_datum_t *d, mode_t mode,
		     struct qv_error *errp)
{
	char path[PATH_MAX];
	_cleanup_close_ int fd = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return qv_error_set(errp, errno, errno == EEXIST ? QV_REASON_CONFLICT
								 : QV_REASON_IO_ERROR,
				    "cannot create %s: %s%s", path, strerror(errno),
				    errno == EEXIST ? " (remove it first to replace it)" : "");
	if (fchmod(fd, mode) < 0 || write(fd, d->data, d->size) != (ssize_t)d->size) {
		int e = errno ? errno : EIO;
		unlink(path);
		return qv_error_set(errp, e, QV_REASON_IO_ERROR, "cannot write %s: %s", path,
				    strerror(e));
	}
	return 0;
}

static int export_pair(const char *dir, const char *cert_name, gnutls_x509_crt_t crt,
		       const char *key_name, gnutls_x509_privkey_t key, struct qv_error *errp)
{
	gnutls_datum_t c = {}, k = {};
	int gr, r;

	gr = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c);
	if (gr < 0)
		return gerr(errp, gr, "export certificate");
	gr = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &k);
	if (gr < 0) {
		gnutls_free(c.data);
		return gerr(errp, gr, "export key");
	}
	r = write_new(dir, key_name, &k, 0600, errp);
	if (r >= 0) {
		r = write_new(dir, cert_name, &c, 0644, errp);
		if (r < 0) {
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", dir, key_name);
			unlink(p);
		}
	}
	gnutls_free(c.data);
	gnutls_free(k.data);
	return r;
}

/* A fresh key and a v3 certificate for it with CN=cn,O=qvisor, a random
 * serial and the validity window; extensions are up to the caller. */
static int new_cert(const char *cn, const char *ou, unsigned days,
		    gnutls_x509_privkey_t *ret_key, gnutls_x509_crt_t *ret_crt,
		    struct qv_error *errp)
{
	unsigned char serial[16];
	time_t now = time(NULL);
	int gr;

	if (getrandom(serial, sizeof(serial), 0) != sizeof(serial))
		return qv_error_set(errp, EIO, QV_REASON_INTERNAL, "no randomness");
	serial[0] &= 0x7f; /* positive */
	if ((gr = gnutls_x509_privkey_init(ret_key)) < 0 ||
	    (gr = gnutls_x509_privkey_generate(*ret_key, GNUTLS_PK_RSA, KEY_BITS, 0)) < 0)
		return gerr(errp, gr, "key generation");
	if ((gr = gnutls_x509_crt_init(ret_crt)) < 0 ||
	    (gr = gnutls_x509_crt_set_version(*ret_crt, 3)) < 0 ||
	    (gr = gnutls_x509_crt_set_serial(*ret_crt, serial, sizeof(serial))) < 0 ||
	    (gr = gnutls_x509_crt_set_activation_time(*ret_crt, now - 3600)) < 0 ||
	    (gr = gnutls_x509_crt_set_expiration_time(*ret_crt, now + (time_t)days * 86400)) < 0 ||
	    (gr = gnutls_x509_crt_set_dn_by_oid(*ret_crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
						"qvisor", 6)) < 0 ||
	    (ou && (gr = gnutls_x509_crt_set_dn_by_oid(*ret_crt,
						       GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME, 0,
						       ou, strlen(ou))) < 0) ||
	    (gr = gnutls_x509_crt_set_dn_by_oid(*ret_crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						strlen(cn))) < 0 ||
	    (gr = gnutls_x509_crt_set_key(*ret_crt, *ret_key)) < 0)
		return gerr(errp, gr, "certificate");
	return 0;
}

static int set_key_id(gnutls_x509_crt_t crt, struct qv_error *errp)
{
	unsigned char id[64];
	size_t n = sizeof(id);
	int gr = gnutls_x509_crt_get_key_id(crt, 0, id, &n);

	if (gr >= 0)
		gr = gnutls_x509_crt_set_subject_key_id(crt, id, n);
	return gr < 0 ? gerr(errp, gr, "subject key id") : 0;
}

int qv_pki_init(const char *dir, const char *cn, unsigned days, struct qv_error *errp)
{
	_cleanup_key_ gnutls_x509_privkey_t key = NULL;
	_cleanup_crt_ gnutls_x509_crt_t crt = NULL;
	int gr, r;

	if ((r = mkdir_one(dir, errp)) < 0 || (r = new_cert(cn, NULL, days, &key, &crt, errp)) < 0)
		return r;
	if ((gr = gnutls_x509_crt_set_basic_constraints(crt, 1, -1)) < 0 ||
	    (gr = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN |
							     GNUTLS_KEY_CRL_SIGN)) < 0)
		return gerr(errp, gr, "CA extensions");
	if ((r = set_key_id(crt, errp)) < 0)
		return r;
	gr = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
	if (gr < 0)
		return gerr(errp, gr, "self-signing the CA");
	return export_pair(dir, QV_PKI_CA_CERT, crt, QV_PKI_CA_KEY, key, errp);
}

static int load_ca(const char *dir, gnutls_x509_crt_t *ret_crt, gnutls_x509_privkey_t *ret_key,
		   struct qv_error *errp)
{
	char path[PATH_MAX];
	gnutls_datum_t d = {};
	int gr;

	snprintf(path, sizeof(path), "%s/%s", dir, QV_PKI_CA_CERT);
	if (gnutls_load_file(path, &d) < 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
				    "cannot read %s (run `qvisor pki init` first)", path);
	gr = gnutls_x509_crt_init(ret_crt);
	if (gr >= 0)
		gr = gnutls_x509_crt_import(*ret_crt, &d, GNUTLS_X509_FMT_PEM);
	gnutls_free(d.data);
	if (gr < 0)
		return gerr(errp, gr, path);
	snprintf(path, sizeof(path), "%s/%s", dir, QV_PKI_CA_KEY);
	if (gnutls_load_file(path, &d) < 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
				    "cannot read the CA key %s", path);
	gr = gnutls_x509_privkey_init(ret_key);
	if (gr >= 0)
		gr = gnutls_x509_privkey_import(*ret_key, &d, GNUTLS_X509_FMT_PEM);
	gnutls_free(d.data);
	return gr < 0 ? gerr(errp, gr, path) : 0;
}

static int add_san(gnutls_x509_crt_t crt, const char *name)
{
	unsigned char ip[16];

	if (inet_pton(AF_INET, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
							    GNUTLS_FSAN_APPEND);
	if (inet_pton(AF_INET6, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16,
							    GNUTLS_FSAN_APPEND);
	return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name, strlen(name),
						    GNUTLS_FSAN_APPEND);
}

enum leaf_kind { LEAF_SERVER, LEAF_CLIENT, LEAF_MIGRATION };

static const struct {
	const char *cert, *key, *ou;
	bool server, client; /* TLS WWW purposes */
} leaves[] = {
	/* clientAuth too: etcd 3.4's JSON gateway dials its own gRPC port
	 * presenting the member's server certificate, which --client-cert-auth
	 * then checks as a client (docs/cluster.md "TLS"). */
	[LEAF_SERVER] = { QV_PKI_SERVER_CERT, QV_PKI_SERVER_KEY, NULL, true, true },
	[LEAF_CLIENT] = { QV_PKI_CLIENT_CERT, QV_PKI_CLIENT_KEY, NULL, false, true },
	/* QEMU accepts and presents it as either end of a stream. */
	[LEAF_MIGRATION] = { QV_PKI_MIGRATE_CERT, QV_PKI_MIGRATE_KEY, QV_PKI_MIGRATION_OU, true,
			     true },
};

static int leaf_extensions(gnutls_x509_crt_t crt, enum leaf_kind kind, const char *host,
			   const char *const *names, size_t n_names, struct qv_error *errp)
{
	int gr;

	if ((gr = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (gr = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
							     GNUTLS_KEY_KEY_ENCIPHERMENT)) < 0 ||
	    (leaves[kind].server &&
	     (gr = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0) ||
	    (leaves[kind].client &&
	     (gr = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0))
		return gerr(errp, gr, "certificate extensions");
	if (!leaves[kind].server)
		return 0;
	if ((gr = add_san(crt, host)) < 0)
		return gerr(errp, gr, host);
	for (size_t i = 0; i < n_names; i++)
		if ((gr = add_san(crt, names[i])) < 0)
			return gerr(errp, gr, names[i]);
	return 0;
}

/* One leaf certificate signed by the CA. */
static int issue_one(gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key, const char *out_dir,
		     enum leaf_kind kind, const char *host, const char *const *names,
		     size_t n_names, unsigned days, struct qv_error *errp)
{
	_cleanup_key_ gnutls_x509_privkey_t key = NULL;
	_cleanup_crt_ gnutls_x509_crt_t crt = NULL;
	unsigned char akid[64];
	size_t akid_len = sizeof(akid);
	int gr, r;

	if ((r = new_cert(host, leaves[kind].ou, days, &key, &crt, errp)) < 0 ||
	    (r = leaf_extensions(crt, kind, host, names, n_names, errp)) < 0 ||
	    (r = set_key_id(crt, errp)) < 0)
		return r;
	if (gnutls_x509_crt_get_subject_key_id(ca, akid, &akid_len, NULL) >= 0)
		(void)gnutls_x509_crt_set_authority_key_id(crt, akid, akid_len);
	gr = gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256, 0);
	if (gr < 0)
		return gerr(errp, gr, "signing");
	return export_pair(out_dir, leaves[kind].cert, crt, leaves[kind].key, key, errp);
}

static bool name_ok(const char *s)
{
	if (!*s || strlen(s) > 253 || *s == '-' || *s == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(".-:", *s)))
			return false;
	return true;
}

static int copy_ca(const char *ca_dir, const char *out_dir, struct qv_error *errp)
{
	char a[PATH_MAX], b[PATH_MAX];
	gnutls_datum_t d = {};
	int r;

	if (realpath(ca_dir, a) && realpath(out_dir, b) && streq(a, b))
		return 0;
	snprintf(a, sizeof(a), "%s/%s", ca_dir, QV_PKI_CA_CERT);
	if (gnutls_load_file(a, &d) < 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "cannot read %s", a);
	r = write_new(out_dir, QV_PKI_CA_CERT, &d, 0644, errp);
	gnutls_free(d.data);
	return r;
}

static int check_names(const char *host, const char *const *names, size_t n_names,
		       struct qv_error *errp)
{
	if (!name_ok(host))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid host name \"%.80s\"", host);
	for (size_t i = 0; i < n_names; i++)
		if (!name_ok(names[i]))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "invalid name \"%.80s\"", names[i]);
	return 0;
}

/* Leaves first..last for host, signed by the CA in ca_dir. */
static int issue_range(const char *ca_dir, const char *out_dir, enum leaf_kind first,
		       enum leaf_kind last, const char *host, const char *const *names,
		       size_t n_names, unsigned days, struct qv_error *errp)
{
	_cleanup_key_ gnutls_x509_privkey_t ca_key = NULL;
	_cleanup_crt_ gnutls_x509_crt_t ca = NULL;
	int r;

	if ((r = check_names(host, names, n_names, errp)) < 0 ||
	    (r = load_ca(ca_dir, &ca, &ca_key, errp)) < 0 || (r = mkdir_one(out_dir, errp)) < 0)
		return r;
	for (enum leaf_kind k = first; k <= last; k++)
		if ((r = issue_one(ca, ca_key, out_dir, k, host, names, n_names, days, errp)) < 0)
			return r;
	return 0;
}

int qv_pki_issue(const char *ca_dir, const char *out_dir, const char *host,
		 const char *const *names, size_t n_names, unsigned days, struct qv_error *errp)
{
	int r = issue_range(ca_dir, out_dir, LEAF_SERVER, LEAF_MIGRATION, host, names, n_names,
			    days, errp);

	return r < 0 ? r : copy_ca(ca_dir, out_dir, errp);
}

int qv_pki_issue_migration(const char *ca_dir, const char *out_dir, const char *host,
			   const char *const *names, size_t n_names, unsigned days,
			   struct qv_error *errp)
{
	return issue_range(ca_dir, out_dir, LEAF_MIGRATION, LEAF_MIGRATION, host, names, n_names,
			   days, errp);
}
