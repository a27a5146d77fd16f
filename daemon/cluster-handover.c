/* SPDX-License-Identifier: MIT */
/* A VM that arrived by live migration changes owner in the inventory: the
 * destination, once it runs the guest, rewrites the record with itself as
 * owner (revision-compared, placement and spec_revision kept). The source
 * undefines its copy and never touches a record it no longer owns. */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm.h"

struct arrival {
	char name[64];
	char key[96];
	char *record;      /* ours, owner = this host */
	char was[64];      /* out: the previous owner */
};

static int take_over(qv_etcd *e, struct arrival *a, struct qv_error *errp)
{
	struct qv_etcd_kv kv = {};
	json_object *v;
	int r = qv_etcd_get(e, a->key, &kv, errp);

	if (r == -ENOENT) {
		qv_error_clear(errp);
		snprintf(a->was, sizeof(a->was), "-");
		return qv_etcd_put_if(e, a->key, a->record, 0, 0, NULL, errp);
	}
	if (r < 0)
		return r;
	_cleanup_json_ json_object *theirs = json_tokener_parse(kv.value);
	_cleanup_json_ json_object *ours = json_tokener_parse(a->record);
	snprintf(a->was, sizeof(a->was), "%s",
		 theirs && json_object_object_get_ex(theirs, "owner", &v) ? json_object_get_string(v)
									   : "?");
	if (theirs && json_object_object_get_ex(theirs, "placement", &v))
		json_object_object_add(ours, "placement", json_object_get(v));
	if (theirs && json_object_object_get_ex(theirs, "spec_revision", &v))
		json_object_object_add(ours, "spec_revision", json_object_get(v));
	r = qv_etcd_put_if(e, a->key, json_object_to_json_string_ext(ours, JSON_C_TO_STRING_PLAIN), 0,
			   kv.mod_revision, NULL, errp);
	qv_etcd_kv_done(&kv);
	return r;
}

static void arrival_run(struct cl_job *j)
{
	struct arrival *a = j->data;

	j->r = take_over(j->c->etcd, a, &j->err);
	if (j->r == -ESTALE) { /* the source wrote its last state meanwhile */
		qv_error_clear(&j->err);
		j->r = take_over(j->c->etcd, a, &j->err);
	}
}

static void arrival_finish(struct cl_job *j, bool cancelled)
{
	struct arrival *a = j->data;

	if (!cancelled && j->r < 0)
		log_warning("Cluster: VM %s arrived but its inventory record still names %s: %s "
			    "(the next reconciliation reports it)", a->name, a->was[0] ? a->was : "?",
			    j->err.message);
	else if (!cancelled) {
		cl_inventory_note_written(j->c, a->name, "running");
		log_info("Cluster: VM %s arrived by migration: owner %s -> %s", a->name, a->was,
			 j->c->d->cfg.cluster_host);
	}
	free(a->record);
	free(a);
}

void qv_cluster_vm_arrived(struct qv_daemon *d, const char *name)
{
	struct qv_cluster *c = d->cluster;
	struct qv_vm *vm = qv_vm_find(d, name);
	struct arrival *a;

	if (!c || !vm || !(a = calloc(1, sizeof(*a))))
		return;
	_cleanup_json_ json_object *rec = cl_vm_record(c, vm->spec, "running", NULL);
	snprintf(a->name, sizeof(a->name), "%s", name);
	snprintf(a->key, sizeof(a->key), CL_VMS "%s", name);
	a->record = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
	if (!a->record || cl_job_push(c, c->eq, arrival_run, arrival_finish, NULL, a) < 0) {
		free(a->record);
		free(a);
	}
}
