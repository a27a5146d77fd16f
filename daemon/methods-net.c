/* SPDX-License-Identifier: MIT */
/* net.* RPC methods, plus vm.nic-add / vm.nic-remove / vm.nic-list. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/netreg.h"

static int check_keys(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	return qv_param_check_keys(call, params, keys);
}

static bool net_available(qv_rpc_call *call, struct qv_daemon *d)
{
	struct qv_error err = {};

	if (qv_netreg_get(d, &err))
		return true;
	qv_rpc_call_error(call, &err);
	return false;
}

/* params.name -> a defined network; answers the call on failure. */
static struct qv_network *lookup_net(qv_rpc_call *call, json_object *params, struct qv_daemon *d)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_network *net;
	const char *name;

	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "name", &name) < 0)
		return NULL;
	if (!vm_name_valid(name)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "invalid network name \"%.80s\"", name);
		return NULL;
	}
	net = qv_network_find(d, name);
	if (!net)
		qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "network %s is not defined", name);
	return net;
}

static int m_net_define(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "spec", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	struct qv_network *net = NULL;
	json_object *spec = NULL;
	_cleanup_free_ char *name = NULL;

	if (check_keys(call, params, keys) < 0)
		return 0;
	if (!params || !json_object_object_get_ex(params, "spec", &spec))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.spec is required");
	if (qv_network_parse(spec, &net, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (!net_available(call, d)) {
		qv_network_free(net);
		return 0;
	}
	name = strdup(net->name);
	if (!name) {
		qv_network_free(net);
		return -ENOMEM;
	}
	if (qv_network_define(d, net, &err) < 0) {
		log_warning("net.define %s: %s", name, err.message);
		return qv_rpc_call_error(call, &err), 0;
	}
	log_info("Defined network %s", name);
	net = qv_network_find(d, name);
	return qv_rpc_call_reply(call, qv_network_json(d, net, true)), 0;
}

static int m_net_undefine(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_daemon *d = ud;
	struct qv_network *net = lookup_net(call, params, d);
	struct qv_error err = {};
	_cleanup_free_ char *name = NULL;

	if (!net)
		return 0;
	name = strdup(net->name);
	if (!name)
		return -ENOMEM;
	if (qv_network_undefine(d, name, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	log_info("Undefined network %s", name);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(name));
	return qv_rpc_call_reply(call, res), 0;
}

static int cmp_net(const void *a, const void *b)
{
	const struct qv_network *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static int m_net_list(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { NULL };
	struct qv_daemon *d = ud;
	struct qv_netreg *reg;
	json_object *arr, *res;
	size_t n = 0;

	if (check_keys(call, params, keys) < 0 || !net_available(call, d))
		return 0;
	reg = d->net_state;
	for (struct qv_network *x = reg->nets; x; x = x->next)
		n++;
	_cleanup_free_ struct qv_network **v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (struct qv_network *x = reg->nets; x; x = x->next)
		v[n++] = x;
	qsort(v, n, sizeof(*v), cmp_net);
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, qv_network_json(d, v[i], false));
	res = json_object_new_object();
	json_object_object_add(res, "networks", arr);
	return qv_rpc_call_reply(call, res), 0;
}

static int m_net_info(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_daemon *d = ud;
	struct qv_network *net = lookup_net(call, params, d);

	if (!net)
		return 0;
	return qv_rpc_call_reply(call, qv_network_json(d, net, true)), 0;
}

const struct qv_rpc_method qv_net_methods[] = {
	{ "net.define", m_net_define },
	{ "net.undefine", m_net_undefine },
	{ "net.list", m_net_list },
	{ "net.info", m_net_info },
	{ "vm.nic-add", qv_m_vm_nic_add },
	{ "vm.nic-remove", qv_m_vm_nic_remove },
	{ "vm.nic-list", qv_m_vm_nic_list },
};
const size_t qv_net_methods_count = ARRAY_SIZE(qv_net_methods);
