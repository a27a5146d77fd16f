/* SPDX-License-Identifier: MIT */
/* backup.create|status|cancel|list|info|verify|delete|prune|restore
 * (docs/rpc.md "Backups", docs/backup.md). Anything that reads or writes
 * backup data runs on a worker thread (daemon/backup-seq.c). */
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/backup-internal.h"
#include "storage/backup-restore.h"

static json_object *json_object_new_object_with(const char *key, json_object *v)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, key, v);
	return o;
}

static int check_keys(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	struct qv_error err = {};

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), -EINVAL;
	return 0;
}

static const char *opt_string(json_object *params, const char *key)
{
	json_object *v;

	if (!params || !json_object_object_get_ex(params, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* params.store (absolute existing directory, canonicalized) or the
 * default store. Answers the call on failure. */
static int get_store(qv_rpc_call *call, struct qv_daemon *d, json_object *params, char *buf)
{
	const char *s = opt_string(params, "store");
	struct stat st;
	char def[PATH_MAX];
	int r;

	if (!s) {
		if ((r = bk_default_store(d, def, sizeof(def))) < 0)
			return qv_call_fail(call, -r, QV_REASON_IO_ERROR, "backup store %s: %s", def,
					    strerror(-r)), r;
		s = def;
	}
	if (s[0] != '/')
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.store must be an absolute path"), -EINVAL;
	if (!realpath(s, buf) || stat(buf, &st) < 0 || !S_ISDIR(st.st_mode))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
				    "backup store %.200s is not an existing directory", s), -ENOENT;
	return 0;
}

/* params {id, store?} (keys checked): answers the call on failure. */
static int id_and_store(qv_rpc_call *call, json_object *params, void *ud, const char **ret_id,
			char *store)
{
	static const char *const keys[] = { "id", "store", NULL };

	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "id", ret_id) < 0 ||
	    get_store(call, ud, params, store) < 0)
		return -EINVAL;
	return 0;
}

static int m_create(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "store", "full", "bandwidth", NULL };
	struct qv_daemon *d = ud;
	char store[PATH_MAX];
	const char *name;
	bool full = false;
	struct qv_error err = {};

	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "name", &name) < 0)
		return 0;
	int64_t bw = 0;
	if (json_get_bool(params, "full", "params.full", &full, &err) == -EINVAL ||
	    json_get_int64(params, "bandwidth", "params.bandwidth", &bw, &err) == -EINVAL)
		return qv_rpc_call_error(call, &err), 0;
	if (bw < 0 || (bw && bw < 65536))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.bandwidth: bytes/s, at least 65536 (0: unlimited)");
	if (get_store(call, d, params, store) < 0)
		return 0;
	struct bk_params p = { .vm = name, .store = store, .full = full, .bandwidth = (uint64_t)bw };
	return bk_run_start(d, call, &p);
}

static int m_status(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_daemon *d = ud;
	json_object *arr = json_object_new_array(), *o;

	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		if ((o = bk_run_status(d, vm->name)))
			json_object_array_add(arr, o);
	return qv_rpc_call_reply(call, json_object_new_object_with("backups", arr)), 0;
}

static int m_cancel(qv_rpc_call *call, json_object *params, void *ud)
{
	const char *name;

	if (qv_param_string(call, params, "name", &name) < 0)
		return 0;
	if (bk_run_cancel(ud, name) < 0)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
				    "No backup of VM %.80s is running", name);
	return qv_rpc_call_reply(call, json_object_new_object_with("cancelled",
								   json_object_new_boolean(true))), 0;
}

static json_object *summary(const struct qv_backup_meta *m)
{
	json_object *o = qv_backup_meta_to_json(m);

	json_object_object_del(o, "spec");
	return o;
}

static int m_list(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "vm", "store", NULL };
	struct qv_backup_meta **list = NULL;
	struct qv_error err = {};
	char store[PATH_MAX];
	size_t n = 0;

	if (check_keys(call, params, keys) < 0 || get_store(call, ud, params, store) < 0)
		return 0;
	if (qv_backup_store_list(store, opt_string(params, "vm"), &list, &n, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, summary(list[i]));
	qv_backup_meta_array_free(list, n);
	json_object *res = json_object_new_object_with("backups", arr);
	json_object_object_add(res, "store", json_object_new_string(store));
	return qv_rpc_call_reply(call, res), 0;
}

/* Load the store's backups and find id's chain. Answers on failure. */
struct chain {
	struct qv_backup_meta **list;
	size_t n;
	size_t *idx;
	size_t n_idx;
	struct qv_backup_meta **metas; /* chain order, borrowed from list */
};

static void chain_free(struct chain *c)
{
	qv_backup_meta_array_free(c->list, c->n);
	free(c->idx);
	free(c->metas);
	*c = (struct chain){};
}

static int load_chain(qv_rpc_call *call, const char *store, const char *id, struct chain *c)
{
	struct qv_error err = {};
	ssize_t at = -1;

	if (!qv_backup_id_valid(id))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid backup id \"%.80s\"", id), -EINVAL;
	if (qv_backup_store_list(store, NULL, &c->list, &c->n, &err) < 0)
		return qv_rpc_call_error(call, &err), -EIO;
	for (size_t i = 0; i < c->n; i++)
		if (streq(c->list[i]->id, id))
			at = (ssize_t)i;
	if (at < 0) {
		chain_free(c);
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "No backup %s in %s", id,
				    store), -ENOENT;
	}
	if (qv_backup_chain(c->list, c->n, (size_t)at, &c->idx, &c->n_idx, &err) < 0) {
		chain_free(c);
		return qv_rpc_call_error(call, &err), -ENOENT;
	}
	c->metas = calloc(c->n_idx, sizeof(*c->metas));
	for (size_t i = 0; c->metas && i < c->n_idx; i++)
		c->metas[i] = c->list[c->idx[i]];
	return c->metas ? 0 : -ENOMEM;
}

static json_object *chain_ids(const struct chain *c)
{
	json_object *ids = json_object_new_array();

	for (size_t i = 0; i < c->n_idx; i++)
		json_object_array_add(ids, json_object_new_string(c->metas[i]->id));
	return ids;
}

static int m_info(qv_rpc_call *call, json_object *params, void *ud)
{
	struct chain c = {};
	char store[PATH_MAX];
	const char *id;

	if (id_and_store(call, params, ud, &id, store) < 0 || load_chain(call, store, id, &c) < 0)
		return 0;
	json_object *res = qv_backup_meta_to_json(c.metas[c.n_idx - 1]);
	json_object_object_add(res, "restore_chain", chain_ids(&c));
	json_object_object_add(res, "store", json_object_new_string(store));
	chain_free(&c);
	return qv_rpc_call_reply(call, res), 0;
}

static int m_delete(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_error err = {};
	char store[PATH_MAX];
	const char *id;

	if (id_and_store(call, params, ud, &id, store) < 0)
		return 0;
	if (qv_backup_delete(store, id, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	log_info("Deleted backup %s from %s", id, store);
	return qv_rpc_call_reply(call, json_object_new_object_with("deleted",
								   json_object_new_string(id))), 0;
}

/* --- verify, restore, prune: on worker threads ------------------------- */

struct job {
	struct qv_daemon *d;
	qv_rpc_call *call;
	char store[PATH_MAX];
	struct chain c;
	/* restore */
	char to[VM_NAME_MAX + 1], define[VM_NAME_MAX + 1];
	char (*dst)[PATH_MAX];
	bool qcow2; /* restore into qcow2 images (else raw) */
	/* prune */
	unsigned keep_last, keep_daily;
	bool dry_run;
	bool *keep;
	size_t deleted;
};

static void job_free(struct job *j)
{
	chain_free(&j->c);
	free(j->dst);
	free(j->keep);
	free(j);
}

static int verify_work(void *ud, struct qv_error *err)
{
	struct job *j = ud;

	for (size_t i = 0; i < j->c.n_idx; i++) {
		int r = qv_backup_verify(j->store, j->c.metas[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

static void job_done(int r, const struct qv_error *err, void *ud)
{
	struct job *j = ud;

	if (r < 0) {
		qv_rpc_call_error(j->call, err);
		return job_free(j);
	}
	json_object *res = json_object_new_object_with("verified", chain_ids(&j->c));
	qv_rpc_call_reply(j->call, res);
	job_free(j);
}

static int m_verify(qv_rpc_call *call, json_object *params, void *ud)
{
	struct job *j = calloc(1, sizeof(*j));
	const char *id;
	int r;

	if (!j)
		return -ENOMEM;
	j->d = ud;
	j->call = call;
	if (id_and_store(call, params, ud, &id, j->store) < 0 ||
	    load_chain(call, j->store, id, &j->c) < 0) {
		job_free(j);
		return 0;
	}
	if ((r = bk_work_start(j->d, verify_work, job_done, j)) < 0) {
		job_free(j);
		return qv_call_fail(call, -r, QV_REASON_INTERNAL, "cannot start: %s", strerror(-r));
	}
	return 0;
}

/* Restore names in flight: two restores never race for one pool name. */
static char restoring[8][VM_NAME_MAX + 1];

static bool restoring_claim(const char *name, bool claim)
{
	for (size_t i = 0; i < ARRAY_SIZE(restoring); i++)
		if (streq(restoring[i], name)) {
			if (!claim)
				restoring[i][0] = '\0';
			return !claim ? true : false;
		}
	for (size_t i = 0; claim && i < ARRAY_SIZE(restoring); i++)
		if (!restoring[i][0]) {
			snprintf(restoring[i], sizeof(restoring[i]), "%s", name);
			return true;
		}
	return false;
}

static int restore_work(void *ud, struct qv_error *err)
{
	struct job *j = ud;
	const struct qv_backup_meta *last = j->c.metas[j->c.n_idx - 1];
	size_t ok = 0;
	int r = 0;

	for (; ok < last->n_disks; ok++)
		if ((r = (j->qcow2 ? qv_backup_restore_disk_qcow2 : qv_backup_restore_disk)(
			     j->store, j->c.metas, j->c.n_idx, ok, j->dst[ok], NULL, err)) < 0)
			break;
	if (r < 0) /* all disks or none */
		for (size_t i = 0; i < ok; i++)
			unlink(j->dst[i]);
	return r;
}

static int define_restored(struct job *j, struct qv_error *err)
{
	const struct qv_backup_meta *last = j->c.metas[j->c.n_idx - 1];
	_cleanup_json_ json_object *spec = NULL;
	struct vm_spec *vs = NULL;
	json_object *disks, *nics;
	struct qv_vm *vm;

	if (!last->spec)
		return qv_error_set(err, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup %s holds no VM spec", last->id);
	if (json_object_deep_copy(last->spec, &spec, NULL) < 0)
		return -ENOMEM;
	json_object_object_add(spec, "name", json_object_new_string(j->define));
	json_object_object_del(spec, "uuid");
	if (json_object_object_get_ex(spec, "nics", &nics))
		for (size_t i = 0; i < json_object_array_length(nics); i++)
			json_object_object_del(json_object_array_get_idx(nics, i), "mac");
	if (!json_object_object_get_ex(spec, "disks", &disks) ||
	    json_object_array_length(disks) != last->n_disks)
		return qv_error_set(err, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup %s: its spec's disks do not match the backup", last->id);
	for (size_t i = 0; i < last->n_disks; i++) {
		json_object *dk = json_object_array_get_idx(disks, i);
		json_object_object_add(dk, "path", json_object_new_string(j->dst[i]));
		json_object_object_add(dk, "format", json_object_new_string(j->qcow2 ? "qcow2" : "raw"));
	}
	if (vm_spec_from_json(spec, &vs, err) < 0)
		return -EINVAL;
	return qv_vm_define(j->d, vs, &vm, err);
}

static void restore_done(int r, const struct qv_error *err, void *ud)
{
	struct job *j = ud;
	struct qv_error e = {};
	const struct qv_backup_meta *last = j->c.metas[j->c.n_idx - 1];
	json_object *res, *imgs;

	restoring_claim(j->to, false);
	if (r >= 0 && j->define[0] && define_restored(j, &e) < 0) {
		for (size_t i = 0; i < last->n_disks; i++)
			unlink(j->dst[i]);
		qv_error_prefix(&e, "restored, but cannot define VM %s (images removed)", j->define);
		err = &e;
		r = -EINVAL;
	}
	if (r < 0) {
		qv_rpc_call_error(j->call, err);
		return job_free(j);
	}
	res = json_object_new_object();
	imgs = json_object_new_array();
	for (size_t i = 0; i < last->n_disks; i++)
		json_object_array_add(imgs, json_object_new_string(j->dst[i]));
	json_object_object_add(res, "images", imgs);
	json_object_object_add(res, "id", json_object_new_string(last->id));
	json_object_object_add(res, "applied", chain_ids(&j->c));
	if (j->define[0])
		json_object_object_add(res, "defined", json_object_new_string(j->define));
	log_info("Restored backup %s into %zu image(s) %s%s", last->id, last->n_disks, j->to,
		 j->define[0] ? " and defined the VM" : "");
	qv_rpc_call_reply(j->call, res);
	job_free(j);
}

static int plan_restore(qv_rpc_call *call, struct job *j)
{
	const struct qv_backup_meta *last = j->c.metas[j->c.n_idx - 1];
	char pool[PATH_MAX], dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/images", j->d->cfg.state_dir);
	if (!realpath(dir, pool))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "image pool %s missing", dir);
	if (!(j->dst = calloc(last->n_disks, sizeof(*j->dst))))
		return -ENOMEM;
	for (size_t i = 0; i < last->n_disks; i++) {
		char name[VM_NAME_MAX + 16];
		if (i == 0)
			snprintf(name, sizeof(name), "%s", j->to);
		else
			snprintf(name, sizeof(name), "%s-disk%zu", j->to, i);
		if (!vm_name_valid(name))
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "image name %s is not valid", name);
		for (int f = 0; f < 2; f++) {
			snprintf(j->dst[i], PATH_MAX, "%s/%s.%s", pool, name, f ? "qcow2" : "raw");
			if (access(j->dst[i], F_OK) == 0)
				return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT,
						    "image %s already exists in the pool", name);
		}
		snprintf(j->dst[i], PATH_MAX, "%s/%s.%s", pool, name, j->qcow2 ? "qcow2" : "raw");
	}
	if (j->define[0] && qv_vm_find(j->d, j->define))
		return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT, "VM %s is already defined",
				    j->define);
	if (!restoring_claim(j->to, true))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "a restore into %s is already running (or too many restores)",
				    j->to);
	return 0;
}

static int m_restore(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "id", "to", "store", "define", "format", NULL };
	struct job *j = calloc(1, sizeof(*j));
	const char *id, *to, *def;
	int r;

	if (!j)
		return -ENOMEM;
	j->d = ud;
	j->call = call;
	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "id", &id) < 0 ||
	    qv_param_string(call, params, "to", &to) < 0)
		return job_free(j), 0;
	def = opt_string(params, "define");
	const char *fmt = opt_string(params, "format");
	if (fmt && !streq(fmt, "raw") && !streq(fmt, "qcow2")) {
		job_free(j);
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.format must be raw or qcow2, not %.40s", fmt);
	}
	j->qcow2 = fmt && streq(fmt, "qcow2");
	if (!vm_name_valid(to) || (def && !vm_name_valid(def))) {
		job_free(j);
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.to and params.define must be valid names");
	}
	snprintf(j->to, sizeof(j->to), "%s", to);
	snprintf(j->define, sizeof(j->define), "%s", def ? def : "");
	if (get_store(call, ud, params, j->store) < 0 || load_chain(call, j->store, id, &j->c) < 0 ||
	    (r = plan_restore(call, j)) != 0) {
		job_free(j);
		return 0;
	}
	if ((r = bk_work_start(j->d, restore_work, restore_done, j)) < 0) {
		restoring_claim(j->to, false);
		job_free(j);
		return qv_call_fail(call, -r, QV_REASON_INTERNAL, "cannot start: %s", strerror(-r));
	}
	return 0;
}

static int prune_work(void *ud, struct qv_error *err)
{
	struct job *j = ud;

	/* Newest first: a backup is never deleted before the ones that need it. */
	for (size_t i = j->c.n; i-- > 0;) {
		if (j->keep[i] || j->dry_run)
			continue;
		int r = qv_backup_delete(j->store, j->c.list[i]->id, err);
		if (r < 0)
			return r;
		j->deleted++;
	}
	return 0;
}

static void prune_done(int r, const struct qv_error *err, void *ud)
{
	struct job *j = ud;
	json_object *kept = json_object_new_array(), *gone = json_object_new_array(), *res;

	for (size_t i = 0; i < j->c.n; i++)
		json_object_array_add(j->keep[i] ? kept : gone,
				      json_object_new_string(j->c.list[i]->id));
	res = json_object_new_object_with("kept", kept);
	json_object_object_add(res, j->dry_run ? "would_delete" : "deleted", gone);
	if (r < 0) {
		json_object_put(res);
		qv_rpc_call_error(j->call, err);
	} else {
		log_info("Pruned %zu backup(s) from %s", j->deleted, j->store);
		qv_rpc_call_reply(j->call, res);
	}
	job_free(j);
}

static int m_prune(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "vm", "store", "keep_last", "keep_daily", "dry_run", NULL };
	struct job *j = calloc(1, sizeof(*j));
	struct qv_error err = {};
	int64_t last = 0, daily = 0;
	int r;

	if (!j)
		return -ENOMEM;
	j->d = ud;
	j->call = call;
	if (check_keys(call, params, keys) < 0)
		return job_free(j), 0;
	if ((json_get_int64(params, "keep_last", "params.keep_last", &last, &err) == -EINVAL) ||
	    (json_get_int64(params, "keep_daily", "params.keep_daily", &daily, &err) == -EINVAL) ||
	    (json_get_bool(params, "dry_run", "params.dry_run", &j->dry_run, &err) == -EINVAL)) {
		job_free(j);
		return qv_rpc_call_error(call, &err), 0;
	}
	if (last < 0 || daily < 0 || last > 100000 || daily > 100000 || (last == 0 && daily == 0)) {
		job_free(j);
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "give keep_last and/or keep_daily (positive): pruning everything "
				    "is done with backup.delete");
	}
	j->keep_last = (unsigned)last;
	j->keep_daily = (unsigned)daily;
	if (get_store(call, ud, params, j->store) < 0)
		return job_free(j), 0;
	if (qv_backup_store_list(j->store, opt_string(params, "vm"), &j->c.list, &j->c.n, &err) < 0) {
		job_free(j);
		return qv_rpc_call_error(call, &err), 0;
	}
	if (!(j->keep = calloc(j->c.n ? j->c.n : 1, sizeof(*j->keep))))
		return job_free(j), -ENOMEM;
	qv_backup_prune_plan(j->c.list, j->c.n, j->keep_last, j->keep_daily, j->keep);
	if ((r = bk_work_start(j->d, prune_work, prune_done, j)) < 0) {
		job_free(j);
		return qv_call_fail(call, -r, QV_REASON_INTERNAL, "cannot start: %s", strerror(-r));
	}
	return 0;
}

const struct qv_rpc_method qv_backup_methods[] = {
	{ "backup.create", m_create }, { "backup.status", m_status }, { "backup.cancel", m_cancel },
	{ "backup.list", m_list },     { "backup.info", m_info },     { "backup.delete", m_delete },
	{ "backup.verify", m_verify }, { "backup.restore", m_restore }, { "backup.prune", m_prune },
};
const size_t qv_backup_methods_count = ARRAY_SIZE(qv_backup_methods);
