/* SPDX-License-Identifier: MIT */
/* Destination side: migrate.prepare / finish and the incoming watchdog.
 *
 * The incoming QEMU runs with -S -incoming defer: it never starts the guest
 * by itself; migrate.finish sends `cont` once the incoming migration is
 * completed. While prepared, the VM's restart policy is off, so a QEMU that
 * exits (the source cancelled, the link broke) is not restarted as a fresh
 * boot; the watchdog then removes it. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <ctype.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"

#define WATCH_MS 300
#define FINISH_POLL_MS 100
#define FINISH_TIMEOUT_MS 60000

static void dest_watch(qv_source *s, void *ud);

void qv_mig_dest_rearm(struct qv_mig *m)
{
	m->watch = qv_source_remove(m->watch);
	if (!m->expires_ms)
		m->expires_ms = qv_now_ms() + 600 * 1000;
	if (qv_loop_add_timer(m->d->loop, m->finish_call ? FINISH_POLL_MS : WATCH_MS, dest_watch,
			      m, &m->watch) < 0)
		m->watch = NULL;
}

static void restore_policy(struct qv_mig *m, struct qv_vm *vm)
{
	if (vm && vm->spec)
		vm->spec->restart.policy = m->saved_policy;
}

static void teardown_stopped(struct qv_vm *vm, int error, enum qemu_stop_step step,
			     const char *exit_text, void *ud)
{
	struct qv_error err = {};

	if ((uintptr_t)ud && !vm->inst && qv_vm_undefine(vm, &err) < 0)
		log_warning("VM %s: cannot undefine the torn-down destination: %s", vm->name,
			    err.message);
}

void qv_mig_teardown_dest(struct qv_mig *m, const char *why)
{
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	struct qv_error err = {};
	bool created = m->created;

	log_warning("VM %s: tearing down the incoming migration: %s", m->vm, why);
	if (m->finish_call) {
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED,
			     "incoming migration of %s torn down: %s", m->vm, why);
		qv_rpc_call_error(m->finish_call, &err);
		m->finish_call = NULL;
		qv_error_clear(&err);
	}
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "reason", json_object_new_string(why));
	qv_daemon_emit(m->d, m->vm, "migration-failed", ev);
	restore_policy(m, vm);
	qv_mig_drop(m);
	if (!vm)
		return;
	if (vm->inst) {
		if (qv_vm_stop_migrated(vm, true, 0, teardown_stopped, (void *)(uintptr_t)created, &err) < 0)
			log_warning("VM %s: cannot stop the incoming QEMU: %s", vm->name,
				    err.message);
		return;
	}
	if (vm->state == QV_VM_MIGRATING || vm->state == QV_VM_CRASHED)
		qv_vm_set_state(vm, QV_VM_STOPPED, NULL);
	teardown_stopped(vm, 0, QEMU_STOP_STEP_KILL, NULL, (void *)(uintptr_t)created);
}

static const char *incoming_status(struct qv_vm *vm, char *buf, size_t size)
{
	_cleanup_json_ json_object *q = NULL;
	json_object *v;

	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return NULL;
	if (qmp_client_execute(qemu_instance_qmp(vm->inst), "query-migrate", NULL, 3000, &q,
			       NULL) < 0)
		return NULL;
	snprintf(buf, size, "%s",
		 json_object_object_get_ex(q, "status", &v) ? json_object_get_string(v) : "none");
	return buf;
}

static void finish_now(struct qv_mig *m, struct qv_vm *vm)
{
	qv_rpc_call *call = m->finish_call;
	struct qv_error err = {};
	json_object *res;

	m->finish_call = NULL;
	if (qmp_client_execute(qemu_instance_qmp(vm->inst), "cont", NULL, 5000, NULL, &err) < 0) {
		qv_rpc_call_error(call, &err);
		qv_mig_teardown_dest(m, "cont failed on the destination");
		return;
	}
	restore_policy(m, vm);
	qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	qv_daemon_emit(m->d, m->vm, "migration-finished", NULL);
	log_info("VM %s: incoming migration finished, guest running", m->vm);
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(m->vm));
	json_object_object_add(res, "state", json_object_new_string("running"));
	qv_mig_drop(m);
	qv_rpc_call_reply(call, res);
}

static void dest_watch(qv_source *s, void *ud)
{
	struct qv_mig *m = ud;
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	char buf[32];
	const char *st;

	m->watch = NULL;
	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return qv_mig_teardown_dest(m, "the incoming QEMU exited");
	if (m->finish_call) {
		st = incoming_status(vm, buf, sizeof(buf));
		if (st && streq(st, "completed"))
			return finish_now(m, vm);
		if (!st || streq(st, "failed"))
			return qv_mig_teardown_dest(m, "the incoming migration failed");
		if (qv_now_ms() > m->finish_deadline) {
			struct qv_error err = {};
			qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT,
				     "incoming migration of %s still %s", m->vm, st);
			qv_rpc_call_error(m->finish_call, &err);
			m->finish_call = NULL;
		}
	} else if (qv_now_ms() > m->expires_ms) {
		return qv_mig_teardown_dest(m, "not finished before its timeout");
	}
	qv_mig_dest_rearm(m);
}

int qv_mig_finish(qv_rpc_call *call, struct qv_mig *m)
{
	if (m->finish_call)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "migrate.finish of %s is already waiting", m->vm);
	m->finish_call = call;
	m->finish_deadline = qv_now_ms() + FINISH_TIMEOUT_MS;
	snprintf(m->state, sizeof(m->state), "finishing");
	qv_mig_dest_rearm(m);
	return 0;
}

/* A free TCP port on addr (bind to port 0, read it back, close). */
static int pick_port(const char *addr, int *ret_port, struct qv_error *errp)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	_cleanup_close_ int fd = -1;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.listen must be an IPv4 address, not \"%.60s\"", addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return qv_error_set(errp, errno, QV_REASON_UNAVAILABLE,
				    "cannot find a free port on %s: %m", addr);
	*ret_port = ntohs(sa.sin_port);
	return 0;
}

/* First non-loopback IPv4 address that is up: what the source should dial
 * when we listen on 0.0.0.0 and the client did not say. */
static int host_address(char *buf, size_t size)
{
	struct ifaddrs *ifa, *i;
	int r = -EADDRNOTAVAIL;

	if (getifaddrs(&ifa) < 0)
		return negative_errno();
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, size);
		r = 0;
		break;
	}
	freeifaddrs(ifa);
	return r;
}

static bool address_valid(const char *a)
{
	if (!*a || strlen(a) > 100)
		return false;
	for (; *a; a++)
		if (!isalnum((unsigned char)*a) && !strchr(".-:", *a))
			return false;
	return true;
}

int qv_mig_prepare(struct qv_daemon *d, const struct qv_mig_prepare *p, json_object **ret,
		   struct qv_error *errp)
{
	struct vm_spec *spec = NULL;
	struct qv_vm *vm;
	struct qv_mig *m;
	bool created = false;
	char advert[INET6_ADDRSTRLEN + 1], uri[256];
	unsigned char rnd[16];
	int port = p->port, r;

	if (p->address && !address_valid(p->address))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.address is not a host name or address");
	r = vm_spec_from_json(p->spec, &spec, errp);
	if (r < 0)
		return r;
	vm = qv_vm_find(d, spec->name);
	if (vm && (vm->inst || (vm->state != QV_VM_STOPPED && vm->state != QV_VM_CRASHED))) {
		r = qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				 "VM %s is %s on the destination", spec->name,
				 qv_vm_state_to_string(vm->state));
		vm_spec_free(spec);
		return r;
	}
	if (qv_mig_find(spec->name, false) || qv_mig_find(spec->name, true)) {
		r = qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				 "VM %s already has a migration here", spec->name);
		vm_spec_free(spec);
		return r;
	}
	if (!port && (r = pick_port(p->listen, &port, errp)) < 0) {
		vm_spec_free(spec);
		return r;
	}
	if (p->address)
		snprintf(advert, sizeof(advert), "%s", p->address);
	else if (!streq(p->listen, "0.0.0.0"))
		snprintf(advert, sizeof(advert), "%s", p->listen);
	else if (host_address(advert, sizeof(advert)) < 0) {
		vm_spec_free(spec);
		return qv_error_set(errp, EADDRNOTAVAIL, QV_REASON_UNAVAILABLE,
				    "no IPv4 address to offer; pass params.address");
	}
	if (!vm) {
		r = qv_vm_define(d, spec, &vm, errp); /* takes spec */
		if (r < 0)
			return r;
		created = true;
	} else {
		vm_spec_free(spec);
	}
	m = qv_mig_new(d, vm->name, false);
	if (!m)
		return -ENOMEM;
	m->created = created;
	m->saved_policy = vm->spec->restart.policy;
	vm->spec->restart.policy = VM_RESTART_NO;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		r = qv_error_set(errp, EIO, QV_REASON_INTERNAL, "no randomness for the token");
		goto fail;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(m->token + 2 * i, 3, "%02x", rnd[i]);
	r = qv_vm_start_with(vm, &(struct qv_vm_start_opts){ .incoming = "defer", .paused = true },
			     errp);
	if (r < 0)
		goto fail;
	{
		json_object *a = json_object_new_object();
		snprintf(uri, sizeof(uri), "tcp:%s:%d", p->listen, port);
		json_object_object_add(a, "uri", json_object_new_string(uri));
		r = qmp_client_execute(qemu_instance_qmp(vm->inst), "migrate-incoming", a, 5000,
				       NULL, errp);
		json_object_put(a);
		if (r < 0)
			goto fail;
	}
	snprintf(uri, sizeof(uri), "tcp:%s:%d", advert, port);
	m->peer = strdup(uri);
	snprintf(m->state, sizeof(m->state), "prepared");
	m->expires_ms = qv_now_ms() + (uint64_t)p->timeout_s * 1000;
	qv_mig_persist(m);
	{
		json_object *extra = json_object_new_object();
		json_object_object_add(extra, "role", json_object_new_string("destination"));
		json_object_object_add(extra, "uri", json_object_new_string(uri));
		qv_vm_set_state(vm, QV_VM_MIGRATING, extra);
	}
	qv_mig_dest_rearm(m);
	log_info("VM %s: prepared for incoming migration on %s (%s)", vm->name, uri,
		 created ? "defined here" : "existing definition");
	json_object *res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "uri", json_object_new_string(uri));
	json_object_object_add(res, "token", json_object_new_string(m->token));
	json_object_object_add(res, "created", json_object_new_boolean(created));
	*ret = res;
	return 0;
fail:
	qv_mig_teardown_dest(m, errp && errp->set ? errp->message : "prepare failed");
	return r;
}
