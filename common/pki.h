/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"

/* `qvisor pki`: a small certificate authority for labs, made with the
 * GnuTLS API (no certtool needed). Files follow common/tls.h's layout; keys
 * are written 0600, certificates 0644, nothing is ever overwritten.
 * RSA 2048 keys, SHA-256 signatures, subject "CN=<name>,O=qvisor". */

#define QV_PKI_DEFAULT_DAYS 3650
#define QV_PKI_MAX_NAMES 16

/* dir/ca-cert.pem (self-signed, CA:TRUE, keyCertSign) and dir/ca-key.pem.
 * dir is created (0755) when missing. */
int qv_pki_init(const char *dir, const char *cn, unsigned days, struct qv_error *errp);

/* Sign server, client and migration certificates for host with the CA in ca_dir and
 * write them to out_dir (created when missing): server-cert.pem,
 * server-key.pem, client-cert.pem, client-key.pem, plus a copy of
 * ca-cert.pem when out_dir is another directory. The server certificate's
 * subjectAltName lists host and names[] (IP addresses become iPAddress
 * entries, anything else dNSName); both certificates carry CN=host. */
int qv_pki_issue(const char *ca_dir, const char *out_dir, const char *host,
		 const char *const *names, size_t n_names, unsigned days, struct qv_error *errp);
/* qv_pki_issue() also writes, and this alone writes (for a host issued
 * before it existed), the migration-only pair migrate-cert.pem and
 * migrate-key.pem: subject CN=host,OU=qvisor-migration,O=qvisor, the
 * server's subjectAltNames, TLS server and client purposes. It is the only
 * certificate a QEMU receives; RPC sessions refuse it (common/tls.h). */
int qv_pki_issue_migration(const char *ca_dir, const char *out_dir, const char *host,
			   const char *const *names, size_t n_names, unsigned days,
			   struct qv_error *errp);
