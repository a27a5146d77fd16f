/* SPDX-License-Identifier: MIT */
/* host.pressure, policy.show, policy.set-mode, vm.history. */
#include <errno.h>
#include <stdlib.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hostloop-internal.h"

static struct qv_hostloop *loop_or_fail(qv_rpc_call *call, void *ud)
{
	struct qv_hostloop *h = qv_hostloop_state(ud);

	if (!h)
		qv_call_fail(call, ENODEV, QV_REASON_UNAVAILABLE, "the resource loop is not running");
	return h;
}

static int check(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	struct qv_error err = {};

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), -EINVAL;
	return 0;
}

static int m_pressure(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { NULL };
	struct qv_hostloop *h;

	if (check(call, params, keys) < 0 || !(h = loop_or_fail(call, ud)))
		return 0;
	return qv_rpc_call_reply(call, hl_loop_pressure_json(h->loop)), 0;
}

static json_object *recent_json(const struct qv_hostloop *h, const char *vm)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < h->n_recent; i++) {
		size_t k = (h->head + HOSTLOOP_RECENT - h->n_recent + i) % HOSTLOOP_RECENT;
		const struct hl_recent *r = &h->recent[k];
		if (vm && !streq(r->c.vm, vm))
			continue;
		json_object *o = hl_change_to_json(&r->c);
		json_object_object_add(o, "time", json_object_new_int64(r->time_ms));
		json_object_array_add(a, o);
	}
	return a;
}

static int m_show(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_hostloop *h;
	json_object *v;

	if (check(call, params, keys) < 0 || !(h = loop_or_fail(call, ud)))
		return 0;
	const char *name = params && json_object_object_get_ex(params, "name", &v)
				   ? json_object_get_string(v) : NULL;
	json_object *res = json_object_new_object(), *vms = json_object_new_array();
	json_object_object_add(res, "mode", json_object_new_string(vm_loop_mode_to_string(h->mode)));
	json_object_object_add(res, "interval_ms", json_object_new_int(h->interval_ms));
	json_object_object_add(res, "can_enforce", json_object_new_boolean(h->can_enforce));
	json_object_object_add(res, "changes_total",
			       json_object_new_int64((int64_t)hl_loop_changes(h->loop)));
	for (struct qv_vm *vm = h->d->vms; vm; vm = vm->next) {
		if (name && !streq(vm->name, name))
			continue;
		json_object *o = hl_loop_vm_json(h->loop, vm->name);
		if (o)
			json_object_array_add(vms, o);
	}
	if (name && !json_object_array_length(vms)) {
		json_object_put(vms);
		json_object_put(res);
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
				    "VM %.80s is not running under the resource loop", name), 0;
	}
	json_object_object_add(res, "vms", vms);
	json_object_object_add(res, "recent", recent_json(h, name));
	return qv_rpc_call_reply(call, res), 0;
}

static int m_set_mode(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "mode", NULL };
	struct qv_hostloop *h;
	const char *s;

	if (check(call, params, keys) < 0 || !(h = loop_or_fail(call, ud)) ||
	    qv_param_string(call, params, "mode", &s) < 0)
		return 0;
	int m = vm_loop_mode_from_string(s);
	if (m < 0 || m == VM_LOOP_HOST)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "mode must be \"off\", \"advise\" or \"enforce\""), 0;
	if (m == VM_LOOP_ENFORCE && !h->can_enforce)
		return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "cannot enforce: the cpu and memory cgroup-v2 controllers are "
				    "not available to qvisor on this host"), 0;
	log_info("resource loop: mode %s -> %s", vm_loop_mode_to_string(h->mode), s);
	h->mode = (enum vm_loop_mode)m;
	hl_loop_set_mode(h->loop, h->mode);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "mode", json_object_new_string(s));
	qv_daemon_emit(h->d, NULL, "policy-mode", json_object_get(res));
	return qv_rpc_call_reply(call, res), 0;
}

static json_object *point_json(const struct col_point *p)
{
	static const char *const psi[COL_PSI_N] = { "cpu_some", "cpu_full", "memory_some",
						    "memory_full", "io_some", "io_full" };
	json_object *o = json_object_new_object(), *x = json_object_new_object();

	json_object_object_add(o, "t", json_object_new_int64(p->t_s));
	json_object_object_add(o, "cpu", json_object_new_double(p->cpu));
	json_object_object_add(o, "throttled", json_object_new_double(p->throttled));
	json_object_object_add(o, "memory_mib", json_object_new_double(p->mem_mib));
	json_object_object_add(o, "io_read_bps", json_object_new_double(p->io_rbps));
	json_object_object_add(o, "io_write_bps", json_object_new_double(p->io_wbps));
	json_object_object_add(o, "net_rx_bps", json_object_new_double(p->net_rx_bps));
	json_object_object_add(o, "net_tx_bps", json_object_new_double(p->net_tx_bps));
	json_object_object_add(o, "disk_read_bps", json_object_new_double(p->disk_rd_bps));
	json_object_object_add(o, "disk_write_bps", json_object_new_double(p->disk_wr_bps));
	for (int i = 0; i < COL_PSI_N; i++)
		json_object_object_add(x, psi[i], json_object_new_double(p->psi[i]));
	json_object_object_add(o, "pressure", x);
	return o;
}

/* The NICs' and disks' cumulative counters the collector holds for VM i. */
static void io_counters(const qv_collector *c, size_t i, json_object *res)
{
	json_object *nics = json_object_new_array(), *disks = json_object_new_array();
	const struct col_nic *nv;
	const struct col_disk *dv;
	size_t nn = col_vm_nics(c, i, &nv), nd = col_vm_disks(c, i, &dv);

	for (size_t k = 0; k < nn; k++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(nv[k].name));
		json_object_object_add(o, "rx_bytes", json_object_new_int64((int64_t)nv[k].rx_bytes));
		json_object_object_add(o, "tx_bytes", json_object_new_int64((int64_t)nv[k].tx_bytes));
		json_object_object_add(o, "rx_packets",
				       json_object_new_int64((int64_t)nv[k].rx_packets));
		json_object_object_add(o, "tx_packets",
				       json_object_new_int64((int64_t)nv[k].tx_packets));
		json_object_object_add(o, "rx_drops", json_object_new_int64((int64_t)nv[k].rx_drops));
		json_object_object_add(o, "tx_drops", json_object_new_int64((int64_t)nv[k].tx_drops));
		json_object_array_add(nics, o);
	}
	for (size_t k = 0; k < nd; k++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(dv[k].name));
		json_object_object_add(o, "read_bytes", json_object_new_int64((int64_t)dv[k].rd_bytes));
		json_object_object_add(o, "written_bytes",
				       json_object_new_int64((int64_t)dv[k].wr_bytes));
		json_object_object_add(o, "reads", json_object_new_int64((int64_t)dv[k].rd_ops));
		json_object_object_add(o, "writes", json_object_new_int64((int64_t)dv[k].wr_ops));
		json_object_object_add(o, "flushes", json_object_new_int64((int64_t)dv[k].flush_ops));
		json_object_array_add(disks, o);
	}
	json_object_object_add(res, "nics", nics);
	json_object_object_add(res, "disks", disks);
}

/* vm.history {name, coarse?, max?}: the collector's ring, oldest first. */
static int m_history(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "coarse", "max", NULL };
	struct qv_hostloop *h;
	const char *name;
	json_object *v;

	if (check(call, params, keys) < 0 || !(h = loop_or_fail(call, ud)) ||
	    qv_param_string(call, params, "name", &name) < 0)
		return 0;
	bool coarse = json_object_object_get_ex(params, "coarse", &v) && json_object_get_boolean(v);
	int64_t max = json_object_object_get_ex(params, "max", &v) ? json_object_get_int64(v) : 3600;
	int i = col_vm_index(h->col, name);
	if (i < 0)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
				    "no history for VM %.80s (not running?)", name), 0;
	if (max < 1 || max > 100000)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "max must be 1..100000"), 0;
	struct col_point *pts = calloc((size_t)max, sizeof(*pts));
	if (!pts)
		return -ENOMEM;
	size_t n = col_vm_history(h->col, (size_t)i, coarse, pts, (size_t)max);
	json_object *res = json_object_new_object(), *a = json_object_new_array();
	for (size_t k = 0; k < n; k++)
		json_object_array_add(a, point_json(&pts[k]));
	free(pts);
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "interval_ms",
			       json_object_new_int(coarse ? 60 * h->interval_ms : h->interval_ms));
	json_object_object_add(res, "points", a);
	io_counters(h->col, (size_t)i, res);
	return qv_rpc_call_reply(call, res), 0;
}

const struct qv_rpc_method qv_hostloop_methods[] = {
	{ "vm.history", m_history },
	{ "host.pressure", m_pressure },
	{ "policy.show", m_show },
	{ "policy.set-mode", m_set_mode },
};
const size_t qv_hostloop_methods_count = ARRAY_SIZE(qv_hostloop_methods);
