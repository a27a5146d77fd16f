/* SPDX-License-Identifier: MIT */
/* etcd v3 JSON gateway transport: endpoints, libcurl, mutual TLS. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/etcd-internal.h"
#include "common/macro.h"
#include "common/tls.h"

#define ETCD_MAX_ANSWER (8u << 20)

struct qv_etcd {
	CURL *curl;
	char *endpoints[QV_ETCD_MAX_ENDPOINTS];
	size_t n_endpoints;
	size_t current;  /* last endpoint that answered */
	unsigned timeout_ms;
	char *ca, *cert, *key;
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool endpoint_valid(const char *u)
{
	const char *h;

	if (strncmp(u, "http://", 7) == 0)
		h = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		h = u + 8;
	else
		return false;
	if (!*h || strlen(u) > 200)
		return false;
	for (; *h; h++)
		if (!(isalnum((unsigned char)*h) || strchr(".-:[]_", *h)))
			return false;
	return true;
}

static int parse_endpoints(qv_etcd *e, const char *list, struct qv_error *errp)
{
	_cleanup_free_ char *copy = strdup(list ? list : "");
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(t);
		while (n > 0 && t[n - 1] == '/')
			t[--n] = '\0';
		if (!endpoint_valid(t))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "invalid etcd endpoint \"%.80s\": want http(s)://HOST:PORT", t);
		if (e->n_endpoints == QV_ETCD_MAX_ENDPOINTS)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "at most %d etcd endpoints", QV_ETCD_MAX_ENDPOINTS);
		if (!(e->endpoints[e->n_endpoints++] = strdup(t)))
			return -ENOMEM;
	}
	if (e->n_endpoints == 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "no etcd endpoint given");
	return 0;
}

static int pki_file(const char *dir, const char *name, char **ret, struct qv_error *errp)
{
	if (asprintf(ret, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	if (access(*ret, R_OK) < 0)
		return qv_error_set(errp, errno, QV_REASON_INVALID_ARGUMENT,
				    "cannot read %s for etcd TLS: %m", *ret);
	return 0;
}

int qv_etcd_new(const struct qv_etcd_opts *o, qv_etcd **ret_etcd, struct qv_error *errp)
{
	_cleanup_etcd_ qv_etcd *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	pthread_once(&curl_once, curl_init_once);
	e->timeout_ms = o->timeout_ms ? o->timeout_ms : QV_ETCD_DEFAULT_TIMEOUT_MS;
	r = parse_endpoints(e, o->endpoints, errp);
	if (r < 0)
		return r;
	if (o->pki_dir) {
		if ((r = pki_file(o->pki_dir, QV_PKI_CA_CERT, &e->ca, errp)) < 0 ||
		    (!o->no_client_cert &&
		     ((r = pki_file(o->pki_dir, QV_PKI_CLIENT_CERT, &e->cert, errp)) < 0 ||
		      (r = pki_file(o->pki_dir, QV_PKI_CLIENT_KEY, &e->key, errp)) < 0)))
			return r;
	}
	e->curl = curl_easy_init();
	if (!e->curl)
		return -ENOMEM;
	*ret_etcd = TAKE_PTR(e);
	return 0;
}

qv_etcd *qv_etcd_free(qv_etcd *e)
{
	if (!e)
		return NULL;
	if (e->curl)
		curl_easy_cleanup(e->curl);
	for (size_t i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->ca);
	free(e->cert);
	free(e->key);
	free(e);
	return NULL;
}

void qv_etcd_freep(qv_etcd **e)
{
	*e = qv_etcd_free(*e);
}

const char *qv_etcd_endpoint(const qv_etcd *e)
{
	return e->endpoints[e->current];
}

struct answer {
	char *buf;
	size_t len;
	bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct answer *a = ud;
	size_t add = size * n;
	char *nb;

	if (a->len + add > ETCD_MAX_ANSWER) {
		a->too_big = true;
		return 0;
	}
	nb = realloc(a->buf, a->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + a->len, p, add);
	a->buf = nb;
	a->len += add;
	a->buf[a->len] = '\0';
	return add;
}

static bool tls_error(CURLcode c)
{
	switch (c) {
	case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		return true;
	default:
		return false;
	}
}

/* One attempt on endpoint i: 0 with the HTTP status, or the curl code. */
static CURLcode post_once(qv_etcd *e, size_t i, const char *path, const char *body,
			  struct answer *a, long *ret_status)
{
	_cleanup_free_ char *url = NULL;
	struct curl_slist *hdr = NULL;
	CURLcode c;

	if (asprintf(&url, "%s%s", e->endpoints[i], path) < 0)
		return CURLE_OUT_OF_MEMORY;
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_reset(e->curl);
	curl_easy_setopt(e->curl, CURLOPT_URL, url);
	curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e->curl, CURLOPT_ERRORBUFFER, e->errbuf);
	curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (e->ca) {
		curl_easy_setopt(e->curl, CURLOPT_CAINFO, e->ca);
		if (e->cert) {
			curl_easy_setopt(e->curl, CURLOPT_SSLCERT, e->cert);
			curl_easy_setopt(e->curl, CURLOPT_SSLKEY, e->key);
		}
	}
	e->errbuf[0] = '\0';
	c = curl_easy_perform(e->curl);
	if (c == CURLE_OK)
		curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, ret_status);
	curl_slist_free_all(hdr);
	return c;
}

/* An error answer: {"error":"...","code":N,"message":"..."}. */
static int gateway_error(json_object *ans, long status, const char *path, struct qv_error *errp)
{
	json_object *m = NULL, *code = NULL;
	const char *msg = "no message";
	int grpc = 0;

	if (ans && (json_object_object_get_ex(ans, "message", &m) ||
		    json_object_object_get_ex(ans, "error", &m)))
		msg = json_object_get_string(m);
	if (ans && json_object_object_get_ex(ans, "code", &code))
		grpc = json_object_get_int(code);
	if (grpc == 5) /* NotFound */
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "etcd %s: %s", path, msg);
	if (grpc == 16 || grpc == 7)
		return qv_error_set(errp, EACCES, QV_REASON_PERMISSION, "etcd %s: %s", path, msg);
	return qv_error_set(errp, EPROTO, QV_REASON_UNAVAILABLE, "etcd %s: HTTP %ld: %.200s", path,
			    status, msg);
}

int qv_etcd_post(qv_etcd *e, const char *path, json_object *body, json_object **ret_answer,
		 struct qv_error *errp)
{
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	char last[1024] = ""; /* every endpoint's failure, "; "-separated */
	size_t used = 0;
	bool any_tls = false;

	for (size_t k = 0; k < e->n_endpoints; k++) {
		size_t i = (e->current + k) % e->n_endpoints;
		struct answer a = {};
		long status = 0;
		CURLcode c = post_once(e, i, path, text, &a, &status);
		if (c != CURLE_OK) {
			int w = snprintf(last + used, sizeof(last) - used, "%s%s: %s", used ? "; " : "",
					 e->endpoints[i], e->errbuf[0] ? e->errbuf : curl_easy_strerror(c));
			if (w > 0 && (size_t)w < sizeof(last) - used)
				used += (size_t)w;
			any_tls |= tls_error(c);
			free(a.buf);
			continue;
		}
		e->current = i;
		json_object *ans = a.buf ? json_tokener_parse(a.buf) : NULL;
		free(a.buf);
		if (status != 200) {
			int r = gateway_error(ans, status, path, errp);
			json_object_put(ans);
			return r;
		}
		if (!ans || !json_object_is_type(ans, json_type_object)) {
			json_object_put(ans);
			return qv_error_set(errp, EPROTO, QV_REASON_UNAVAILABLE,
					    "etcd %s: answer is not a JSON object", path);
		}
		*ret_answer = ans;
		return 0;
	}
	if (any_tls)
		return qv_error_set(errp, EACCES, QV_REASON_UNAVAILABLE,
				    "etcd unreachable (TLS refused?): %s", last);
	return qv_error_set(errp, EHOSTUNREACH, QV_REASON_UNAVAILABLE, "etcd unreachable: %s",
			    last);
}
