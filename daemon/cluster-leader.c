/* SPDX-License-Identifier: MIT */
/* Leader election on etcd (docs/cluster.md "Leader"): the key
 * /qvisor/leader, attached to the leader's membership lease, is created
 * only when absent (a create-only transaction). Every host looks at it
 * after each refresh of its membership; when the leader's lease ends
 * (crash, cut link, clean stop) the key goes with it and the next host to
 * refresh takes it. Leader-only work hangs off cl_leader_hook_add(). */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"

struct cl_leader {
	char name[64];          /* who leads as last seen ("" none) */
	bool leading;           /* the key is on our lease */
	bool busy;
	uint64_t confirmed_ms;  /* monotonic: when the check that confirmed us began */
	cl_leader_hook hooks[CL_LEADER_HOOKS];
	int nhooks;
};

struct check {
	int64_t lease;
	uint64_t started_ms;
	char *value;            /* our candidate record */
	char name[64];          /* out: the leader */
	bool ours;              /* out: the key is on our lease */
};

int cl_leader_read(qv_etcd *e, char *buf, size_t size, int64_t *ret_lease, struct qv_error *errp)
{
	struct qv_etcd_kv kv = {};
	json_object *v;
	int r;

	buf[0] = '\0';
	r = qv_etcd_get(e, CL_LEADER, &kv, errp);
	if (r < 0)
		return r;
	_cleanup_json_ json_object *rec = json_tokener_parse(kv.value);
	if (rec && json_object_object_get_ex(rec, "host", &v))
		snprintf(buf, size, "%s", json_object_get_string(v));
	if (ret_lease)
		*ret_lease = kv.lease;
	qv_etcd_kv_done(&kv);
	return 0;
}

static void check_run(struct cl_job *j)
{
	struct check *k = j->data;
	int64_t lease = 0;

	j->r = cl_leader_read(j->c->etcd, k->name, sizeof(k->name), &lease, &j->err);
	if (j->r == -ENOENT) { /* nobody leads: try to */
		qv_error_clear(&j->err);
		j->r = qv_etcd_put_if(j->c->etcd, CL_LEADER, k->value, k->lease, 0, NULL, &j->err);
		if (j->r == -ESTALE) { /* another host was quicker */
			qv_error_clear(&j->err);
			j->r = cl_leader_read(j->c->etcd, k->name, sizeof(k->name), &lease, &j->err);
		} else if (j->r == 0) {
			snprintf(k->name, sizeof(k->name), "%s", j->c->d->cfg.cluster_host);
			lease = k->lease;
		}
	}
	k->ours = j->r == 0 && lease == k->lease;
}

static void set_leader(struct qv_cluster *c, const char *name, bool ours)
{
	struct cl_leader *l = c->leader;

	if (!streq(l->name, name) || l->leading != ours) {
		json_object *ev = json_object_new_object();
		json_object_object_add(ev, "leader", *name ? json_object_new_string(name) : NULL);
		json_object_object_add(ev, "previous", *l->name ? json_object_new_string(l->name) : NULL);
		json_object_object_add(ev, "self", json_object_new_boolean(ours));
		log_info("Cluster: leader is %s%s (was %s)", *name ? name : "(none)",
			 ours ? " (this host)" : "", *l->name ? l->name : "(none)");
		qv_daemon_emit(c->d, NULL, "cluster-leader", ev);
	}
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->leading = ours;
}

static void check_finish(struct cl_job *j, bool cancelled)
{
	struct check *k = j->data;
	struct qv_cluster *c = j->c;
	struct cl_leader *l = c->leader;

	free(k->value);
	if (cancelled || !l) {
		free(k);
		return;
	}
	l->busy = false;
	if (j->r < 0) {
		/* Cannot tell: we stop acting as leader (our lease may be gone). */
		log_debug("Cluster: leader check failed: %s", j->err.message);
		if (l->leading)
			set_leader(c, "", false);
		free(k);
		return;
	}
	bool gained = k->ours && !l->leading;
	set_leader(c, k->name, k->ours);
	if (k->ours)
		l->confirmed_ms = k->started_ms;
	free(k);
	for (int i = 0; l->leading && i < l->nhooks; i++)
		l->hooks[i](c, gained);
}

void cl_leader_refresh(struct qv_cluster *c)
{
	struct cl_leader *l = c->leader;
	_cleanup_json_ json_object *rec = json_object_new_object();
	struct check *k;

	if (!l || l->busy || !c->lease)
		return;
	k = calloc(1, sizeof(*k));
	if (!k)
		return;
	k->lease = c->lease;
	k->started_ms = qv_now_ms();
	json_object_object_add(rec, "host", json_object_new_string(c->d->cfg.cluster_host));
	json_object_object_add(rec, "address", json_object_new_string(c->d->cfg.cluster_address));
	json_object_object_add(rec, "since", json_object_new_int64(qv_unix_ms()));
	k->value = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
	if (!k->value || cl_job_push(c, c->eq, check_run, check_finish, NULL, k) < 0) {
		free(k->value);
		free(k);
		return;
	}
	l->busy = true;
}

void cl_leader_lost_contact(struct qv_cluster *c)
{
	if (c->leader && c->leader->leading)
		set_leader(c, "", false);
}

bool cl_is_leader(struct qv_cluster *c)
{
	struct cl_leader *l = c ? c->leader : NULL;

	/* Past a TTL since the last confirmation our lease may have expired
	 * and another host may lead: never act on an old belief. */
	return l && l->leading && qv_now_ms() - l->confirmed_ms < (uint64_t)c->ttl_s * 1000;
}

const char *cl_leader_name(struct qv_cluster *c)
{
	return c && c->leader ? c->leader->name : "";
}

int cl_leader_hook_add(struct qv_cluster *c, cl_leader_hook fn)
{
	struct cl_leader *l = c->leader;

	if (!l || l->nhooks == CL_LEADER_HOOKS)
		return -ENOSPC;
	l->hooks[l->nhooks++] = fn;
	return 0;
}

int cl_leader_init(struct qv_cluster *c)
{
	c->leader = calloc(1, sizeof(*c->leader));
	return c->leader ? 0 : -ENOMEM;
}

void cl_leader_free(struct qv_cluster *c)
{
	free(c->leader);
	c->leader = NULL;
}
