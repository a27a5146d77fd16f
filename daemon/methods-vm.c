/* SPDX-License-Identifier: MIT */
/* vm.* RPC methods. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster.h"
#include "daemon/vm.h"
#include "daemon/rpc-access.h"

#define STOP_DEFAULT_TIMEOUT_S 60
#define STOP_MAX_TIMEOUT_S 3600

static int check_keys(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	struct qv_error err = {};

	if (!params)
		return 0;
	if (json_check_keys(params, keys, "params", &err) < 0) {
		qv_rpc_call_error(call, &err);
		return -EINVAL;
	}
	return 0;
}

/* Look up params.name; answers the call on failure. */
static struct qv_vm *lookup_vm(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_daemon *d = ud;
	const char *name;
	struct qv_vm *vm;

	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "name", &name) < 0)
		return NULL;
	if (!vm_name_valid(name)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "invalid VM name \"%.80s\": use 1-63 of [a-zA-Z0-9_.-], "
			     "starting with a letter or digit", name);
		return NULL;
	}
	vm = qv_vm_find(d, name);
	/* In a cluster, a VM another host owns: the call goes there. */
	if (!vm && !qv_cluster_forward_vm_call(d, call, qv_rpc_call_method(call), params, name))
		qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", name);
	return vm;
}

static int m_define(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "spec", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	struct vm_spec *spec = NULL;
	struct qv_vm *vm;
	json_object *j;

	/* A cluster member, or a spec with a placement section. */
	if (params && (qv_cluster_enabled(d) || json_object_object_get_ex(params, "placement", &j) ||
		       (json_object_object_get_ex(params, "spec", &j) &&
			json_object_is_type(j, json_type_object) &&
			json_object_object_get_ex(j, "placement", NULL)))) {
		int r = qv_cluster_define(d, call, params);
		if (r <= 0)
			return r;
	}
	if (check_keys(call, params, keys) < 0)
		return 0;
	if (!params || !json_object_object_get_ex(params, "spec", &j))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.spec is required");
	if (vm_spec_from_json(j, &spec, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_vm_define(d, spec, &vm, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	log_info("Defined VM %s (%s)", vm->name, vm->spec->uuid);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "uuid", json_object_new_string(vm->spec->uuid));
	return qv_rpc_call_reply(call, res), 0;
}

static int m_undefine(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_vm *vm = lookup_vm(call, params, ud);
	struct qv_error err = {};
	_cleanup_free_ char *name = NULL;

	if (!vm)
		return 0;
	name = strdup(vm->name);
	if (qv_vm_undefine(vm, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	log_info("Undefined VM %s", name);
	qv_cluster_vm_undefined(ud, name);
	return qv_rpc_call_reply(call, json_object_new_object()), 0;
}

static int m_list(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { NULL };
	struct qv_daemon *d = ud;
	json_object *arr = json_object_new_array(), *res = json_object_new_object();

	if (check_keys(call, params, keys) < 0) {
		json_object_put(arr);
		json_object_put(res);
		return 0;
	}
	/* The registry is newest-first; list by name. */
	size_t n = 0;
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		n++;
	struct qv_vm **v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		json_object_put(arr);
		json_object_put(res);
		return -ENOMEM;
	}
	n = 0;
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		v[n++] = vm;
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && strcmp(v[k - 1]->name, v[k]->name) > 0; k--) {
			struct qv_vm *t = v[k];
			v[k] = v[k - 1];
			v[k - 1] = t;
		}
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, qv_vm_summary_json(v[i]));
	free(v);
	json_object_object_add(res, "vms", arr);
	return qv_rpc_call_reply(call, res), 0;
}

static int m_info(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_vm *vm = lookup_vm(call, params, ud);

	json_object *info;

	if (!vm)
		return 0;
	info = qv_vm_info_json(vm);
	/* Anyone can use the read-only socket: a command line may hold secrets. */
	if (qv_rpc_call_is_read_only(vm->d, call))
		qv_vm_info_redact(info);
	return qv_rpc_call_reply(call, info), 0;
}

void qv_vm_info_redact(json_object *info)
{
	json_object *spec;

	if (!info || !json_object_object_get_ex(info, "spec", &spec))
		return;
	/* A command line or cloud-init user-data may hold secrets. */
	if (json_object_object_get_ex(spec, "cmdline", NULL))
		json_object_object_add(spec, "cmdline", json_object_new_string("(hidden)"));
	if (json_object_object_get_ex(spec, "cloud_init", NULL))
		json_object_object_add(spec, "cloud_init", json_object_new_string("(hidden)"));
}

static json_object *state_result(struct qv_vm *vm)
{
	json_object *res = json_object_new_object();

	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "state",
			       json_object_new_string(qv_vm_state_to_string(vm->state)));
	json_object_object_add(res, "pid",
			       json_object_new_int(vm->inst ? qemu_instance_pid(vm->inst) : 0));
	return res;
}

/* Completion of an asynchronous vm.* operation: answer the call. */
static void op_done(struct qv_vm *vm, int error, const struct qv_error *errp, void *ud)
{
	qv_rpc_call *call = ud;

	if (error < 0) {
		qv_rpc_call_error(call, errp);
		return;
	}
	qv_rpc_call_reply(call, state_result(vm));
}

static int m_start(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_vm *vm = lookup_vm(call, params, ud);
	struct qv_error err = {};

	if (!vm)
		return 0;
	if (qv_vm_start_async(vm, NULL, op_done, call, &err) < 0) {
		log_warning("Failed to start VM %s: %s", vm->name, err.message);
		return qv_rpc_call_error(call, &err), 0;
	}
	return 0;
}

static void stop_done(struct qv_vm *vm, int error, enum qemu_stop_step step,
		      const char *exit_text, void *ud)
{
	qv_rpc_call *call = ud;

	if (error < 0) {
		qv_call_fail(call, -error, QV_REASON_TIMEOUT,
			     "VM %s did not exit even after SIGKILL", vm->name);
		return;
	}
	json_object *res = state_result(vm);
	json_object_object_add(res, "how",
			       json_object_new_string(qemu_stop_step_to_string(step)));
	json_object_object_add(res, "exit", json_object_new_string(exit_text));
	qv_rpc_call_reply(call, res);
}

static int m_stop(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "force", "timeout", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	const char *name;
	bool force = false;
	int64_t timeout = STOP_DEFAULT_TIMEOUT_S;
	struct qv_vm *vm;
	int r;

	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "name", &name) < 0)
		return 0;
	r = json_get_bool(params, "force", "params.force", &force, &err);
	if (r < 0 && r != -ENOENT)
		return qv_rpc_call_error(call, &err), 0;
	r = json_get_int64(params, "timeout", "params.timeout", &timeout, &err);
	if (r < 0 && r != -ENOENT)
		return qv_rpc_call_error(call, &err), 0;
	if (timeout < 1 || timeout > STOP_MAX_TIMEOUT_S)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.timeout must be 1..%d seconds", STOP_MAX_TIMEOUT_S);
	vm = qv_vm_find(d, name);
	if (!vm && qv_cluster_forward_vm_call(d, call, "vm.stop", params, name))
		return 0;
	if (!vm)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.80s is not defined",
				    name);
	if (qv_vm_stop(vm, force, (int)timeout * 1000, stop_done, call, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	return 0;
}

typedef int (*vm_action_fn)(struct qv_vm *vm, qv_vm_op_fn fn, void *userdata,
			   struct qv_error *errp);

static int async_action(qv_rpc_call *call, json_object *params, void *ud, vm_action_fn fn)
{
	struct qv_vm *vm = lookup_vm(call, params, ud);
	struct qv_error err = {};

	if (!vm)
		return 0;
	if (fn(vm, op_done, call, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	return 0;
}

static int m_pause(qv_rpc_call *call, json_object *params, void *ud)
{
	return async_action(call, params, ud, qv_vm_pause);
}

static int m_resume(qv_rpc_call *call, json_object *params, void *ud)
{
	return async_action(call, params, ud, qv_vm_resume);
}

static int m_reboot(qv_rpc_call *call, json_object *params, void *ud)
{
	return async_action(call, params, ud, qv_vm_reboot);
}

static int m_console(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_vm *vm = lookup_vm(call, params, ud);

	if (!vm)
		return 0;
	if (!vm->inst || !vm->run_dir)
		return qv_call_fail(call, EALREADY, QV_REASON_CONFLICT, "VM %s is not running (%s)",
				    vm->name, qv_vm_state_to_string(vm->state));
	json_object *res = json_object_new_object();
	_cleanup_free_ char *p = qemu_run_path(vm->run_dir, QEMU_SERIAL_SOCK);
	_cleanup_free_ char *l = qemu_run_path(vm->run_dir, QEMU_SERIAL_LOG);
	json_object_object_add(res, "path", json_object_new_string(p));
	json_object_object_add(res, "log", json_object_new_string(l));
	return qv_rpc_call_reply(call, res), 0;
}

/* vm.balloon {name, target?}: target in bytes sets it; without, a query. */
static int m_balloon(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "target", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	const char *name;
	int64_t target = 0;
	struct qv_vm *vm;
	int r;

	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "name", &name) < 0)
		return 0;
	r = json_get_int64(params, "target", "params.target", &target, &err);
	if (r < 0 && r != -ENOENT)
		return qv_rpc_call_error(call, &err), 0;
	if (r == 0 && target <= 0)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.target must be a positive number of bytes");
	if (!vm_name_valid(name) || !(vm = qv_vm_find(d, name)))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.80s is not defined",
				    name);
	if (qv_vm_balloon(vm, (uint64_t)target, call, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	return 0;
}

const struct qv_rpc_method qv_vm_methods[] = {
	{ "vm.define", m_define },   { "vm.undefine", m_undefine }, { "vm.list", m_list },
	{ "vm.info", m_info },       { "vm.start", m_start },       { "vm.stop", m_stop },
	{ "vm.pause", m_pause },     { "vm.resume", m_resume },     { "vm.reboot", m_reboot },
	{ "vm.console", m_console }, { "vm.balloon", m_balloon },
};
const size_t qv_vm_methods_count = ARRAY_SIZE(qv_vm_methods);
