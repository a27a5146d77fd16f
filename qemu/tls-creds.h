/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "qemu/qmp-seq.h"
#include "qemu/qmp.h"

/* TLS objects in a running QEMU for the migration stream and NBD exports
 * (QEMU 7.2 qapi: qom.json tls-creds-x509, authz.json authz-list,
 * migration.json tls-creds/tls-hostname/tls-authz, block-export.json
 * nbd-server-start tls-creds/tls-authz, block-core.json nbd tls-hostname).
 *
 * QEMU runs as an unprivileged user and never gets the daemon's keys:
 * qemu_tls_stage() copies ca-cert.pem and the host's migration-only pair
 * (migrate-cert.pem, migrate-key.pem; common/tls.h) into a private
 * directory owned by that user, under QEMU's file names; QEMU loads the
 * files when the tls-creds-x509 object is created, after which
 * qemu_tls_unstage() removes them again. */

#define QEMU_TLS_CREDS_ID "qv-tls"
#define QEMU_TLS_AUTHZ_ID "qv-tls-authz"

/* Copy pki_dir/ca-cert.pem and the migration-only certificate and key to
 * dir (created 0700; files 0400) as server-cert.pem/server-key.pem (or
 * client-*), all owned by uid:gid. dir is replaced if it exists. Refused
 * when the pair is missing, its certificate lacks the migration marker, or
 * its key is byte for byte one of the daemon's RPC keys. */
int qemu_tls_stage(const char *pki_dir, bool server, const char *dir, uid_t uid, gid_t gid,
		   struct qv_error *errp);
/* Remove what qemu_tls_stage() wrote (best effort). */
void qemu_tls_unstage(const char *dir);

/* The objects and parameters, as steps of a QMP sequence (qemu/qmp-seq.h)
 * on the daemon's loop: nothing waits for QEMU.
 *   creds: object-add tls-creds-x509 QEMU_TLS_CREDS_ID {dir, endpoint,
 *     verify-peer} (an older object of that id is deleted first);
 *   authz: object-add authz-list QEMU_TLS_AUTHZ_ID: deny everyone but
 *     exactly dn (a peer certificate's distinguished name as GnuTLS
 *     formats it);
 *   migrate params: tls-creds (and tls-authz on the incoming side or
 *     tls-hostname on the outgoing side); tls false clears tls-creds so a
 *     plain migration follows a TLS one.
 * The object-del before each object-add tolerates "not found". 0 or
 * -errno (-ENOMEM, -EALREADY). */
int qemu_tls_creds_steps(qmp_seq *s, const char *dir, bool server);
int qemu_tls_authz_steps(qmp_seq *s, const char *dn);
int qemu_tls_migrate_params_step(qmp_seq *s, bool tls, bool incoming, const char *hostname);
