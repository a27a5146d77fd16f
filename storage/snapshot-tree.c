/* SPDX-License-Identifier: MIT */
/* The snapshot tree of one VM as a JSON document (storage/snapshot.h). */
#include "common/macro.h"
#include "storage/snapshot.h"

#define BAD(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

json_object *qv_snap_tree_new(void)
{
	json_object *t = json_object_new_object();

	json_object_object_add(t, "seq", json_object_new_int64(0));
	json_object_object_add(t, "current", NULL);
	json_object_object_add(t, "snapshots", json_object_new_array());
	json_object_object_add(t, "unlink", json_object_new_array());
	return t;
}

json_object *qv_snap_tree_list(json_object *tree)
{
	json_object *a;

	if (!json_object_object_get_ex(tree, "snapshots", &a) ||
	    !json_object_is_type(a, json_type_array)) {
		a = json_object_new_array();
		json_object_object_add(tree, "snapshots", a);
	}
	return a;
}

const char *qv_snap_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int64_t qv_snap_int(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v);
}

void qv_snap_set_str(json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, val ? json_object_new_string(val) : NULL);
}

const char *qv_snap_current(json_object *tree)
{
	return qv_snap_str(tree, "current");
}

static bool is_absolute_file(const char *p)
{
	return p && p[0] == '/' && !strstr(p, "/../") && strlen(p) < 4096;
}

static int validate_one(json_object *s, struct qv_error *errp)
{
	json_object *disks, *mem;
	const char *name = qv_snap_str(s, "name"), *state = qv_snap_str(s, "state");

	if (!json_object_is_type(s, json_type_object) || !qv_snapshot_name_valid(name))
		return BAD(errp, "snapshot tree: entry without a valid name");
	if (!state || (!streq(state, "creating") && !streq(state, "ok") && !streq(state, "deleting")))
		return BAD(errp, "snapshot %s: bad state", name);
	if (!json_object_object_get_ex(s, "disks", &disks) ||
	    !json_object_is_type(disks, json_type_array))
		return BAD(errp, "snapshot %s: no disk list", name);
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		json_object *dk = json_object_array_get_idx(disks, i);
		const char *f = qv_snap_str(dk, "format");
		if (!is_absolute_file(qv_snap_str(dk, "path")) || !f ||
		    (!streq(f, "raw") && !streq(f, "qcow2")) || qv_snap_int(dk, "index") < 0)
			return BAD(errp, "snapshot %s: bad disk entry %zu", name, i);
	}
	if (json_object_object_get_ex(s, "memory", &mem) && mem &&
	    !is_absolute_file(json_object_get_string(mem)))
		return BAD(errp, "snapshot %s: bad memory file", name);
	return 0;
}

int qv_snap_tree_validate(json_object *tree, struct qv_error *errp)
{
	json_object *list;
	const char *cur;

	if (!json_object_is_type(tree, json_type_object) ||
	    !json_object_object_get_ex(tree, "snapshots", &list) ||
	    !json_object_is_type(list, json_type_array))
		return BAD(errp, "snapshot tree: not an object with a snapshot list");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *s = json_object_array_get_idx(list, i);
		const char *parent;
		int r = validate_one(s, errp);
		if (r < 0)
			return r;
		parent = qv_snap_str(s, "parent");
		if (parent && !qv_snap_find(tree, parent))
			return BAD(errp, "snapshot %s: unknown parent %s", qv_snap_str(s, "name"),
				   parent);
	}
	cur = qv_snap_current(tree);
	if (cur && !qv_snap_find(tree, cur))
		return BAD(errp, "snapshot tree: unknown current snapshot %s", cur);
	/* Parents must not loop: a path to the root is at most n long. */
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		const char *p = qv_snap_str(json_object_array_get_idx(list, i), "name");
		size_t steps = 0;
		while (p && steps++ <= json_object_array_length(list))
			p = qv_snap_str(qv_snap_find(tree, p), "parent");
		if (p)
			return BAD(errp, "snapshot tree: parent loop");
	}
	return 0;
}

json_object *qv_snap_find(json_object *tree, const char *name)
{
	json_object *list = qv_snap_tree_list(tree);

	for (size_t i = 0; name && i < json_object_array_length(list); i++) {
		json_object *s = json_object_array_get_idx(list, i);
		if (streq_ptr(qv_snap_str(s, "name"), name))
			return s;
	}
	return NULL;
}

const char *qv_snap_disk_path(json_object *s, size_t index)
{
	json_object *disks;

	if (!json_object_object_get_ex(s, "disks", &disks))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		json_object *dk = json_object_array_get_idx(disks, i);
		if (qv_snap_int(dk, "index") == (int64_t)index)
			return qv_snap_str(dk, "path");
	}
	return NULL;
}

int64_t qv_snap_next_seq(json_object *tree)
{
	int64_t n = qv_snap_int(tree, "seq") + 1;

	json_object_object_add(tree, "seq", json_object_new_int64(n));
	return n;
}

size_t qv_snap_children(json_object *tree, const char *name, json_object **ret_child,
			bool *ret_active)
{
	json_object *list = qv_snap_tree_list(tree);
	bool active = streq_ptr(qv_snap_current(tree), name);
	size_t n = active;

	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *s = json_object_array_get_idx(list, i);
		if (streq_ptr(qv_snap_str(s, "parent"), name)) {
			n++;
			if (ret_child)
				*ret_child = s;
		}
	}
	if (ret_active)
		*ret_active = active;
	return n;
}

size_t qv_snap_depth(json_object *tree, const char *name)
{
	size_t depth = 1, limit = json_object_array_length(qv_snap_tree_list(tree));

	for (const char *p = qv_snap_current(tree); p && depth <= limit;
	     p = qv_snap_str(qv_snap_find(tree, p), "parent"), depth++)
		if (streq(p, name))
			return depth;
	return 0;
}

bool qv_snap_on_current_path(json_object *tree, const char *name)
{
	return qv_snap_depth(tree, name) > 0;
}

void qv_snap_remove(json_object *tree, const char *name)
{
	json_object *list = qv_snap_tree_list(tree);

	for (size_t i = 0; i < json_object_array_length(list); i++)
		if (streq_ptr(qv_snap_str(json_object_array_get_idx(list, i), "name"), name)) {
			json_object_array_del_idx(list, i, 1);
			return;
		}
}

bool qv_snap_references(json_object *tree, const char *path)
{
	json_object *list = qv_snap_tree_list(tree), *disks;

	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *s = json_object_array_get_idx(list, i);
		if (streq_ptr(qv_snap_str(s, "memory"), path))
			return true;
		if (!json_object_object_get_ex(s, "disks", &disks))
			continue;
		for (size_t k = 0; k < json_object_array_length(disks); k++)
			if (streq_ptr(qv_snap_str(json_object_array_get_idx(disks, k), "path"), path))
				return true;
	}
	return false;
}
