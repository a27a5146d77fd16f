/* SPDX-License-Identifier: MIT */
/* vm.set-limits and vm.stats. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/vm-cgroup-internal.h"

static struct qv_vm *find_vm(qv_rpc_call *call, json_object *params, void *ud,
			     const char *const *keys)
{
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	const char *name;
	struct qv_vm *vm;

	if (params && json_check_keys(params, keys, "params", &err) < 0) {
		qv_rpc_call_error(call, &err);
		return NULL;
	}
	if (qv_param_string(call, params, "name", &name) < 0)
		return NULL;
	if (!vm_name_valid(name)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT, "invalid VM name \"%.80s\"",
			     name);
		return NULL;
	}
	vm = qv_vm_find(d, name);
	if (!vm)
		qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", name);
	return vm;
}

/* The VM's group: the one made at start, or (after a daemon restart) the
 * existing one found by name. *ret_owned is set when the caller must free. */
static int vm_group(struct qv_vm *vm, struct cg_daemon *st, cg_group **ret,
		    cg_group **ret_owned, struct qv_error *errp)
{
	struct cg_vm *v = vm->cgroup_state;
	char name[80];

	if (v && v->g) {
		*ret = v->g;
		return 0;
	}
	qv_cgroup_group_name(vm->name, name, sizeof(name));
	int r = cg_group_open(st->mgr, name, ret_owned, errp);
	if (r < 0)
		return r;
	*ret = *ret_owned;
	return 0;
}

/* Current spec limits overlaid with params.limits (null removes a field),
 * validated by the spec parser. */
static int merged_spec(struct qv_vm *vm, json_object *limits, struct vm_spec **ret,
		       struct qv_error *errp)
{
	_cleanup_json_ json_object *j = vm_spec_to_json(vm->spec);
	json_object *cur;

	if (!j)
		return -ENOMEM;
	if (!json_object_object_get_ex(j, "limits", &cur) || !json_object_is_type(cur, json_type_object)) {
		cur = json_object_new_object();
		json_object_object_add(j, "limits", cur);
	}
	json_object_object_foreach(limits, key, val)
	{
		if (!val)
			json_object_object_del(cur, key);
		else
			json_object_object_add(cur, key, json_object_get(val));
	}
	return vm_spec_from_json(j, ret, errp);
}

static int m_set_limits(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "limits", NULL };
	struct qv_daemon *d = ud;
	struct cg_daemon *st = qv_cgroup_state(d);
	struct qv_error err = {};
	struct vm_spec *ns = NULL;
	_cleanup_(cg_group_freep) cg_group *owned = NULL;
	_cleanup_free_ struct cg_io_limit *io = NULL;
	size_t n_io = 0;
	json_object *limits;
	struct qv_vm *vm;
	bool applied = false;
	int r;

	if (!(vm = find_vm(call, params, ud, keys)))
		return 0;
	if (!json_object_object_get_ex(params, "limits", &limits) ||
	    !json_object_is_type(limits, json_type_object))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.limits: an object is required");
	r = merged_spec(vm, limits, &ns, &err);
	if (r >= 0)
		r = qv_cgroup_resolve_io(ns, &io, &n_io, &err);
	struct cg_limits lim = { .l = ns ? ns->limits : (struct vm_limits){}, .io = io, .n_io = n_io };
	if (r >= 0)
		r = cg_manager_check(st->mgr, &lim, &err);
	if (r >= 0 && qv_vm_is_active(vm) && cg_manager_slice_path(st->mgr)) {
		cg_group *g = NULL;
		struct cg_vm *v = vm->cgroup_state;
		struct cg_limits old = { .l = vm->spec->limits, .io = v ? v->io : NULL,
					 .n_io = v ? v->n_io : 0 };
		r = vm_group(vm, st, &g, &owned, &err);
		if (r >= 0)
			r = cg_group_apply(g, &lim, &old, &err);
		applied = r >= 0;
	}
	if (r < 0) {
		vm_spec_free(ns);
		qv_error_prefix(&err, "VM %s", vm->name);
		return qv_rpc_call_error(call, &err), 0;
	}
	/* Persist, then adopt the new limits. */
	_cleanup_json_ json_object *sj = vm_spec_to_json(ns);
	if (sj && qv_state_vm_update_spec(d->state, vm->name, json_object_to_json_string_ext(
								      sj, JSON_C_TO_STRING_PLAIN)) < 0)
		log_warning("VM %s: cannot persist new limits, ignoring", vm->name);
	struct vm_limits tmp = vm->spec->limits;
	bool tmp_has = vm->spec->has_limits;
	vm->spec->limits = ns->limits;
	vm->spec->has_limits = ns->has_limits;
	ns->limits = tmp;
	ns->has_limits = tmp_has;
	vm_spec_free(ns);

	json_object *res = json_object_new_object(), *lj;
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	_cleanup_json_ json_object *full = vm_spec_to_json(vm->spec);
	if (full && json_object_object_get_ex(full, "limits", &lj))
		json_object_object_add(res, "limits", json_object_get(lj));
	else
		json_object_object_add(res, "limits", json_object_new_object());
	json_object_object_add(res, "applied", json_object_new_boolean(applied));
	log_info("VM %s: limits changed%s", vm->name, applied ? " (applied live)" : "");
	return qv_rpc_call_reply(call, res), 0;
}

static int m_stats(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct cg_daemon *st = qv_cgroup_state(ud);
	_cleanup_(cg_group_freep) cg_group *owned = NULL;
	struct qv_error err = {};
	struct cg_stats s;
	cg_group *g = NULL;
	struct qv_vm *vm;
	char layout[512];

	if (!(vm = find_vm(call, params, ud, keys)))
		return 0;
	if (!qv_vm_is_active(vm))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT, "VM %s is not running",
				    vm->name);
	if (!cg_manager_slice_path(st->mgr))
		return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "VM %s: no per-VM statistics without cgroup v2 controllers (%s)",
				    vm->name, cg_host_describe(cg_manager_host(st->mgr), layout,
							       sizeof(layout)));
	if (vm_group(vm, st, &g, &owned, &err) < 0 || cg_group_read_stats(g, &s, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	json_object *res = cg_stats_to_json(&s);
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "cgroup", json_object_new_string(cg_group_path(g)));
	json_object_object_add(res, "time_ms", json_object_new_int64(qv_unix_ms()));
	return qv_rpc_call_reply(call, res), 0;
}

const struct qv_rpc_method qv_cgroup_methods[] = {
	{ "vm.set-limits", m_set_limits },
	{ "vm.stats", m_stats },
};
const size_t qv_cgroup_methods_count = ARRAY_SIZE(qv_cgroup_methods);
