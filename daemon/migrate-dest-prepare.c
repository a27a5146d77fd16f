/* SPDX-License-Identifier: MIT */
/* Destination side: migrate.prepare. Checks, the address to advertise and
 * listen on, the incoming QEMU (-S -incoming defer, capabilities, TLS
 * objects, migrate-incoming), the record, then the watchdog
 * (migrate-dest.c) takes over. */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/fw.h"
#include "daemon/migrate-internal.h"

/* A free TCP port on addr (bind to port 0, read it back, close). */
int qv_mig_pick_port(const char *addr, int *ret_port, struct qv_error *errp)
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

/* migrate-set-capabilities: name on. */
static int set_capability(struct qv_vm *vm, const char *name, struct qv_error *errp)
{
	json_object *a = json_object_new_object(), *caps = json_object_new_array(), *cap;
	int r;

	cap = json_object_new_object();
	json_object_object_add(cap, "capability", json_object_new_string(name));
	json_object_object_add(cap, "state", json_object_new_boolean(true));
	json_object_array_add(caps, cap);
	json_object_object_add(a, "capabilities", caps);
	r = qmp_client_execute(qemu_instance_qmp(vm->inst), "migrate-set-capabilities", a, 5000,
			       NULL, errp);
	json_object_put(a);
	return r;
}

static int set_postcopy(struct qv_vm *vm, struct qv_error *errp)
{
	int r = set_capability(vm, "postcopy-ram", errp);

	if (r < 0) {
		/* QEMU 7.2 opens userfaultfd with the plain syscall, which an
		 * unprivileged QEMU user may only do with this sysctl set. */
		FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
		int v = 1;
		if (f) {
			if (fscanf(f, "%d", &v) != 1)
				v = 1;
			fclose(f);
		}
		qv_error_prefix(errp, "postcopy-ram on the destination%s",
				v == 0 ? " (vm.unprivileged_userfaultfd is 0: QEMU runs "
					 "unprivileged and needs it set to 1)" : "");
	}
	return r;
}

static int set_multifd(struct qv_vm *vm, unsigned channels, struct qv_error *errp)
{
	qmp_client *c = qemu_instance_qmp(vm->inst);
	json_object *a;
	int r = set_capability(vm, "multifd", errp);

	if (r < 0)
		return r;
	a = json_object_new_object();
	json_object_object_add(a, "multifd-channels", json_object_new_int((int)channels));
	r = qmp_client_execute(c, "migrate-set-parameters", a, 5000, NULL, errp);
	json_object_put(a);
	return r;
}

/* Refusals before anything is created: a VM of that name running here, a
 * migration already under way, copy_storage onto an existing definition. */
static int prepare_check(struct qv_daemon *d, const struct qv_mig_prepare *p,
			 const struct vm_spec *spec, struct qv_error *errp)
{
	struct qv_vm *vm = qv_vm_find(d, spec->name);

	if (vm && (vm->inst || (vm->state != QV_VM_STOPPED && vm->state != QV_VM_CRASHED)))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is %s on the destination", spec->name,
				    qv_vm_state_to_string(vm->state));
	if (qv_mig_find(spec->name, false) || qv_mig_find(spec->name, true))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s already has a migration here", spec->name);
	if (p->copy_storage && vm)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is defined on the destination; copy_storage needs an "
				    "undefined VM (its disks are created here)", spec->name);
	/* The rules travel with the spec; their groups must exist here. */
	return qv_fw_check_spec(d, spec, errp);
}

/* The address the source should connect to (advert), and the one the
 * stream and NBD listen on: that same address unless params.listen says
 * otherwise, never 0.0.0.0 by default. */
static int prepare_advert(const struct qv_mig_prepare *p, char *buf, size_t size, char *listen,
			  size_t listen_size, struct qv_error *errp)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;

	if (p->address)
		snprintf(buf, size, "%s", p->address);
	else if (p->listen && !streq(p->listen, "0.0.0.0"))
		snprintf(buf, size, "%s", p->listen);
	else if (p->rpc_local) /* where the caller reached us */
		snprintf(buf, size, "%s", p->rpc_local);
	else if (host_address(buf, size) < 0)
		return qv_error_set(errp, EADDRNOTAVAIL, QV_REASON_UNAVAILABLE,
				    "no IPv4 address to offer; pass params.address");
	if (p->listen) {
		snprintf(listen, listen_size, "%s", p->listen);
		return 0;
	}
	if (getaddrinfo(buf, NULL, &hints, &res) != 0 || !res)
		return qv_error_set(errp, EADDRNOTAVAIL, QV_REASON_INVALID_ARGUMENT,
				    "cannot resolve %s to an IPv4 address to listen on; pass "
				    "params.listen", buf);
	inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, listen,
		  (socklen_t)listen_size);
	freeaddrinfo(res);
	return 0;
}

static int new_token(struct qv_mig *m, const char *given, struct qv_error *errp)
{
	unsigned char rnd[16];

	if (given) {
		snprintf(m->token, sizeof(m->token), "%s", given);
		return 0;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return qv_error_set(errp, EIO, QV_REASON_INTERNAL, "no randomness for the token");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(m->token + 2 * i, 3, "%02x", rnd[i]);
	return 0;
}

/* QEMU started paused with -incoming defer, capabilities set, listening. */
static int prepare_incoming(struct qv_vm *vm, const struct qv_mig_prepare *p, int port,
			    struct qv_error *errp)
{
	_cleanup_json_ json_object *a = json_object_new_object();
	char uri[256];
	int r;

	r = qv_vm_start_with(vm, &(struct qv_vm_start_opts){ .incoming = "defer", .paused = true },
			     errp);
	if (r < 0)
		return r;
	if (p->multifd_channels > 0 && (r = set_multifd(vm, p->multifd_channels, errp)) < 0)
		return r;
	if (p->allow_postcopy && (r = set_postcopy(vm, errp)) < 0)
		return r;
	if (p->tls && (r = qv_mig_tls_dest(vm->d, vm, p->peer_dn, errp)) < 0)
		return r;
	snprintf(uri, sizeof(uri), "tcp:%s:%d", p->listen, port);
	json_object_object_add(a, "uri", json_object_new_string(uri));
	return qmp_client_execute(qemu_instance_qmp(vm->inst), "migrate-incoming", a, 5000, NULL,
				  errp);
}

static json_object *prepare_result(const struct qv_vm *vm, const struct qv_mig *m,
				   const struct qv_mig_prepare *p, const char *uri,
				   const char *nbd_uri)
{
	json_object *res = json_object_new_object();

	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "uri", json_object_new_string(uri));
	json_object_object_add(res, "token", json_object_new_string(m->token));
	json_object_object_add(res, "created", json_object_new_boolean(m->created));
	json_object_object_add(res, "multifd_channels", json_object_new_int((int)p->multifd_channels));
	json_object_object_add(res, "allow_postcopy", json_object_new_boolean(p->allow_postcopy));
	json_object_object_add(res, "tls", json_object_new_boolean(p->tls));
	if (p->copy_storage) {
		json_object *a = json_object_new_array();
		json_object_object_add(res, "nbd", json_object_new_string(nbd_uri));
		for (size_t i = 0; i < vm->spec->n_disks; i++)
			json_object_array_add(a, json_object_new_string(vm->spec->disks[i].path));
		json_object_object_add(res, "disks", a);
	}
	return res;
}

int qv_mig_prepare(struct qv_daemon *d, const struct qv_mig_prepare *p, json_object **ret,
		   struct qv_error *errp)
{
	struct vm_spec *spec = NULL;
	struct qv_vm *vm;
	struct qv_mig *m;
	char advert[INET6_ADDRSTRLEN + 1], uri[256], nbd_uri[256] = "", listen[INET6_ADDRSTRLEN + 1];
	struct qv_mig_prepare pp = *p;
	int port = p->port, r;

	if (p->address && !address_valid(p->address))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.address is not a host name or address");
	r = vm_spec_from_json(p->spec, &spec, errp);
	if (r < 0)
		return r;
	if ((r = prepare_check(d, p, spec, errp)) < 0 ||
	    (r = prepare_advert(p, advert, sizeof(advert), listen, sizeof(listen), errp)) < 0 ||
	    (!port && (r = qv_mig_pick_port(listen, &port, errp)) < 0)) {
		vm_spec_free(spec);
		return r;
	}
	pp.listen = listen;
	p = &pp;
	m = qv_mig_new(d, spec->name, false);
	if (!m) {
		vm_spec_free(spec);
		return -ENOMEM;
	}
	if (p->copy_storage && (r = qv_mig_dest_images(d, m, spec, p->disk_sizes, p->disk_keys, errp)) < 0) {
		vm_spec_free(spec);
		qv_mig_dest_delete_images(m);
		qv_mig_drop(m);
		return r;
	}
	vm = qv_vm_find(d, spec->name);
	if (!vm) {
		r = qv_vm_define(d, spec, &vm, errp); /* takes spec */
		if (r < 0) {
			qv_mig_dest_delete_images(m);
			qv_mig_drop(m);
			return r;
		}
		m->created = true;
	} else {
		vm_spec_free(spec);
	}
	m->saved_policy = vm->spec->restart.policy;
	vm->spec->restart.policy = VM_RESTART_NO;
	m->postcopy = p->allow_postcopy;
	m->tls = p->tls;
	if ((r = new_token(m, p->token, errp)) < 0 || (r = prepare_incoming(vm, p, port, errp)) < 0 ||
	    (p->copy_storage && (r = qv_mig_dest_nbd_start(m, vm, p->listen, advert, nbd_uri,
							     sizeof(nbd_uri), errp)) < 0)) {
		qv_mig_teardown_dest(m, errp && errp->set ? errp->message : "prepare failed");
		return r;
	}
	snprintf(uri, sizeof(uri), "tcp:%s:%d", advert, port);
	m->peer = strdup(uri);
	m->source_uri = p->source ? strdup(p->source) : NULL;
	snprintf(m->state, sizeof(m->state), "prepared");
	m->expires_ms = qv_now_ms() + (uint64_t)p->timeout_s * 1000;
	qv_mig_persist(m);
	qv_mig_test_crash_point("dest-prepared");
	json_object *extra = json_object_new_object();
	json_object_object_add(extra, "role", json_object_new_string("destination"));
	json_object_object_add(extra, "uri", json_object_new_string(uri));
	qv_vm_set_state(vm, QV_VM_MIGRATING, extra);
	qv_mig_dest_rearm(m);
	log_info("VM %s: prepared for incoming migration on %s (%s)", vm->name, uri,
		 m->created ? "defined here" : "existing definition");
	*ret = prepare_result(vm, m, p, uri, nbd_uri);
	return 0;
}
