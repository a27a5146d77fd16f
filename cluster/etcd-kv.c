/* SPDX-License-Identifier: MIT */
/* etcd v3 KV, transactions and leases on top of qv_etcd_post(). */
#include <stdlib.h>
#include <string.h>

#include "cluster/etcd-internal.h"
#include "common/json.h"
#include "common/macro.h"

int64_t etcd_json_i64(json_object *obj, const char *key)
{
	json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return 0;
	if (json_object_is_type(v, json_type_string))
		return strtoll(json_object_get_string(v), NULL, 10);
	return json_object_get_int64(v);
}

static void add_b64(json_object *o, const char *field, const char *s, size_t len)
{
	char *b = qv_base64_encode(s, len);
	json_object_object_add(o, field, json_object_new_string(b ? b : ""));
	free(b);
}

/* The first key after every key with this prefix ("range_end"). */
static char *prefix_end(const char *prefix)
{
	char *end = strdup(prefix);
	size_t n = end ? strlen(end) : 0;

	while (n > 0) {
		if ((unsigned char)end[n - 1] < 0xff) {
			end[n - 1]++;
			end[n] = '\0';
			return end;
		}
		n--;
	}
	free(end);
	return strdup("\0"); /* whole key space */
}

void qv_etcd_kv_done(struct qv_etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void qv_etcd_kvs_free(struct qv_etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; kvs && i < n; i++)
		qv_etcd_kv_done(&kvs[i]);
	free(kvs);
}

static int kv_from_json(json_object *j, struct qv_etcd_kv *kv)
{
	json_object *k = NULL, *v = NULL;

	memset(kv, 0, sizeof(*kv));
	if (!json_object_object_get_ex(j, "key", &k))
		return -EPROTO;
	kv->key = qv_base64_decode(json_object_get_string(k), NULL);
	if (json_object_object_get_ex(j, "value", &v))
		kv->value = qv_base64_decode(json_object_get_string(v), &kv->value_len);
	else
		kv->value = strdup("");
	if (!kv->key || !kv->value) {
		qv_etcd_kv_done(kv);
		return -EPROTO;
	}
	kv->create_revision = etcd_json_i64(j, "create_revision");
	kv->mod_revision = etcd_json_i64(j, "mod_revision");
	kv->version = etcd_json_i64(j, "version");
	kv->lease = etcd_json_i64(j, "lease");
	return 0;
}

static int range(qv_etcd *e, const char *key, bool prefix, struct qv_etcd_kv **ret_kvs,
		 size_t *ret_n, struct qv_error *errp)
{
	_cleanup_json_ json_object *body = json_object_new_object(), *ans = NULL;
	json_object *kvs = NULL;
	struct qv_etcd_kv *out;
	size_t n;
	int r;

	add_b64(body, "key", key, strlen(key));
	if (prefix) {
		_cleanup_free_ char *end = prefix_end(key);
		if (!end)
			return -ENOMEM;
		add_b64(body, "range_end", end, strlen(end) ? strlen(end) : 1);
		json_object_object_add(body, "sort_order", json_object_new_string("ASCEND"));
		json_object_object_add(body, "sort_target", json_object_new_string("KEY"));
	}
	r = qv_etcd_post(e, "/v3/kv/range", body, &ans, errp);
	if (r < 0)
		return r;
	json_object_object_get_ex(ans, "kvs", &kvs);
	n = kvs && json_object_is_type(kvs, json_type_array) ? json_object_array_length(kvs) : 0;
	out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (kv_from_json(json_object_array_get_idx(kvs, i), &out[i]) < 0) {
			qv_etcd_kvs_free(out, i);
			return qv_error_set(errp, EPROTO, QV_REASON_UNAVAILABLE,
					    "etcd range: malformed key-value");
		}
	*ret_kvs = out;
	*ret_n = n;
	return 0;
}

int qv_etcd_get(qv_etcd *e, const char *key, struct qv_etcd_kv *ret_kv, struct qv_error *errp)
{
	struct qv_etcd_kv *kvs = NULL;
	size_t n = 0;
	int r = range(e, key, false, &kvs, &n, errp);

	if (r < 0)
		return r;
	if (n == 0) {
		qv_etcd_kvs_free(kvs, 0);
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "%s is not in etcd", key);
	}
	*ret_kv = kvs[0];
	for (size_t i = 1; i < n; i++)
		qv_etcd_kv_done(&kvs[i]);
	free(kvs);
	return 0;
}

int qv_etcd_list(qv_etcd *e, const char *prefix, struct qv_etcd_kv **ret_kvs, size_t *ret_n,
		 struct qv_error *errp)
{
	return range(e, prefix, true, ret_kvs, ret_n, errp);
}

static json_object *put_op(const char *key, const char *value, int64_t lease)
{
	json_object *p = json_object_new_object();

	add_b64(p, "key", key, strlen(key));
	add_b64(p, "value", value, strlen(value));
	if (lease)
		json_object_object_add(p, "lease", json_object_new_int64(lease));
	return p;
}

int qv_etcd_put(qv_etcd *e, const char *key, const char *value, int64_t lease,
		int64_t *ret_revision, struct qv_error *errp)
{
	_cleanup_json_ json_object *body = put_op(key, value, lease), *ans = NULL;
	json_object *hdr = NULL;
	int r = qv_etcd_post(e, "/v3/kv/put", body, &ans, errp);

	if (r < 0)
		return r;
	json_object_object_get_ex(ans, "header", &hdr);
	if (ret_revision)
		*ret_revision = etcd_json_i64(hdr, "revision");
	return 0;
}

int qv_etcd_delete(qv_etcd *e, const char *key, struct qv_error *errp)
{
	_cleanup_json_ json_object *body = json_object_new_object(), *ans = NULL;
	int r;

	add_b64(body, "key", key, strlen(key));
	r = qv_etcd_post(e, "/v3/kv/deleterange", body, &ans, errp);
	if (r < 0)
		return r;
	if (etcd_json_i64(ans, "deleted") == 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "%s is not in etcd", key);
	return 0;
}

/* {"compare":[one compare on key],"success":[op]} -> 0 or -ESTALE. */
static int txn_one(qv_etcd *e, const char *key, int64_t mod_revision, json_object *op,
		   int64_t *ret_revision, struct qv_error *errp)
{
	_cleanup_json_ json_object *body = json_object_new_object(), *ans = NULL;
	json_object *cmp = json_object_new_object(), *cmps = json_object_new_array();
	json_object *ops = json_object_new_array(), *hdr = NULL, *ok = NULL;
	int r;

	add_b64(cmp, "key", key, strlen(key));
	json_object_object_add(cmp, "result", json_object_new_string("EQUAL"));
	json_object_object_add(cmp, "target",
			       json_object_new_string(mod_revision ? "MOD" : "CREATE"));
	json_object_object_add(cmp, mod_revision ? "mod_revision" : "create_revision",
			       json_object_new_int64(mod_revision));
	json_object_array_add(cmps, cmp);
	json_object_array_add(ops, op);
	json_object_object_add(body, "compare", cmps);
	json_object_object_add(body, "success", ops);
	r = qv_etcd_post(e, "/v3/kv/txn", body, &ans, errp);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(ans, "succeeded", &ok) || !json_object_get_boolean(ok))
		return qv_error_set(errp, ESTALE, QV_REASON_CONFLICT,
				    mod_revision ? "%s changed since revision %lld" : "%s already exists",
				    key, (long long)mod_revision);
	json_object_object_get_ex(ans, "header", &hdr);
	if (ret_revision)
		*ret_revision = etcd_json_i64(hdr, "revision");
	return 0;
}

int qv_etcd_put_if(qv_etcd *e, const char *key, const char *value, int64_t lease,
		   int64_t mod_revision, int64_t *ret_revision, struct qv_error *errp)
{
	json_object *op = json_object_new_object();

	json_object_object_add(op, "request_put", put_op(key, value, lease));
	return txn_one(e, key, mod_revision, op, ret_revision, errp);
}

int qv_etcd_delete_if(qv_etcd *e, const char *key, int64_t mod_revision, struct qv_error *errp)
{
	json_object *op = json_object_new_object(), *d = json_object_new_object();

	add_b64(d, "key", key, strlen(key));
	json_object_object_add(op, "request_delete_range", d);
	return txn_one(e, key, mod_revision, op, NULL, errp);
}

int qv_etcd_lease_grant(qv_etcd *e, unsigned ttl_s, int64_t *ret_id, struct qv_error *errp)
{
	_cleanup_json_ json_object *body = json_object_new_object(), *ans = NULL;
	int r;

	json_object_object_add(body, "TTL", json_object_new_int64(ttl_s));
	r = qv_etcd_post(e, "/v3/lease/grant", body, &ans, errp);
	if (r < 0)
		return r;
	*ret_id = etcd_json_i64(ans, "ID");
	if (*ret_id == 0)
		return qv_error_set(errp, EPROTO, QV_REASON_UNAVAILABLE, "etcd lease grant: no ID");
	return 0;
}

int qv_etcd_lease_keepalive(qv_etcd *e, int64_t id, int64_t *ret_ttl, struct qv_error *errp)
{
	_cleanup_json_ json_object *body = json_object_new_object(), *ans = NULL;
	json_object *res = NULL;
	int64_t ttl;
	int r;

	json_object_object_add(body, "ID", json_object_new_int64(id));
	r = qv_etcd_post(e, "/v3/lease/keepalive", body, &ans, errp);
	if (r < 0)
		return r;
	/* A stream of one message: {"result":{...}}. */
	if (!json_object_object_get_ex(ans, "result", &res))
		res = ans;
	ttl = etcd_json_i64(res, "TTL");
	if (ttl <= 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "etcd lease %llx expired",
				    (unsigned long long)id);
	if (ret_ttl)
		*ret_ttl = ttl;
	return 0;
}

int qv_etcd_lease_revoke(qv_etcd *e, int64_t id, struct qv_error *errp)
{
	_cleanup_json_ json_object *body = json_object_new_object(), *ans = NULL;

	json_object_object_add(body, "ID", json_object_new_int64(id));
	return qv_etcd_post(e, "/v3/lease/revoke", body, &ans, errp);
}
