/* SPDX-License-Identifier: MIT */
/* vm.import-libvirt and vm.dump-libvirt: libvirt domain XML in and out
 * (the conversion is qemu/libvirt.h; this file only defines and looks up). */
#include "common/json.h"
#include "common/log.h"
#include "daemon/interop.h"
#include "daemon/vm.h"
#include "qemu/libvirt.h"

static int bad_params(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	struct qv_error err = {};

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), -EINVAL;
	return 0;
}

static int opt_bool(qv_rpc_call *call, json_object *params, const char *key, bool *ret)
{
	struct qv_error err = {};
	char what[64];
	int r;

	snprintf(what, sizeof(what), "params.%s", key);
	r = json_get_bool(params, key, what, ret, &err);
	if (r < 0 && r != -ENOENT)
		return qv_rpc_call_error(call, &err), r;
	return 0;
}

/* params {xml, lossy?, dry_run?} -> {name, uuid, spec, warnings}; a refusal
 * is reason "unsupported" with data.problems [{xpath, why, fatal}]. */
static int m_import_libvirt(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "xml", "lossy", "dry_run", NULL };
	_cleanup_(lv_import_freep) struct lv_import *imp = NULL;
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	bool lossy = false, dry = false;
	struct vm_spec *spec = NULL;
	struct qv_vm *vm;
	const char *xml;

	if (bad_params(call, params, keys) < 0 || qv_param_string(call, params, "xml", &xml) < 0 ||
	    opt_bool(call, params, "lossy", &lossy) < 0 || opt_bool(call, params, "dry_run", &dry) < 0)
		return 0;
	if (lv_import_xml(xml, strlen(xml), lossy, &imp, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (!imp->spec) {
		lv_import_refusal(imp, &err);
		json_object *data = json_object_new_object();
		json_object_object_add(data, "problems", json_object_get(imp->problems));
		return qv_rpc_call_error_data(call, &err, data), 0;
	}
	json_object *res = json_object_new_object();
	json_object_object_add(res, "spec", json_object_get(imp->spec));
	json_object_object_add(res, "warnings", json_object_get(imp->problems));
	if (dry)
		return qv_rpc_call_reply(call, res), 0;
	if (vm_spec_from_json(imp->spec, &spec, &err) < 0 || qv_vm_define(d, spec, &vm, &err) < 0) {
		json_object_put(res);
		return qv_rpc_call_error(call, &err), 0;
	}
	log_info("Defined VM %s (%s) from libvirt XML, %zu warning(s)", vm->name, vm->spec->uuid,
		 json_object_array_length(imp->problems));
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "uuid", json_object_new_string(vm->spec->uuid));
	return qv_rpc_call_reply(call, res), 0;
}

/* params {name} -> {xml} */
static int m_dump_libvirt(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	_cleanup_free_ char *xml = NULL;
	const char *name;
	struct qv_vm *vm;

	if (bad_params(call, params, keys) < 0 || qv_param_string(call, params, "name", &name) < 0)
		return 0;
	if (!vm_name_valid(name) || !(vm = qv_vm_find(d, name)))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.80s is not defined",
				    name);
	if (lv_export_xml(vm->spec, &xml, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	json_object *res = json_object_new_object();
	json_object_object_add(res, "xml", json_object_new_string(xml));
	return qv_rpc_call_reply(call, res), 0;
}

const struct qv_rpc_method qv_interop_methods[] = {
	{ "vm.import-libvirt", m_import_libvirt },
	{ "vm.dump-libvirt", m_dump_libvirt },
};
const size_t qv_interop_methods_count = ARRAY_SIZE(qv_interop_methods);
