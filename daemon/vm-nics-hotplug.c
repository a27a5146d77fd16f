/* SPDX-License-Identifier: MIT */
/* NIC hotplug: vm.nic-add, vm.nic-remove, vm.nic-list. Hot-plugged NICs are
 * runtime only: they are not written to the VM spec and are gone after the
 * VM stops (see docs/networking.md). A daemon restart re-adopts them from
 * QEMU and netlink (vm_nics_adopt_hotplugged). */
#include "common/json.h"
#include "common/log.h"
#include "daemon/fw.h"
#include "daemon/vm-nics-internal.h"
#include "net/ifname.h"
#include "net/mac.h"
#include "net/tap.h"

#define UNPLUG_POLL_MS 250
#define UNPLUG_TIMEOUT_MS 60000

static int check_keys(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	return qv_param_check_keys(call, params, keys);
}

/* params.name -> a VM with a live QEMU; answers the call on failure. */
static struct qv_vm *lookup_vm(qv_rpc_call *call, json_object *params, struct qv_daemon *d,
			       bool need_running)
{
	const char *name;
	struct qv_vm *vm;

	if (qv_param_string(call, params, "name", &name) < 0)
		return NULL;
	if (!vm_name_valid(name)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT, "invalid VM name \"%.80s\"",
			     name);
		return NULL;
	}
	vm = qv_vm_find(d, name);
	if (!vm) {
		qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", name);
		return NULL;
	}
	if (need_running && (!vm->inst || (vm->state != QV_VM_RUNNING &&
					   vm->state != QV_VM_PAUSED))) {
		qv_call_fail(call, EBUSY, QV_REASON_CONFLICT, "VM %s is %s; NIC hotplug needs a "
			     "running VM", vm->name, qv_vm_state_to_string(vm->state));
		return NULL;
	}
	return vm;
}

static int free_port(struct vm_nics *s)
{
	for (int p = 0; p < QEMU_HOTPLUG_PORTS; p++) {
		bool used = false;
		for (size_t i = 0; i < HP_SLOTS; i++)
			used |= s->hp[i].used && s->hp[i].port == p;
		if (!used)
			return p;
	}
	return -1;
}

/* Parse params.nic: {network|bridge, mac?, model?}. */
static int parse_nic(json_object *nic, const char **ret_net, const char **ret_br,
		     const char **ret_mac, struct qv_error *errp)
{
	static const char *const keys[] = { "network", "bridge", "mac", "model", NULL };
	const char *model = NULL;
	int r;

	if (!nic)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.nic is required: {network|bridge, mac?}");
	r = json_check_keys(nic, keys, "params.nic", errp);
	if (r < 0)
		return r;
	if ((r = json_get_string(nic, "network", "params.nic.network", ret_net, errp)) < 0 &&
	    r != -ENOENT)
		return r;
	if ((r = json_get_string(nic, "bridge", "params.nic.bridge", ret_br, errp)) < 0 &&
	    r != -ENOENT)
		return r;
	if ((r = json_get_string(nic, "mac", "params.nic.mac", ret_mac, errp)) < 0 &&
	    r != -ENOENT)
		return r;
	if ((r = json_get_string(nic, "model", "params.nic.model", &model, errp)) < 0 &&
	    r != -ENOENT)
		return r;
	if (model && !streq(model, "virtio"))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.nic.model: only \"virtio\" is supported");
	if (!*ret_net == !*ret_br)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.nic needs exactly one of network and bridge");
	if (*ret_net && !vm_name_valid(*ret_net))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid network name \"%.80s\"", *ret_net);
	return 0;
}

json_object *vm_hp_json(const struct hp_nic *h)
{
	json_object *o = json_object_new_object();
	char id[24];

	snprintf(id, sizeof(id), "net%u", h->idx);
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "mac", json_object_new_string(h->mac));
	json_object_object_add(o, "tap", json_object_new_string(h->tap));
	json_object_object_add(o, "bridge", json_object_new_string(h->bridge));
	if (h->network)
		json_object_object_add(o, "network", json_object_new_string(h->network));
	if (h->port >= 0) {
		char bus[16];
		snprintf(bus, sizeof(bus), "hp%d", h->port);
		json_object_object_add(o, "bus", json_object_new_string(bus));
	}
	return o;
}

int qv_m_vm_nic_add(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "nic", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	const char *network = NULL, *bridge = NULL, *mac = NULL;
	json_object *nic = NULL;
	struct qv_mac m;
	struct vm_nics *s;
	struct hp_nic *h = NULL;
	struct qv_vm *vm;
	_cleanup_close_ int fd = -1;
	char br[IFNAMSIZ], macbuf[QV_MAC_STRLEN];
	int r;

	if (check_keys(call, params, keys) < 0 || !(vm = lookup_vm(call, params, d, true)))
		return 0;
	json_object_object_get_ex(params, "nic", &nic);
	if (parse_nic(nic, &network, &bridge, &mac, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (mac && qv_mac_check_unicast(mac, "params.nic.mac", &m, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	s = vm_nics_get(vm);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < HP_SLOTS && !h; i++)
		if (!s->hp[i].used)
			h = &s->hp[i];
	if (!h)
		return qv_call_fail(call, ENOSPC, QV_REASON_CONFLICT,
				    "VM %s already has %d hot-plugged NICs", vm->name, HP_SLOTS);
	*h = (struct hp_nic){ .idx = HP_IDX_BASE + (unsigned)(h - s->hp), .port = -1 };
	if (vm_is_q35(vm) && (h->port = free_port(s)) < 0)
		return qv_call_fail(call, ENOSPC, QV_REASON_CONFLICT,
				    "VM %s: all %d hotplug ports are in use", vm->name,
				    QEMU_HOTPLUG_PORTS);
	if (mac)
		qv_mac_format(&m, macbuf);
	else
		vm_mac_from_uuid(vm->spec->uuid, h->idx, macbuf);
	snprintf(h->mac, sizeof(h->mac), "%s", macbuf);
	if (qv_nic_check_mac(d, NULL, h->mac, &err) < 0 ||
	    qv_nic_resolve_bridge(d, network, bridge, br, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	snprintf(h->bridge, sizeof(h->bridge), "%s", br);
	r = vm_tap_open(vm, h->idx, br, &fd, h->tap, &err);
	if (r < 0)
		return qv_rpc_call_error(call, &err), 0;
	/* filtered before QEMU (and the guest) can use it; closing fd removes the TAP */
	if (qv_fw_nic_add(vm, h->tap, h->mac, network, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	h->network = network ? strdup(network) : NULL;
	vm_nic_plug_async(vm, h, TAKE_FD(fd), call); /* answers the call */
	return 0;
}

/* --- removal: device_del, then poll until the guest released it ---------- */

struct unplug {
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	qemu_instance *inst;
	qv_rpc_call *call;
	unsigned idx;
	uint64_t deadline;
};

static struct hp_nic *find_hp(struct qv_vm *vm, unsigned idx)
{
	struct vm_nics *s = vm ? vm->nic_state : NULL;

	for (size_t i = 0; s && i < HP_SLOTS; i++)
		if (s->hp[i].used && s->hp[i].idx == idx)
			return &s->hp[i];
	return NULL;
}

static void unplug_finish(struct unplug *u, const struct qv_error *err)
{
	struct qv_vm *vm = qv_vm_find(u->d, u->vm);
	struct hp_nic *h = vm && vm->inst == u->inst ? find_hp(vm, u->idx) : NULL;

	if (err) {
		if (h)
			h->removing = false;
		qv_rpc_call_error(u->call, err);
	} else {
		json_object *res = vm_hp_json(h);
		json_object_object_add(res, "removed", json_object_new_boolean(true));
		qv_daemon_emit(u->d, u->vm, "nic-removed", json_object_get(res));
		qv_rpc_call_reply(u->call, res);
		free(h->network);
		*h = (struct hp_nic){ .port = -1 };
	}
	free(u);
}

static void log_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		      void *ud)
{
	if (error < 0)
		log_warning("%s, ignoring", errp && errp->set ? errp->message : strerror(-error));
}

/* The device is gone from the guest (or from QEMU): drop the netdev and the
 * TAP. Failures are logged; there is nothing left to undo. */
static void remove_backend(struct qv_vm *vm, unsigned idx, const char *tap)
{
	_cleanup_json_ json_object *a = json_object_new_object();
	struct qv_netreg *reg = vm->d->net_state;
	struct qv_error err = {};
	char id[24];

	snprintf(id, sizeof(id), "net%u", idx);
	json_object_object_add(a, "id", json_object_new_string(id));
	/* Fire and forget: the device is gone, a failure leaves only an unused
	 * netdev in QEMU. */
	if (qemu_instance_execute_async(vm->inst, "netdev_del", a, 0, log_reply, NULL, &err) < 0)
		log_warning("VM %s: netdev_del %s: %s, ignoring", vm->name, id, err.message);
	qv_error_clear(&err);
	qv_fw_nic_remove(vm, tap);
	if (reg && qv_tap_delete(reg->nl, tap, &err) < 0 && err.error != ENODEV)
		log_warning("VM %s: cannot delete TAP %s: %s, ignoring", vm->name, tap,
			    err.message);
}

static void unplug_backend(struct unplug *u, struct qv_vm *vm, struct hp_nic *h)
{
	remove_backend(vm, h->idx, h->tap);
	log_info("VM %s: NIC net%u (%s) unplugged", vm->name, h->idx, h->mac);
	unplug_finish(u, NULL);
}

static void unplug_tick(qv_source *s, void *ud);

static void unplug_probe_done(qmp_client *c, int error, json_object *ret,
			      const struct qv_error *errp, void *ud)
{
	struct unplug *u = ud;
	struct qv_vm *vm = qv_vm_find(u->d, u->vm);
	struct hp_nic *h = vm && vm->inst == u->inst ? find_hp(vm, u->idx) : NULL;
	struct qv_error err = {};

	if (!h || error == -ECANCELED) {
		qv_error_set(&err, ESRCH, QV_REASON_CONFLICT,
			     "VM %s stopped while its NIC was being removed", u->vm);
		return unplug_finish(u, &err);
	}
	if (error == -ENODEV)
		return unplug_backend(u, vm, h);
	if (error < 0)
		return unplug_finish(u, errp);
	if (qv_now_ms() >= u->deadline) {
		qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT,
			     "VM %s: the guest did not release NIC net%u within %d s (is the "
			     "guest running?)", u->vm, u->idx, UNPLUG_TIMEOUT_MS / 1000);
		return unplug_finish(u, &err);
	}
	if (qv_loop_add_timer(u->d->loop, UNPLUG_POLL_MS, unplug_tick, u, NULL) < 0) {
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "cannot arm a timer");
		unplug_finish(u, &err);
	}
}

static void unplug_tick(qv_source *s, void *ud)
{
	struct unplug *u = ud;
	struct qv_vm *vm = qv_vm_find(u->d, u->vm);
	struct qv_error err = {};
	char path[64];
	int r;

	if (!vm || vm->inst != u->inst || !find_hp(vm, u->idx)) {
		qv_error_set(&err, ESRCH, QV_REASON_CONFLICT,
			     "VM %s stopped while its NIC was being removed", u->vm);
		return unplug_finish(u, &err);
	}
	_cleanup_json_ json_object *a = json_object_new_object();
	snprintf(path, sizeof(path), "/machine/peripheral/net%u-dev", u->idx);
	json_object_object_add(a, "path", json_object_new_string(path));
	json_object_object_add(a, "property", json_object_new_string("type"));
	r = qmp_client_execute_async(qemu_instance_qmp(vm->inst), "qom-get", a, NULL, 0, 0,
				     unplug_probe_done, u);
	if (r < 0) {
		qv_error_set(&err, -r, QV_REASON_UNAVAILABLE, "VM %s: QMP: %s", u->vm,
			     strerror(-r));
		unplug_finish(u, &err);
	}
}

/* device_del answered: poll until the guest released the device. */
static void unplug_requested(qmp_client *c, int error, json_object *ret,
			     const struct qv_error *errp, void *ud)
{
	struct unplug *u = ud;

	if (error < 0)
		return unplug_finish(u, errp);
	unplug_tick(NULL, u); /* finishes the call later (or now, on error) */
}

int qv_m_vm_nic_remove(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "mac", "id", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	const char *mac = NULL, *id = NULL;
	struct vm_nics *s;
	struct hp_nic *h = NULL;
	struct qv_vm *vm;
	char dev[32];

	if (check_keys(call, params, keys) < 0 || !(vm = lookup_vm(call, params, d, true)))
		return 0;
	if ((json_get_string(params, "mac", "params.mac", &mac, &err) < 0 && err.set) ||
	    (json_get_string(params, "id", "params.id", &id, &err) < 0 && err.set))
		return qv_rpc_call_error(call, &err), 0;
	if (!mac == !id)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "give exactly one of params.mac and params.id");
	s = vm->nic_state;
	for (size_t i = 0; s && i < HP_SLOTS && !h; i++) {
		char nid[24];
		snprintf(nid, sizeof(nid), "net%u", s->hp[i].idx);
		if (s->hp[i].used && ((mac && strcasecmp(mac, s->hp[i].mac) == 0) ||
				      (id && streq(id, nid))))
			h = &s->hp[i];
	}
	if (!h) {
		for (size_t i = 0; i < vm->spec->n_nics; i++)
			if (mac && strcasecmp(mac, vm->spec->nics[i].mac) == 0)
				return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
						    "MAC %s is NIC %zu of VM %s's spec; only "
						    "hot-plugged NICs can be removed", mac, i,
						    vm->name);
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
				    "VM %s has no hot-plugged NIC %s", vm->name, mac ? mac : id);
	}
	if (h->removing || h->plugging)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "NIC net%u of VM %s is being %s", h->idx, vm->name,
				    h->plugging ? "added" : "removed");
	_cleanup_json_ json_object *a = json_object_new_object();
	struct unplug *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	*u = (struct unplug){ .d = d, .inst = vm->inst, .call = call, .idx = h->idx,
			      .deadline = qv_now_ms() + UNPLUG_TIMEOUT_MS };
	snprintf(u->vm, sizeof(u->vm), "%s", vm->name);
	snprintf(dev, sizeof(dev), "net%u-dev", h->idx);
	json_object_object_add(a, "id", json_object_new_string(dev));
	h->removing = true; /* before sending: a lost link completes at once */
	if (qemu_instance_execute_async(vm->inst, "device_del", a, 0, unplug_requested, u,
					&err) < 0) {
		h->removing = false;
		free(u);
		return qv_rpc_call_error(call, &err), 0;
	}
	return 0;
}

/* --- re-adoption after a daemon restart -------------------------------------- */

static int qom_get_string(qmp_client *q, const char *path, const char *prop, char *buf,
			  size_t size, struct qv_error *errp)
{
	_cleanup_json_ json_object *a = json_object_new_object(), *ret = NULL;
	int r;

	json_object_object_add(a, "path", json_object_new_string(path));
	json_object_object_add(a, "property", json_object_new_string(prop));
	r = qmp_client_execute(q, "qom-get", a, 0, &ret, errp);
	if (r < 0)
		return r;
	if (!json_object_is_type(ret, json_type_string))
		return qv_error_set(errp, EPROTO, QV_REASON_QEMU_ERROR, "qom-get %s %s: not a string",
				    path, prop);
	snprintf(buf, size, "%s", json_object_get_string(ret));
	return 0;
}

void vm_nics_adopt_hotplugged(struct qv_vm *vm, const struct qv_link_info *tap,
			      const struct qv_link_info *links, size_t n)
{
	struct qv_netreg *reg = vm->d->net_state;
	struct qv_error err = {};
	char path[64], mac[32], bus[128];
	struct vm_nics *s;
	struct hp_nic *h;
	char *end;
	unsigned long idx = strtoul(tap->name + 11, &end, 10);
	int port = -1, r;

	if (*end || idx < HP_IDX_BASE || idx >= HP_IDX_BASE + HP_SLOTS || !vm->inst ||
	    !(s = vm_nics_get(vm)))
		return;
	h = &s->hp[idx - HP_IDX_BASE];
	if (h->used)
		return;
	snprintf(path, sizeof(path), "/machine/peripheral/net%lu-dev", idx);
	r = qom_get_string(qemu_instance_qmp(vm->inst), path, "mac", mac, sizeof(mac), &err);
	if (r == -ENODEV) {
		/* QEMU's DeviceNotFound: the daemon died between the guest's
		 * release and netdev_del. Finish the removal. */
		remove_backend(vm, (unsigned)idx, tap->name);
		log_info("VM %s: finished removing NIC net%lu (TAP %s)", vm->name, idx, tap->name);
		return;
	}
	if (r < 0) {
		log_warning("VM %s: cannot re-adopt hot-plugged NIC net%lu (TAP %s): %s; it keeps "
			    "working but cannot be listed or removed", vm->name, idx, tap->name,
			    err.message);
		return;
	}
	if (qom_get_string(qemu_instance_qmp(vm->inst), path, "parent_bus", bus, sizeof(bus),
			   &err) == 0)
		(void)sscanf(bus, "/machine/peripheral/hp%d/", &port);
	if (port < 0 && vm_is_q35(vm)) {
		/* Its hotplug port is unknown: adopting it would let nic-add
		 * hand the same port out again. */
		log_warning("VM %s: cannot tell the hotplug port of NIC net%lu (%s); not "
			    "re-adopting it", vm->name, idx, err.set ? err.message : bus);
		return;
	}
	*h = (struct hp_nic){ .used = true, .idx = (unsigned)idx, .port = port };
	snprintf(h->tap, sizeof(h->tap), "%s", tap->name);
	snprintf(h->mac, sizeof(h->mac), "%s", mac);
	for (size_t i = 0; i < n; i++)
		if (tap->master && links[i].ifindex == tap->master)
			snprintf(h->bridge, sizeof(h->bridge), "%s", links[i].name);
	for (struct qv_network *net = reg ? reg->nets : NULL; net && !h->network; net = net->next)
		if (h->bridge[0] && streq(net->bridge, h->bridge))
			h->network = strdup(net->name);
	log_info("VM %s: re-adopted hot-plugged NIC net%u (%s, TAP %s on %s)", vm->name, h->idx,
		 h->mac, h->tap, h->bridge[0] ? h->bridge : "no bridge");
}

int qv_m_vm_nic_list(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_daemon *d = ud;
	struct qv_vm *vm;
	json_object *arr, *hp, *res;

	if (check_keys(call, params, keys) < 0 || !(vm = lookup_vm(call, params, d, false)))
		return 0;
	arr = json_object_new_array();
	for (size_t i = 0; i < vm->spec->n_nics; i++) {
		const struct vm_nic *n = &vm->spec->nics[i];
		json_object *o = json_object_new_object();
		char id[16], tap[IFNAMSIZ] = "", br[IFNAMSIZ] = "";
		snprintf(id, sizeof(id), "net%zu", i);
		qv_vm_tap_name(vm, (unsigned)i, tap);
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "mac", json_object_new_string(n->mac));
		json_object_object_add(o, "tap", json_object_new_string(tap));
		if (n->network)
			json_object_object_add(o, "network", json_object_new_string(n->network));
		if (qv_nic_resolve_bridge(d, n->network, n->bridge, br, NULL) == 0 || n->bridge)
			json_object_object_add(o, "bridge",
					       json_object_new_string(br[0] ? br : n->bridge));
		json_object_object_add(o, "hotplugged", json_object_new_boolean(false));
		json_object_array_add(arr, o);
	}
	hp = qv_vm_nics_json(vm);
	for (size_t i = 0; i < json_object_array_length(hp); i++)
		json_object_array_add(arr, json_object_get(json_object_array_get_idx(hp, i)));
	json_object_put(hp);
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "nics", arr);
	return qv_rpc_call_reply(call, res), 0;
}
