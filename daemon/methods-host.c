/* SPDX-License-Identifier: MIT */
/* host.* and events.* RPC methods. */
#include <fcntl.h>
#include <stdarg.h>
#include <liburing.h>
#include <sys/utsname.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate.h"
#include "daemon/vm.h"
#include "sched/cgroup.h"

#define QVISOR_VERSION "0.1.0"

static int m_subscribe(qv_rpc_call *call, json_object *params, void *ud)
{
	qv_rpc_client_subscribe(qv_rpc_call_client(call), true);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "subscribed", json_object_new_boolean(true));
	return qv_rpc_call_reply(call, res), 0;
}

static int m_unsubscribe(qv_rpc_call *call, json_object *params, void *ud)
{
	qv_rpc_client_subscribe(qv_rpc_call_client(call), false);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "subscribed", json_object_new_boolean(false));
	return qv_rpc_call_reply(call, res), 0;
}

/* Controllers available in the cgroup v2 tree, and the layout
 * (sched/cgroup detection: mountinfo, not guessed paths). */
static void cgroup_layout(char *ret_layout, size_t lsize, char *ret_ctrls, size_t csize)
{
	struct cg_host h;

	cg_host_detect(NULL, NULL, &h);
	snprintf(ret_layout, lsize, "%s", cg_layout_to_string(h.layout));
	snprintf(ret_ctrls, csize, "%s", h.v2_names);
}

static json_object *accel_json(const struct qemu_accel_result *a)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "kvm_present", json_object_new_boolean(a->kvm_present));
	json_object_object_add(o, "kvm_usable", json_object_new_boolean(a->kvm_usable));
	json_object_object_add(o, "chosen", json_object_new_string(vm_accel_to_string(a->chosen)));
	json_object_object_add(o, "reason", json_object_new_string(a->reason));
	json_object_object_add(o, "cached", json_object_new_boolean(a->from_cache));
	return o;
}

static int m_host_info(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_daemon *d = ud;
	struct utsname u;
	char layout[32], ctrls[256];
	int defined = 0, running = 0;
	json_object *res = json_object_new_object();

	uname(&u);
	cgroup_layout(layout, sizeof(layout), ctrls, sizeof(ctrls));
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next) {
		defined++;
		running += vm->inst != NULL;
	}
	json_object_object_add(res, "hostname", json_object_new_string(u.nodename));
	json_object_object_add(res, "kernel", json_object_new_string(u.release));
	json_object_object_add(res, "version", json_object_new_string(QVISOR_VERSION));
	json_object_object_add(res, "pid", json_object_new_int(getpid()));
	json_object_object_add(res, "started_at", json_object_new_int64(d->started_at));
	json_object_object_add(res, "state_dir", json_object_new_string(d->cfg.state_dir));
	json_object_object_add(res, "run_dir", json_object_new_string(d->cfg.run_dir));
	json_object_object_add(res, "socket", json_object_new_string(d->cfg.socket_path));
	json_object_object_add(res, "accel", accel_json(&d->accel));
	json_object *cg = json_object_new_object();
	json_object_object_add(cg, "layout", json_object_new_string(layout));
	json_object_object_add(cg, "controllers", json_object_new_string(ctrls));
	json_object_object_add(res, "cgroup", cg);
	json_object_object_add(res, "vms_defined", json_object_new_int(defined));
	json_object_object_add(res, "vms_running", json_object_new_int(running));
	json_object_object_add(res, "tls", qv_daemon_tls_json(d));
	/* Re-attaches and migration recoveries after a restart all ended. */
	json_object_object_add(res, "ready", json_object_new_boolean(
					       !d->n_attaching && !d->mig_load_deferred &&
					       !qv_mig_start_recovering()));
	return qv_rpc_call_reply(call, res), 0;
}

static void add_check(json_object *arr, const char *name, const char *status, const char *fmt,
		      ...) _printf_(4, 5);
static void add_check(json_object *arr, const char *name, const char *status, const char *fmt,
		      ...)
{
	char detail[512];
	va_list ap;
	json_object *o = json_object_new_object();

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	json_object_array_add(arr, o);
}

static int m_host_check(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_daemon *d = ud;
	json_object *arr = json_object_new_array(), *res = json_object_new_object();
	struct io_uring ring;

	if (!d->accel.kvm_present)
		add_check(arr, "kvm", "warn", "%s", d->accel.reason);
	else if (!d->accel.kvm_usable)
		add_check(arr, "kvm", "warn", "%s", d->accel.reason);
	else
		add_check(arr, "kvm", "ok", "%s", d->accel.reason);
	add_check(arr, "accel", "ok", "accel auto resolves to %s",
		  vm_accel_to_string(d->accel.chosen));

	struct cg_host h;
	char desc[512];
	cg_host_detect(NULL, NULL, &h);
	bool full = (h.v2_controllers & (CG_CPU | CG_MEMORY | CG_PIDS)) ==
		    (CG_CPU | CG_MEMORY | CG_PIDS);
	add_check(arr, "cgroup", full ? "ok" : "warn", "%s%s",
		  cg_host_describe(&h, desc, sizeof(desc)),
		  full ? "" : "; VMs that request limits will be refused");

	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	add_check(arr, "tun", fd >= 0 ? "ok" : "fail", "/dev/net/tun %s",
		  fd >= 0 ? "opens" : strerror(errno));
	if (fd >= 0)
		close(fd);

	int r = io_uring_queue_init(4, &ring, 0);
	add_check(arr, "io_uring", r >= 0 ? "ok" : "warn", "%s",
		  r >= 0 ? "io_uring available" : strerror(-r));
	if (r >= 0)
		io_uring_queue_exit(&ring);

	const char *qemu = d->cfg.qemu_binary ? d->cfg.qemu_binary : "qemu-system-x86_64";
	bool qemu_ok = false;
	if (strchr(qemu, '/'))
		qemu_ok = access(qemu, X_OK) == 0;
	else {
		const char *path = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";
		_cleanup_free_ char *dup = strdup(path);
		for (char *s = dup ? strtok(dup, ":") : NULL; s && !qemu_ok; s = strtok(NULL, ":")) {
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", s, qemu);
			qemu_ok = access(p, X_OK) == 0;
		}
	}
	add_check(arr, "qemu", qemu_ok ? "ok" : "fail", "%s %s", qemu,
		  qemu_ok ? "found" : "not found");
	bool dnsmasq = access("/usr/sbin/dnsmasq", X_OK) == 0;
	add_check(arr, "dnsmasq", dnsmasq ? "ok" : "warn", "/usr/sbin/dnsmasq %s",
		  dnsmasq ? "found" : "missing: networks cannot serve DHCP");

	struct qv_error err = {};
	r = qv_state_check_integrity(d->state, &err);
	add_check(arr, "state", r >= 0 ? "ok" : "fail", "%s",
		  r >= 0 ? "database integrity ok" : err.message);
	json_object_object_add(res, "checks", arr);
	return qv_rpc_call_reply(call, res), 0;
}

const struct qv_rpc_method qv_host_methods[] = {
	{ "host.info", m_host_info },
	{ "host.check", m_host_check },
	{ "events.subscribe", m_subscribe },
	{ "events.unsubscribe", m_unsubscribe },
};
const size_t qv_host_methods_count = ARRAY_SIZE(qv_host_methods);
