/* SPDX-License-Identifier: MIT */
/* HA VMs (docs/cluster.md "HA restart"): which storage counts as shared
 * (--cluster-shared-dir, the same path on every host), the checks on an
 * ha spec, the fields HA adds to the host and VM records, and
 * cluster.adopt: the host the leader chose defines an ha VM from the spec
 * in its inventory record and starts it from the shared disks. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/migrate-internal.h"
#include "daemon/vm.h"

#define HA_MAX_SHARED 8

struct cl_ha {
	char *shared[HA_MAX_SHARED]; /* resolved, without a trailing '/' */
	size_t nshared;
};

int cl_ha_init(struct qv_cluster *c)
{
	_cleanup_free_ char *copy = NULL;
	char *save = NULL, real[PATH_MAX];

	c->ha = calloc(1, sizeof(*c->ha));
	if (!c->ha)
		return log_error_errno(-ENOMEM, "Out of memory");
	if (!c->d->cfg.cluster_shared_dirs)
		return 0;
	copy = strdup(c->d->cfg.cluster_shared_dirs);
	if (!copy)
		return log_error_errno(-ENOMEM, "Out of memory");
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (t[0] != '/' || !realpath(t, real))
			return log_error_errno(-EINVAL, "--cluster-shared-dir %s: not an existing "
						       "absolute directory", t);
		if (c->ha->nshared == HA_MAX_SHARED)
			return log_error_errno(-EINVAL, "--cluster-shared-dir: at most %d "
						       "directories", HA_MAX_SHARED);
		if (!(c->ha->shared[c->ha->nshared++] = strdup(real)))
			return log_error_errno(-ENOMEM, "Out of memory");
	}
	return 0;
}

void cl_ha_free(struct qv_cluster *c)
{
	if (!c->ha)
		return;
	for (size_t i = 0; i < c->ha->nshared; i++)
		free(c->ha->shared[i]);
	free(c->ha);
	c->ha = NULL;
}

/* The shared dir path is on (resolved: a symlink out of it does not
 * count), NULL if none. A disk that does not exist yet is judged by its
 * directory. */
static const char *shared_dir_of(struct qv_cluster *c, const char *path)
{
	char real[PATH_MAX], dir[PATH_MAX];

	if (!realpath(path, real)) {
		const char *slash = strrchr(path, '/');
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash ? slash - path : 0), path);
		if (!realpath(dir[0] ? dir : "/", real))
			return NULL;
	}
	for (size_t i = 0; c->ha && i < c->ha->nshared; i++) {
		size_t n = strlen(c->ha->shared[i]);
		if (!strncmp(real, c->ha->shared[i], n) && (real[n] == '/' || !real[n] || n == 1))
			return c->ha->shared[i];
	}
	return NULL;
}

int cl_ha_check_spec(struct qv_cluster *c, const struct vm_spec *spec, struct qv_error *errp)
{
	if (!spec->ha)
		return 0;
	if (!cl_fence_timeout_s(c))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.ha: host %s does not self-fence (--cluster-fence-timeout "
				    "0), so its VMs cannot be restarted elsewhere safely",
				    c->d->cfg.cluster_host);
	if (!c->ha || !c->ha->nshared)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.ha needs shared storage: host %s has no "
				    "--cluster-shared-dir", c->d->cfg.cluster_host);
	for (size_t i = 0; i < spec->n_disks; i++)
		if (!shared_dir_of(c, spec->disks[i].path))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "spec.disks[%zu]: %s is not on shared storage; an ha "
					    "VM's disks must be under a --cluster-shared-dir of "
					    "host %s (%s%s)", i, spec->disks[i].path,
					    c->d->cfg.cluster_host, c->ha->shared[0],
					    c->ha->nshared > 1 ? ", ..." : "");
	return 0;
}

void cl_ha_host_fields(struct qv_cluster *c, json_object *host_rec)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; c->ha && i < c->ha->nshared; i++)
		json_object_array_add(a, json_object_new_string(c->ha->shared[i]));
	json_object_object_add(host_rec, "shared_dirs", a);
	json_object_object_add(host_rec, "fence_timeout_s",
			       json_object_new_int64(cl_fence_timeout_s(c)));
}

static json_object *vm_dirs(struct qv_cluster *c, const struct vm_spec *spec)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < spec->n_disks; i++) {
		const char *dir = shared_dir_of(c, spec->disks[i].path);
		bool seen = false;
		for (size_t k = 0; dir && k < json_object_array_length(a); k++)
			seen |= streq(json_object_get_string(json_object_array_get_idx(a, k)), dir);
		if (dir && !seen)
			json_object_array_add(a, json_object_new_string(dir));
	}
	return a;
}

json_object *cl_ha_place_filter(struct qv_cluster *c, const struct vm_spec *spec)
{
	json_object *o;

	if (!spec->ha)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "shared_dirs", vm_dirs(c, spec));
	return o;
}

void cl_ha_vm_fields(struct qv_cluster *c, const struct vm_spec *spec, json_object *vm_rec)
{
	json_object_object_add(vm_rec, "ha", json_object_new_boolean(true));
	json_object_object_add(vm_rec, "shared_dirs", vm_dirs(c, spec));
	json_object_object_add(vm_rec, "fence_timeout_s",
			       json_object_new_int64(cl_fence_timeout_s(c)));
	json_object_object_add(vm_rec, "spec", vm_spec_to_json(spec));
}

bool cl_ha_host_sees(json_object *host_rec, json_object *vm_rec)
{
	json_object *need, *have;

	if (!json_object_object_get_ex(vm_rec, "shared_dirs", &need))
		return true;
	if (!json_object_object_get_ex(host_rec, "shared_dirs", &have))
		return json_object_array_length(need) == 0;
	for (size_t i = 0; i < json_object_array_length(need); i++) {
		const char *dir = json_object_get_string(json_object_array_get_idx(need, i));
		bool found = false;
		for (size_t k = 0; k < json_object_array_length(have) && !found; k++)
			found = streq(json_object_get_string(json_object_array_get_idx(have, k)), dir);
		if (!found)
			return false;
	}
	return true;
}

/* --- cluster.adopt ------------------------------------------------------- */

struct adopt {
	char name[64];
	char *spec;          /* out: the record's spec */
	char from[64];       /* out: ha_restart.from */
	char reason[256];    /* out: ha_restart.reason */
};

static void adopt_run(struct cl_job *j)
{
	struct adopt *a = j->data;
	struct qv_etcd_kv kv = {};
	json_object *v, *hr;
	char key[96];

	snprintf(key, sizeof(key), CL_VMS "%s", a->name);
	j->r = qv_etcd_get(j->c->etcd, key, &kv, &j->err);
	if (j->r < 0)
		return;
	_cleanup_json_ json_object *rec = json_tokener_parse(kv.value);
	qv_etcd_kv_done(&kv);
	if (!rec || !json_object_object_get_ex(rec, "owner", &v) ||
	    !streq(json_object_get_string(v), j->c->d->cfg.cluster_host)) {
		j->r = qv_error_set(&j->err, EPERM, QV_REASON_CONFLICT,
				    "VM %s is owned by %s, not by this host", a->name,
				    v ? json_object_get_string(v) : "?");
		return;
	}
	if (!json_object_object_get_ex(rec, "ha", &v) || !json_object_get_boolean(v) ||
	    !json_object_object_get_ex(rec, "spec", &v)) {
		j->r = qv_error_set(&j->err, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "VM %s is not an ha VM (its record has no spec)", a->name);
		return;
	}
	a->spec = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	if (json_object_object_get_ex(rec, "ha_restart", &hr)) {
		if (json_object_object_get_ex(hr, "from", &v))
			snprintf(a->from, sizeof(a->from), "%s", json_object_get_string(v));
		if (json_object_object_get_ex(hr, "reason", &v))
			snprintf(a->reason, sizeof(a->reason), "%s", json_object_get_string(v));
	}
	j->r = a->spec ? 0 : -ENOMEM;
}

/* A failed start: mark the record ha_pending again (our state writes drop
 * the flag), so that the leader asks again later. */
struct repend {
	char key[96];
	char me[64];
};

static void repend_run(struct cl_job *j)
{
	struct repend *p = j->data;
	struct qv_etcd_kv kv = {};
	json_object *v;

	j->r = qv_etcd_get(j->c->etcd, p->key, &kv, &j->err);
	if (j->r < 0)
		return;
	_cleanup_json_ json_object *rec = json_tokener_parse(kv.value);
	int64_t rev = kv.mod_revision;
	qv_etcd_kv_done(&kv);
	if (!rec || !json_object_object_get_ex(rec, "owner", &v) ||
	    !streq(json_object_get_string(v), p->me))
		return;
	json_object_object_add(rec, "state", json_object_new_string("stopped"));
	json_object_object_add(rec, "ha_pending", json_object_new_boolean(true));
	j->r = qv_etcd_put_if(j->c->etcd, p->key,
			      json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN), 0, rev,
			      NULL, &j->err);
}

static void repend_finish(struct cl_job *j, bool cancelled)
{
	if (!cancelled && j->r < 0)
		log_warning("Cluster: cannot mark %s for another HA start, ignoring: %s",
			    ((struct repend *)j->data)->key, j->err.message);
	else if (!cancelled)
		cl_inventory_note_written(j->c, ((struct repend *)j->data)->key + strlen(CL_VMS),
					  "stopped");
	free(j->data);
}

static void adopt_started(struct qv_vm *vm, int error, const struct qv_error *errp, void *ud)
{
	struct qv_cluster *c = vm->d->cluster;
	struct repend *p;

	(void)ud;
	if (error == 0) {
		log_info("VM %s: running here after the HA restart", vm->name);
		return;
	}
	log_error("VM %s: HA restart here failed: %s (the leader retries)", vm->name,
		  errp ? errp->message : strerror(-error));
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "error", json_object_new_string(errp ? errp->message : ""));
	qv_daemon_emit(vm->d, vm->name, "vm-ha-start-failed", ev);
	if (!c || !(p = calloc(1, sizeof(*p))))
		return;
	snprintf(p->key, sizeof(p->key), CL_VMS "%s", vm->name);
	snprintf(p->me, sizeof(p->me), "%s", vm->d->cfg.cluster_host);
	if (cl_job_push(c, c->eq, repend_run, repend_finish, NULL, p) < 0)
		free(p);
}

/* On the loop: define (unless already here) and start. */
static int adopt_here(struct qv_cluster *c, struct adopt *a, struct qv_error *errp)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;
	struct qv_vm *vm = qv_vm_find(c->d, a->name);
	int r;

	if (!vm) {
		if ((r = vm_spec_from_string(a->spec, &spec, errp)) < 0 ||
		    (r = cl_ha_check_spec(c, spec, errp)) < 0 ||
		    (r = qv_vm_define(c->d, TAKE_PTR(spec), &vm, errp)) < 0)
			return r;
		cl_inventory_note_written(c, vm->name, "stopped");
		qv_mig_test_crash_point("adopt-defined"); /* tests: the restart must start it */
	}
	cl_fence_clear(c, vm->name);
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "from", json_object_new_string(a->from));
	json_object_object_add(ev, "reason", json_object_new_string(a->reason));
	qv_daemon_emit(c->d, vm->name, "vm-ha-adopted", ev);
	log_info("VM %s: adopted from host %s (%s); starting it", vm->name, a->from, a->reason);
	if (qv_vm_is_active(vm) || vm->starting)
		return 0;
	return qv_vm_start_async(vm, NULL, adopt_started, NULL, errp);
}

static void adopt_finish(struct cl_job *j, bool cancelled)
{
	struct adopt *a = j->data;
	struct qv_error err = {};

	if (cancelled) {
		if (j->call)
			qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
	} else if (j->r < 0 || adopt_here(j->c, a, &err) < 0) {
		struct qv_error *e = j->r < 0 ? &j->err : &err;
		log_error("VM %s: cannot adopt it: %s", a->name, e->message);
		if (j->call)
			qv_rpc_call_error(j->call, e);
	} else if (j->call) {
		json_object *res = json_object_new_object();
		json_object_object_add(res, "name", json_object_new_string(a->name));
		json_object_object_add(res, "host", json_object_new_string(j->c->d->cfg.cluster_host));
		qv_rpc_call_reply(j->call, res);
	}
	free(a->spec);
	free(a);
}

static int push_adopt(struct qv_cluster *c, qv_rpc_call *call, const char *name)
{
	struct adopt *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	snprintf(a->name, sizeof(a->name), "%s", name);
	if (cl_job_push(c, c->eq, adopt_run, adopt_finish, call, a) < 0) {
		free(a);
		return -ENOMEM;
	}
	return 0;
}

void cl_ha_adopt_local(struct qv_cluster *c, const char *name)
{
	if (push_adopt(c, NULL, name) < 0)
		log_error("VM %s: cannot adopt it: out of memory", name);
}

int cl_ha_m_adopt(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	json_object *n;

	if (!d->cluster)
		return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "this qvisord is not in a cluster");
	if (!params || json_check_keys(params, keys, "params", &err) < 0)
		return err.set ? qv_rpc_call_error(call, &err), 0
			       : qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					      "params.name is required");
	if (!json_object_object_get_ex(params, "name", &n) ||
	    !json_object_is_type(n, json_type_string) || !vm_name_valid(json_object_get_string(n)))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.name must be a VM name");
	return push_adopt(d->cluster, call, json_object_get_string(n));
}
