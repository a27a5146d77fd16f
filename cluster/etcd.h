/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/base64.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* A small etcd v3 client over the JSON gateway (POST /v3/...), libcurl +
 * json-c. Blocking: every call waits for its answer, bounded by the
 * client's timeout; the daemon runs calls on a worker thread
 * (cluster/work.h), never on its loop. One handle is used by one thread at
 * a time.
 *
 * Endpoints: "http(s)://HOST:PORT[,http(s)://HOST:PORT...]". A call is
 * tried on the last endpoint that answered, then on the others in order:
 * a dead member costs one connect timeout, once.
 *
 * https:// uses mutual TLS with the qvisor PKI (common/tls.h layout):
 * pki_dir/ca-cert.pem verifies the member, pki_dir/client-cert.pem and
 * client-key.pem are presented. No pki_dir: plain server verification
 * against the system store, no client certificate.
 *
 * Errors: -ENOENT a key or lease that does not exist; -ESTALE a
 * transaction whose compare failed (someone else changed the key);
 * -EHOSTUNREACH no endpoint answered (reason "unavailable"); -EACCES TLS
 * refused; -EPROTO an answer that is not what etcd sends. */

typedef struct qv_etcd qv_etcd;

#define QV_ETCD_DEFAULT_TIMEOUT_MS 3000
#define QV_ETCD_MAX_ENDPOINTS 9

struct qv_etcd_opts {
	const char *endpoints;  /* comma-separated URLs */
	const char *pki_dir;    /* NULL: no client certificate */
	unsigned timeout_ms;    /* per request and endpoint; 0: default */
	bool no_client_cert;    /* tests: verify the member with pki_dir's CA
				 * but present no certificate */
};

/* One key-value as etcd returns it. value is NUL-terminated. */
struct qv_etcd_kv {
	char *key;
	char *value;
	size_t value_len;
	int64_t create_revision, mod_revision, version, lease;
};

int qv_etcd_new(const struct qv_etcd_opts *o, qv_etcd **ret_etcd, struct qv_error *errp);
qv_etcd *qv_etcd_free(qv_etcd *e);
void qv_etcd_freep(qv_etcd **e);
#define _cleanup_etcd_ _cleanup_(qv_etcd_freep)
/* The endpoint that answered last (for messages). */
const char *qv_etcd_endpoint(const qv_etcd *e);

void qv_etcd_kv_done(struct qv_etcd_kv *kv);
void qv_etcd_kvs_free(struct qv_etcd_kv *kvs, size_t n);

/* POST body (borrowed) to path ("/v3/kv/range"); *ret_answer is the parsed
 * answer (new reference). The building block of everything below. */
int qv_etcd_post(qv_etcd *e, const char *path, json_object *body, json_object **ret_answer,
		 struct qv_error *errp);

/* key -> *ret_kv (-ENOENT when absent). */
int qv_etcd_get(qv_etcd *e, const char *key, struct qv_etcd_kv *ret_kv, struct qv_error *errp);
/* Every key under prefix, sorted by key. */
int qv_etcd_list(qv_etcd *e, const char *prefix, struct qv_etcd_kv **ret_kvs, size_t *ret_n,
		 struct qv_error *errp);
/* Unconditional put (lease 0: none); *ret_revision (may be NULL) is the
 * store's revision after it. */
int qv_etcd_put(qv_etcd *e, const char *key, const char *value, int64_t lease,
		int64_t *ret_revision, struct qv_error *errp);
/* 0 (deleted), -ENOENT (was not there). */
int qv_etcd_delete(qv_etcd *e, const char *key, struct qv_error *errp);

/* Transactions on one key. mod_revision 0 means "the key must not exist"
 * (compare create_revision == 0), else "the key's mod_revision is exactly
 * this". 0 done, -ESTALE the compare failed (errp says so, reason
 * "conflict"). */
int qv_etcd_put_if(qv_etcd *e, const char *key, const char *value, int64_t lease,
		   int64_t mod_revision, int64_t *ret_revision, struct qv_error *errp);
int qv_etcd_delete_if(qv_etcd *e, const char *key, int64_t mod_revision, struct qv_error *errp);

/* Leases. keepalive returns the remaining TTL; -ENOENT once the lease
 * expired (the keys attached to it are gone). */
int qv_etcd_lease_grant(qv_etcd *e, unsigned ttl_s, int64_t *ret_id, struct qv_error *errp);
int qv_etcd_lease_keepalive(qv_etcd *e, int64_t id, int64_t *ret_ttl, struct qv_error *errp);
int qv_etcd_lease_revoke(qv_etcd *e, int64_t id, struct qv_error *errp);

