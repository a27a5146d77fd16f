/* SPDX-License-Identifier: MIT */
/* Snapshot trees: load/save through the state store, the snapshot
 * directory, the live QEMU node names, and crash recovery at start. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/snapshot-internal.h"
#include "daemon/snapshot.h"
#include "daemon/state-snapshot.h"

json_object *snap_tree_load(struct qv_vm *vm, struct qv_error *errp)
{
	_cleanup_free_ char *text = NULL;
	json_object *t;
	int r = qv_state_snap_tree_get(vm->d->state, vm->name, &text);

	if (r == -ENOENT)
		return qv_snap_tree_new();
	if (r < 0) {
		qv_error_set(errp, r, QV_REASON_IO_ERROR, "VM %s: cannot read its snapshot tree: %s",
			     vm->name, strerror(-r));
		return NULL;
	}
	t = json_tokener_parse(text);
	if (!t || qv_snap_tree_validate(t, errp) < 0) {
		json_object_put(t);
		if (errp && !errp->set)
			qv_error_set(errp, EINVAL, QV_REASON_INTERNAL, "not JSON");
		qv_error_prefix(errp, "VM %s: damaged snapshot tree in the state store", vm->name);
		return NULL;
	}
	return t;
}

struct save_ctx {
	struct qv_vm *vm;
	const char *tree;
	const char *spec;
};

static int save_txn(qv_state *st, void *ud)
{
	struct save_ctx *c = ud;
	int r = qv_state_snap_tree_put(st, c->vm->name, c->tree);

	if (r >= 0 && c->spec)
		r = qv_state_vm_update_spec(st, c->vm->name, c->spec);
	return r;
}

int snap_tree_save(struct qv_vm *vm, json_object *tree, bool with_spec, struct qv_error *errp)
{
	_cleanup_json_ json_object *spec = with_spec ? vm_spec_to_json(vm->spec) : NULL;
	struct save_ctx c = {
		.vm = vm,
		.tree = json_object_to_json_string_ext(tree, JSON_C_TO_STRING_PLAIN),
		.spec = spec ? json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN) : NULL,
	};
	int r;

	if (with_spec && !spec)
		return -ENOMEM;
	r = qv_state_transaction(vm->d->state, save_txn, &c);
	if (r < 0)
		return qv_error_set(errp, r, QV_REASON_IO_ERROR,
				    "VM %s: cannot save its snapshot tree: %s", vm->name,
				    strerror(-r));
	return 0;
}

int snap_dir(struct qv_vm *vm, char *buf, size_t size, bool create)
{
	if ((size_t)snprintf(buf, size, "%s/images/.snapshots/%s", vm->d->cfg.state_dir,
			     vm->name) >= size)
		return -ENAMETOOLONG;
	if (!create)
		return 0;
	for (char *p = buf + strlen(vm->d->cfg.state_dir); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
			int r = -errno;
			*p = '/';
			return r;
		}
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int64_t snap_fresh_seq(json_object *tree, const char *dir)
{
	char p[PATH_MAX];

	for (;;) {
		int64_t seq = qv_snap_next_seq(tree);
		bool used = false;
		/* Files of an earlier VM of the same name (undefine leaves them). */
		for (size_t i = 0; i < SNAP_MAX_DISKS && !used; i++) {
			snprintf(p, sizeof(p), "%s/ov%" PRId64 "-d%zu.qcow2", dir, seq, i);
			used = access(p, F_OK) == 0;
		}
		snprintf(p, sizeof(p), "%s/mem%" PRId64 ".state", dir, seq);
		if (!used && access(p, F_OK) != 0)
			return seq;
	}
}

bool snap_is_ours(struct qv_vm *vm, const char *path)
{
	char dir[PATH_MAX];
	size_t n;

	if (snap_dir(vm, dir, sizeof(dir), false) < 0)
		return false;
	n = strlen(dir);
	return path && strncmp(path, dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
}

void snap_add_unlink(json_object *tree, const char *path)
{
	json_object *a;

	if (!json_object_object_get_ex(tree, "unlink", &a) || !json_object_is_type(a, json_type_array)) {
		a = json_object_new_array();
		json_object_object_add(tree, "unlink", a);
	}
	json_object_array_add(a, json_object_new_string(path));
}

void snap_unlink_pending(struct qv_vm *vm, json_object *tree)
{
	json_object *a;

	if (!json_object_object_get_ex(tree, "unlink", &a) || !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		const char *p = json_object_get_string(json_object_array_get_idx(a, i));
		/* Never a file the tree or the VM still uses, never one outside. */
		if (!snap_is_ours(vm, p) || qv_snap_references(tree, p))
			continue;
		for (size_t k = 0; k < vm->spec->n_disks; k++)
			if (streq(vm->spec->disks[k].path, p))
				p = NULL;
		if (p && unlink(p) < 0 && errno != ENOENT)
			log_warning("VM %s: cannot remove %s, ignoring: %m", vm->name, p);
		else if (p)
			log_debug("VM %s: removed %s", vm->name, p);
	}
	json_object_object_add(tree, "unlink", json_object_new_array());
}

/* --- live node names ----------------------------------------------------- */

/* The live record's disk list for the current QEMU, materialized from the
 * -blockdev names (qemu/argv.c) when that QEMU was started by argv. */
static json_object *live_disks(struct qv_vm *vm, json_object *tree, bool create)
{
	json_object *live, *disks;

	if (json_object_object_get_ex(tree, "live", &live) && live &&
	    qv_snap_int(live, "started_at") == vm->started_at &&
	    json_object_object_get_ex(live, "disks", &disks))
		return disks;
	if (live && qv_snap_int(live, "started_at") == -1 && qv_snap_int(live, "for") == vm->started_at)
		return NULL; /* invalidated for this very QEMU */
	if (!create)
		return NULL;
	live = json_object_new_object();
	json_object_object_add(live, "started_at", json_object_new_int64(vm->started_at));
	disks = json_object_new_array();
	json_object_object_add(live, "disks", disks);
	json_object_object_add(tree, "live", live);
	return disks;
}

static json_object *argv_node(size_t i, size_t k)
{
	json_object *o = json_object_new_object();
	char node[40];

	if (k == 0)
		snprintf(node, sizeof(node), "disk%zu", i);
	else
		snprintf(node, sizeof(node), "disk%zu-b%zu", i, k - 1);
	json_object_object_add(o, "node", json_object_new_string(node));
	/* qemu/argv.c disk_fdset() */
	json_object_object_add(o, "fdset", json_object_new_int64(10 + 16 * (int64_t)i +
								 (k == 0 ? 0 : (int64_t)k)));
	return o;
}

/* Disk i's list, extended with argv names down to depth k. */
static json_object *live_list(struct qv_vm *vm, json_object *tree, size_t i, size_t k)
{
	json_object *disks = live_disks(vm, tree, true), *l;

	if (!disks)
		return NULL;
	while (json_object_array_length(disks) <= i)
		json_object_array_add(disks, json_object_new_array());
	l = json_object_array_get_idx(disks, i);
	while (json_object_array_length(l) <= k)
		json_object_array_add(l, argv_node(i, json_object_array_length(l)));
	return l;
}

int snap_live_node(struct qv_vm *vm, json_object *tree, size_t i, size_t k, char *node,
		   size_t node_size, int64_t *ret_fdset)
{
	json_object *l = live_list(vm, tree, i, k), *e;

	if (!l)
		return -ESTALE;
	e = json_object_array_get_idx(l, k);
	if (!qv_snap_str(e, "node"))
		return -ESTALE;
	snprintf(node, node_size, "%s", qv_snap_str(e, "node"));
	*ret_fdset = qv_snap_int(e, "fdset");
	return 0;
}

int snap_live_drop(struct qv_vm *vm, json_object *tree, size_t i, size_t k)
{
	json_object *l = live_list(vm, tree, i, k);

	if (!l)
		return -ESTALE;
	json_object_array_del_idx(l, k, 1);
	return 0;
}

int snap_live_push(struct qv_vm *vm, json_object *tree, size_t i, const char *node,
		   int64_t fdset)
{
	json_object *l = live_list(vm, tree, i, 0), *e, *n;

	if (!l)
		return -ESTALE;
	n = json_object_new_array();
	e = json_object_new_object();
	json_object_object_add(e, "node", json_object_new_string(node));
	json_object_object_add(e, "fdset", json_object_new_int64(fdset));
	json_object_array_add(n, e);
	for (size_t k = 0; k < json_object_array_length(l); k++)
		json_object_array_add(n, json_object_get(json_object_array_get_idx(l, k)));
	json_object_array_put_idx(live_disks(vm, tree, false), i, n);
	return 0;
}

void snap_live_invalidate(json_object *tree)
{
	json_object *live, *old;
	int64_t started = 0;

	if (json_object_object_get_ex(tree, "live", &old) && old)
		started = qv_snap_int(old, "started_at");
	live = json_object_new_object();
	json_object_object_add(live, "started_at", json_object_new_int64(-1));
	json_object_object_add(live, "for", json_object_new_int64(started));
	json_object_object_add(tree, "live", live);
}

/* --- the pool check hook and recovery ------------------------------------ */

bool qv_snapshot_owns_file(struct qv_vm *vm, const char *real)
{
	_cleanup_json_ json_object *t = snap_tree_load(vm, NULL);
	json_object *list = t ? qv_snap_tree_list(t) : NULL, *disks;
	char rp[PATH_MAX];

	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		if (!json_object_object_get_ex(json_object_array_get_idx(list, i), "disks", &disks))
			continue;
		for (size_t k = 0; k < json_object_array_length(disks); k++) {
			const char *p = qv_snap_str(json_object_array_get_idx(disks, k), "path");
			if (p && realpath(p, rp) && streq(rp, real))
				return true;
		}
	}
	return false;
}

/* Recovery rule (docs/snapshots.md): the store is written before the disks
 * change and again after, so what a restart finds is one of:
 *  - "creating": the QMP transaction may or may not have run. The spec
 *    already names the new overlay, which reads exactly like the image
 *    below it, so the chain is right either way; the snapshot point is not
 *    trustworthy and is dropped, and the live node names are forgotten
 *    (a live merge then needs a VM restart).
 *  - "deleting": a merge was cut. The chain on disk is still complete (a
 *    commit only copies the upper image's data into the lower one), the
 *    snapshot's own point is gone; it stays listed as "deleting" and
 *    `snapshot delete` runs the merge again.
 *    A "merge" marker (an active commit cut around its switch) is resolved
 *    with QEMU's help: daemon/vm-snapshot-recover.c.
 *  - an "unlink" list: files a finished operation had still to remove. */
static void recover_vm(struct qv_vm *vm)
{
	struct qv_error err = {};
	_cleanup_json_ json_object *t = snap_tree_load(vm, &err);
	json_object *list;
	bool changed = false;

	if (!t) {
		log_warning("%s, ignoring", err.message);
		return;
	}
	list = qv_snap_tree_list(t);
	for (size_t i = json_object_array_length(list); i-- > 0;) {
		json_object *s = json_object_array_get_idx(list, i);
		const char *name = qv_snap_str(s, "name");
		if (streq(qv_snap_str(s, "state"), "deleting") && vm->inst) {
			/* An inner merge may have switched QEMU's chain. */
			snap_live_invalidate(t);
			changed = true;
		}
		if (!streq(qv_snap_str(s, "state"), "creating"))
			continue;
		log_warning("VM %s: snapshot %s was cut by a daemon restart while being created; "
			    "dropping it (the disks keep every write)", vm->name, name);
		if (qv_snap_str(s, "memory"))
			snap_add_unlink(t, qv_snap_str(s, "memory"));
		json_object_array_del_idx(list, i, 1);
		snap_live_invalidate(t);
		changed = true;
	}
	json_object *a;
	if (json_object_object_get_ex(t, "unlink", &a) && json_object_array_length(a) > 0) {
		snap_unlink_pending(vm, t);
		changed = true;
	}
	if (changed && snap_tree_save(vm, t, false, &err) < 0)
		log_warning("%s, ignoring", err.message);
	/* After the save above: the merge recovery writes the tree itself. */
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *s = json_object_array_get_idx(list, i), *m;
		if (streq(qv_snap_str(s, "state"), "deleting") &&
		    json_object_object_get_ex(s, "merge", &m) && m)
			snap_recover_merge(vm, qv_snap_str(s, "name"));
	}
}

void qv_snapshot_recover(struct qv_daemon *d)
{
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		if (!vm->attaching)
			recover_vm(vm);
}

void qv_snapshot_recover_vm(struct qv_vm *vm)
{
	/* Only once qv_snapshot_recover ran (a re-attach ending at start). */
	if (vm->d->rpc)
		recover_vm(vm);
}
