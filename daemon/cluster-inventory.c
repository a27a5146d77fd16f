/* SPDX-License-Identifier: MIT */
/* The cluster-wide VM inventory: one record per VM under /qvisor/vms/NAME,
 * changed only by transactions comparing the key's revision, so two hosts
 * never both own a name (docs/cluster.md "Inventory"). */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm.h"

static const char *owner_of(const char *record, char *buf, size_t size)
{
	_cleanup_json_ json_object *o = json_tokener_parse(record);
	json_object *v;

	snprintf(buf, size, "?");
	if (o && json_object_object_get_ex(o, "owner", &v))
		snprintf(buf, size, "%s", json_object_get_string(v));
	return buf;
}

json_object *cl_vm_record(struct qv_cluster *c, const struct vm_spec *spec, const char *state,
			  json_object *placement)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(spec->name));
	json_object_object_add(o, "uuid", json_object_new_string(spec->uuid));
	json_object_object_add(o, "owner", json_object_new_string(c->d->cfg.cluster_host));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "spec_revision", json_object_new_int64(1));
	json_object_object_add(o, "vcpus", json_object_new_int64(spec->vcpus));
	json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)spec->memory_mib));
	json_object_object_add(o, "cpu_reservation_milli",
			       json_object_new_int64(spec->resources.cpu_reservation));
	json_object_object_add(o, "memory_reservation_mib",
			       json_object_new_int64((int64_t)(spec->resources.mem_reservation >> 20)));
	if (placement)
		json_object_object_add(o, "placement", json_object_get(placement));
	if (spec->ha)
		cl_ha_vm_fields(c, spec, o);
	json_object_object_add(o, "updated", json_object_new_int64(qv_unix_ms()));
	return o;
}

void cl_inventory_note_written(struct qv_cluster *c, const char *name, const char *state)
{
	struct cl_vmstate *w;

	for (w = c->written; w; w = w->next)
		if (streq(w->name, name))
			break;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return;
		snprintf(w->name, sizeof(w->name), "%s", name);
		w->next = c->written;
		c->written = w;
	}
	snprintf(w->state, sizeof(w->state), "%s", state);
}


static void forget_written(struct qv_cluster *c, const char *name)
{
	for (struct cl_vmstate **p = &c->written; *p; p = &(*p)->next)
		if (streq((*p)->name, name)) {
			struct cl_vmstate *w = *p;
			*p = w->next;
			free(w);
			return;
		}
}

/* --- claim: create the record, then define locally --------------------- */

struct claim {
	char key[96];
	char *value;
	struct vm_spec *spec;
	int64_t rev;
	char owner[64];
	bool replaced_stale;
};

static void claim_run(struct cl_job *j)
{
	struct claim *cl = j->data;
	struct qv_etcd_kv kv = {};

	j->r = qv_etcd_put_if(j->c->etcd, cl->key, cl->value, 0, 0, &cl->rev, &j->err);
	if (j->r != -ESTALE)
		return;
	/* Someone has it. Ourselves (a record left by a crash between claim
	 * and define: the loop checked the VM is not defined here): take it
	 * over on its revision. Anyone else: conflict. */
	qv_error_clear(&j->err);
	j->r = qv_etcd_get(j->c->etcd, cl->key, &kv, &j->err);
	if (j->r == -ENOENT) { /* gone meanwhile: try once more */
		qv_error_clear(&j->err);
		j->r = qv_etcd_put_if(j->c->etcd, cl->key, cl->value, 0, 0, &cl->rev, &j->err);
		return;
	}
	if (j->r < 0)
		return;
	owner_of(kv.value, cl->owner, sizeof(cl->owner));
	if (streq(cl->owner, j->c->d->cfg.cluster_host)) {
		j->r = qv_etcd_put_if(j->c->etcd, cl->key, cl->value, 0, kv.mod_revision, &cl->rev,
				      &j->err);
		cl->replaced_stale = j->r == 0;
	} else {
		j->r = -ESTALE;
		qv_error_set(&j->err, EEXIST, QV_REASON_CONFLICT,
			     "VM %s is already defined on host %s (cluster inventory)",
			     cl->spec->name, cl->owner);
	}
	qv_etcd_kv_done(&kv);
}

struct unclaim {
	char key[96];
	int64_t rev;
};

static void unclaim_run(struct cl_job *j)
{
	struct unclaim *u = j->data;

	j->r = qv_etcd_delete_if(j->c->etcd, u->key, u->rev, &j->err);
}

static void unclaim_finish(struct cl_job *j, bool cancelled)
{
	if (!cancelled && j->r < 0)
		log_warning("Cluster: cannot drop the inventory record %s, ignoring (the next "
			    "reconciliation will): %s", ((struct unclaim *)j->data)->key,
			    j->err.message);
	free(j->data);
}

static void unclaim(struct qv_cluster *c, const char *key, int64_t rev)
{
	struct unclaim *u = calloc(1, sizeof(*u));

	if (!u)
		return;
	snprintf(u->key, sizeof(u->key), "%s", key);
	u->rev = rev;
	if (cl_job_push(c, c->eq, unclaim_run, unclaim_finish, NULL, u) < 0)
		free(u);
}

static void claim_finish(struct cl_job *j, bool cancelled)
{
	struct claim *cl = j->data;
	struct qv_cluster *c = j->c;
	struct qv_error err = {};
	struct qv_vm *vm;

	if (cancelled) {
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	} else if (j->r < 0) {
		if (j->r != -ESTALE)
			qv_error_prefix(&j->err, "cluster store unavailable, VM %s not defined",
					cl->spec->name);
		qv_rpc_call_error(j->call, &j->err);
	} else if (qv_vm_define(c->d, TAKE_PTR(cl->spec), &vm, &err) < 0) {
		unclaim(c, cl->key, cl->rev);
		qv_rpc_call_error(j->call, &err);
	} else {
		log_info("Defined VM %s (%s) in the cluster inventory%s", vm->name, vm->spec->uuid,
			 cl->replaced_stale ? " (replaced a stale record of ours)" : "");
		cl_inventory_note_written(c, vm->name, "stopped");
		json_object *res = json_object_new_object();
		json_object_object_add(res, "name", json_object_new_string(vm->name));
		json_object_object_add(res, "uuid", json_object_new_string(vm->spec->uuid));
		json_object_object_add(res, "host", json_object_new_string(c->d->cfg.cluster_host));
		qv_rpc_call_reply(j->call, res);
	}
	vm_spec_free(cl->spec);
	free(cl->value);
	free(cl);
}

int cl_claim_and_define(struct qv_cluster *c, qv_rpc_call *call, json_object *spec_json,
			json_object *placement)
{
	struct qv_error err = {};
	struct claim *cl = calloc(1, sizeof(*cl));
	_cleanup_json_ json_object *rec = NULL;

	if (!cl)
		return -ENOMEM;
	if (vm_spec_from_json(spec_json, &cl->spec, &err) < 0 ||
	    cl_ha_check_spec(c, cl->spec, &err) < 0) {
		vm_spec_free(cl->spec);
		free(cl);
		return qv_rpc_call_error(call, &err), 0;
	}
	if (placement) {
		placement = json_object_get(placement);
		json_object_object_add(placement, "host",
				       json_object_new_string(c->d->cfg.cluster_host));
	}
	rec = cl_vm_record(c, cl->spec, "stopped", placement);
	json_object_put(placement);
	snprintf(cl->key, sizeof(cl->key), CL_VMS "%s", cl->spec->name);
	cl->value = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
	if (!cl->value || cl_job_push(c, c->eq, claim_run, claim_finish, call, cl) < 0) {
		vm_spec_free(cl->spec);
		free(cl->value);
		free(cl);
		return -ENOMEM;
	}
	return 0;
}

/* --- undefine ------------------------------------------------------------ */

struct drop {
	char key[96];
	char me[64];
};

static void drop_run(struct cl_job *j)
{
	struct drop *dr = j->data;
	struct qv_etcd_kv kv = {};
	char owner[64];

	j->r = qv_etcd_get(j->c->etcd, dr->key, &kv, &j->err);
	if (j->r < 0)
		return;
	if (streq(owner_of(kv.value, owner, sizeof(owner)), dr->me))
		j->r = qv_etcd_delete_if(j->c->etcd, dr->key, kv.mod_revision, &j->err);
	qv_etcd_kv_done(&kv);
}

static void drop_finish(struct cl_job *j, bool cancelled)
{
	if (!cancelled && j->r < 0 && j->r != -ENOENT)
		log_warning("Cluster: cannot drop the inventory record %s, ignoring (the next "
			    "reconciliation will): %s", ((struct drop *)j->data)->key,
			    j->err.message);
	free(j->data);
}

void qv_cluster_vm_undefined(struct qv_daemon *d, const char *name)
{
	struct qv_cluster *c = d->cluster;
	struct drop *dr;

	if (!c)
		return;
	cl_fence_clear(c, name); /* a later VM of that name starts unfenced */
	if (!(dr = calloc(1, sizeof(*dr))))
		return;
	forget_written(c, name);
	snprintf(dr->key, sizeof(dr->key), CL_VMS "%s", name);
	snprintf(dr->me, sizeof(dr->me), "%s", d->cfg.cluster_host);
	if (cl_job_push(c, c->eq, drop_run, drop_finish, NULL, dr) < 0)
		free(dr);
}

/* --- reconciliation and state updates ------------------------------------ */

struct local_vm {
	char name[64];
	char state[16];
	char *record; /* what we would create */
	int r;        /* out: 0 ok */
};

struct reconcile {
	char me[64];
	struct local_vm *vms;
	size_t n;
	bool full;    /* also delete our records without a local VM */
	unsigned created, updated, removed;
	json_object *conflicts; /* "name (owner X)" */
};

/* Copy rec's fields from ours except placement and spec_revision, which
 * the inventory keeps. */
static char *merged_record(const char *theirs, const char *ours)
{
	_cleanup_json_ json_object *t = json_tokener_parse(theirs), *o = json_tokener_parse(ours);
	json_object *v;

	if (!o)
		return NULL;
	if (t && json_object_object_get_ex(t, "placement", &v))
		json_object_object_add(o, "placement", json_object_get(v));
	if (t && json_object_object_get_ex(t, "spec_revision", &v))
		json_object_object_add(o, "spec_revision", json_object_get(v));
	/* An ha VM the leader gave us stays pending until it has run here: a
	 * daemon killed between cluster.adopt's define and its start wrote it
	 * "stopped", and nobody started it again. */
	const char *st = json_object_object_get_ex(o, "state", &v) ? json_object_get_string(v) : "";
	if (t && json_object_object_get_ex(t, "ha_pending", &v) && json_object_get_boolean(v) &&
	    json_object_object_get_ex(o, "ha", &v) && json_object_get_boolean(v) &&
	    (streq(st, "stopped") || streq(st, "crashed"))) {
		json_object_object_add(o, "ha_pending", json_object_new_boolean(true));
		if (json_object_object_get_ex(t, "ha_restart", &v)) /* why, for vm-ha-adopted */
			json_object_object_add(o, "ha_restart", json_object_get(v));
	}
	return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

static bool ha_pending(const char *record)
{
	_cleanup_json_ json_object *o = json_tokener_parse(record);
	json_object *v;

	return o && json_object_object_get_ex(o, "ha_pending", &v) && json_object_get_boolean(v);
}

static struct local_vm *find_local(struct reconcile *rc, const char *name)
{
	for (size_t i = 0; i < rc->n; i++)
		if (streq(rc->vms[i].name, name))
			return &rc->vms[i];
	return NULL;
}

static void reconcile_run(struct cl_job *j)
{
	struct reconcile *rc = j->data;
	struct qv_etcd_kv *kvs = NULL;
	size_t n = 0;
	qv_etcd *e = j->c->etcd;

	j->r = qv_etcd_list(e, CL_VMS, &kvs, &n, &j->err);
	if (j->r < 0)
		return;
	for (size_t i = 0; i < rc->n; i++) {
		struct local_vm *l = &rc->vms[i];
		struct qv_error err = {};
		char key[96], owner[64];
		struct qv_etcd_kv *kv = NULL;

		snprintf(key, sizeof(key), CL_VMS "%s", l->name);
		for (size_t k = 0; k < n && !kv; k++)
			if (streq(kvs[k].key, key))
				kv = &kvs[k];
		if (!kv) {
			l->r = qv_etcd_put_if(e, key, l->record, 0, 0, NULL, &err);
			rc->created += l->r == 0;
		} else if (streq(owner_of(kv->value, owner, sizeof(owner)), rc->me)) {
			_cleanup_free_ char *m = merged_record(kv->value, l->record);
			l->r = m ? qv_etcd_put_if(e, key, m, 0, kv->mod_revision, NULL, &err) : -ENOMEM;
			rc->updated += l->r == 0;
		} else {
			char what[160];
			l->r = -EEXIST;
			snprintf(what, sizeof(what), "%s (owner %s)", l->name, owner);
			json_object_array_add(rc->conflicts, json_object_new_string(what));
		}
	}
	for (size_t k = 0; rc->full && k < n; k++) {
		char owner[64];
		const char *name = kvs[k].key + strlen(CL_VMS);
		struct qv_error err = {};
		/* An ha VM the leader gave us (ha_pending) is adopted, not dropped. */
		if (streq(owner_of(kvs[k].value, owner, sizeof(owner)), rc->me) &&
		    !find_local(rc, name) && !ha_pending(kvs[k].value) &&
		    qv_etcd_delete_if(e, kvs[k].key, kvs[k].mod_revision,
							       &err) == 0)
			rc->removed++;
	}
	qv_etcd_kvs_free(kvs, n);
}

static void reconcile_free(struct reconcile *rc)
{
	for (size_t i = 0; i < rc->n; i++)
		free(rc->vms[i].record);
	free(rc->vms);
	json_object_put(rc->conflicts);
	free(rc);
}

static void reconcile_finish(struct cl_job *j, bool cancelled)
{
	struct reconcile *rc = j->data;
	struct qv_cluster *c = j->c;

	if (rc->full)
		c->reconcile_busy = false;
	if (!cancelled && j->r < 0 && rc->full)
		log_warning("Cluster: cannot reconcile the inventory yet: %s (retrying after the "
			    "next successful heartbeat)", j->err.message);
	if (!cancelled && j->r >= 0) {
		for (size_t i = 0; i < rc->n; i++)
			if (rc->vms[i].r == 0)
				cl_inventory_note_written(c, rc->vms[i].name, rc->vms[i].state);
		if (rc->full) {
			c->reconciled = true;
			size_t nc = json_object_array_length(rc->conflicts);
			log_info("Cluster: inventory reconciled: %u created, %u updated, %u stale "
				 "removed, %zu owned elsewhere", rc->created, rc->updated, rc->removed,
				 nc);
			for (size_t i = 0; i < nc; i++)
				log_error("Cluster: VM %s is defined here but owned by another host "
					  "in the inventory; not registered",
					  json_object_get_string(
						  json_object_array_get_idx(rc->conflicts, i)));
			json_object *ev = json_object_new_object();
			json_object_object_add(ev, "created", json_object_new_int64(rc->created));
			json_object_object_add(ev, "updated", json_object_new_int64(rc->updated));
			json_object_object_add(ev, "removed", json_object_new_int64(rc->removed));
			json_object_object_add(ev, "conflicts", json_object_get(rc->conflicts));
			qv_daemon_emit(c->d, NULL, "cluster-reconciled", ev);
		}
	}
	reconcile_free(rc);
}

/* Local VMs whose state differs from what we wrote (all: full). */
static void push_reconcile(struct qv_cluster *c, bool full)
{
	struct reconcile *rc = calloc(1, sizeof(*rc));
	size_t n = 0;

	if (!rc)
		return;
	for (struct qv_vm *vm = c->d->vms; vm; vm = vm->next)
		n++;
	rc->vms = calloc(n ? n : 1, sizeof(*rc->vms));
	rc->conflicts = json_object_new_array();
	rc->full = full;
	snprintf(rc->me, sizeof(rc->me), "%s", c->d->cfg.cluster_host);
	for (struct qv_vm *vm = c->d->vms; rc->vms && vm; vm = vm->next) {
		const char *state = cl_fence_is_fenced(c, vm->name) ? CL_FENCED_STATE
								    : qv_vm_state_to_string(vm->state);
		struct cl_vmstate *w;
		for (w = c->written; w && !streq(w->name, vm->name); w = w->next)
			;
		if (!full && (!w || streq(w->state, state)))
			continue; /* unknown to us (a claim in flight) or unchanged */
		struct local_vm *l = &rc->vms[rc->n++];
		_cleanup_json_ json_object *rec = cl_vm_record(c, vm->spec, state, NULL);
		snprintf(l->name, sizeof(l->name), "%s", vm->name);
		snprintf(l->state, sizeof(l->state), "%s", state);
		l->record = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
	}
	if (!rc->vms || (!full && rc->n == 0) ||
	    cl_job_push(c, c->eq, reconcile_run, reconcile_finish, NULL, rc) < 0) {
		reconcile_free(rc);
		return;
	}
	if (full)
		c->reconcile_busy = true;
}

void cl_inventory_reconcile(struct qv_cluster *c)
{
	if (!c->reconcile_busy)
		push_reconcile(c, true);
}

void cl_inventory_sync_states(struct qv_cluster *c)
{
	if (!c->reconciled) {
		cl_inventory_reconcile(c);
		return;
	}
	push_reconcile(c, false);
}
