/* SPDX-License-Identifier: MIT */
/* JSON views of placement choices and balancer plans, with host and VM
 * names (what `qvisor cluster plan --json`, RPC answers and events carry). */
#include <json-c/json.h>
#include <math.h>

#include "sched/balance.h"

static const char *const kind_names[] = { "move", "defer", "skip" };
static const char *const why_names[] = { "overload", "underload", "evacuate" };

const char *qv_bal_kind_name(enum qv_bal_kind k)
{
	return k >= QV_BAL_MOVE && k <= QV_BAL_SKIP ? kind_names[k] : "?";
}

const char *qv_bal_why_name(enum qv_bal_why w)
{
	return w >= QV_BAL_OVERLOAD && w <= QV_BAL_EVACUATE ? why_names[w] : "?";
}

static void add_name(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

/* Rounded to 1/1000 so that outputs compare; null when not finite. */
static void add_num(json_object *o, const char *k, double v)
{
	json_object_object_add(o, k, isfinite(v) ? json_object_new_double(round(v * 1000) / 1000) : NULL);
}

json_object *qv_pl_choice_json(const struct qv_pl_snapshot *snap, const struct qv_pl_choice *c)
{
	json_object *o = json_object_new_object();
	add_name(o, "host", c->host >= 0 && c->host < snap->nhosts ? snap->hosts[c->host].name : NULL);
	json_object_object_add(o, "fit", json_object_new_int(c->nfit));
	add_name(o, "reason", c->reason);
	return o;
}

json_object *qv_bal_plan_json(const struct qv_pl_snapshot *snap, const struct qv_bal_plan *p)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	for (int i = 0; i < p->n; i++) {
		const struct qv_bal_decision *d = &p->d[i];
		json_object *e = json_object_new_object();
		add_name(e, "kind", qv_bal_kind_name(d->kind));
		add_name(e, "why", qv_bal_why_name(d->why));
		add_name(e, "vm", d->vm >= 0 && d->vm < snap->nvms ? snap->vms[d->vm].name : NULL);
		add_name(e, "from", d->from >= 0 && d->from < snap->nhosts ? snap->hosts[d->from].name : NULL);
		add_name(e, "to", d->to >= 0 && d->to < snap->nhosts ? snap->hosts[d->to].name : NULL);
		if (d->why == QV_BAL_EVACUATE && d->kind == QV_BAL_MOVE)
			json_object_object_add(e, "wave", json_object_new_int(d->wave));
		if (d->kind == QV_BAL_MOVE)
			add_num(e, "predicted_s", d->cost_s);
		add_name(e, "reason", d->reason);
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "decisions", a);
	json_object_object_add(o, "moves", json_object_new_int(p->moves));
	json_object_object_add(o, "deferred", json_object_new_int(p->deferred));
	json_object_object_add(o, "skipped", json_object_new_int(p->skipped));
	json_object_object_add(o, "overloaded", json_object_new_int(p->overloaded));
	json_object_object_add(o, "underloaded", json_object_new_int(p->underloaded));
	if (p->waves)
		json_object_object_add(o, "waves", json_object_new_int(p->waves));
	json_object_object_add(o, "advise", json_object_new_boolean(p->advise));
	add_name(o, "summary", p->summary);
	return o;
}
