/* SPDX-License-Identifier: MIT */
/* A VM that arrived by live migration: its inventory record follows it.
 * The destination, once the guest runs here, rewrites the record with
 * itself as owner in a transaction comparing the revision it read, and
 * notes where the VM came from and when ("moved": {from, at_ms}; the
 * balancer's cooldown survives a change of leader through it). The
 * source undefines its copy after the migration and no longer writes
 * the record (an owner check guards every write). */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm.h"

struct arrival {
	char name[64];
	char key[96];
	char *ours;       /* the record as we would write it (owner: us) */
	char from[64];    /* out: the previous owner */
};

static void arrival_run(struct cl_job *j)
{
	struct arrival *a = j->data;
	struct qv_etcd_kv kv = {};
	json_object *v;

	for (int attempt = 0; attempt < 3; attempt++) {
		j->r = qv_etcd_get(j->c->etcd, a->key, &kv, &j->err);
		if (j->r == -ENOENT) {
			qv_error_clear(&j->err);
			j->r = qv_etcd_put_if(j->c->etcd, a->key, a->ours, 0, 0, NULL, &j->err);
		} else if (j->r == 0) {
			_cleanup_json_ json_object *t = json_tokener_parse(kv.value);
			_cleanup_json_ json_object *o = json_tokener_parse(a->ours);
			if (!o) {
				qv_etcd_kv_done(&kv);
				j->r = -ENOMEM;
				return;
			}
			if (t && json_object_object_get_ex(t, "owner", &v))
				snprintf(a->from, sizeof(a->from), "%s", json_object_get_string(v));
			/* the inventory keeps placement and the spec revision */
			if (t && json_object_object_get_ex(t, "placement", &v))
				json_object_object_add(o, "placement", json_object_get(v));
			if (t && json_object_object_get_ex(t, "spec_revision", &v))
				json_object_object_add(o, "spec_revision", json_object_get(v));
			if (*a->from && !streq(a->from, j->c->d->cfg.cluster_host)) {
				json_object *mv = json_object_new_object();
				json_object_object_add(mv, "from", json_object_new_string(a->from));
				json_object_object_add(mv, "at_ms", json_object_new_int64(qv_unix_ms()));
				json_object_object_add(o, "moved", mv);
			} else if (t && json_object_object_get_ex(t, "moved", &v))
				json_object_object_add(o, "moved", json_object_get(v));
			j->r = qv_etcd_put_if(j->c->etcd, a->key,
					      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
					      0, kv.mod_revision, NULL, &j->err);
			qv_etcd_kv_done(&kv);
		}
		if (j->r != -ESTALE) /* lost a race with the source's last write: again */
			return;
		qv_error_clear(&j->err);
	}
}

static void arrival_finish(struct cl_job *j, bool cancelled)
{
	struct arrival *a = j->data;

	if (!cancelled && j->r < 0)
		log_warning("Cluster: VM %s arrived but its inventory record still names %s, "
			    "ignoring (the next start-up reconciliation fixes it): %s", a->name,
			    *a->from ? a->from : "another host", j->err.message);
	else if (!cancelled) {
		log_info("Cluster: VM %s now belongs to this host in the inventory (from %s)",
			 a->name, *a->from ? a->from : "nowhere");
		cl_inventory_note_written(j->c, a->name, "running");
	}
	free(a->ours);
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
	a->ours = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
	if (!a->ours || cl_job_push(c, c->eq, arrival_run, arrival_finish, NULL, a) < 0) {
		free(a->ours);
		free(a);
	}
}
