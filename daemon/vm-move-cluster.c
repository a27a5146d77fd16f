/* SPDX-License-Identifier: MIT */
/* Cold migration and the cluster inventory: a host name to its address,
 * the owner of a VM, and the one revision-compared transaction that moves
 * a VM record from this host to another (docs/cluster.md "Cold migration"). */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm-move-internal.h"

enum mv_cl_op { MV_RESOLVE, MV_OWNER, MV_SWITCH };

struct mv_cl {
	enum mv_cl_op op;
	char me[64];
	char arg[64];   /* host (resolve), VM (owner, switch) */
	char host[64];  /* switch: the new owner */
	char value[160];
	mv_cl_fn fn;
	void *userdata;
};

static const char *field(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* 0, or -EBUSY (conflict) when an operator or an evacuation cordoned host:
 * nothing is placed on it, and a VM moved there after an evacuation's
 * plan would stay behind on the host being emptied. */
static int check_cordon(struct cl_job *j, const char *host)
{
	struct qv_etcd_kv kv = {};
	char key[128];
	int r;

	snprintf(key, sizeof(key), CL_HOSTCFG "%s", host);
	r = qv_etcd_get(j->c->etcd, key, &kv, &j->err);
	if (r == -ENOENT) {
		qv_error_clear(&j->err);
		return 0;
	}
	if (r < 0)
		return r;
	_cleanup_json_ json_object *o = json_tokener_parse(kv.value);
	json_object *v;
	qv_etcd_kv_done(&kv);
	if (o && json_object_object_get_ex(o, "schedulable", &v) && json_object_get_boolean(v))
		return 0;
	return qv_error_set(&j->err, EBUSY, QV_REASON_CONFLICT,
			    "host %s is cordoned (reason \"%s\", set through host %s): nothing "
			    "moves onto it until qvisor host resume %s", host,
			    field(o, "reason") ?: "?", field(o, "by") ?: "?", host);
}

static void resolve_run(struct cl_job *j, struct mv_cl *m)
{
	struct qv_etcd_kv kv = {};
	char key[128];

	snprintf(key, sizeof(key), CL_HOSTS "%s", m->arg);
	j->r = qv_etcd_get(j->c->etcd, key, &kv, &j->err);
	if (j->r == -ENOENT) {
		qv_error_clear(&j->err);
		j->r = qv_error_set(&j->err, ENOENT, QV_REASON_NOT_FOUND,
				    "host %s is not in the cluster (no live host record; see "
				    "qvisor cluster hosts)", m->arg);
		return;
	}
	if (j->r < 0)
		return;
	_cleanup_json_ json_object *o = json_tokener_parse(kv.value);
	qv_etcd_kv_done(&kv);
	const char *addr = field(o, "address");
	if (!addr || !*addr)
		j->r = qv_error_set(&j->err, EINVAL, QV_REASON_UNAVAILABLE,
				    "host %s has no address in its host record", m->arg);
	else if ((j->r = check_cordon(j, m->arg)) >= 0)
		snprintf(m->value, sizeof(m->value), "%s", addr);
}

static void owner_run(struct cl_job *j, struct mv_cl *m, struct qv_etcd_kv *kv)
{
	char key[128];

	snprintf(key, sizeof(key), CL_VMS "%s", m->arg);
	j->r = qv_etcd_get(j->c->etcd, key, kv, &j->err);
	if (j->r < 0)
		return;
	_cleanup_json_ json_object *o = json_tokener_parse(kv->value);
	snprintf(m->value, sizeof(m->value), "%s", field(o, "owner") ?: "");
}

/* Our record, rewritten with the new owner, compared on its revision. */
static void switch_put(struct cl_job *j, struct mv_cl *m, const struct qv_etcd_kv *kv)
{
	_cleanup_json_ json_object *o = json_tokener_parse(kv->value);
	json_object *pl;
	char key[128];

	if (!o) {
		j->r = qv_error_set(&j->err, EINVAL, QV_REASON_INTERNAL,
				    "the inventory record of VM %s is not JSON", m->arg);
		return;
	}
	json_object_object_add(o, "owner", json_object_new_string(m->host));
	json_object_object_add(o, "state", json_object_new_string("stopped"));
	json_object_object_add(o, "updated", json_object_new_int64(qv_unix_ms()));
	if (json_object_object_get_ex(o, "placement", &pl) &&
	    json_object_is_type(pl, json_type_object))
		json_object_object_add(pl, "host", json_object_new_string(m->host));
	snprintf(key, sizeof(key), CL_VMS "%s", m->arg);
	j->r = qv_etcd_put_if(j->c->etcd, key,
			      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0,
			      kv->mod_revision, NULL, &j->err);
	if (j->r == -ESTALE) {
		qv_error_clear(&j->err);
		j->r = qv_error_set(&j->err, ESTALE, QV_REASON_CONFLICT,
				    "the inventory record of VM %s changed during the move", m->arg);
	}
	snprintf(m->value, sizeof(m->value), "%s", m->host);
}

static void switch_run(struct cl_job *j, struct mv_cl *m)
{
	struct qv_etcd_kv kv = {};

	owner_run(j, m, &kv);
	if (j->r >= 0 && !streq(m->value, m->me))
		j->r = qv_error_set(&j->err, EEXIST, QV_REASON_CONFLICT,
				    "the inventory names host %s as the owner of VM %s, not this "
				    "host", m->value, m->arg);
	else if (j->r >= 0 && (j->r = check_cordon(j, m->host)) >= 0) /* cordoned meanwhile? */
		switch_put(j, m, &kv);
	qv_etcd_kv_done(&kv);
}

static void mv_cl_run(struct cl_job *j)
{
	struct mv_cl *m = j->data;
	struct qv_etcd_kv kv = {};

	switch (m->op) {
	case MV_RESOLVE:
		resolve_run(j, m);
		break;
	case MV_OWNER:
		owner_run(j, m, &kv);
		qv_etcd_kv_done(&kv);
		break;
	case MV_SWITCH:
		switch_run(j, m);
		break;
	}
}

static void mv_cl_finish(struct cl_job *j, bool cancelled)
{
	struct mv_cl *m = j->data;

	if (cancelled && j->r >= 0) {
		j->r = -ECANCELED;
		qv_error_set(&j->err, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	}
	m->fn(j->c->d, j->r, &j->err, m->value, m->userdata);
	free(m);
}

static int push(struct qv_daemon *d, enum mv_cl_op op, const char *arg, const char *host,
		mv_cl_fn fn, void *userdata)
{
	struct qv_cluster *c = d->cluster;
	struct mv_cl *m;

	if (!c)
		return -ENOTCONN;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->op = op;
	m->fn = fn;
	m->userdata = userdata;
	snprintf(m->me, sizeof(m->me), "%s", d->cfg.cluster_host);
	snprintf(m->arg, sizeof(m->arg), "%s", arg);
	snprintf(m->host, sizeof(m->host), "%s", host ?: "");
	if (cl_job_push(c, c->eq, mv_cl_run, mv_cl_finish, NULL, m) < 0) {
		free(m);
		return -ENOMEM;
	}
	return 0;
}

int mv_cluster_resolve(struct qv_daemon *d, const char *host, mv_cl_fn fn, void *userdata)
{
	return push(d, MV_RESOLVE, host, NULL, fn, userdata);
}

int mv_cluster_owner(struct qv_daemon *d, const char *vm, mv_cl_fn fn, void *userdata)
{
	return push(d, MV_OWNER, vm, NULL, fn, userdata);
}

int mv_cluster_switch(struct qv_daemon *d, const char *vm, const char *host, mv_cl_fn fn,
		      void *userdata)
{
	return push(d, MV_SWITCH, vm, host, fn, userdata);
}

void mv_cluster_adopted(struct qv_daemon *d)
{
	if (d->cluster)
		cl_inventory_reconcile(d->cluster);
}
