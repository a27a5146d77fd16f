/* SPDX-License-Identifier: MIT */
/* The live balancer (docs/cluster.md "Balancer"): on the leader, every
 * --cluster-balance-interval, one sched/balance.h round over the cluster
 * as etcd shows it (hosts' and VMs' measured CPU from the host records, a
 * bounded per-host history kept here, VM records), in the mode stored in
 * etcd (/qvisor/balancer: a new leader keeps it). Every new decision is an
 * event with its reason; in enforce mode the leader asks each source
 * daemon to vm.migrate the VM to the chosen host over the peer channel
 * (the daemon-driven migration, mutual TLS) and tells the balancer when it
 * ends. cluster.plan and cluster.mode are in cluster-plan.c. */
#include <math.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"

/* One host's CPU utilisation, newest first (the balancer's history). */
struct cl_hist {
	char name[64];
	double v[QV_PL_HIST];
	int n;
	bool seen;
};

struct cl_bal {
	qv_bal *bal;            /* while we lead */
	uint64_t last_ms;       /* monotonic: the last round began */
	bool busy;
	struct cl_hist *hist;
	int nhist;
	char *last_sig;         /* the previous round's decisions */
	enum qv_bal_mode mode;  /* as last read */
	bool new_term;          /* no round yet since we became leader */
	struct order *orders;   /* vm.migrate calls in flight */
};

void cl_bal_cfg(struct qv_cluster *c, struct qv_bal_cfg *cfg, double threshold)
{
	const struct qv_daemon_config *o = &c->d->cfg;

	double thr = threshold > 0 ? threshold
				   : o->cluster_balance_threshold > 0 ? o->cluster_balance_threshold : 0.8;

	qv_bal_cfg_defaults(cfg);
	cfg->pol.det = QV_DET_THR;
	cfg->pol.param = thr;
	/* Another detector, or qvisor's forecast: THR stays the threshold of
	 * THR and of the placement's target; the others keep the paper's
	 * parameter (checked at option parsing). */
	if (o->cluster_balance_policy[0])
		(void)cl_bal_policy_cfg(o->cluster_balance_policy, thr, &cfg->pol, NULL, 0);
	cfg->pol.interval_s = cl_bal_interval_s(c);
	cfg->power_saving = o->cluster_balance_power_saving;
	if (o->cluster_balance_cooldown_s >= 0)
		cfg->cooldown_s = o->cluster_balance_cooldown_s;
	/* Each migration takes a link and a core of both ends. */
	cfg->max_cluster = 2;
	cfg->max_per_host = 1;
}

int cl_bal_policy_cfg(const char *name, double thr, struct qv_pol_cfg *ret, char *full, size_t size)
{
	char buf[32];

	if (!name || !*name || strlen(name) > 16)
		return -EINVAL;
	/* the detector alone means its MMT variant (the selection is the
	 * balancer's own: cheapest relief) */
	snprintf(buf, sizeof(buf), "%s%s", name, streq(name, "qvisor") || strchr(name, '-') ? "" : "-mmt");
	int r = qv_pol_cfg_parse(buf, -1, ret);
	if (r < 0 || (ret->kind != QV_POL_DYNAMIC && ret->kind != QV_POL_QVISOR))
		return -EINVAL;
	if (ret->kind == QV_POL_DYNAMIC && ret->det == QV_DET_THR && thr > 0)
		ret->param = thr;
	if (full)
		snprintf(full, size, "%s", buf);
	return 0;
}

unsigned cl_bal_interval_s(struct qv_cluster *c)
{
	return c->d->cfg.cluster_balance_interval_s ? c->d->cfg.cluster_balance_interval_s
						     : CL_BAL_DEFAULT_INTERVAL_S;
}

static struct cl_hist *hist_of(struct cl_bal *b, const char *name)
{
	for (int i = 0; i < b->nhist; i++)
		if (streq(b->hist[i].name, name))
			return &b->hist[i];
	struct cl_hist *n = realloc(b->hist, sizeof(*n) * (size_t)(b->nhist + 1));
	if (!n)
		return NULL;
	b->hist = n;
	n = &b->hist[b->nhist++];
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	return n;
}

/* The balancer's view of the snapshot: hosts by their own VMs (CPU their
 * QEMUs used, memory their running guests have), the history (leader),
 * VMs that do not run stay where they are. */
void cl_bal_view(struct qv_cluster *c, struct cl_snap *s, bool record)
{
	struct cl_bal *b = c->bal;

	for (size_t i = 0; i < s->nh; i++)
		s->hosts[i].mem_used_mib = 0;
	for (size_t i = 0; i < s->nv; i++) {
		struct qv_pl_vm *vm = &s->vms[i];
		if (vm->host >= 0)
			s->hosts[vm->host].mem_used_mib += vm->mem_used_mib;
		if (!vm->mem_used_mib) /* not running: nothing to migrate live */
			vm->pinned = true;
	}
	if (!b || !cl_is_leader(c))
		return; /* no history but the leader's own */
	for (int i = 0; i < b->nhist; i++)
		b->hist[i].seen = false;
	for (size_t i = 0; i < s->nh; i++) {
		struct cl_hist *hi = hist_of(b, s->hosts[i].name); /* may move b->hist */
		if (hi)
			hi->seen = true;
	}
	/* hosts gone from the cluster lose their history (bounded) */
	for (int i = 0; record && i < b->nhist;)
		if (!b->hist[i].seen)
			b->hist[i] = b->hist[--b->nhist];
		else
			i++;
	for (size_t i = 0; i < s->nh; i++) {
		struct qv_pl_host *h = &s->hosts[i];
		struct cl_hist *hi = NULL;
		for (int k = 0; k < b->nhist && !hi; k++)
			if (streq(b->hist[k].name, h->name))
				hi = &b->hist[k];
		if (!hi)
			continue;
		if (record) {
			memmove(hi->v + 1, hi->v, sizeof(hi->v[0]) * (QV_PL_HIST - 1));
			hi->v[0] = h->cpu_used_milli / (h->cpu_milli ? h->cpu_milli : 1000);
			if (hi->n < QV_PL_HIST)
				hi->n++;
		}
		h->cpu_hist = hi->v;
		h->ncpu_hist = hi->n;
	}
}

/* --- migrations the leader orders ---------------------------------------- */

/* One vm.migrate the leader asked a source daemon for (cl_peer_call). */
struct order {
	struct order *next;
	struct qv_cluster *c;
	char vm[64], from[64], to[64];
	struct cl_peer_call *pc;
};

static void order_unlink(struct order *o)
{
	for (struct order **p = &o->c->bal->orders; *p; p = &(*p)->next)
		if (*p == o) {
			*p = o->next;
			break;
		}
}

static void order_done(int r, json_object *res, const struct qv_error *err, void *ud)
{
	struct order *o = ud;
	struct qv_cluster *c = o->c;
	const char *msg = err && err->message[0] ? err->message : strerror(-r);
	json_object *ev = json_object_new_object();

	order_unlink(o);
	if (c->bal->bal)
		qv_bal_finished(c->bal->bal, o->vm, r >= 0, (double)qv_unix_ms() / 1000.0);
	json_object_object_add(ev, "vm", json_object_new_string(o->vm));
	json_object_object_add(ev, "from", json_object_new_string(o->from));
	json_object_object_add(ev, "to", json_object_new_string(o->to));
	json_object_object_add(ev, "ok", json_object_new_boolean(r >= 0));
	if (r < 0)
		json_object_object_add(ev, "error", json_object_new_string(msg));
	if (r >= 0)
		log_info("Cluster: balancer moved VM %s from %s to %s", o->vm, o->from, o->to);
	else
		log_warning("Cluster: balancer could not move VM %s from %s to %s: %s", o->vm,
			    o->from, o->to, msg);
	qv_daemon_emit(c->d, o->vm, "cluster-migration", ev);
	free(o);
}

static const char *host_address(const struct cl_snap *s, int h)
{
	json_object *a;

	if (h < 0 || (size_t)h >= s->nh || !s->hrec[h] ||
	    !json_object_object_get_ex(s->hrec[h], "address", &a))
		return NULL;
	return json_object_get_string(a);
}

static void start_move(struct qv_cluster *c, const struct cl_snap *s,
		       const struct qv_bal_decision *d)
{
	const char *from = host_address(s, d->from), *to = host_address(s, d->to);
	const char *name = s->vms[d->vm].name;
	struct order *o = calloc(1, sizeof(*o));
	double now = (double)qv_unix_ms() / 1000.0;
	char to_uri[160];
	json_object *p;

	if (!o || !from || !to) {
		free(o);
		qv_bal_finished(c->bal->bal, name, false, now);
		return;
	}
	o->c = c;
	snprintf(o->vm, sizeof(o->vm), "%s", name);
	snprintf(o->from, sizeof(o->from), "%s", s->hosts[d->from].name);
	snprintf(o->to, sizeof(o->to), "%s", s->hosts[d->to].name);
	snprintf(to_uri, sizeof(to_uri), "tls://%s", to);
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(o->vm));
	json_object_object_add(p, "to", json_object_new_string(to_uri));
	json_object_object_add(p, "deadline_s", json_object_new_int(CL_BAL_MIGRATION_S));
	log_info("Cluster: balancer asks %s to migrate VM %s to %s", o->from, name, o->to);
	if (cl_peer_call(c, o->from, from, "vm.migrate", p, (CL_BAL_MIGRATION_S + 30) * 1000, order_done, o,
			 &o->pc) < 0) {
		free(o);
		qv_bal_finished(c->bal->bal, name, false, now);
		return;
	}
	o->next = c->bal->orders;
	c->bal->orders = o;
}

/* --- the round ------------------------------------------------------------ */

struct round {
	struct cl_snap s;
	enum qv_bal_mode mode;
};

static void round_run(struct cl_job *j)
{
	struct round *rd = j->data;

	j->r = cl_bal_mode_read(j->c->etcd, &rd->mode, &j->err);
	if (j->r >= 0)
		j->r = cl_snap_load(j->c->etcd, &rd->s, &j->err);
}

/* "mode: kind vm from to;" per decision: a round that repeats the
 * previous one emits nothing new; a change of mode does (the same move
 * decided in advise and then carried out in enforce is logged twice). */
static char *signature(const struct cl_snap *s, const struct qv_bal_plan *p, enum qv_bal_mode mode)
{
	char *sig = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sig, &len);

	if (!f)
		return NULL;
	fprintf(f, "%s:", qv_bal_mode_name(mode));
	for (int i = 0; i < p->n; i++) {
		const struct qv_bal_decision *d = &p->d[i];
		fprintf(f, "%d %s %d %d;", d->kind, d->vm >= 0 ? s->vms[d->vm].name : "-", d->from,
			d->to);
	}
	fclose(f);
	return sig;
}

static void emit(struct qv_cluster *c, const struct cl_snap *s, const struct qv_bal_plan *p,
		 enum qv_bal_mode mode)
{
	_cleanup_json_ json_object *pj = NULL;
	json_object *arr;
	struct qv_pl_snapshot snap = { .hosts = s->hosts, .nhosts = (int)s->nh, .vms = s->vms,
				       .nvms = (int)s->nv };

	pj = qv_bal_plan_json(&snap, p);
	if (!pj || !json_object_object_get_ex(pj, "decisions", &arr))
		return;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *ev = json_object_get(json_object_array_get_idx(arr, i));
		const struct qv_bal_decision *d = &p->d[i];
		json_object_object_add(ev, "mode", json_object_new_string(qv_bal_mode_name(mode)));
		log_info("Cluster: balancer (%s): %s %s: %s", qv_bal_mode_name(mode),
			 qv_bal_kind_name(d->kind), d->vm >= 0 ? s->vms[d->vm].name : "-", d->reason);
		qv_daemon_emit(c->d, d->vm >= 0 ? s->vms[d->vm].name : NULL, "cluster-decision", ev);
	}
}

static void round_finish(struct cl_job *j, bool cancelled)
{
	struct round *rd = j->data;
	struct qv_cluster *c = j->c;
	struct cl_bal *b = c->bal;
	struct qv_bal_plan plan = {};
	struct qv_error err = {};
	char *sig = NULL;

	if (!cancelled)
		b->busy = false;
	if (cancelled || !cl_is_leader(c) || !b->bal) {
		cl_snap_free(&rd->s);
		free(rd);
		return;
	}
	if (j->r < 0) {
		log_warning("Cluster: balancer round skipped: %s", j->err.message);
		goto out;
	}
	if (rd->mode != b->mode)
		log_info("Cluster: balancer mode %s", qv_bal_mode_name(rd->mode));
	b->mode = rd->mode;
	qv_bal_set_mode(b->bal, rd->mode);
	cl_bal_view(c, &rd->s, true);
	struct qv_pl_snapshot snap = { .hosts = rd->s.hosts, .nhosts = (int)rd->s.nh,
				       .vms = rd->s.vms, .nvms = (int)rd->s.nv };
	if (qv_bal_round(b->bal, &snap, (double)qv_unix_ms() / 1000.0, &plan, &err) < 0) {
		log_warning("Cluster: %s", err.message);
		goto out;
	}
	sig = signature(&rd->s, &plan, rd->mode);
	if (b->new_term || (plan.n && (!sig || !b->last_sig || !streq(sig, b->last_sig)))) {
		json_object *ev = json_object_new_object();
		json_object_object_add(ev, "mode", json_object_new_string(qv_bal_mode_name(rd->mode)));
		json_object_object_add(ev, "summary", json_object_new_string(plan.summary));
		json_object_object_add(ev, "first", json_object_new_boolean(b->new_term));
		json_object_object_add(ev, "hosts", json_object_new_int((int)rd->s.nh));
		log_info("Cluster: balancer %s", plan.summary);
		qv_daemon_emit(c->d, NULL, "cluster-round", ev);
		emit(c, &rd->s, &plan, rd->mode);
		b->new_term = false;
	}
	free(b->last_sig);
	b->last_sig = TAKE_PTR(sig);
	for (int i = 0; rd->mode == QV_BAL_ENFORCE && i < plan.n; i++)
		if (plan.d[i].kind == QV_BAL_MOVE)
			start_move(c, &rd->s, &plan.d[i]);
out:
	free(sig);
	qv_bal_plan_free(&plan);
	cl_snap_free(&rd->s);
	free(rd);
}

/* Leader hook (after every refresh while we lead): a round when the
 * interval has passed, at once when we just became leader. */
static void on_leader(struct qv_cluster *c, bool gained)
{
	struct cl_bal *b = c->bal;
	struct qv_bal_cfg cfg;
	struct round *rd;

	if (gained || !b->bal) {
		/* A new term: what an earlier term knew may be stale. The
		 * cooldown survives in the VM records ("moved"). */
		qv_bal_free(b->bal);
		b->bal = NULL;
		cl_bal_cfg(c, &cfg, 0);
		if (qv_bal_new(&cfg, &b->bal) < 0)
			return;
		b->nhist = 0;
		free(b->last_sig);
		b->last_sig = NULL;
		b->last_ms = 0;
		b->new_term = true;
	}
	if (b->busy || (b->last_ms && qv_now_ms() - b->last_ms < cl_bal_interval_s(c) * 1000ull))
		return;
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return;
	if (cl_job_push(c, c->eq, round_run, round_finish, NULL, rd) < 0) {
		free(rd);
		return;
	}
	b->busy = true;
	b->last_ms = qv_now_ms();
}

int cl_balance_init(struct qv_cluster *c)
{
	c->bal = calloc(1, sizeof(*c->bal));
	if (!c->bal)
		return -ENOMEM;
	c->bal->mode = QV_BAL_ADVISE;
	return cl_leader_hook_add(c, on_leader);
}

void cl_balance_free(struct qv_cluster *c)
{
	if (!c->bal)
		return;
	while (c->bal->orders) { /* qvisord stops: no answer, no event */
		struct order *o = c->bal->orders;
		c->bal->orders = o->next;
		cl_peer_call_cancel(o->pc);
		free(o);
	}
	qv_bal_free(c->bal->bal);
	free(c->bal->hist);
	free(c->bal->last_sig);
	free(c->bal);
	c->bal = NULL;
}
