/* SPDX-License-Identifier: MIT */
/* Guest agent RPCs: vm.agent-info (OS and network interfaces with their IP
 * addresses), vm.agent-fsfreeze (freeze/thaw/status). The agent is hostile
 * input: answers are re-shaped into bounded JSON, and an agent that sends
 * garbage or floods is cut off (event "agent-cut-off") until QEMU restarts. */
#include "common/json.h"
#include "common/log.h"
#include "daemon/interop.h"
#include "daemon/vm.h"
#include "qemu/argv.h"
#include "qemu/qga.h"

#define AGENT_MAX_IFACES 64
#define AGENT_MAX_ADDRS 64
#define AGENT_STR_MAX 128

/* Cut-off agents, by VM name and the QEMU pid they were cut off in. */
struct cutoff {
	struct cutoff *next;
	char name[VM_NAME_MAX + 1];
	pid_t pid;
	char why[256];
};
static struct cutoff *cutoffs;

static pid_t vm_pid(struct qv_vm *vm)
{
	return vm->inst ? qemu_instance_pid(vm->inst) : 0;
}

static const char *cut_off_why(struct qv_vm *vm)
{
	for (struct cutoff *c = cutoffs; c; c = c->next)
		if (streq(c->name, vm->name) && c->pid == vm_pid(vm))
			return c->why;
	return NULL;
}

static void cut_off(struct qv_daemon *d, const char *name, pid_t pid, const char *why)
{
	struct cutoff *c = NULL;

	for (struct cutoff *x = cutoffs; x; x = x->next)
		if (streq(x->name, name))
			c = x;
	if (!c && !(c = calloc(1, sizeof(*c))))
		return;
	if (!c->name[0]) {
		c->next = cutoffs;
		cutoffs = c;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->pid = pid;
	snprintf(c->why, sizeof(c->why), "%s", why);
	log_warning("VM %s: guest agent cut off: %s", name, why);
	json_object *data = json_object_new_object();
	json_object_object_add(data, "reason", json_object_new_string(why));
	qv_daemon_emit(d, name, "agent-cut-off", data);
}

/* One RPC's agent conversation: a list of commands, run in order. */
struct agent_op {
	qv_rpc_call *call;
	struct qv_daemon *d;
	char name[VM_NAME_MAX + 1];
	pid_t pid;
	char sock[256];
	const char *const *cmds;
	size_t step;
	json_object *replies; /* the "return" of each command, in order */
	void (*reply)(struct agent_op *op);
};

static void op_free(struct agent_op *op)
{
	json_object_put(op->replies);
	free(op);
}

static void op_next(struct agent_op *op);

static void on_agent_done(json_object *result, const struct qv_error *err, bool misbehaved, void *ud)
{
	struct agent_op *op = ud;

	if (err) {
		if (misbehaved)
			cut_off(op->d, op->name, op->pid, err->message);
		struct qv_error e = {};
		qv_error_set(&e, err->error, misbehaved ? QV_REASON_UNAVAILABLE : err->reason,
			     "VM %s: %s%s", op->name, misbehaved ? "guest agent cut off: " : "",
			     err->message);
		qv_rpc_call_error(op->call, &e);
		return op_free(op);
	}
	json_object_array_add(op->replies, result ? json_object_get(result) : NULL);
	op->step++;
	op_next(op);
}

static void op_next(struct agent_op *op)
{
	qga_call *qc;
	int r;

	if (!op->cmds[op->step]) {
		op->reply(op);
		return op_free(op);
	}
	r = qga_call_start(op->d->loop, op->sock, op->cmds[op->step], NULL, false, 0, on_agent_done,
			   op, &qc);
	if (r < 0) {
		qv_call_fail(op->call, -r, QV_REASON_UNAVAILABLE,
			     "VM %s: cannot reach the guest agent channel: %s", op->name, strerror(-r));
		op_free(op);
	}
}

/* Validate and start; answers the call itself on failure. */
static int op_start(qv_rpc_call *call, struct qv_daemon *d, json_object *params,
		    const char *const *cmds, void (*reply)(struct agent_op *))
{
	const char *name, *why;
	struct qv_vm *vm;

	if (qv_param_string(call, params, "name", &name) < 0)
		return 0;
	if (!vm_name_valid(name) || !(vm = qv_vm_find(d, name)))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.80s is not defined", name);
	if (!vm->spec->guest_agent)
		return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "VM %s has no guest agent channel (spec.guest_agent)", name);
	if (!vm->inst || vm->state != QV_VM_RUNNING || !vm->run_dir)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT, "VM %s is %s, not running", name,
				    qv_vm_state_to_string(vm->state));
	if ((why = cut_off_why(vm)))
		return qv_call_fail(call, EPROTO, QV_REASON_UNAVAILABLE,
				    "VM %s: guest agent cut off until QEMU restarts: %s", name, why);
	struct agent_op *op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	*op = (struct agent_op){ .call = call, .d = d, .pid = vm_pid(vm), .cmds = cmds,
				 .replies = json_object_new_array(), .reply = reply };
	snprintf(op->name, sizeof(op->name), "%s", name);
	snprintf(op->sock, sizeof(op->sock), "%s/" QEMU_QGA_SOCK, vm->run_dir);
	op_next(op);
	return 0;
}

static json_object *bounded_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	char buf[AGENT_STR_MAX + 1];
	snprintf(buf, sizeof(buf), "%s", json_object_get_string(v));
	return json_object_new_string(buf);
}

/* guest-network-get-interfaces -> [{name, mac, ips: ["10.0.0.2/24", ...]}] */
static json_object *shape_interfaces(json_object *ifs)
{
	json_object *out = json_object_new_array();

	if (!json_object_is_type(ifs, json_type_array))
		return out;
	for (size_t i = 0; i < json_object_array_length(ifs) && i < AGENT_MAX_IFACES; i++) {
		json_object *in = json_object_array_get_idx(ifs, i), *addrs, *ips;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", bounded_str(in, "name"));
		json_object_object_add(o, "mac", bounded_str(in, "hardware-address"));
		ips = json_object_new_array();
		if (json_object_is_type(in, json_type_object) &&
		    json_object_object_get_ex(in, "ip-addresses", &addrs) &&
		    json_object_is_type(addrs, json_type_array))
			for (size_t k = 0; k < json_object_array_length(addrs) && k < AGENT_MAX_ADDRS; k++) {
				json_object *a = json_object_array_get_idx(addrs, k), *ip, *pf;
				if (!(ip = bounded_str(a, "ip-address")))
					continue;
				char buf[AGENT_STR_MAX + 8];
				if (json_object_object_get_ex(a, "prefix", &pf) &&
				    json_object_is_type(pf, json_type_int))
					snprintf(buf, sizeof(buf), "%s/%d", json_object_get_string(ip),
						 (int)json_object_get_int64(pf) & 0xff);
				else
					snprintf(buf, sizeof(buf), "%s", json_object_get_string(ip));
				json_object_put(ip);
				json_object_array_add(ips, json_object_new_string(buf));
			}
		json_object_object_add(o, "ips", ips);
		json_object_array_add(out, o);
	}
	return out;
}

static void reply_info(struct agent_op *op)
{
	json_object *res = json_object_new_object(), *osinfo = json_object_array_get_idx(op->replies, 0);
	json_object *os = json_object_new_object();

	static const char *const keys[] = { "id", "name", "pretty-name", "version", "kernel-release",
					    "machine" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_object *v = bounded_str(osinfo, keys[i]);
		if (v)
			json_object_object_add(os, keys[i], v);
	}
	json_object_object_add(res, "name", json_object_new_string(op->name));
	json_object_object_add(res, "os", os);
	json_object_object_add(res, "interfaces",
			       shape_interfaces(json_object_array_get_idx(op->replies, 1)));
	qv_rpc_call_reply(op->call, res);
}

static int m_agent_info(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const cmds[] = { "guest-get-osinfo", "guest-network-get-interfaces", NULL };
	static const char *const keys[] = { "name", NULL };
	struct qv_error err = {};

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	return op_start(call, ud, params, cmds, reply_info);
}

static void reply_fs(struct agent_op *op)
{
	json_object *res = json_object_new_object(), *r = json_object_array_get_idx(op->replies, 0);

	json_object_object_add(res, "name", json_object_new_string(op->name));
	if (json_object_is_type(r, json_type_int))
		json_object_object_add(res, "filesystems", json_object_new_int64(json_object_get_int64(r)));
	else if (json_object_is_type(r, json_type_string))
		json_object_object_add(res, "status",
				       json_object_new_string(streq(json_object_get_string(r), "frozen") ?
							      "frozen" : "thawed"));
	qv_rpc_call_reply(op->call, res);
}

/* params {name, action: freeze|thaw|status} */
static int m_agent_fsfreeze(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const freeze[] = { "guest-fsfreeze-freeze", NULL };
	static const char *const thaw[] = { "guest-fsfreeze-thaw", NULL };
	static const char *const status[] = { "guest-fsfreeze-status", NULL };
	static const char *const keys[] = { "name", "action", NULL };
	struct qv_error err = {};
	const char *action;

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_param_string(call, params, "action", &action) < 0)
		return 0;
	const char *const *cmds = streq(action, "freeze") ? freeze : streq(action, "thaw") ? thaw :
				  streq(action, "status") ? status : NULL;
	if (!cmds)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.action: freeze, thaw or status");
	return op_start(call, ud, params, cmds, reply_fs);
}

const struct qv_rpc_method qv_agent_methods[] = {
	{ "vm.agent-info", m_agent_info },
	{ "vm.agent-fsfreeze", m_agent_fsfreeze },
};
const size_t qv_agent_methods_count = ARRAY_SIZE(qv_agent_methods);

/* --- stop through the agent (daemon/vm.c calls this before ACPI) ---------- */

#define AGENT_STOP_GRACE_MAX_MS 10000
#define AGENT_STOP_POLL_MS 100

struct agent_stop {
	struct qv_vm *vm;
	pid_t pid;
	uint64_t deadline;
	qv_vm_agent_stop_fn fn;
	void *userdata;
	qv_source *timer;
};

static void stop_finish(struct agent_stop *s, bool exited)
{
	qv_source_remove(s->timer);
	s->fn(s->vm, exited, s->userdata);
	free(s);
}

static void stop_poll(qv_source *src, void *ud)
{
	struct agent_stop *s = ud;

	s->timer = NULL;
	if (!s->vm->inst || vm_pid(s->vm) != s->pid)
		return stop_finish(s, true);
	if (qv_now_ms() >= s->deadline)
		return stop_finish(s, false);
	if (qv_loop_add_timer(s->vm->d->loop, AGENT_STOP_POLL_MS, stop_poll, s, &s->timer) < 0)
		stop_finish(s, false);
}

static void on_shutdown_sent(json_object *result, const struct qv_error *err, bool misbehaved,
			     void *ud)
{
	struct agent_stop *s = ud;

	if (err) {
		if (misbehaved && s->vm->inst && vm_pid(s->vm) == s->pid)
			cut_off(s->vm->d, s->vm->name, s->pid, err->message);
		log_info("VM %s: guest agent shutdown failed (%s), falling back to ACPI", s->vm->name,
			 err->message);
		return stop_finish(s, !s->vm->inst);
	}
	log_info("VM %s: guest-shutdown sent through the guest agent", s->vm->name);
	stop_poll(NULL, s);
}

bool qv_vm_agent_stop(struct qv_vm *vm, int timeout_ms, qv_vm_agent_stop_fn fn, void *userdata)
{
	char sock[256];
	qga_call *qc;

	if (!vm->spec->guest_agent || !vm->inst || !vm->run_dir || vm->state != QV_VM_RUNNING ||
	    cut_off_why(vm))
		return false;
	struct agent_stop *s = calloc(1, sizeof(*s));
	if (!s)
		return false;
	int grace = timeout_ms > 0 ? timeout_ms / 2 : AGENT_STOP_GRACE_MAX_MS;
	*s = (struct agent_stop){ .vm = vm, .pid = vm_pid(vm), .fn = fn, .userdata = userdata,
				  .deadline = qv_now_ms() + (uint64_t)(grace < AGENT_STOP_GRACE_MAX_MS ?
								       grace : AGENT_STOP_GRACE_MAX_MS) };
	snprintf(sock, sizeof(sock), "%s/" QEMU_QGA_SOCK, vm->run_dir);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "mode", json_object_new_string("powerdown"));
	if (qga_call_start(vm->d->loop, sock, "guest-shutdown", args, true, 3000, on_shutdown_sent, s,
			   &qc) < 0) {
		free(s);
		return false;
	}
	return true;
}
