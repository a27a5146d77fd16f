/* SPDX-License-Identifier: MIT */
/* cluster.* RPC methods (docs/rpc.md): views of the etcd store. */
#include <string.h>

#include "common/json.h"
#include "daemon/cluster-internal.h"

struct listing {
	const char *prefix;
	const char *member;  /* "hosts" or "vms" */
	json_object *items;  /* built on the worker, handed over in finish */
	char leader[64];     /* hosts: who leads ("" none) */
	enum qv_bal_mode mode; /* hosts: the balancer's */
};

static void list_run(struct cl_job *j)
{
	struct listing *l = j->data;
	struct qv_etcd_kv *kvs = NULL;
	size_t n = 0;

	j->r = qv_etcd_list(j->c->etcd, l->prefix, &kvs, &n, &j->err);
	if (j->r < 0)
		return;
	if (streq(l->member, "hosts")) {
		struct qv_error err = {};
		if (cl_leader_read(j->c->etcd, l->leader, sizeof(l->leader), NULL, &err) < 0)
			l->leader[0] = '\0';
		qv_error_clear(&err);
		if (cl_bal_mode_read(j->c->etcd, &l->mode, &err) < 0)
			l->mode = QV_BAL_ADVISE;
	}
	l->items = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *rec = json_tokener_parse(kvs[i].value);
		if (!rec || !json_object_is_type(rec, json_type_object)) {
			json_object_put(rec);
			continue;
		}
		/* An ha VM's record carries its spec (cloud-init data included):
		 * not for listings. */
		json_object_object_del(rec, "spec");
		json_object_object_add(rec, "revision", json_object_new_int64(kvs[i].mod_revision));
		if (kvs[i].lease)
			json_object_object_add(rec, "alive", json_object_new_boolean(true));
		if (*l->leader && streq(kvs[i].key + strlen(l->prefix), l->leader))
			json_object_object_add(rec, "leader", json_object_new_boolean(true));
		json_object_array_add(l->items, rec);
	}
	qv_etcd_kvs_free(kvs, n);
	if (streq(l->member, "hosts"))
		cl_hosts_apply_hostcfg(j->c->etcd, l->items);
}

static void list_finish(struct cl_job *j, bool cancelled)
{
	struct listing *l = j->data;

	if (cancelled)
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	else if (j->r < 0) {
		qv_error_prefix(&j->err, "cluster store unavailable");
		qv_rpc_call_error(j->call, &j->err);
	} else {
		json_object *res = json_object_new_object();
		json_object_object_add(res, "host", json_object_new_string(j->c->d->cfg.cluster_host));
		json_object_object_add(res, l->member, TAKE_PTR(l->items));
		if (streq(l->member, "hosts"))
			json_object_object_add(res, "leader", *l->leader
					       ? json_object_new_string(l->leader) : NULL);
		if (streq(l->member, "hosts"))
			json_object_object_add(res, "balancer",
					       json_object_new_string(qv_bal_mode_name(l->mode)));
		qv_rpc_call_reply(j->call, res);
	}
	json_object_put(l->items);
	free(l);
}

static int list(qv_rpc_call *call, json_object *params, struct qv_daemon *d, const char *prefix,
		const char *member)
{
	static const char *const keys[] = { NULL };
	struct qv_error err = {};
	struct listing *l;

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (!d->cluster)
		return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "this qvisord is not in a cluster (start it with "
				    "--cluster-endpoints, docs/cluster.md)");
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->prefix = prefix;
	l->member = member;
	if (cl_job_push(d->cluster, d->cluster->eq, list_run, list_finish, call, l) < 0) {
		free(l);
		return -ENOMEM;
	}
	return 0;
}

static int m_hosts(qv_rpc_call *call, json_object *params, void *ud)
{
	return list(call, params, ud, CL_HOSTS, "hosts");
}

static int m_vms(qv_rpc_call *call, json_object *params, void *ud)
{
	return list(call, params, ud, CL_VMS, "vms");
}

const struct qv_rpc_method qv_cluster_methods[] = {
	{ "cluster.hosts", m_hosts },
	{ "cluster.vms", m_vms },
	{ "cluster.plan", cl_m_plan },
	{ "cluster.mode", cl_m_mode },
	{ "host.cordon", cl_m_host_cordon },
	{ "host.resume", cl_m_host_resume },
	{ "host.evacuate", cl_m_host_evacuate },
	{ "cluster.adopt", cl_ha_m_adopt },
};
const size_t qv_cluster_methods_count = ARRAY_SIZE(qv_cluster_methods);
