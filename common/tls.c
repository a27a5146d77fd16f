/* SPDX-License-Identifier: MIT */
/* GnuTLS sessions with mutual certificate authentication (common/tls.h). */
#include <ctype.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <sys/stat.h>

#include "common/loop.h"
#include "common/tls.h"

struct qv_tls_creds {
	gnutls_certificate_credentials_t cred;
	enum qv_tls_role role;
	char dn[QV_TLS_DN_MAX];
};

struct qv_tls {
	gnutls_session_t s;
	int fd;
	bool server;
	size_t retry_len; /* a record queued by a send that returned AGAIN */
	char peer_dn[QV_TLS_DN_MAX];
};

static int tls_errno(int gr)
{
	switch (gr) {
	case GNUTLS_E_AGAIN:
	case GNUTLS_E_INTERRUPTED:
		return -EAGAIN;
	case GNUTLS_E_MEMORY_ERROR:
		return -ENOMEM;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return -ECONNRESET;
	case GNUTLS_E_FATAL_ALERT_RECEIVED: /* e.g. the peer refused our certificate */
	case GNUTLS_E_CERTIFICATE_REQUIRED: /* none offered that our CA signed */
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
		return -EACCES;
	default:
		return -EPROTO;
	}
}

/* OU=QV_PKI_MIGRATION_OU anywhere in the subject (common/tls.h). */
static bool crt_is_migration(gnutls_x509_crt_t crt)
{
	for (unsigned i = 0; i < 8; i++) {
		char ou[128];
		size_t n = sizeof(ou);
		int gr = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME,
						       i, 0, ou, &n);
		if (gr == GNUTLS_E_SHORT_MEMORY_BUFFER)
			continue; /* longer than ours: not the marker */
		if (gr < 0)
			return false;
		if (streq(ou, QV_PKI_MIGRATION_OU))
			return true;
	}
	return false;
}

/* The PEM certificate in path: its DN into ret_dn (when set), whether
 * it is a migration-only one (when ret_mig is set), whether it names
 * `name` (when ret_named is set). */
static int cert_file_info(const char *path, char *ret_dn, size_t size, bool *ret_mig,
			  const char *name, bool *ret_named, struct qv_error *errp)
{
	gnutls_datum_t data = {};
	gnutls_x509_crt_t crt = NULL;
	size_t n = size;
	int gr;

	if (gnutls_load_file(path, &data) < 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "cannot read %s", path);
	gr = gnutls_x509_crt_init(&crt);
	if (gr >= 0)
		gr = gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_PEM);
	/* The same call QEMU uses for a peer's name in tls-authz. */
	if (gr >= 0 && ret_dn)
		gr = gnutls_x509_crt_get_dn(crt, ret_dn, &n);
	if (gr >= 0 && ret_mig)
		*ret_mig = crt_is_migration(crt);
	if (gr >= 0 && ret_named)
		*ret_named = gnutls_x509_crt_check_hostname2(crt, name,
							     GNUTLS_VERIFY_DO_NOT_ALLOW_WILDCARDS);
	gnutls_x509_crt_deinit(crt);
	gnutls_free(data.data);
	if (gr < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s is not a usable PEM certificate: %s", path,
				    gnutls_strerror(gr));
	return 0;
}

int qv_tls_cert_file_is_migration(const char *path, bool *ret, struct qv_error *errp)
{
	return cert_file_info(path, NULL, 0, ret, NULL, NULL, errp);
}

int qv_tls_cert_file_dn(const char *path, char *ret_dn, size_t size, struct qv_error *errp)
{
	return cert_file_info(path, ret_dn, size, NULL, NULL, NULL, errp);
}

int qv_tls_cert_file_has_name(const char *path, const char *name, bool *ret,
			      struct qv_error *errp)
{
	return cert_file_info(path, NULL, 0, NULL, name, ret, errp);
}

/* dir/name into buf; the key must not be readable by group or others. */
static int pki_file(const char *dir, const char *name, bool key, char *buf, size_t size,
		    struct qv_error *errp)
{
	struct stat sb;

	if (snprintf(buf, size, "%s/%s", dir, name) >= (int)size)
		return qv_error_set(errp, ENAMETOOLONG, QV_REASON_INVALID_ARGUMENT,
				    "PKI path %s/%s is too long", dir, name);
	if (stat(buf, &sb) < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND,
				    "%s: %s (create it with `qvisor pki init` / `qvisor pki "
				    "issue HOST`)", buf, strerror(errno));
	if (key && (sb.st_mode & 077))
		return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
				    "%s is readable by others (mode %04o); chmod 0600 it", buf,
				    (unsigned)(sb.st_mode & 07777));
	return 0;
}

int qv_tls_creds_load(const char *dir, enum qv_tls_role role, qv_tls_creds **ret_creds,
		      struct qv_error *errp)
{
	char ca[4096], cert[4096], key[4096];
	qv_tls_creds *c;
	int r, gr;

	if ((r = pki_file(dir, QV_PKI_CA_CERT, false, ca, sizeof(ca), errp)) < 0 ||
	    (r = pki_file(dir, role == QV_TLS_SERVER ? QV_PKI_SERVER_CERT : QV_PKI_CLIENT_CERT,
			  false, cert, sizeof(cert), errp)) < 0 ||
	    (r = pki_file(dir, role == QV_TLS_SERVER ? QV_PKI_SERVER_KEY : QV_PKI_CLIENT_KEY,
			  true, key, sizeof(key), errp)) < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->role = role;
	gr = gnutls_certificate_allocate_credentials(&c->cred);
	if (gr < 0) {
		free(c);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "gnutls: %s",
				    gnutls_strerror(gr));
	}
	gr = gnutls_certificate_set_x509_trust_file(c->cred, ca, GNUTLS_X509_FMT_PEM);
	if (gr <= 0) {
		qv_tls_creds_free(c);
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s holds no usable CA certificate%s%s", ca, gr < 0 ? ": " : "",
				    gr < 0 ? gnutls_strerror(gr) : "");
	}
	gr = gnutls_certificate_set_x509_key_file(c->cred, cert, key, GNUTLS_X509_FMT_PEM);
	if (gr < 0) {
		qv_tls_creds_free(c);
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "cannot use %s with %s: %s", cert, key, gnutls_strerror(gr));
	}
	r = qv_tls_cert_file_dn(cert, c->dn, sizeof(c->dn), errp);
	if (r < 0) {
		qv_tls_creds_free(c);
		return r;
	}
	*ret_creds = c;
	return 0;
}

qv_tls_creds *qv_tls_creds_free(qv_tls_creds *c)
{
	if (c) {
		if (c->cred)
			gnutls_certificate_free_credentials(c->cred);
		free(c);
	}
	return NULL;
}

void qv_tls_creds_freep(qv_tls_creds **c)
{
	*c = qv_tls_creds_free(*c);
}

const char *qv_tls_creds_dn(const qv_tls_creds *c)
{
	return c->dn;
}

int qv_tls_new(const qv_tls_creds *creds, int fd, const char *hostname, qv_tls **ret_tls,
	       struct qv_error *errp)
{
	bool server = creds->role == QV_TLS_SERVER;
	qv_tls *t = calloc(1, sizeof(*t));
	int gr;

	if (!t)
		return -ENOMEM;
	t->fd = fd;
	t->server = server;
	gr = gnutls_init(&t->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK);
	if (gr < 0) {
		free(t);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "gnutls_init: %s",
				    gnutls_strerror(gr));
	}
	gr = gnutls_set_default_priority(t->s);
	if (gr >= 0)
		gr = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, creds->cred);
	if (gr >= 0 && server)
		gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
	if (gr >= 0 && hostname && !server)
		gr = gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, hostname, strlen(hostname));
	/* Verified inside the handshake: the CA chain both ways, the name
	 * for a client. */
	if (gr >= 0)
		gnutls_session_set_verify_cert(t->s, server ? NULL : hostname, 0);
	if (gr < 0) {
		qv_tls_free(t);
		return qv_error_set(errp, EINVAL, QV_REASON_INTERNAL, "gnutls: %s",
				    gnutls_strerror(gr));
	}
	gnutls_transport_set_int(t->s, fd);
	gnutls_handshake_set_timeout(t->s, 0);
	*ret_tls = t;
	return 0;
}

qv_tls *qv_tls_free(qv_tls *t)
{
	if (t) {
		if (t->s)
			gnutls_deinit(t->s);
		free(t);
	}
	return NULL;
}

void qv_tls_freep(qv_tls **t)
{
	*t = qv_tls_free(*t);
}

/* The verified peer's DN into t->peer_dn; false when the peer presented
 * a migration-only certificate (or none that parses). */
static bool record_peer_dn(qv_tls *t)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
	gnutls_x509_crt_t crt;
	size_t len = sizeof(t->peer_dn);
	bool ok = true;

	t->peer_dn[0] = '\0';
	if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return false;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_crt_get_dn(crt, t->peer_dn, &len) < 0) {
		t->peer_dn[0] = '\0';
		ok = false;
	} else if (crt_is_migration(crt)) {
		ok = false;
	}
	gnutls_x509_crt_deinit(crt);
	return ok;
}

int qv_tls_handshake(qv_tls *t, struct qv_error *errp)
{
	int gr = gnutls_handshake(t->s);

	if (gr == GNUTLS_E_SUCCESS) {
		if (record_peer_dn(t))
			return 0;
		/* A QEMU's identity never speaks for a daemon (or a CLI). The
		 * alert is best effort: the caller closes the socket anyway. */
		(void)gnutls_alert_send(t->s, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
		return qv_error_set(errp, EACCES, QV_REASON_PERMISSION,
				    "TLS: the %s presented a migration-only certificate (%s, OU=%s), "
				    "which is refused for RPC",
				    t->server ? "client" : "server",
				    t->peer_dn[0] ? t->peer_dn : "no usable subject",
				    QV_PKI_MIGRATION_OU);
	}
	if (gr == GNUTLS_E_REHANDSHAKE || gr == GNUTLS_E_GOT_APPLICATION_DATA)
		return qv_error_set(errp, EPROTO, QV_REASON_UNAVAILABLE,
				    "TLS: renegotiation is not supported");
	if (gr == GNUTLS_E_AGAIN || gr == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(gr))
		return -EAGAIN;
	if (gr == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t out = {};
		unsigned status = gnutls_session_get_verify_cert_status(t->s);
		gnutls_certificate_type_t type = gnutls_certificate_type_get(t->s);
		if (gnutls_certificate_verification_status_print(status, type, &out, 0) >= 0) {
			int r = qv_error_set(errp, EACCES, QV_REASON_PERMISSION,
					     "TLS: the %s's certificate was refused: %s",
					     t->server ? "client" : "server", (char *)out.data);
			gnutls_free(out.data);
			return r;
		}
	}
	if (gr == GNUTLS_E_CERTIFICATE_REQUIRED)
		return qv_error_set(errp, EACCES, QV_REASON_PERMISSION,
				    "TLS: the client presented no certificate signed by the CA");
	return qv_error_set(errp, -tls_errno(gr),
			    tls_errno(gr) == -EACCES ? QV_REASON_PERMISSION : QV_REASON_UNAVAILABLE,
			    "TLS handshake failed: %s", gnutls_strerror(gr));
}

int qv_tls_handshake_wait(qv_tls *t, int timeout_ms, struct qv_error *errp)
{
	uint64_t deadline = qv_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int r = qv_tls_handshake(t, errp);
		if (r != -EAGAIN)
			return r;
		int64_t left = (int64_t)(deadline - qv_now_ms());
		if (left <= 0)
			return qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
					    "the peer did not answer the TLS handshake within %d ms",
					    timeout_ms);
		struct pollfd p = { .fd = t->fd, .events = qv_tls_want_write(t) ? POLLOUT : POLLIN };
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "poll: %s",
					    strerror(errno));
	}
}

bool qv_tls_want_write(const qv_tls *t)
{
	return gnutls_record_get_direction(t->s) == 1;
}

ssize_t qv_tls_read(qv_tls *t, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = gnutls_record_recv(t->s, buf, len);
		if (n >= 0)
			return n;
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		/* A peer that just closes the socket ends the stream too. */
		if (n == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		/* TLS 1.2 renegotiation (either side asking): refused, the
		 * session ends. TLS 1.3 key updates are handled by GnuTLS. */
		if (n == GNUTLS_E_REHANDSHAKE) {
			(void)gnutls_alert_send(t->s, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
			return -EPROTO;
		}
		if (n == GNUTLS_E_AGAIN || !gnutls_error_is_fatal((int)n))
			return -EAGAIN;
		return tls_errno((int)n);
	}
}

ssize_t qv_tls_write(qv_tls *t, const void *buf, size_t len)
{
	size_t chunk = len > 16384 ? 16384 : len;
	ssize_t n;

	if (t->retry_len) {
		/* GnuTLS holds the encrypted record: flush it, same length. */
		n = gnutls_record_send(t->s, NULL, 0);
		if (n >= 0) {
			n = (ssize_t)t->retry_len;
			t->retry_len = 0;
		}
	} else {
		n = gnutls_record_send(t->s, buf, chunk);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			t->retry_len = chunk;
	}
	if (n >= 0)
		return n;
	return tls_errno((int)n);
}

size_t qv_tls_pending(const qv_tls *t)
{
	return gnutls_record_check_pending(t->s);
}

const char *qv_tls_peer_dn(const qv_tls *t)
{
	return t->peer_dn;
}

bool qv_tls_peer_has_name(const qv_tls *t, const char *name)
{
	unsigned n = 0;
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	bool ok = false;

	if (!t || !name || !*name || !t->peer_dn[0])
		return false;
	certs = gnutls_certificate_get_peers(t->s, &n);
	if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return false;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0)
		ok = gnutls_x509_crt_check_hostname2(crt, name,
						     GNUTLS_VERIFY_DO_NOT_ALLOW_WILDCARDS) != 0;
	gnutls_x509_crt_deinit(crt);
	return ok;
}

int qv_parse_host_port(const char *s, int default_port, char *ret_host, size_t host_size,
		       int *ret_port, struct qv_error *errp)
{
	const char *h = s, *end, *colon;
	size_t hl;

	if (*s == '[') {
		end = strchr(s, ']');
		if (!end)
			goto bad;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			goto bad;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			goto bad; /* bare IPv6 needs brackets */
		hl = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (hl == 0 || hl >= host_size || h[0] == '-')
		goto bad;
	for (size_t i = 0; i < hl; i++)
		if (!isalnum((unsigned char)h[i]) && !strchr(".-:", h[i]))
			goto bad;
	*ret_port = default_port;
	if (colon) {
		char *e;
		long p = strtol(colon + 1, &e, 10);
		if (!colon[1] || *e || p < 1 || p > 65535)
			goto bad;
		*ret_port = (int)p;
	}
	memcpy(ret_host, h, hl);
	ret_host[hl] = '\0';
	return 0;
bad:
	return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
			    "invalid address \"%.100s\" (HOST[:PORT] or [IPv6][:PORT])", s);
}
