/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Mutual TLS (GnuTLS) for the daemon-to-daemon RPC transport, shared by the
 * server (daemon/rpc.c) and the client (common/rpc-connect.c).
 *
 * Credentials come from one PKI directory laid out like QEMU's and
 * libvirt's (docs/security.md):
 *   ca-cert.pem                      the cluster CA (trust anchor)
 *   server-cert.pem, server-key.pem  presented when accepting
 *   client-cert.pem, client-key.pem  presented when connecting
 * Both ends verify the peer's certificate against the CA; a client also
 * checks the server's name (tls://HOST), a server requires a client
 * certificate.
 *
 * Sessions run on non-blocking sockets: every call returns -EAGAIN instead
 * of waiting; qv_tls_want_write() tells which direction to poll for. The
 * caller owns the fd. */

#define QV_PKI_DEFAULT_DIR "/etc/qvisor/pki"
#define QV_PKI_CA_CERT "ca-cert.pem"
#define QV_PKI_CA_KEY "ca-key.pem"
#define QV_PKI_SERVER_CERT "server-cert.pem"
#define QV_PKI_SERVER_KEY "server-key.pem"
#define QV_PKI_CLIENT_CERT "client-cert.pem"
#define QV_PKI_CLIENT_KEY "client-key.pem"
/* The migration-only pair (docs/security.md): the only certificate and key
 * a QEMU ever receives, for its migration stream and NBD exports. Its
 * subject carries OU=QV_PKI_MIGRATION_OU; qv_tls sessions (the RPC
 * transport, both directions) refuse a peer presenting such a certificate,
 * so a QEMU taken over by its guest cannot act as the daemon. */
#define QV_PKI_MIGRATE_CERT "migrate-cert.pem"
#define QV_PKI_MIGRATE_KEY "migrate-key.pem"
#define QV_PKI_MIGRATION_OU "qvisor-migration"

#define QV_TLS_DEFAULT_PORT 16515
#define QV_TLS_HANDSHAKE_TIMEOUT_MS 10000
#define QV_TLS_DN_MAX 512

typedef struct qv_tls_creds qv_tls_creds;
typedef struct qv_tls qv_tls;

enum qv_tls_role { QV_TLS_SERVER, QV_TLS_CLIENT };

/* Load ca-cert.pem and the role's certificate and key from dir. Refuses a
 * key file readable by group or others. */
int qv_tls_creds_load(const char *dir, enum qv_tls_role role, qv_tls_creds **ret_creds,
		      struct qv_error *errp);
qv_tls_creds *qv_tls_creds_free(qv_tls_creds *c);
void qv_tls_creds_freep(qv_tls_creds **c);
/* The distinguished name of our own certificate, formatted as GnuTLS (and
 * so QEMU's tls-authz) formats a peer's: "CN=host,O=qvisor". */
const char *qv_tls_creds_dn(const qv_tls_creds *c);
/* The DN of the certificate in file path (PEM). */
int qv_tls_cert_file_dn(const char *path, char *ret_dn, size_t size, struct qv_error *errp);
/* Whether the certificate in path names `name` (qv_tls_peer_has_name's rule). */
int qv_tls_cert_file_has_name(const char *path, const char *name, bool *ret,
			      struct qv_error *errp);

/* Whether the PEM certificate in path is a migration-only one (its
 * subject has OU=QV_PKI_MIGRATION_OU). */
int qv_tls_cert_file_is_migration(const char *path, bool *ret, struct qv_error *errp);

/* A session on connected socket fd. hostname (client only) is the name the
 * server's certificate must carry; NULL for a server. */
int qv_tls_new(const qv_tls_creds *creds, int fd, const char *hostname, qv_tls **ret_tls,
	       struct qv_error *errp);
/* Destroys the session; does not close the fd or send close_notify. */
qv_tls *qv_tls_free(qv_tls *t);
void qv_tls_freep(qv_tls **t);

/* Drive the handshake: 0 done (peer verified), -EAGAIN call again when
 * the fd is ready (qv_tls_want_write()), other -errno: failed (errp says
 * why, e.g. the peer's certificate is not signed by the CA, or it is a
 * migration-only certificate: -EACCES). A peer asking to renegotiate
 * (GNUTLS_E_REHANDSHAKE, TLS 1.2) is refused: qv_tls_read() returns
 * -EPROTO. */
int qv_tls_handshake(qv_tls *t, struct qv_error *errp);
/* Blocking handshake with a deadline (clients): polls the fd itself. */
int qv_tls_handshake_wait(qv_tls *t, int timeout_ms, struct qv_error *errp);
bool qv_tls_want_write(const qv_tls *t);

/* Bytes read (> 0), 0 at the peer's end of stream, -EAGAIN, or -errno
 * (-ECONNRESET, -EPROTO). */
ssize_t qv_tls_read(qv_tls *t, void *buf, size_t len);
/* Bytes written (> 0), -EAGAIN, or -errno. After -EAGAIN call again with
 * the same (or a longer) buffer: what was accepted is remembered. */
ssize_t qv_tls_write(qv_tls *t, const void *buf, size_t len);
/* Decrypted bytes buffered inside the session (not visible to poll). */
size_t qv_tls_pending(const qv_tls *t);
/* The verified peer certificate's DN ("" before the handshake). */
const char *qv_tls_peer_dn(const qv_tls *t);
/* The verified peer certificate names `name` (a subjectAltName DNS or IP
 * entry, or the CN when it has none; no wildcards): a cluster peer must be
 * the host the cluster store says it is. */
bool qv_tls_peer_has_name(const qv_tls *t, const char *name);

/* "HOST[:PORT]" or "[IPv6][:PORT]" -> host and port (default_port when
 * absent). Host: letters, digits, '.', '-', ':' (inside brackets). */
int qv_parse_host_port(const char *s, int default_port, char *ret_host, size_t host_size,
		       int *ret_port, struct qv_error *errp);
