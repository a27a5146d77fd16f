/* SPDX-License-Identifier: MIT */
/* The memory balloon (spec.balloon): vm.balloon sets the target (QMP
 * `balloon`) or, without one, reads the state (query-balloon and the
 * device's guest-stats). The size the guest has actually left comes from
 * BALLOON_CHANGE events, so vm.info shows it without asking QEMU. The guest
 * is hostile: its statistics are re-shaped into bounded numbers. */
#include <inttypes.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/vm.h"

struct balloon_op {
	struct qv_vm *vm;
	qv_rpc_call *call;
	uint64_t target; /* 0: a query */
};

static int balloon_usable(struct qv_vm *vm, struct qv_error *errp)
{
	if (!vm->spec->balloon.enabled)
		return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "VM %s has no memory balloon device (spec.balloon); define it "
				    "with \"balloon\": true and restart it", vm->name);
	if (!vm->inst || (vm->state != QV_VM_RUNNING && vm->state != QV_VM_PAUSED))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "Cannot balloon VM %s: it is %s", vm->name,
				    qv_vm_state_to_string(vm->state));
	return 0;
}

/* QEMU reports the size the guest has; only a size within the guest's
 * memory is believed (the guest driver writes the page count QEMU uses). */
static bool plausible_actual(const struct qv_vm *vm, json_object *a)
{
	return a && json_object_is_type(a, json_type_int) && json_object_get_int64(a) > 0 &&
	       (uint64_t)json_object_get_int64(a) <= vm->spec->memory_mib << 20;
}

json_object *qv_vm_balloon_json(const struct qv_vm *vm)
{
	json_object *o;

	if (!vm->spec->balloon.enabled || !vm->inst)
		return NULL;
	o = json_object_new_object();
	/* 0: unknown (QMP cannot read a target back, e.g. after a daemon restart) */
	json_object_object_add(o, "target", vm->balloon_target ?
				   json_object_new_int64((int64_t)vm->balloon_target) : NULL);
	json_object_object_add(o, "actual", vm->balloon_actual ?
				   json_object_new_int64((int64_t)vm->balloon_actual) : NULL);
	json_object_object_add(o, "memory",
			       json_object_new_int64((int64_t)(vm->spec->memory_mib << 20)));
	return o;
}

void qv_vm_balloon_event(struct qv_vm *vm, json_object *event)
{
	json_object *data, *a;

	if (json_object_object_get_ex(event, "data", &data) &&
	    json_object_object_get_ex(data, "actual", &a) && plausible_actual(vm, a))
		vm->balloon_actual = (uint64_t)json_object_get_int64(a);
}

/* The guest's statistics: only known keys, only non-negative integers
 * (QEMU reports -1 for "not provided"). */
static json_object *guest_stats(json_object *ret)
{
	static const char *const keys[] = { "stat-swap-in", "stat-swap-out", "stat-major-faults",
					    "stat-minor-faults", "stat-free-memory",
					    "stat-total-memory", "stat-available-memory",
					    "stat-disk-caches", "stat-htlb-pgalloc",
					    "stat-htlb-pgfail", NULL };
	json_object *stats, *v, *out;

	if (!ret || !json_object_object_get_ex(ret, "stats", &stats) ||
	    !json_object_is_type(stats, json_type_object))
		return NULL;
	out = json_object_new_object();
	for (size_t i = 0; keys[i]; i++) {
		char k[32];
		/* "stat-free-memory" -> "free_memory" */
		snprintf(k, sizeof(k), "%s", keys[i] + 5);
		for (char *p = k; *p; p++)
			*p = *p == '-' ? '_' : *p;
		if (json_object_object_get_ex(stats, keys[i], &v) &&
		    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
			json_object_object_add(out, k, json_object_new_int64(json_object_get_int64(v)));
	}
	if (json_object_object_get_ex(ret, "last-update", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 0)
		json_object_object_add(out, "last_update", json_object_new_int64(json_object_get_int64(v)));
	return out;
}

static void op_finish(struct balloon_op *op, json_object *stats)
{
	json_object *res = qv_vm_balloon_json(op->vm);

	if (!res)
		res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(op->vm->name));
	if (stats)
		json_object_object_add(res, "guest_stats", stats);
	qv_rpc_call_reply(op->call, res);
	free(op);
}

static bool op_failed(struct balloon_op *op, int error, const struct qv_error *errp,
		      const char *what)
{
	struct qv_error err = {};

	if (error >= 0)
		return false;
	qv_error_set(&err, error, errp && errp->set ? errp->reason : NULL, "Cannot %s VM %s: %s",
		     what, op->vm->name, errp && errp->set ? errp->message : strerror(-error));
	log_warning("%s", err.message);
	qv_rpc_call_error(op->call, &err);
	free(op);
	return true;
}

static void on_stats(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *ud)
{
	struct balloon_op *op = ud;

	/* No statistics yet (driver not loaded, polling off) is not an error. */
	op_finish(op, error < 0 ? NULL : guest_stats(ret));
}

static void on_query(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *ud)
{
	struct balloon_op *op = ud;
	json_object *args, *a;

	if (op_failed(op, error, errp, "query the balloon of"))
		return;
	if (ret && json_object_object_get_ex(ret, "actual", &a) && plausible_actual(op->vm, a))
		op->vm->balloon_actual = (uint64_t)json_object_get_int64(a);
	if (!op->vm->spec->balloon.stats_interval_s || !op->vm->inst)
		return op_finish(op, NULL);
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(QEMU_BALLOON_QOM));
	json_object_object_add(args, "property", json_object_new_string("guest-stats"));
	if (qemu_instance_execute_async(op->vm->inst, "qom-get", args, QV_VM_QMP_TIMEOUT_MS,
					on_stats, op, NULL) < 0)
		op_finish(op, NULL);
	json_object_put(args);
}

static void on_set(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		   void *ud)
{
	struct balloon_op *op = ud;

	if (op_failed(op, error, errp, "balloon"))
		return;
	op->vm->balloon_target = op->target;
	log_info("VM %s: balloon target %" PRIu64 " MiB", op->vm->name, op->target >> 20);
	op_finish(op, NULL);
}

int qv_vm_balloon(struct qv_vm *vm, uint64_t target, qv_rpc_call *call, struct qv_error *errp)
{
	uint64_t mem = vm->spec->memory_mib << 20;
	struct balloon_op *op;
	json_object *args = NULL;
	int r;

	if ((r = balloon_usable(vm, errp)) < 0)
		return r;
	if (target && (target < (VM_MEMORY_MIN_MIB << 20) || target > mem))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.target: %" PRIu64 " bytes is outside %llu MiB..%" PRIu64
				    " MiB (the guest memory)", target, VM_MEMORY_MIN_MIB,
				    vm->spec->memory_mib);
	if (!(op = calloc(1, sizeof(*op))))
		return -ENOMEM;
	*op = (struct balloon_op){ .vm = vm, .call = call, .target = target };
	if (target) {
		args = json_object_new_object();
		json_object_object_add(args, "value", json_object_new_int64((int64_t)target));
	}
	r = qemu_instance_execute_async(vm->inst, target ? "balloon" : "query-balloon", args,
					QV_VM_QMP_TIMEOUT_MS, target ? on_set : on_query, op, errp);
	json_object_put(args);
	if (r < 0) {
		free(op);
		qv_error_prefix(errp, "Cannot balloon VM %s", vm->name);
	}
	return r;
}

static void on_start_cmd(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			 void *ud)
{
	if (error < 0)
		log_warning("VM %s: balloon setup failed, ignoring: %s", (const char *)ud,
			    errp && errp->set ? errp->message : strerror(-error));
	free(ud);
}

static void start_cmd(struct qv_vm *vm, const char *command, json_object *args)
{
	char *name = strdup(vm->name);

	if (name && qemu_instance_execute_async(vm->inst, command, args, QV_VM_QMP_TIMEOUT_MS,
						on_start_cmd, name, NULL) < 0)
		free(name);
	json_object_put(args);
}

void qv_vm_balloon_started(struct qv_vm *vm, bool incoming)
{
	const struct vm_balloon *b = &vm->spec->balloon;
	json_object *args;

	vm->balloon_target = incoming ? 0 : (b->target ? b->target : vm->spec->memory_mib << 20);
	vm->balloon_actual = 0;
	if (!b->enabled || !vm->inst)
		return;
	if (b->stats_interval_s) {
		args = json_object_new_object();
		json_object_object_add(args, "path", json_object_new_string(QEMU_BALLOON_QOM));
		json_object_object_add(args, "property",
				       json_object_new_string("guest-stats-polling-interval"));
		json_object_object_add(args, "value", json_object_new_int64(b->stats_interval_s));
		start_cmd(vm, "qom-set", args);
	}
	/* An incoming QEMU gets the target with the device state. */
	if (b->target && !incoming) {
		args = json_object_new_object();
		json_object_object_add(args, "value", json_object_new_int64((int64_t)b->target));
		start_cmd(vm, "balloon", args);
	}
}
