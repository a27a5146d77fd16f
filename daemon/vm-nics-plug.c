/* SPDX-License-Identifier: MIT */
/* NIC hotplug on the loop: getfd, netdev_add, device_add, each with its QMP
 * deadline; a failed step undoes the earlier ones and answers the call. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/fw.h"
#include "daemon/vm-nics-internal.h"

enum plug_step { STEP_GETFD, STEP_NETDEV, STEP_DEVICE };

struct plug {
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	qemu_instance *inst;
	qv_rpc_call *call;
	unsigned idx;
	int fd;
	enum plug_step step;
};

static void plug_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		       void *ud);

/* The slot of a plug still in flight, or NULL when its VM or QEMU is gone. */
static struct hp_nic *plug_slot(struct plug *p, struct qv_vm **ret_vm)
{
	struct qv_vm *vm = qv_vm_find(p->d, p->vm);
	struct vm_nics *s = vm && vm->inst == p->inst ? vm->nic_state : NULL;

	*ret_vm = vm;
	for (size_t i = 0; s && i < HP_SLOTS; i++)
		if (s->hp[i].used && s->hp[i].plugging && s->hp[i].idx == p->idx)
			return &s->hp[i];
	return NULL;
}

static void ignore_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			 void *ud)
{
	if (error < 0)
		log_debug("hotplug rollback: %s, ignoring", errp ? errp->message : strerror(-error));
}

/* Undo the steps done before `failed` (best effort, asynchronous). */
static void plug_rollback(struct plug *p, struct qv_vm *vm)
{
	_cleanup_json_ json_object *a = json_object_new_object();
	char id[24];

	if (!vm || !vm->inst || p->step == STEP_GETFD)
		return;
	snprintf(id, sizeof(id), "net%u", p->idx);
	json_object_object_add(a, p->step == STEP_NETDEV ? "fdname" : "id",
			       json_object_new_string(id));
	(void)qemu_instance_execute_async(vm->inst, p->step == STEP_NETDEV ? "closefd"
									  : "netdev_del",
					  a, 0, ignore_reply, NULL, NULL);
}

static void plug_finish(struct plug *p, const struct qv_error *errp)
{
	struct qv_vm *vm;
	struct hp_nic *h = plug_slot(p, &vm);

	if (errp || !h) {
		struct qv_error err = {};
		if (!errp)
			qv_error_set(&err, ESRCH, QV_REASON_CONFLICT,
				     "VM %s stopped while its NIC was being added", p->vm);
		else
			err = *errp;
		if (h) {
			plug_rollback(p, vm);
			qv_fw_nic_remove(vm, h->tap);
			free(h->network);
			*h = (struct hp_nic){ .port = -1 };
		}
		qv_error_prefix(&err, "VM %s: NIC hotplug failed", p->vm);
		qv_rpc_call_error(p->call, &err); /* closing fd removes the TAP */
	} else {
		h->plugging = false;
		log_info("VM %s: hot-plugged NIC net%u (%s, TAP %s on %s)", vm->name, h->idx,
			 h->mac, h->tap, h->bridge);
		qv_daemon_emit(p->d, vm->name, "nic-added", vm_hp_json(h));
		qv_rpc_call_reply(p->call, vm_hp_json(h));
	}
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

static json_object *step_args(const struct hp_nic *h, enum plug_step step, bool q35)
{
	json_object *a = json_object_new_object();
	char id[24], dev[32], bus[16];

	snprintf(id, sizeof(id), "net%u", h->idx);
	snprintf(dev, sizeof(dev), "net%u-dev", h->idx);
	switch (step) {
	case STEP_GETFD:
		json_object_object_add(a, "fdname", json_object_new_string(id));
		break;
	case STEP_NETDEV:
		json_object_object_add(a, "type", json_object_new_string("tap"));
		json_object_object_add(a, "id", json_object_new_string(id));
		json_object_object_add(a, "fd", json_object_new_string(id));
		json_object_object_add(a, "vhost", json_object_new_boolean(false));
		break;
	case STEP_DEVICE:
		json_object_object_add(a, "driver", json_object_new_string("virtio-net-pci"));
		json_object_object_add(a, "id", json_object_new_string(dev));
		json_object_object_add(a, "netdev", json_object_new_string(id));
		json_object_object_add(a, "mac", json_object_new_string(h->mac));
		if (q35) {
			snprintf(bus, sizeof(bus), "hp%d", h->port);
			json_object_object_add(a, "bus", json_object_new_string(bus));
		}
		break;
	}
	return a;
}

static void plug_send(struct plug *p)
{
	static const char *const commands[] = { "getfd", "netdev_add", "device_add" };
	struct qv_error err = {};
	struct qv_vm *vm;
	struct hp_nic *h = plug_slot(p, &vm);
	qmp_client *q = h ? qemu_instance_qmp(vm->inst) : NULL;
	_cleanup_json_ json_object *a = NULL;
	int r;

	if (!h || !qmp_client_is_open(q)) {
		plug_finish(p, NULL);
		return;
	}
	a = step_args(h, p->step, vm_is_q35(vm));
	r = qmp_client_execute_async(q, commands[p->step], a, p->step == STEP_GETFD ? &p->fd : NULL,
				     p->step == STEP_GETFD ? 1 : 0, 0, plug_reply, p);
	if (r < 0) {
		qv_error_set(&err, -r, QV_REASON_UNAVAILABLE, "%s: cannot send QMP command: %s",
			     commands[p->step], strerror(-r));
		plug_finish(p, &err);
	}
}

static void plug_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		       void *ud)
{
	struct plug *p = ud;

	if (error < 0) {
		plug_finish(p, errp);
		return;
	}
	if (p->step == STEP_DEVICE) {
		plug_finish(p, NULL);
		return;
	}
	p->step++;
	plug_send(p);
}

void vm_nic_plug_async(struct qv_vm *vm, struct hp_nic *h, int fd, qv_rpc_call *call)
{
	struct plug *p = calloc(1, sizeof(*p));

	if (!p) {
		close(fd);
		free(h->network);
		*h = (struct hp_nic){ .port = -1 };
		qv_call_fail(call, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		return;
	}
	*p = (struct plug){ .d = vm->d, .inst = vm->inst, .call = call, .idx = h->idx, .fd = fd,
			    .step = STEP_GETFD };
	snprintf(p->vm, sizeof(p->vm), "%s", vm->name);
	h->used = true;
	h->plugging = true;
	plug_send(p);
}
