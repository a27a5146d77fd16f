/* SPDX-License-Identifier: MIT */
/* host.evacuate (docs/cluster.md "Maintenance"), driven by the daemon
 * that got the call:
 *   1. lock    /qvisor/evacuations/H (create-only, under our lease: a
 *              second evacuation of H anywhere is a conflict; the lock
 *              goes with us if we die) and cordon H (hostcfg/H, no lease);
 *   2. list    vm.list on H's daemon: the live states;
 *   3. plan    qv_bal_evacuate() on a snapshot of etcd (cl_snap_load) with
 *              H's stopped VMs left out;
 *   4. waves   vm.migrate {name, to} on H's daemon for every move of wave
 *              k, wave k+1 when all of wave k ended;
 *   5. unlock  H stays cordoned until host.resume.
 * Each step reports: events on this daemon (host-evacuation-planned,
 * vm-evacuated per VM with its destination, reason and result,
 * host-evacuated) and, with wait, host.evacuate.progress notifications to
 * the caller. */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "sched/balance.h"

#define EV_LIST_TIMEOUT_MS 30000
#define EV_MIGRATE_TIMEOUT_MS (30 * 60 * 1000)

/* A failed migration is tried once more, in an extra wave after the
 * others (a destination QEMU slow to start on a loaded host); a refusal
 * (not-found, conflict, invalid-argument) is not. */
#define EV_ATTEMPTS 2

enum ev_state { EV_PENDING, EV_RUNNING, EV_MOVED, EV_FAILED, EV_RETRYING };
static const char *const ev_state_names[] = { "pending", "running", "moved", "failed", "retrying" };

struct ev_move {
	struct evac *e;
	char vm[64], to[64], to_addr[128];
	char reason[384];
	char error[256];
	int wave, attempts;
	double predicted_s;
	enum ev_state st;
	uint64_t t0, ms;
	struct cl_peer_call *pc;
};

struct ev_live {
	char name[64];
	char state[16];
};

struct evac {
	struct evac *next;
	struct qv_cluster *c;
	qv_rpc_call *call;       /* NULL once answered */
	qv_rpc_client *client;   /* wait: progress goes here (a reference) */
	bool wait;
	char host[64], address[128], me[64];
	int64_t lease, lock_rev;
	struct cl_peer_call *pc; /* vm.list */
	struct ev_live *live;
	size_t nlive;
	struct ev_move *m;
	int nm, waves, wave, inflight, moved, failed;
	int retry_wave;          /* the extra wave retries go to, -1: none yet */
	json_object *skipped;    /* [{vm, reason}] */
	json_object *left;       /* [{vm, state, reason}] */
	json_object *plan;       /* qv_bal_plan_json */
	json_object *final;      /* the answer, sent once the lock is gone */
	struct qv_error final_err;
	char summary[256];
	uint64_t t0;
};

static struct evac *evacs;

bool cl_evacuating(const char *host)
{
	for (struct evac *e = evacs; e; e = e->next)
		if (streq(e->host, host))
			return true;
	return false;
}

static void ev_free(struct evac *e)
{
	for (struct evac **p = &evacs; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	cl_peer_call_cancel(e->pc);
	for (int i = 0; i < e->nm; i++)
		cl_peer_call_cancel(e->m[i].pc);
	qv_rpc_client_unref(e->client);
	json_object_put(e->skipped);
	json_object_put(e->left);
	json_object_put(e->plan);
	json_object_put(e->final);
	free(e->live);
	free(e->m);
	free(e);
}

static void ev_progress(struct evac *e, json_object *p)
{
	if (e->client && qv_rpc_client_is_connected(e->client))
		(void)qv_rpc_client_notify(e->client, "host.evacuate.progress", p);
	json_object_put(p);
}

static json_object *moves_json(struct evac *e)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < e->nm; i++) {
		struct ev_move *m = &e->m[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "vm", json_object_new_string(m->vm));
		json_object_object_add(o, "to", json_object_new_string(m->to));
		json_object_object_add(o, "wave", json_object_new_int(m->wave + 1));
		json_object_object_add(o, "predicted_s", json_object_new_double(m->predicted_s));
		json_object_object_add(o, "reason", json_object_new_string(m->reason));
		json_object_object_add(o, "result", json_object_new_string(ev_state_names[m->st]));
		if (m->st == EV_MOVED || m->st == EV_FAILED)
			json_object_object_add(o, "duration_ms", json_object_new_int64((int64_t)m->ms));
		if (m->error[0])
			json_object_object_add(o, "error", json_object_new_string(m->error));
		if (m->attempts > 1)
			json_object_object_add(o, "attempts", json_object_new_int(m->attempts));
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *ev_result(struct evac *e, bool done)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "host", json_object_new_string(e->host));
	json_object_object_add(o, "driver", json_object_new_string(e->me));
	json_object_object_add(o, "schedulable", json_object_new_boolean(false));
	json_object_object_add(o, "done", json_object_new_boolean(done));
	json_object_object_add(o, "waves", json_object_new_int(e->waves));
	json_object_object_add(o, "moves", moves_json(e));
	json_object_object_add(o, "skipped", json_object_get(e->skipped));
	json_object_object_add(o, "left", json_object_get(e->left));
	if (done) {
		json_object_object_add(o, "moved", json_object_new_int(e->moved));
		json_object_object_add(o, "failed", json_object_new_int(e->failed));
		json_object_object_add(o, "duration_ms",
				       json_object_new_int64((int64_t)(qv_now_ms() - e->t0)));
	}
	json_object_object_add(o, "summary", json_object_new_string(e->summary));
	return o;
}

/* --- 5. unlock, then answer ------------------------------------------------ */

/* The caller learns the end once the lock is gone: a `host resume` right
 * after it is not refused. */
static void ev_finish(struct evac *e)
{
	if (e->call && e->final)
		qv_rpc_call_reply(e->call, TAKE_PTR(e->final));
	else if (e->call)
		qv_rpc_call_error(e->call, &e->final_err);
	e->call = NULL;
	ev_free(e);
}

static void unlock_run(struct cl_job *j)
{
	struct evac *e = j->data;
	char key[128];

	snprintf(key, sizeof(key), CL_EVACS "%s", e->host);
	j->r = qv_etcd_delete_if(j->c->etcd, key, e->lock_rev, &j->err);
}

static void unlock_finish(struct cl_job *j, bool cancelled)
{
	struct evac *e = j->data;

	if (cancelled)
		return; /* cl_evacuate_shutdown() answers and frees it */
	if (j->r < 0 && j->r != -ENOENT && j->r != -ESTALE)
		log_warning("Cluster: cannot remove the evacuation lock of %s, ignoring (it goes "
			    "with our lease): %s", e->host, j->err.message);
	ev_finish(e);
}

static void ev_unlock(struct evac *e)
{
	if (!e->lock_rev || cl_job_push(e->c, e->c->eq, unlock_run, unlock_finish, NULL, e) < 0)
		ev_finish(e);
}

/* The evacuation ends with an error for the caller (the cordon stays). */
static void ev_fail(struct evac *e, const struct qv_error *err)
{
	log_warning("Cluster: evacuation of %s failed: %s", e->host, err->message);
	e->final_err = *err;
	ev_unlock(e);
}

static void ev_done(struct evac *e)
{
	snprintf(e->summary, sizeof(e->summary),
		 "evacuated %s: %d moved, %d failed, %zu fit nowhere, %zu left (not running)",
		 e->host, e->moved, e->failed, json_object_array_length(e->skipped),
		 json_object_array_length(e->left));
	log_info("Cluster: %s in %llu ms; %s stays unschedulable", e->summary,
		 (unsigned long long)(qv_now_ms() - e->t0), e->host);
	e->final = ev_result(e, true);
	qv_daemon_emit(e->c->d, NULL, "host-evacuated", json_object_get(e->final));
	ev_progress(e, json_object_get(e->final));
	ev_unlock(e);
}

/* --- 4. waves ------------------------------------------------------------- */

static void start_wave(struct evac *e);

static void mig_done(int r, json_object *res, const struct qv_error *err, void *ud)
{
	struct ev_move *m = ud;
	struct evac *e = m->e;
	json_object *ev = json_object_new_object();

	m->pc = NULL;
	m->ms = qv_now_ms() - m->t0;
	m->st = r < 0 ? EV_FAILED : EV_MOVED;
	if (r < 0)
		snprintf(m->error, sizeof(m->error), "%s", err && err->message[0] ? err->message
										   : strerror(-r));
	e->inflight--;
	if (r < 0 && m->attempts < EV_ATTEMPTS && !(err && (streq(err->reason, QV_REASON_NOT_FOUND) ||
							    streq(err->reason, QV_REASON_CONFLICT) ||
							    streq(err->reason, QV_REASON_INVALID_ARGUMENT)))) {
		if (e->retry_wave <= e->wave)
			e->retry_wave = e->waves++;
		m->wave = e->retry_wave;
		m->st = EV_RETRYING;
	} else if (r < 0)
		e->failed++;
	else
		e->moved++;
	json_object_object_add(ev, "host", json_object_new_string(e->host));
	json_object_object_add(ev, "to", json_object_new_string(m->to));
	json_object_object_add(ev, "wave", json_object_new_int(m->wave + 1));
	json_object_object_add(ev, "reason", json_object_new_string(m->reason));
	json_object_object_add(ev, "result", json_object_new_string(ev_state_names[m->st]));
	json_object_object_add(ev, "duration_ms", json_object_new_int64((int64_t)m->ms));
	if (r < 0)
		json_object_object_add(ev, "error", json_object_new_string(m->error));
	if (r < 0)
		log_warning("Cluster: evacuating %s: VM %s to %s failed%s: %s", e->host, m->vm, m->to,
			    m->st == EV_RETRYING ? " (retried in a later wave)" : "", m->error);
	else
		log_info("Cluster: evacuating %s: VM %s now runs on %s (%llu ms)", e->host, m->vm,
			 m->to, (unsigned long long)m->ms);
	json_object *p = json_object_get(ev);
	json_object_object_add(p, "vm", json_object_new_string(m->vm));
	qv_daemon_emit(e->c->d, m->vm, "vm-evacuated", ev);
	ev_progress(e, p);
	if (e->inflight == 0) {
		e->wave++;
		start_wave(e);
	}
}

static void start_wave(struct evac *e)
{
	for (; e->wave < e->waves; e->wave++) {
		for (int i = 0; i < e->nm; i++) {
			struct ev_move *m = &e->m[i];
			char to[160];
			if (m->wave != e->wave)
				continue;
			json_object *params = json_object_new_object();
			snprintf(to, sizeof(to), "tls://%s", m->to_addr);
			json_object_object_add(params, "name", json_object_new_string(m->vm));
			json_object_object_add(params, "to", json_object_new_string(to));
			m->st = EV_RUNNING;
			m->attempts++;
			m->error[0] = '\0';
			m->t0 = qv_now_ms();
			log_info("Cluster: evacuating %s (wave %d of %d): VM %s to %s", e->host,
				 e->wave + 1, e->waves, m->vm, m->to);
			if (cl_peer_call(e->c, e->host, e->address, "vm.migrate", params, EV_MIGRATE_TIMEOUT_MS,
					 mig_done, m, &m->pc) < 0) {
				m->st = EV_FAILED;
				snprintf(m->error, sizeof(m->error), "cannot reach %s", e->address);
				e->failed++;
				continue;
			}
			e->inflight++;
		}
		if (e->inflight)
			return;
	}
	ev_done(e);
}

/* --- 3. plan -------------------------------------------------------------- */

static const struct ev_live *live_find(const struct evac *e, const char *name)
{
	for (size_t i = 0; i < e->nlive; i++)
		if (streq(e->live[i].name, name))
			return &e->live[i];
	return NULL;
}

static void add_left(json_object *a, const char *vm, const char *state, const char *why)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "vm", json_object_new_string(vm));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "reason", json_object_new_string(why));
	json_object_array_add(a, o);
}

/* H's VMs as the plan sees them: running ones move, the others stay. */
static void apply_live(struct evac *e, struct cl_snap *s, int hi)
{
	for (size_t v = 0; v < s->nv; v++) {
		struct qv_pl_vm *vm = &s->vms[v];
		if (vm->host != hi)
			continue;
		const struct ev_live *l = live_find(e, vm->name);
		if (!l) {
			vm->host = -1; /* a stale record: the host does not have it */
			continue;
		}
		vm->migrating = streq(l->state, "migrating");
		if (!vm->migrating && !streq(l->state, "running")) {
			vm->host = -1;
			add_left(e->left, vm->name, l->state,
				 "not running: left on the host (`qvisor move` moves a stopped VM)");
		}
	}
	for (size_t i = 0; i < e->nlive; i++) {
		bool known = false;
		for (size_t v = 0; v < s->nv && !known; v++)
			known = streq(s->vms[v].name, e->live[i].name);
		if (!known)
			add_left(e->left, e->live[i].name, e->live[i].state,
				 "not in the cluster inventory: left on the host");
	}
}

static int plan_moves(struct evac *e, struct cl_snap *s, const struct qv_bal_plan *plan)
{
	e->m = calloc(plan->n ? plan->n : 1, sizeof(*e->m));
	if (!e->m)
		return -ENOMEM;
	e->waves = plan->waves;
	for (int i = 0; i < plan->n; i++) {
		const struct qv_bal_decision *d = &plan->d[i];
		json_object *a;
		if (d->kind != QV_BAL_MOVE) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "vm", json_object_new_string(s->vms[d->vm].name));
			json_object_object_add(o, "reason", json_object_new_string(d->reason));
			json_object_array_add(e->skipped, o);
			continue;
		}
		struct ev_move *m = &e->m[e->nm++];
		m->e = e;
		m->wave = d->wave;
		m->predicted_s = d->cost_s;
		snprintf(m->vm, sizeof(m->vm), "%s", s->vms[d->vm].name);
		snprintf(m->to, sizeof(m->to), "%s", s->hosts[d->to].name);
		snprintf(m->reason, sizeof(m->reason), "%s", d->reason);
		if (s->hrec[d->to] && json_object_object_get_ex(s->hrec[d->to], "address", &a))
			snprintf(m->to_addr, sizeof(m->to_addr), "%s", json_object_get_string(a));
	}
	return 0;
}

static void plan_run(struct cl_job *j)
{
	struct evac *e = j->data;
	struct cl_snap s = {};
	struct qv_bal_cfg cfg;
	struct qv_bal_plan plan = {};
	qv_bal *b = NULL;
	int hi;

	if ((j->r = cl_snap_load(j->c->etcd, &s, &j->err)) < 0)
		goto out;
	struct qv_pl_snapshot snap = { .hosts = s.hosts, .nhosts = (int)s.nh, .vms = s.vms,
				       .nvms = (int)s.nv };
	if ((hi = qv_pl_host_index(&snap, e->host)) < 0) {
		j->r = qv_error_set(&j->err, EHOSTUNREACH, QV_REASON_UNAVAILABLE,
				    "host %s left the cluster (its lease expired)", e->host);
		goto out;
	}
	apply_live(e, &s, hi);
	qv_bal_cfg_defaults(&cfg);
	cfg.mode = QV_BAL_ENFORCE;
	/* as placement does: reservations, not a shared machine's measured CPU */
	cfg.place.cpu_max_util = 0;
	if ((j->r = qv_bal_new(&cfg, &b)) < 0)
		goto out;
	j->r = qv_bal_evacuate(b, &snap, hi, (double)qv_now_ms() / 1000, &plan, &j->err);
	if (j->r == -ENOSPC) { /* the others still move; the refusals are SKIPs */
		qv_error_clear(&j->err);
		j->r = 0;
	}
	if (j->r < 0)
		goto out;
	e->plan = qv_bal_plan_json(&snap, &plan);
	snprintf(e->summary, sizeof(e->summary), "%s", plan.summary);
	j->r = plan_moves(e, &s, &plan);
out:
	qv_bal_plan_free(&plan);
	qv_bal_free(b);
	cl_snap_free(&s);
}

static void plan_finish(struct cl_job *j, bool cancelled)
{
	struct evac *e = j->data;

	if (cancelled)
		return;
	if (j->r < 0) {
		return ev_fail(e, &j->err);
	}
	log_info("Cluster: %s (%zu not running, left)", e->summary, json_object_array_length(e->left));
	json_object *ev = ev_result(e, false);
	qv_daemon_emit(e->c->d, NULL, "host-evacuation-planned", json_object_get(ev));
	ev_progress(e, json_object_get(ev));
	if (!e->wait && e->call) {
		qv_rpc_call_reply(e->call, ev);
		e->call = NULL;
	} else
		json_object_put(ev);
	start_wave(e);
}

/* --- 2. list ---------------------------------------------------------------- */

static void list_done(int r, json_object *res, const struct qv_error *err, void *ud)
{
	struct evac *e = ud;
	json_object *arr, *v;

	e->pc = NULL;
	if (r < 0 || !json_object_object_get_ex(res, "vms", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		struct qv_error e2 = {};
		qv_error_set(&e2, EHOSTUNREACH, QV_REASON_UNAVAILABLE,
			     "cannot list the VMs of host %s: %s", e->host,
			     r < 0 && err ? err->message : "malformed vm.list answer");
		return ev_fail(e, &e2);
	}
	size_t n = json_object_array_length(arr);
	e->live = calloc(n ? n : 1, sizeof(*e->live));
	for (size_t i = 0; e->live && i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		struct ev_live *l = &e->live[e->nlive];
		if (!json_object_object_get_ex(o, "name", &v))
			continue;
		snprintf(l->name, sizeof(l->name), "%s", json_object_get_string(v));
		snprintf(l->state, sizeof(l->state), "%s",
			 json_object_object_get_ex(o, "state", &v) ? json_object_get_string(v) : "?");
		e->nlive++;
	}
	if (!e->live || cl_job_push(e->c, e->c->eq, plan_run, plan_finish, NULL, e) < 0) {
		struct qv_error e2 = {};
		qv_error_set(&e2, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		ev_fail(e, &e2);
	}
}

/* --- 1. lock and cordon ---------------------------------------------------- */

static void lock_run(struct cl_job *j)
{
	struct evac *e = j->data;
	qv_etcd *etcd = j->c->etcd;
	struct qv_etcd_kv kv = {};
	char key[128];
	json_object *v;

	snprintf(key, sizeof(key), CL_HOSTS "%s", e->host);
	if ((j->r = qv_etcd_get(etcd, key, &kv, &j->err)) == -ENOENT) {
		qv_error_clear(&j->err);
		j->r = qv_error_set(&j->err, ENOENT, QV_REASON_NOT_FOUND,
				    "host %s is not a live member of the cluster (no host record): "
				    "nothing to evacuate from", e->host);
	}
	if (j->r < 0)
		return;
	_cleanup_json_ json_object *rec = json_tokener_parse(kv.value);
	qv_etcd_kv_done(&kv);
	if (rec && json_object_object_get_ex(rec, "address", &v))
		snprintf(e->address, sizeof(e->address), "%s", json_object_get_string(v));
	_cleanup_json_ json_object *lock = json_object_new_object();
	json_object_object_add(lock, "host", json_object_new_string(e->host));
	json_object_object_add(lock, "by", json_object_new_string(e->me));
	json_object_object_add(lock, "started", json_object_new_int64(qv_unix_ms()));
	snprintf(key, sizeof(key), CL_EVACS "%s", e->host);
	j->r = qv_etcd_put_if(etcd, key, json_object_to_json_string_ext(lock, JSON_C_TO_STRING_PLAIN),
			      e->lease, 0, &e->lock_rev, &j->err);
	if (j->r == -ESTALE) {
		_cleanup_json_ json_object *other = NULL;
		qv_error_clear(&j->err);
		if (qv_etcd_get(etcd, key, &kv, &j->err) == 0) {
			other = json_tokener_parse(kv.value);
			qv_etcd_kv_done(&kv);
		}
		qv_error_clear(&j->err);
		e->lock_rev = 0;
		j->r = qv_error_set(&j->err, EBUSY, QV_REASON_CONFLICT,
				    "an evacuation of host %s is already running (driven by host "
				    "%s)", e->host,
				    other && json_object_object_get_ex(other, "by", &v)
					    ? json_object_get_string(v) : "?");
		return;
	}
	if (j->r < 0)
		return;
	j->r = cl_hostcfg_cordon(etcd, e->host, "evacuation", e->me, &j->err);
}

static void lock_finish(struct cl_job *j, bool cancelled)
{
	struct evac *e = j->data;

	if (cancelled)
		return;
	if (j->r < 0) {
		if (j->r != -ENOENT && j->r != -EBUSY)
			qv_error_prefix(&j->err, "cluster store unavailable, host %s not evacuated",
					e->host);
		return ev_fail(e, &j->err);
	}
	log_info("Cluster: evacuating host %s (cordoned; asking %s for its VMs)", e->host,
		 e->address);
	if (cl_peer_call(e->c, e->host, e->address, "vm.list", json_object_new_object(), EV_LIST_TIMEOUT_MS,
			 list_done, e, &e->pc) < 0) {
		struct qv_error e2 = {};
		qv_error_set(&e2, EHOSTUNREACH, QV_REASON_UNAVAILABLE, "cannot reach host %s at %s",
			     e->host, e->address);
		ev_fail(e, &e2);
	}
}

int cl_evacuate_start(struct qv_cluster *c, qv_rpc_call *call, const char *host, bool wait)
{
	struct evac *e;

	if (!c->lease)
		return qv_call_fail(call, EHOSTUNREACH, QV_REASON_UNAVAILABLE,
				    "this host is not registered in the cluster yet (etcd "
				    "unreachable?): cannot drive an evacuation");
	if (!(e = calloc(1, sizeof(*e))))
		return -ENOMEM;
	e->c = c;
	e->call = call;
	e->wait = wait;
	e->lease = c->lease;
	e->t0 = qv_now_ms();
	e->retry_wave = -1;
	e->skipped = json_object_new_array();
	e->left = json_object_new_array();
	if (wait)
		e->client = qv_rpc_client_ref(qv_rpc_call_client(call));
	snprintf(e->host, sizeof(e->host), "%s", host);
	snprintf(e->me, sizeof(e->me), "%s", c->d->cfg.cluster_host);
	snprintf(e->summary, sizeof(e->summary), "evacuating %s", host);
	e->next = evacs;
	evacs = e;
	if (cl_job_push(c, c->eq, lock_run, lock_finish, NULL, e) < 0) {
		e->call = NULL;
		ev_free(e);
		return -ENOMEM;
	}
	return 0;
}

void cl_evacuate_shutdown(struct qv_cluster *c)
{
	while (evacs) {
		struct evac *e = evacs;
		if (e->call)
			qv_call_fail(e->call, ECANCELED, QV_REASON_CANCELLED,
				     "qvisord is shutting down: the evacuation of %s stopped (%d "
				     "moved; host %s stays unschedulable, run it again to finish)",
				     e->host, e->moved, e->host);
		e->call = NULL;
		log_warning("Cluster: evacuation of %s abandoned at shutdown (%d of %d moved)",
			    e->host, e->moved, e->nm);
		ev_free(e);
	}
}
