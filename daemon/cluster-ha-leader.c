/* SPDX-License-Identifier: MIT */
/* HA restart, the leader's part (docs/cluster.md "HA restart"). After each
 * refresh that finds us leading, look at the ha VMs in the inventory:
 * - owner without a lease: restart it elsewhere once we have seen the
 *   owner gone for its fence timeout + a margin (the TTL), measured on our
 *   own clock from when *we* first saw it gone - by then the owner has
 *   killed its copy (cluster-fence.c);
 * - record "fenced" (the owner is back but stopped it): restart it now;
 * - ha_pending (given to a host that has not started it): ask again.
 * Restarting is one transaction per VM comparing the record's revision
 * (owner := the host placement picks, ha_pending), so two leaders of a
 * split cannot both do it; then cluster.adopt on that host. Non-ha VMs of
 * a dead host stay its own. */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"

enum ha_kind { HA_GONE, HA_FENCED, HA_PENDING };

struct gone {
	struct gone *next;
	char host[64];
	uint64_t since_ms;   /* our clock: when we first saw it without a lease */
};

struct tried {
	struct tried *next;
	char vm[64];
	uint64_t at_ms;
};

struct cl_ha_leader {
	struct gone *gone;
	struct tried *tried;
	struct call *calls;  /* cluster.adopt in flight */
	bool busy;
};

struct cand {
	char name[64];
	char owner[64];
	char address[128];   /* the owner's (HA_PENDING) */
	enum ha_kind kind;
	unsigned fence_s;
};

struct scan {
	struct cand *c;
	size_t n;
};

static void gone_clear(struct cl_ha_leader *l)
{
	while (l->gone) {
		struct gone *g = l->gone;
		l->gone = g->next;
		free(g);
	}
	while (l->tried) {
		struct tried *t = l->tried;
		l->tried = t->next;
		free(t);
	}
}

static int64_t jint(json_object *o, const char *key, int64_t def)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : def;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/* Meant to run when its owner was last heard of: running (or about to),
 * fenced, or given to a host that did not start it yet. A VM its operator
 * stopped stays stopped. */
static bool should_run(json_object *rec)
{
	static const char *const on[] = { "running", "paused", "starting", "migrating",
					  CL_FENCED_STATE, NULL };
	json_object *v;

	if (json_object_object_get_ex(rec, "ha_pending", &v) && json_object_get_boolean(v))
		return true;
	for (size_t i = 0; on[i]; i++)
		if (streq(on[i], jstr(rec, "state")))
			return true;
	return false;
}

static json_object *host_of(struct qv_etcd_kv *hosts, size_t nh, const char *name)
{
	for (size_t i = 0; i < nh; i++)
		if (streq(hosts[i].key + strlen(CL_HOSTS), name))
			return json_tokener_parse(hosts[i].value);
	return NULL;
}

static void scan_run(struct cl_job *j)
{
	struct scan *s = j->data;
	struct qv_etcd_kv *hosts = NULL, *vms = NULL;
	size_t nh = 0, nv = 0;

	if ((j->r = qv_etcd_list(j->c->etcd, CL_HOSTS, &hosts, &nh, &j->err)) < 0 ||
	    (j->r = qv_etcd_list(j->c->etcd, CL_VMS, &vms, &nv, &j->err)) < 0)
		goto out;
	s->c = calloc(nv + 1, sizeof(*s->c));
	if (!s->c) {
		j->r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nv; i++) {
		_cleanup_json_ json_object *rec = json_tokener_parse(vms[i].value);
		json_object *v;
		if (!rec || !json_object_object_get_ex(rec, "ha", &v) || !json_object_get_boolean(v))
			continue;
		_cleanup_json_ json_object *h = host_of(hosts, nh, jstr(rec, "owner"));
		struct cand *cd = &s->c[s->n];
		if (!should_run(rec))
			continue;
		if (!h)
			cd->kind = HA_GONE;
		else if (streq(jstr(rec, "state"), CL_FENCED_STATE))
			cd->kind = HA_FENCED;
		else if (json_object_object_get_ex(rec, "ha_pending", &v) &&
			 json_object_get_boolean(v) && streq(jstr(rec, "state"), "stopped"))
			cd->kind = HA_PENDING;
		else
			continue;
		snprintf(cd->name, sizeof(cd->name), "%s", vms[i].key + strlen(CL_VMS));
		snprintf(cd->owner, sizeof(cd->owner), "%s", jstr(rec, "owner"));
		if (h)
			snprintf(cd->address, sizeof(cd->address), "%s", jstr(h, "address"));
		cd->fence_s = (unsigned)jint(rec, "fence_timeout_s", 0);
		s->n++;
	}
out:
	qv_etcd_kvs_free(hosts, nh);
	qv_etcd_kvs_free(vms, nv);
}

/* --- restart one VM: the transaction, then cluster.adopt ------------------- */

struct restart {
	struct cand cd;
	uint64_t waited_ms;
	char why[256];
	/* out */
	char to[64], address[128], reason[512];
};

static void restart_run(struct cl_job *j)
{
	struct restart *rs = j->data;
	struct qv_etcd_kv kv = {}, hkv = {};
	char key[96];

	snprintf(key, sizeof(key), CL_VMS "%s", rs->cd.name);
	j->r = qv_etcd_get(j->c->etcd, key, &kv, &j->err);
	if (j->r < 0)
		return;
	_cleanup_json_ json_object *rec = json_tokener_parse(kv.value);
	int64_t rev = kv.mod_revision;
	qv_etcd_kv_done(&kv);
	/* Still what we decided on? (the owner may be back, or another leader
	 * acted: then the revision or the owner differ) */
	snprintf(key, sizeof(key), CL_HOSTS "%s", rs->cd.owner);
	if (!rec || !streq(jstr(rec, "owner"), rs->cd.owner)) {
		j->r = qv_error_set(&j->err, ESTALE, QV_REASON_CONFLICT, "its owner changed");
		return;
	}
	const char *state = jstr(rec, "state");
	if (rs->cd.kind == HA_GONE ? !should_run(rec) : !streq(state, CL_FENCED_STATE)) {
		j->r = qv_error_set(&j->err, ESTALE, QV_REASON_CONFLICT, "its state is %s now",
				    state);
		return;
	}
	if (rs->cd.kind == HA_GONE && qv_etcd_get(j->c->etcd, key, &hkv, &j->err) == 0) {
		qv_etcd_kv_done(&hkv);
		j->r = qv_error_set(&j->err, ESTALE, QV_REASON_CONFLICT, "host %s is back",
				    rs->cd.owner);
		return;
	}
	qv_error_clear(&j->err);
	j->r = cl_place_record(j->c->etcd, rec, NULL, cl_ha_host_sees, rs->to, sizeof(rs->to),
			       rs->address, sizeof(rs->address), rs->reason, sizeof(rs->reason),
			       &j->err);
	if (j->r < 0)
		return;
	json_object *hr = json_object_new_object();
	json_object_object_add(hr, "from", json_object_new_string(rs->cd.owner));
	json_object_object_add(hr, "reason", json_object_new_string(rs->why));
	json_object_object_add(hr, "by", json_object_new_string(j->c->d->cfg.cluster_host));
	json_object_object_add(hr, "at", json_object_new_int64(qv_unix_ms()));
	json_object_object_add(rec, "ha_restart", hr);
	json_object_object_add(rec, "owner", json_object_new_string(rs->to));
	json_object_object_add(rec, "state", json_object_new_string("stopped"));
	json_object_object_add(rec, "ha_pending", json_object_new_boolean(true));
	json_object_object_add(rec, "updated", json_object_new_int64(qv_unix_ms()));
	snprintf(key, sizeof(key), CL_VMS "%s", rs->cd.name);
	j->r = qv_etcd_put_if(j->c->etcd, key, json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN),
			      0, rev, NULL, &j->err);
}

/* One cluster.adopt the leader asked a host for (cl_peer_call). */
struct call {
	struct call *next;
	struct qv_cluster *c;
	char name[64], host[64];
	struct cl_peer_call *pc;
};

static void call_done(int r, json_object *res, const struct qv_error *err, void *ud)
{
	struct call *k = ud;
	const char *msg = err && err->message[0] ? err->message : strerror(-r);

	for (struct call **p = &k->c->ha_leader->calls; *p; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	if (r < 0) {
		log_warning("Cluster: HA: host %s cannot start VM %s: %s (asking again later)",
			    k->host, k->name, msg);
		json_object *ev = json_object_new_object();
		json_object_object_add(ev, "host", json_object_new_string(k->host));
		json_object_object_add(ev, "error", json_object_new_string(msg));
		qv_daemon_emit(k->c->d, k->name, "vm-ha-adopt-failed", ev);
	} else
		log_info("Cluster: HA: host %s adopted VM %s", k->host, k->name);
	free(k);
}

static void ask_adopt(struct qv_cluster *c, const char *name, const char *host, const char *address)
{
	struct cl_ha_leader *l = c->ha_leader;
	struct call *k;
	json_object *p;

	if (streq(host, c->d->cfg.cluster_host))
		return cl_ha_adopt_local(c, name);
	k = calloc(1, sizeof(*k));
	if (!k)
		return;
	k->c = c;
	snprintf(k->name, sizeof(k->name), "%s", name);
	snprintf(k->host, sizeof(k->host), "%s", host);
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(name));
	if (cl_peer_call(c, host, address, "cluster.adopt", p, CL_PEER_TIMEOUT_MS, call_done, k,
			 &k->pc) < 0) {
		free(k);
		return;
	}
	k->next = l->calls;
	l->calls = k;
}

static void restart_finish(struct cl_job *j, bool cancelled)
{
	struct restart *rs = j->data;
	struct qv_cluster *c = j->c;

	if (cancelled)
		goto out;
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "from", json_object_new_string(rs->cd.owner));
	json_object_object_add(ev, "why", json_object_new_string(rs->why));
	json_object_object_add(ev, "waited_ms", json_object_new_int64((int64_t)rs->waited_ms));
	if (j->r == -ESTALE) {
		log_info("Cluster: HA: VM %s not restarted: %s", rs->cd.name, j->err.message);
		json_object_put(ev);
		goto out;
	}
	if (j->r < 0) {
		log_error("Cluster: HA: cannot restart VM %s (%s): %s", rs->cd.name, rs->why,
			  j->err.message);
		json_object_object_add(ev, "error", json_object_new_string(j->err.message));
		qv_daemon_emit(c->d, rs->cd.name, "vm-ha-restart-failed", ev);
		goto out;
	}
	log_warning("Cluster: HA: restarting VM %s on %s (%s; placement: %s)", rs->cd.name, rs->to,
		    rs->why, rs->reason);
	json_object_object_add(ev, "to", json_object_new_string(rs->to));
	json_object_object_add(ev, "placement", json_object_new_string(rs->reason));
	qv_daemon_emit(c->d, rs->cd.name, "vm-ha-restart", ev);
	ask_adopt(c, rs->cd.name, rs->to, rs->address);
out:
	free(rs);
}

/* --- the scan's outcome, on the loop --------------------------------------- */

static struct gone *gone_find(struct gone *list, const char *host)
{
	for (struct gone *g = list; g; g = g->next)
		if (streq(g->host, host))
			return g;
	return NULL;
}

/* true when vm was tried less than min_ms ago; else notes a try now. */
static bool tried_recently(struct cl_ha_leader *l, const char *vm, uint64_t min_ms)
{
	uint64_t now = qv_now_ms();
	struct tried *t;

	for (t = l->tried; t && !streq(t->vm, vm); t = t->next)
		;
	if (t && now - t->at_ms < min_ms)
		return true;
	if (!t && (t = calloc(1, sizeof(*t)))) {
		snprintf(t->vm, sizeof(t->vm), "%s", vm);
		t->next = l->tried;
		l->tried = t;
	}
	if (t)
		t->at_ms = now;
	return false;
}

/* Keep the gone hosts the scan saw (with their first-seen time), drop the rest. */
static void update_gone(struct cl_ha_leader *l, const struct scan *s, uint64_t now,
			unsigned margin_s)
{
	struct gone *keep = NULL;

	for (size_t i = 0; i < s->n; i++) {
		if (s->c[i].kind != HA_GONE)
			continue;
		struct gone *g = gone_find(keep, s->c[i].owner);
		if (g)
			continue;
		struct gone **p;
		for (p = &l->gone; *p && !streq((*p)->host, s->c[i].owner); p = &(*p)->next)
			;
		if ((g = *p))
			*p = g->next;
		else if ((g = calloc(1, sizeof(*g)))) {
			snprintf(g->host, sizeof(g->host), "%s", s->c[i].owner);
			g->since_ms = now;
			log_info("Cluster: HA: host %s has no lease; its ha VMs are restarted "
				 "elsewhere after its fence timeout + %u s", g->host, margin_s);
		}
		if (g) {
			g->next = keep;
			keep = g;
		}
	}
	while (l->gone) {
		struct gone *g = l->gone;
		l->gone = g->next;
		free(g);
	}
	l->gone = keep;
}

static void act(struct qv_cluster *c, const struct cand *cd, uint64_t now)
{
	struct cl_ha_leader *l = c->ha_leader;
	uint64_t retry_ms = 3ULL * c->ttl_s * 1000, waited = 0;
	struct restart *rs;
	char why[256];

	if (cd->kind == HA_PENDING) {
		if (!tried_recently(l, cd->name, retry_ms))
			ask_adopt(c, cd->name, cd->owner, cd->address);
		return;
	}
	if (cd->kind == HA_GONE) {
		struct gone *g = gone_find(l->gone, cd->owner);
		uint64_t need = (uint64_t)(cd->fence_s + c->ttl_s) * 1000;
		if (!g || !cd->fence_s)
			return; /* an owner that does not self-fence: never restarted */
		waited = now - g->since_ms;
		if (waited < need)
			return;
		snprintf(why, sizeof(why), "host %s has had no lease for %.1f s (its fence "
			 "timeout %u s + margin %u s, on the leader's clock)", cd->owner,
			 waited / 1000.0, cd->fence_s, c->ttl_s);
	} else
		snprintf(why, sizeof(why), "host %s self-fenced it and does not restart it",
			 cd->owner);
	if (tried_recently(l, cd->name, retry_ms))
		return;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return;
	rs->cd = *cd;
	rs->waited_ms = waited;
	snprintf(rs->why, sizeof(rs->why), "%s", why);
	if (cl_job_push(c, c->eq, restart_run, restart_finish, NULL, rs) < 0)
		free(rs);
}

static void scan_finish(struct cl_job *j, bool cancelled)
{
	struct scan *s = j->data;
	struct qv_cluster *c = j->c;
	uint64_t now = qv_now_ms();

	if (!cancelled) {
		c->ha_leader->busy = false;
		if (j->r >= 0 && cl_is_leader(c)) {
			update_gone(c->ha_leader, s, now, c->ttl_s);
			for (size_t i = 0; i < s->n; i++)
				act(c, &s->c[i], now);
		}
	}
	free(s->c);
	free(s);
}

static void on_leader(struct qv_cluster *c, bool gained)
{
	struct cl_ha_leader *l = c->ha_leader;
	struct scan *s;

	if (gained) /* a new term starts its own clocks */
		gone_clear(l);
	if (l->busy || !(s = calloc(1, sizeof(*s))))
		return;
	if (cl_job_push(c, c->eq, scan_run, scan_finish, NULL, s) < 0) {
		free(s);
		return;
	}
	l->busy = true;
}

int cl_ha_leader_init(struct qv_cluster *c)
{
	c->ha_leader = calloc(1, sizeof(*c->ha_leader));
	if (!c->ha_leader)
		return log_error_errno(-ENOMEM, "Out of memory");
	return cl_leader_hook_add(c, on_leader);
}

void cl_ha_leader_free(struct qv_cluster *c)
{
	if (!c->ha_leader)
		return;
	while (c->ha_leader->calls) { /* qvisord stops: no answer, no event */
		struct call *k = c->ha_leader->calls;
		c->ha_leader->calls = k->next;
		cl_peer_call_cancel(k->pc);
		free(k);
	}
	gone_clear(c->ha_leader);
	free(c->ha_leader);
	c->ha_leader = NULL;
}
