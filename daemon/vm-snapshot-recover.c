/* SPDX-License-Identifier: MIT */
/* Crash recovery of live merges (docs/snapshots.md, "Crash recovery").
 *
 * A snapshot left "deleting" with a "merge" marker was cut around an active
 * commit's switch: the guest was paused (by the daemon) from before the
 * switch. If its QEMU still runs, the daemon cancels the merge jobs it left
 * (a cancelled active commit keeps writing to C, as the store says), then
 * asks QEMU whether C's node still exists: gone means the switch happened,
 * and the store rolls forward to F; present means it did not. Then the
 * guest resumes if the daemon had paused it. Without QEMU nothing was
 * written after the pause, so C over F and F read the same. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/snapshot-internal.h"

struct recover {
	struct qv_daemon *d;
	char vm[64];
	char snap[64];
};

static struct qv_vm *ctx_vm(struct recover *rc, json_object **ret_tree, json_object **ret_marker)
{
	struct qv_vm *vm = qv_vm_find(rc->d, rc->vm);
	json_object *t = vm ? snap_tree_load(vm, NULL) : NULL, *m = NULL;

	if (!t || !json_object_object_get_ex(qv_snap_find(t, rc->snap), "merge", &m) || !m) {
		json_object_put(t);
		return NULL;
	}
	*ret_tree = t;
	*ret_marker = m;
	return vm;
}

static void resolve(struct recover *rc, bool switched)
{
	json_object *t, *m;
	struct qv_vm *vm = ctx_vm(rc, &t, &m);
	bool paused;

	if (!vm)
		return free(rc);
	paused = json_object_get_boolean(json_object_object_get(m, "paused"));
	if (switched) {
		size_t i = (size_t)qv_snap_int(m, "disk");
		const char *f = qv_snap_str(m, "path");
		char *p = f ? strdup(f) : NULL;
		if (p && i < vm->spec->n_disks) {
			snap_add_unlink(t, vm->spec->disks[i].path);
			free(vm->spec->disks[i].path);
			vm->spec->disks[i].path = p;
			vm->spec->disks[i].format = streq_ptr(qv_snap_str(m, "format"), "qcow2")
							    ? VM_DISK_QCOW2 : VM_DISK_RAW;
			p = NULL;
		}
		free(p);
	}
	log_warning("VM %s: a merge of snapshot %s was cut by a daemon restart; QEMU %s switched "
		    "disk %" PRId64 " (store updated); run the delete again to finish it", rc->vm,
		    rc->snap, switched ? "had" : "had not", qv_snap_int(m, "disk"));
	json_object_object_del(qv_snap_find(t, rc->snap), "merge");
	snap_live_invalidate(t);
	if (snap_tree_save(vm, t, switched, NULL) >= 0)
		snap_unlink_pending(vm, t);
	(void)snap_tree_save(vm, t, false, NULL);
	json_object_put(t);
	if (paused && vm->inst)
		(void)qemu_instance_execute_async(vm->inst, "cont", NULL, SNAP_QMP_TIMEOUT_MS, NULL,
						  NULL, NULL);
	free(rc);
}

static void on_nodes(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *ud)
{
	struct recover *rc = ud;
	json_object *t, *m;
	bool found = false;

	if (!ctx_vm(rc, &t, &m))
		return free(rc);
	for (size_t k = 0; error >= 0 && ret && k < json_object_array_length(ret); k++)
		found |= streq_ptr(qv_snap_str(json_object_array_get_idx(ret, k), "node-name"),
				   qv_snap_str(m, "node"));
	json_object_put(t);
	if (error < 0) {
		log_warning("VM %s: cannot ask QEMU about a cut merge, ignoring: %s", rc->vm,
			    errp && errp->set ? errp->message : strerror(-error));
		return free(rc);
	}
	resolve(rc, !found);
}

static void on_jobs(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		    void *ud)
{
	struct recover *rc = ud;
	struct qv_vm *vm = qv_vm_find(rc->d, rc->vm);
	json_object *a;

	for (size_t k = 0; vm && vm->inst && error >= 0 && ret && k < json_object_array_length(ret);
	     k++) {
		json_object *job = json_object_array_get_idx(ret, k);
		const char *id = qv_snap_str(job, "id");
		if (!id || strncmp(id, "snapshot-", 9) != 0)
			continue;
		a = json_object_new_object();
		json_object_object_add(a, "id", json_object_new_string(id));
		if (!streq_ptr(qv_snap_str(job, "status"), "concluded"))
			(void)qemu_instance_execute_async(vm->inst, "job-cancel", a,
							  SNAP_QMP_TIMEOUT_MS, NULL, NULL, NULL);
		json_object_put(a);
	}
	a = json_object_new_object();
	json_object_object_add(a, "flat", json_object_new_boolean(true));
	if (!vm || !vm->inst ||
	    qemu_instance_execute_async(vm->inst, "query-named-block-nodes", a,
					SNAP_QMP_TIMEOUT_MS, on_nodes, rc, NULL) < 0)
		free(rc);
	json_object_put(a);
}

void snap_recover_merge(struct qv_vm *vm, const char *snap)
{
	struct recover *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return;
	rc->d = vm->d;
	snprintf(rc->vm, sizeof(rc->vm), "%s", vm->name);
	snprintf(rc->snap, sizeof(rc->snap), "%s", snap);
	if (!vm->inst)
		return resolve(rc, false);
	if (qemu_instance_execute_async(vm->inst, "query-jobs", NULL, SNAP_QMP_TIMEOUT_MS, on_jobs,
					rc, NULL) < 0)
		free(rc);
}
