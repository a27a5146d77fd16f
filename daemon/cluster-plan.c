/* SPDX-License-Identifier: MIT */
/* The balancer's RPC methods (docs/rpc.md): cluster.plan, a dry run of
 * one round on live data from any host, and cluster.mode, the mode kept
 * in etcd (/qvisor/balancer) so that a new leader keeps it; and the
 * daemon's balancer options. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"

int cl_bal_mode_read(qv_etcd *e, enum qv_bal_mode *ret, struct qv_error *errp)
{
	struct qv_etcd_kv kv = {};
	json_object *v;
	int r;

	*ret = QV_BAL_ADVISE; /* the default until an operator says otherwise */
	r = qv_etcd_get(e, CL_BALANCER, &kv, errp);
	if (r == -ENOENT) {
		qv_error_clear(errp);
		return 0;
	}
	if (r < 0)
		return r;
	_cleanup_json_ json_object *rec = json_tokener_parse(kv.value);
	qv_etcd_kv_done(&kv);
	if (rec && json_object_object_get_ex(rec, "mode", &v))
		(void)qv_bal_mode_parse(json_object_get_string(v), ret);
	return 0;
}

/* --- cluster.plan ----------------------------------------------------------- */

struct plan {
	struct cl_snap s;
	enum qv_bal_mode mode;
	double threshold;      /* 0: the daemon's */
	char leader[64];
};

static void plan_run(struct cl_job *j)
{
	struct plan *p = j->data;
	struct qv_error err = {};

	j->r = cl_bal_mode_read(j->c->etcd, &p->mode, &j->err);
	if (j->r >= 0)
		j->r = cl_snap_load(j->c->etcd, &p->s, &j->err);
	if (j->r >= 0 && cl_leader_read(j->c->etcd, p->leader, sizeof(p->leader), NULL, &err) < 0)
		p->leader[0] = '\0';
}

static json_object *hosts_json(const struct cl_snap *s)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < s->nh; i++) {
		const struct qv_pl_host *h = &s->hosts[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(h->name));
		json_object_object_add(o, "cpu_used_milli",
				       json_object_new_int64((int64_t)h->cpu_used_milli));
		json_object_object_add(o, "cpu_milli", json_object_new_int64(h->cpu_milli));
		json_object_object_add(o, "cpu_util", json_object_new_double(
					       h->cpu_used_milli / (h->cpu_milli ? h->cpu_milli : 1000)));
		json_object_object_add(o, "history", json_object_new_int(h->ncpu_hist));
		json_object_array_add(arr, o);
	}
	return arr;
}

static void plan_finish(struct cl_job *j, bool cancelled)
{
	struct plan *p = j->data;
	struct qv_cluster *c = j->c;
	struct qv_bal_plan plan = {};
	struct qv_bal_cfg cfg;
	qv_bal *b = NULL;

	if (cancelled) {
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
		goto out;
	}
	if (j->r < 0) {
		qv_error_prefix(&j->err, "cluster store unavailable");
		qv_rpc_call_error(j->call, &j->err);
		goto out;
	}
	/* A balancer of its own in advise mode: nothing recorded, nothing
	 * started. Cooldowns come from the records, migrations in flight
	 * from the VMs' state; the leader adds its CPU history. */
	cl_bal_cfg(c, &cfg, p->threshold);
	cfg.mode = QV_BAL_ADVISE;
	cl_bal_view(c, &p->s, false);
	struct qv_pl_snapshot snap = { .hosts = p->s.hosts, .nhosts = (int)p->s.nh,
				       .vms = p->s.vms, .nvms = (int)p->s.nv };
	if (qv_bal_new(&cfg, &b) < 0 ||
	    qv_bal_round(b, &snap, (double)qv_unix_ms() / 1000.0, &plan, &j->err) < 0) {
		if (!j->err.set)
			qv_error_set(&j->err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		qv_rpc_call_error(j->call, &j->err);
		goto out;
	}
	json_object *res = qv_bal_plan_json(&snap, &plan);
	if (!res) {
		qv_call_fail(j->call, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		goto out;
	}
	json_object_object_add(res, "host", json_object_new_string(c->d->cfg.cluster_host));
	json_object_object_add(res, "leader", *p->leader ? json_object_new_string(p->leader) : NULL);
	json_object_object_add(res, "mode", json_object_new_string(qv_bal_mode_name(p->mode)));
	json_object_object_add(res, "threshold", json_object_new_double(cfg.pol.param));
	char pname[32];
	json_object_object_add(res, "policy",
			       json_object_new_string(qv_pol_cfg_name(&cfg.pol, pname, sizeof(pname))));
	json_object_object_add(res, "power_saving", json_object_new_boolean(cfg.power_saving));
	json_object_object_add(res, "cooldown_s", json_object_new_double(cfg.cooldown_s));
	json_object_object_add(res, "hosts", hosts_json(&p->s));
	qv_rpc_call_reply(j->call, res);
out:
	qv_bal_plan_free(&plan);
	qv_bal_free(b);
	cl_snap_free(&p->s);
	free(p);
}

static int not_clustered(qv_rpc_call *call)
{
	return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
			    "this qvisord is not in a cluster (start it with --cluster-endpoints, "
			    "docs/cluster.md)");
}

int cl_m_plan(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "threshold", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	json_object *v;
	struct plan *p;

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (!d->cluster)
		return not_clustered(call);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (params && json_object_object_get_ex(params, "threshold", &v)) {
		p->threshold = json_object_get_double(v);
		if (!(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) ||
		    !(p->threshold > 0 && p->threshold <= 1)) {
			free(p);
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "params.threshold must be a number in (0, 1]");
		}
	}
	if (cl_job_push(d->cluster, d->cluster->eq, plan_run, plan_finish, call, p) < 0) {
		free(p);
		return -ENOMEM;
	}
	return 0;
}

/* --- cluster.mode ----------------------------------------------------------- */

struct mode_op {
	bool set;
	enum qv_bal_mode mode, previous;
	char *value;
};

static void mode_run(struct cl_job *j)
{
	struct mode_op *m = j->data;

	j->r = cl_bal_mode_read(j->c->etcd, &m->previous, &j->err);
	if (j->r >= 0 && m->set)
		j->r = qv_etcd_put(j->c->etcd, CL_BALANCER, m->value, 0, NULL, &j->err);
	if (j->r >= 0 && !m->set)
		m->mode = m->previous;
}

static void mode_finish(struct cl_job *j, bool cancelled)
{
	struct mode_op *m = j->data;
	struct qv_cluster *c = j->c;

	if (cancelled)
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	else if (j->r < 0) {
		qv_error_prefix(&j->err, "cluster store unavailable, mode not %s",
				m->set ? "changed" : "read");
		qv_rpc_call_error(j->call, &j->err);
	} else {
		json_object *res = json_object_new_object();
		json_object_object_add(res, "mode", json_object_new_string(qv_bal_mode_name(m->mode)));
		json_object_object_add(res, "previous",
				       json_object_new_string(qv_bal_mode_name(m->previous)));
		if (m->set && m->mode != m->previous) {
			json_object *ev = json_object_new_object();
			json_object_object_add(ev, "mode",
					       json_object_new_string(qv_bal_mode_name(m->mode)));
			json_object_object_add(ev, "previous",
					       json_object_new_string(qv_bal_mode_name(m->previous)));
			log_info("Cluster: balancer mode set to %s (was %s)", qv_bal_mode_name(m->mode),
				 qv_bal_mode_name(m->previous));
			qv_daemon_emit(c->d, NULL, "cluster-mode", ev);
		}
		qv_rpc_call_reply(j->call, res);
	}
	free(m->value);
	free(m);
}

int cl_m_mode(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "mode", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	json_object *v;
	struct mode_op *m;

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (!d->cluster)
		return not_clustered(call);
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (params && json_object_object_get_ex(params, "mode", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    qv_bal_mode_parse(json_object_get_string(v), &m->mode) < 0) {
			free(m);
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "params.mode must be \"off\", \"advise\" or \"enforce\"");
		}
		m->set = true;
		_cleanup_json_ json_object *rec = json_object_new_object();
		json_object_object_add(rec, "mode", json_object_new_string(qv_bal_mode_name(m->mode)));
		json_object_object_add(rec, "by", json_object_new_string(d->cfg.cluster_host));
		json_object_object_add(rec, "updated", json_object_new_int64(qv_unix_ms()));
		m->value = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
		if (!m->value) {
			free(m);
			return -ENOMEM;
		}
	}
	if (cl_job_push(d->cluster, d->cluster->eq, mode_run, mode_finish, call, m) < 0) {
		free(m->value);
		free(m);
		return -ENOMEM;
	}
	return 0;
}

/* --- options ---------------------------------------------------------------- */

int qv_cluster_option(struct qv_daemon_config *cfg, const char *name, const char *value)
{
	char *end;
	double x = value ? strtod(value, &end) : -1;

	if (streq(name, "cluster-balance-power-saving")) {
		cfg->cluster_balance_power_saving = true;
		return 0;
	}
	if (streq(name, "cluster-balance-policy")) {
		struct qv_pol_cfg pol;
		char full[32];
		if (cl_bal_policy_cfg(value, 0, &pol, full, sizeof(full)) < 0) {
			fprintf(stderr, "qvisord: --cluster-balance-policy: unknown policy %s (thr, mad, "
				"iqr, lr, lrr or qvisor)\n", value);
			return -EINVAL;
		}
		snprintf(cfg->cluster_balance_policy, sizeof(cfg->cluster_balance_policy), "%s", value);
		return 0;
	}
	if (*end || end == value)
		x = -1;
	if (streq(name, "cluster-capacity-vcpus") && x >= 1 && x <= 4096 && x == (unsigned)x)
		cfg->cluster_capacity_vcpus = (unsigned)x;
	else if (streq(name, "cluster-balance-interval") && x >= 1 && x <= 3600 && x == (unsigned)x)
		cfg->cluster_balance_interval_s = (unsigned)x;
	else if (streq(name, "cluster-balance-threshold") && x > 0 && x <= 1)
		cfg->cluster_balance_threshold = x;
	else if (streq(name, "cluster-balance-cooldown") && x >= 0 && x <= 7 * 86400)
		cfg->cluster_balance_cooldown_s = x;
	else {
		fprintf(stderr, "qvisord: --%s: %s is out of range (see qvisord(8): capacity "
			"1..4096 vCPUs, interval 1..3600 s, threshold (0, 1], cooldown 0..604800 "
			"s)\n", name, value);
		return -EINVAL;
	}
	return 0;
}
