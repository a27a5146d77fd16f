/* SPDX-License-Identifier: MIT */
/* snapshot.* RPC methods (docs/rpc.md, docs/snapshots.md). */
#include "common/json.h"
#include "common/log.h"
#include "daemon/snapshot-internal.h"
#include "daemon/snapshot.h"

/* params {name, snapshot?, memory?}: the VM (answers the call when NULL). */
static struct qv_vm *parse(qv_rpc_call *call, json_object *params, struct qv_daemon *d,
			   const char *const *keys, const char **ret_snap)
{
	struct qv_error err = {};
	const char *name;
	struct qv_vm *vm;

	if (params && json_check_keys(params, keys, "params", &err) < 0) {
		qv_rpc_call_error(call, &err);
		return NULL;
	}
	if (qv_param_string(call, params, "name", &name) < 0)
		return NULL;
	if (ret_snap && qv_param_string(call, params, "snapshot", ret_snap) < 0)
		return NULL;
	if (ret_snap && !qv_snapshot_name_valid(*ret_snap)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "invalid snapshot name \"%.80s\": use 1-63 of [a-zA-Z0-9_.-], "
			     "starting with a letter or digit", *ret_snap);
		return NULL;
	}
	if (!vm_name_valid(name) || !(vm = qv_vm_find(d, name))) {
		qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.80s is not defined", name);
		return NULL;
	}
	return vm;
}

static int m_create(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "snapshot", "memory", NULL };
	struct qv_error err = {};
	const char *snap;
	struct qv_vm *vm = parse(call, params, ud, keys, &snap);
	bool memory = false;

	if (!vm)
		return 0;
	if (json_get_bool(params, "memory", "params.memory", &memory, &err) == -EINVAL ||
	    qv_snapshot_create(vm, snap, memory, call, &err) < 0)
		qv_rpc_call_error(call, &err);
	return 0;
}

static int m_revert(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "snapshot", NULL };
	struct qv_error err = {};
	const char *snap;
	struct qv_vm *vm = parse(call, params, ud, keys, &snap);

	if (vm && qv_snapshot_revert(vm, snap, call, &err) < 0)
		qv_rpc_call_error(call, &err);
	return 0;
}

static int m_delete(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "snapshot", NULL };
	struct qv_error err = {};
	const char *snap;
	struct qv_vm *vm = parse(call, params, ud, keys, &snap);

	if (vm && qv_snapshot_delete(vm, snap, call, &err) < 0)
		qv_rpc_call_error(call, &err);
	return 0;
}

static int m_list(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_error err = {};
	struct qv_vm *vm = parse(call, params, ud, keys, NULL);
	json_object *tree, *list, *out, *res;

	if (!vm)
		return 0;
	if (!(tree = snap_tree_load(vm, &err)))
		return qv_rpc_call_error(call, &err), 0;
	list = qv_snap_tree_list(tree);
	out = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(list); i++)
		json_object_array_add(out, snap_entry_json(tree, json_object_array_get_idx(list, i)));
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "current", qv_snap_current(tree) ?
				   json_object_new_string(qv_snap_current(tree)) : NULL);
	json_object_object_add(res, "busy", json_object_new_boolean(snap_vm_busy(vm->d, vm->name)));
	json_object_object_add(res, "snapshots", out);
	json_object_put(tree);
	qv_rpc_call_reply(call, res);
	return 0;
}

const struct qv_rpc_method qv_snapshot_methods[] = {
	{ "snapshot.create", m_create },
	{ "snapshot.list", m_list },
	{ "snapshot.revert", m_revert },
	{ "snapshot.delete", m_delete },
};
const size_t qv_snapshot_methods_count = ARRAY_SIZE(qv_snapshot_methods);
