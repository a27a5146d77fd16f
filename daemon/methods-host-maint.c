/* SPDX-License-Identifier: MIT */
/* Host maintenance (docs/cluster.md "Maintenance"): host.cordon,
 * host.resume and host.evacuate. The schedulable flag is an operator's
 * setting under /qvisor/hostcfg/NAME, a key with no lease: it survives the
 * host's lease renewals, its restarts and its absence. Placement reads it
 * with every snapshot (cl_snap_apply_hostcfg). */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm.h"

int cl_snap_apply_hostcfg(qv_etcd *e, struct cl_snap *s, struct qv_error *errp)
{
	struct qv_etcd_kv *kvs = NULL;
	size_t n = 0;
	int r = qv_etcd_list(e, CL_HOSTCFG, &kvs, &n, errp);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		_cleanup_json_ json_object *cfg = json_tokener_parse(kvs[i].value);
		json_object *v;
		if (!cfg || !json_object_object_get_ex(cfg, "schedulable", &v) ||
		    json_object_get_boolean(v))
			continue;
		for (size_t h = 0; h < s->nh; h++)
			if (streq(s->hosts[h].name, kvs[i].key + strlen(CL_HOSTCFG)))
				s->hosts[h].schedulable = false;
	}
	qv_etcd_kvs_free(kvs, n);
	return 0;
}

int cl_hostcfg_cordon(qv_etcd *e, const char *host, const char *reason, const char *by,
		      struct qv_error *errp)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	char key[128];

	json_object_object_add(o, "host", json_object_new_string(host));
	json_object_object_add(o, "schedulable", json_object_new_boolean(false));
	json_object_object_add(o, "reason", json_object_new_string(reason));
	json_object_object_add(o, "by", json_object_new_string(by));
	json_object_object_add(o, "since", json_object_new_int64(qv_unix_ms()));
	snprintf(key, sizeof(key), CL_HOSTCFG "%s", host);
	return qv_etcd_put(e, key, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0, NULL,
			   errp);
}

struct maint {
	char host[64];
	char me[64];
	char reason[128];
	bool cordon;        /* else resume */
	bool was_cordoned;  /* out */
	char evac_by[64];   /* out: an evacuation holds the host */
};

static bool key_exists(qv_etcd *e, const char *prefix, const char *name, char **ret_value,
		       struct qv_error *errp, int *ret_r)
{
	struct qv_etcd_kv kv = {};
	char key[128];

	snprintf(key, sizeof(key), "%s%s", prefix, name);
	*ret_r = qv_etcd_get(e, key, &kv, errp);
	if (*ret_r == -ENOENT) {
		qv_error_clear(errp);
		*ret_r = 0;
		return false;
	}
	if (*ret_r < 0)
		return false;
	if (ret_value)
		*ret_value = TAKE_PTR(kv.value);
	qv_etcd_kv_done(&kv);
	return true;
}

static void maint_run(struct cl_job *j)
{
	struct maint *m = j->data;
	qv_etcd *e = j->c->etcd;
	char key[128];
	_cleanup_free_ char *cfg = NULL, *evac = NULL;
	bool live = key_exists(e, CL_HOSTS, m->host, NULL, &j->err, &j->r);

	if (j->r < 0)
		return;
	m->was_cordoned = key_exists(e, CL_HOSTCFG, m->host, &cfg, &j->err, &j->r);
	if (j->r < 0)
		return;
	if (!live && !m->was_cordoned) {
		j->r = qv_error_set(&j->err, ENOENT, QV_REASON_NOT_FOUND,
				    "host %s is not in the cluster (no live host record, no "
				    "cordon)", m->host);
		return;
	}
	snprintf(key, sizeof(key), CL_HOSTCFG "%s", m->host);
	if (m->cordon) {
		j->r = cl_hostcfg_cordon(e, m->host, m->reason, m->me, &j->err);
		return;
	}
	if (key_exists(e, CL_EVACS, m->host, &evac, &j->err, &j->r)) {
		_cleanup_json_ json_object *o = json_tokener_parse(evac);
		json_object *v;
		snprintf(m->evac_by, sizeof(m->evac_by), "%s",
			 o && json_object_object_get_ex(o, "by", &v) ? json_object_get_string(v) : "?");
		j->r = qv_error_set(&j->err, EBUSY, QV_REASON_CONFLICT,
				    "host %s is being evacuated (driven by host %s): resume it when "
				    "the evacuation ends", m->host, m->evac_by);
		return;
	}
	if (j->r < 0 || !m->was_cordoned)
		return;
	j->r = qv_etcd_delete(e, key, &j->err);
	if (j->r == -ENOENT) {
		qv_error_clear(&j->err);
		j->r = 0;
	}
}

static void maint_finish(struct cl_job *j, bool cancelled)
{
	struct maint *m = j->data;

	if (cancelled)
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	else if (j->r < 0) {
		if (j->r != -ENOENT && j->r != -EBUSY)
			qv_error_prefix(&j->err, "cluster store unavailable, host %s unchanged",
					m->host);
		qv_rpc_call_error(j->call, &j->err);
	} else {
		json_object *res = json_object_new_object(), *ev = json_object_new_object();
		json_object_object_add(res, "host", json_object_new_string(m->host));
		json_object_object_add(res, "schedulable", json_object_new_boolean(!m->cordon));
		json_object_object_add(res, "was_cordoned", json_object_new_boolean(m->was_cordoned));
		if (m->cordon)
			json_object_object_add(res, "reason", json_object_new_string(m->reason));
		json_object_object_add(ev, "host", json_object_new_string(m->host));
		json_object_object_add(ev, "schedulable", json_object_new_boolean(!m->cordon));
		if (m->cordon)
			json_object_object_add(ev, "reason", json_object_new_string(m->reason));
		qv_daemon_emit(j->c->d, NULL, m->cordon ? "host-cordoned" : "host-resumed", ev);
		log_info("Cluster: host %s %s", m->host,
			 m->cordon ? "cordoned (unschedulable)" : "schedulable again");
		qv_rpc_call_reply(j->call, res);
	}
	free(m);
}

/* params {host, ...keys}: the host name, or an error answered. */
static const char *host_param(struct qv_daemon *d, qv_rpc_call *call, json_object *params,
			      const char *const *keys)
{
	struct qv_error err = {};
	json_object *v;
	const char *h;

	if (!params || json_check_keys(params, keys, "params", &err) < 0) {
		if (!params)
			qv_error_set(&err, EINVAL, QV_REASON_INVALID_ARGUMENT, "params.host is required");
		qv_rpc_call_error(call, &err);
		return NULL;
	}
	if (!json_object_object_get_ex(params, "host", &v) || !json_object_is_type(v, json_type_string) ||
	    !vm_name_valid((h = json_object_get_string(v)))) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "params.host must be a host name (1-63 of [a-zA-Z0-9_.-])");
		return NULL;
	}
	if (!d->cluster) {
		qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
			     "this qvisord is not in a cluster (start it with --cluster-endpoints, "
			     "docs/cluster.md)");
		return NULL;
	}
	return h;
}

static int maint(qv_rpc_call *call, json_object *params, struct qv_daemon *d, bool cordon)
{
	static const char *const ckeys[] = { "host", "reason", NULL }, *const rkeys[] = { "host", NULL };
	const char *h = host_param(d, call, params, cordon ? ckeys : rkeys);
	json_object *v;
	struct maint *m;

	if (!h)
		return 0;
	if (!cordon && cl_evacuating(h))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "host %s is being evacuated (driven by this host): resume it "
				    "when the evacuation ends", h);
	if (!(m = calloc(1, sizeof(*m))))
		return -ENOMEM;
	snprintf(m->host, sizeof(m->host), "%s", h);
	snprintf(m->me, sizeof(m->me), "%s", d->cfg.cluster_host);
	snprintf(m->reason, sizeof(m->reason), "%.127s",
		 json_object_object_get_ex(params, "reason", &v) ? json_object_get_string(v)
								  : "cordoned by the operator");
	m->cordon = cordon;
	if (cl_job_push(d->cluster, d->cluster->eq, maint_run, maint_finish, call, m) < 0) {
		free(m);
		return -ENOMEM;
	}
	return 0;
}

int cl_m_host_cordon(qv_rpc_call *call, json_object *params, void *ud)
{
	return maint(call, params, ud, true);
}

int cl_m_host_resume(qv_rpc_call *call, json_object *params, void *ud)
{
	return maint(call, params, ud, false);
}

int cl_m_host_evacuate(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "host", "wait", NULL };
	struct qv_daemon *d = ud;
	const char *h = host_param(d, call, params, keys);
	json_object *v;
	bool wait = false;

	if (!h)
		return 0;
	if (json_object_object_get_ex(params, "wait", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "params.wait must be a boolean");
		wait = json_object_get_boolean(v);
	}
	if (cl_evacuating(h))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "an evacuation of host %s is already running (driven by this "
				    "host)", h);
	return cl_evacuate_start(d->cluster, call, h, wait);
}

void cl_hosts_apply_hostcfg(qv_etcd *e, json_object *hosts)
{
	struct qv_etcd_kv *kvs = NULL;
	struct qv_error err = {};
	size_t n = 0;
	json_object *v;

	if (qv_etcd_list(e, CL_HOSTCFG, &kvs, &n, &err) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		json_object *cfg = json_tokener_parse(kvs[i].value);
		for (size_t k = 0; cfg && k < json_object_array_length(hosts); k++) {
			json_object *h = json_object_array_get_idx(hosts, k);
			if (!json_object_object_get_ex(h, "name", &v) ||
			    !streq(json_object_get_string(v), kvs[i].key + strlen(CL_HOSTCFG)))
				continue;
			if (json_object_object_get_ex(cfg, "schedulable", &v) && !json_object_get_boolean(v))
				json_object_object_add(h, "schedulable", json_object_new_boolean(false));
			json_object_object_add(h, "cordon", json_object_get(cfg));
		}
		json_object_put(cfg);
	}
	qv_etcd_kvs_free(kvs, n);
}
