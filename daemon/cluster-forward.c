/* SPDX-License-Identifier: MIT */
/* Calls forwarded to a peer daemon over mutual TLS (cl_peer_call, the
 * same tls:// transport as migrations): vm.* calls for a VM another host
 * owns, found in the inventory, and placed defines. */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/rpc-access.h"

/* One call forwarded to its owner (cl_peer_call), answered from its answer. */
struct fwd {
	struct fwd *next;
	struct qv_cluster *c;
	qv_rpc_call *call;
	char host[64];
	json_object *extra;   /* merged into the answer */
	struct cl_peer_call *pc;
};

static struct fwd *fwds; /* in flight */

static void fwd_free(struct fwd *f)
{
	for (struct fwd **p = &fwds; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	json_object_put(f->extra);
	free(f);
}

static void fwd_done(int r, json_object *res, const struct qv_error *err, void *ud)
{
	struct fwd *f = ud;

	if (r < 0) {
		struct qv_error e = {};
		if (err)
			e = *err;
		else
			qv_error_set(&e, -r, QV_REASON_UNAVAILABLE, "%s", strerror(-r));
		qv_error_prefix(&e, "host %s", f->host);
		qv_rpc_call_error(f->call, &e);
	} else {
		res = res ? json_object_get(res) : json_object_new_object();
		/* The owner answered our mutual-TLS call in full; our caller may
		 * be on the read-only socket. */
		if (qv_rpc_call_is_read_only(f->c->d, f->call))
			qv_vm_info_redact(res);
		if (f->extra && json_object_is_type(res, json_type_object)) {
			json_object_object_foreach(f->extra, k, v)
				json_object_object_add(res, k, json_object_get(v));
		}
		qv_rpc_call_reply(f->call, res);
	}
	fwd_free(f);
}

int cl_forward(struct qv_cluster *c, qv_rpc_call *call, const char *host, const char *address,
	       const char *method, json_object *params, json_object *extra)
{
	struct fwd *f = calloc(1, sizeof(*f));
	json_object *copy = NULL;

	if (!f) {
		json_object_put(extra);
		return -ENOMEM;
	}
	*f = (struct fwd){ .c = c, .call = call, .extra = extra };
	snprintf(f->host, sizeof(f->host), "%s", host);
	/* A copy: the call's own params are not ours to keep. */
	if (params && json_object_deep_copy(params, &copy, NULL) < 0)
		copy = NULL;
	log_info("Cluster: forwarding %s to host %s (tls://%s)", method, host, address);
	if (cl_peer_call(c, host, address, method, copy, CL_PEER_TIMEOUT_MS, fwd_done, f, &f->pc) < 0) {
		fwd_free(f);
		return -ENOMEM;
	}
	f->next = fwds;
	fwds = f;
	return 0;
}

void cl_forward_shutdown(struct qv_cluster *c)
{
	while (fwds) {
		struct fwd *f = fwds;
		cl_peer_call_cancel(f->pc);
		qv_call_fail(f->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
		fwd_free(f);
	}
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
