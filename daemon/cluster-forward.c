/* SPDX-License-Identifier: MIT */
/* Calls to a peer daemon over mutual TLS (the same tls:// transport as
 * migrations), run on the peer worker threads; and vm.* calls for a VM
 * another host owns, forwarded there by the inventory. */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "common/rpc-client.h"
#include "daemon/cluster-internal.h"
#include "daemon/rpc-access.h"

struct fwd {
	char host[64];
	char uri[160];
	char method[40];
	json_object *params;  /* private copy: only the worker touches it */
	json_object *extra;   /* merged into the answer on the loop */
	json_object *result;
};

static void fwd_run(struct cl_job *j)
{
	struct fwd *f = j->data;
	qv_rpc_conn *conn = NULL;

	j->r = qv_rpc_connect(f->uri, &conn, &j->err);
	if (j->r < 0)
		return;
	j->r = cl_peer_check(conn, f->host, f->uri, &j->err);
	if (j->r < 0) {
		qv_rpc_conn_free(conn);
		return;
	}
	j->r = qv_rpc_invoke(conn, f->method, TAKE_PTR(f->params), CL_PEER_TIMEOUT_MS, &f->result,
			     &j->err);
	qv_rpc_conn_free(conn);
}

static void fwd_finish(struct cl_job *j, bool cancelled)
{
	struct fwd *f = j->data;

	if (cancelled)
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	else if (j->r < 0) {
		qv_error_prefix(&j->err, "host %s", f->host);
		qv_rpc_call_error(j->call, &j->err);
	} else {
		json_object *res = TAKE_PTR(f->result);
		if (!res)
			res = json_object_new_object();
		/* The owner answered our mutual-TLS call in full; our caller may
		 * be on the read-only socket. */
		if (qv_rpc_call_is_read_only(j->c->d, j->call))
			qv_vm_info_redact(res);
		if (f->extra && json_object_is_type(res, json_type_object)) {
			json_object_object_foreach(f->extra, k, v)
				json_object_object_add(res, k, json_object_get(v));
		}
		qv_rpc_call_reply(j->call, res);
	}
	json_object_put(f->params);
	json_object_put(f->extra);
	json_object_put(f->result);
	free(f);
}

int cl_forward(struct qv_cluster *c, qv_rpc_call *call, const char *host, const char *address,
	       const char *method, json_object *params, json_object *extra)
{
	struct fwd *f = calloc(1, sizeof(*f));

	if (!f) {
		json_object_put(extra);
		return -ENOMEM;
	}
	snprintf(f->host, sizeof(f->host), "%s", host);
	snprintf(f->uri, sizeof(f->uri), "tls://%s", address);
	snprintf(f->method, sizeof(f->method), "%s", method);
	/* A deep copy: json-c reference counts are not atomic. */
	if (params && json_object_deep_copy(params, &f->params, NULL) < 0)
		f->params = NULL;
	f->extra = extra;
	log_info("Cluster: forwarding %s to host %s (%s)", method, host, f->uri);
	if (cl_job_push(c, c->pq, fwd_run, fwd_finish, call, f) < 0) {
		json_object_put(f->params);
		json_object_put(f->extra);
		free(f);
		return -ENOMEM;
	}
	return 0;
}

/* --- vm.* for a VM owned elsewhere ----------------------------------------- */

struct lookup {
	char name[64];
	char method[40];
	json_object *params;
	char owner[64];
	char address[128];
	bool alive;
};

static void lookup_run(struct cl_job *j)
{
	struct lookup *l = j->data;
	struct qv_etcd_kv kv = {};
	char key[128];
	json_object *v;

	snprintf(key, sizeof(key), CL_VMS "%s", l->name);
	j->r = qv_etcd_get(j->c->etcd, key, &kv, &j->err);
	if (j->r < 0)
		return;
	_cleanup_json_ json_object *rec = json_tokener_parse(kv.value);
	qv_etcd_kv_done(&kv);
	if (rec && json_object_object_get_ex(rec, "owner", &v))
		snprintf(l->owner, sizeof(l->owner), "%s", json_object_get_string(v));
	snprintf(key, sizeof(key), CL_HOSTS "%s", l->owner);
	if (qv_etcd_get(j->c->etcd, key, &kv, &j->err) < 0) {
		qv_error_clear(&j->err);
		return; /* not alive */
	}
	_cleanup_json_ json_object *host = json_tokener_parse(kv.value);
	qv_etcd_kv_done(&kv);
	if (host && json_object_object_get_ex(host, "address", &v)) {
		snprintf(l->address, sizeof(l->address), "%s", json_object_get_string(v));
		l->alive = true;
	}
}

static void lookup_finish(struct cl_job *j, bool cancelled)
{
	struct lookup *l = j->data;
	struct qv_cluster *c = j->c;

	if (cancelled)
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	else if (j->r == -ENOENT)
		qv_call_fail(j->call, ENOENT, QV_REASON_NOT_FOUND,
			     "VM %s is not defined (here or in the cluster inventory)", l->name);
	else if (j->r < 0)
		qv_call_fail(j->call, EHOSTUNREACH, QV_REASON_UNAVAILABLE,
			     "VM %s is not defined here and the cluster store is unavailable: %s",
			     l->name, j->err.message);
	else if (streq(l->owner, c->d->cfg.cluster_host))
		qv_call_fail(j->call, ENOENT, QV_REASON_NOT_FOUND,
			     "VM %s is not defined (the inventory names this host: a stale record "
			     "the next reconciliation removes)", l->name);
	else if (!l->alive)
		qv_call_fail(j->call, EHOSTUNREACH, QV_REASON_UNAVAILABLE,
			     "VM %s belongs to host %s, which is not in the cluster now (no live "
			     "lease)", l->name, l->owner);
	else if (cl_forward(c, j->call, l->owner, l->address, l->method, l->params, NULL) < 0)
		qv_call_fail(j->call, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	json_object_put(l->params);
	free(l);
}

/* Methods that make sense on the owner; the console and migrations do not
 * travel this way. */
static bool forwardable(const char *method)
{
	static const char *const ok[] = { "vm.info", "vm.start", "vm.stop", "vm.pause",
					  "vm.resume", "vm.reboot", "vm.undefine",
					  "vm.move", NULL };
	for (size_t i = 0; ok[i]; i++)
		if (streq(ok[i], method))
			return true;
	return false;
}

bool qv_cluster_forward_vm_call(struct qv_daemon *d, qv_rpc_call *call, const char *method,
				json_object *params, const char *name)
{
	struct qv_cluster *c = d->cluster;
	struct lookup *l;

	/* Never forward what a peer forwarded to us: a stale record must not
	 * bounce a call between hosts. */
	if (!c || !method || !forwardable(method) ||
	    qv_rpc_client_tls_dn(qv_rpc_call_client(call)))
		return false;
	l = calloc(1, sizeof(*l));
	if (!l)
		return false;
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->method, sizeof(l->method), "%s", method);
	l->params = json_object_get(params);
	if (cl_job_push(c, c->eq, lookup_run, lookup_finish, call, l) < 0) {
		json_object_put(l->params);
		free(l);
		return false;
	}
	return true;
}
