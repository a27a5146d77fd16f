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
#include "daemon/vm-queue.h"
#include "qemu/tls-creds.h"

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

/* migrate-set-capabilities {name: on} as a step of s. */
static int capability_step(qmp_seq *s, const char *name, qmp_seq_reply_fn fn)
{
	json_object *a = json_object_new_object(), *caps = json_object_new_array(), *cap;

	cap = json_object_new_object();
	json_object_object_add(cap, "capability", json_object_new_string(name));
	json_object_object_add(cap, "state", json_object_new_boolean(true));
	json_object_array_add(caps, cap);
	json_object_object_add(a, "capabilities", caps);
	return qmp_seq_add(s, &(struct qmp_seq_step){ .command = "migrate-set-capabilities",
						      .args = a, .timeout_ms = 5000, .fn = fn,
						      .tolerate_error = fn != NULL });
}

/* postcopy-ram refused: say why when we can tell. */
static int postcopy_reply(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	if (error >= 0)
		return 0;
	/* QEMU 7.2 opens userfaultfd with the plain syscall, which an
	 * unprivileged QEMU user may only do with this sysctl set. */
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	int v = 1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 1;
		fclose(f);
	}
	qv_error_prefix(err, "postcopy-ram on the destination%s",
			v == 0 ? " (vm.unprivileged_userfaultfd is 0: QEMU runs "
				 "unprivileged and needs it set to 1)" : "");
	return error;
}

static int multifd_steps(qmp_seq *s, unsigned channels)
{
	json_object *a;
	int r = capability_step(s, "multifd", NULL);

	if (r < 0)
		return r;
	a = json_object_new_object();
	json_object_object_add(a, "multifd-channels", json_object_new_int((int)channels));
	return qmp_seq_add(s, &(struct qmp_seq_step){ .command = "migrate-set-parameters",
						      .args = a, .timeout_ms = 5000 });
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

/* A prepare in flight: the reply is due once the copy_storage images
 * exist (created off the loop, migrate-dest-images.c), the incoming QEMU
 * started (qv_vm_start_async) and its steps ran (prep_steps). m->prep
 * points here until then; a teardown meanwhile goes through
 * qv_mig_prep_abort(). */
struct qv_mig_prep {
	struct qv_daemon *d;
	struct qv_mig *m;
	qv_rpc_call *call;
	json_object *params;     /* a reference: p's strings borrow from it */
	struct qv_mig_prepare p;
	char listen[INET6_ADDRSTRLEN + 1], advert[INET6_ADDRSTRLEN + 1], rpc_local[64];
	char uri[256], nbd_uri[256];
	int port;
	qmp_seq *seq;
	struct vm_spec *spec;    /* until defined (images being created) */
	struct qv_mig_create *create; /* the image worker, while it runs */
	char *stage_dir;         /* TLS credentials staged for the sequence */
	char *abort_why;         /* torn down while the QEMU was starting */
};

static void prep_free(struct qv_mig_prep *x)
{
	x->seq = qmp_seq_cancel(x->seq);
	qv_mig_dest_images_abandon(x->create);
	vm_spec_free(x->spec);
	if (x->stage_dir)
		qemu_tls_unstage(x->stage_dir);
	free(x->stage_dir);
	free(x->abort_why);
	json_object_put(x->params);
	free(x);
}

/* Failed: answer, tear the incoming side down exactly as a synchronous
 * prepare did (kill QEMU, undefine what prepare defined, delete the
 * images it created), free x. */
static void prep_fail(struct qv_mig_prep *x, const struct qv_error *errp)
{
	struct qv_mig *m = x->m;

	m->prep = NULL;
	qv_rpc_call_error(x->call, errp);
	qv_mig_teardown_dest(m, errp && errp->set ? errp->message : "prepare failed");
	prep_free(x);
}

bool qv_mig_prep_abort(struct qv_mig *m, const char *why)
{
	struct qv_mig_prep *x = m->prep;
	struct qv_vm *vm = qv_vm_find(x->d, m->vm);
	struct qv_error err = {};

	if (!x->seq && !x->create) {
		/* The incoming QEMU is starting: its start is dropped now (out
		 * of the queue, or its QEMU killed) and prep_started(), called
		 * with the failure, tears down. Never wait for a start. */
		if (!x->abort_why)
			x->abort_why = strdup(why);
		if (vm && vm->starting && qv_vm_start_drop(vm, why) < 0)
			log_warning("VM %s: cannot drop the incoming start; the teardown "
				    "waits for it", m->vm);
		return false; /* x and m may be gone */
	}
	/* Creating images: the worker is abandoned (it removes what it made),
	 * nothing is defined or started yet. Or the QMP steps: cancelled. */
	m->prep = NULL;
	qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED,
		     "incoming migration of %s torn down while preparing: %s", m->vm, why);
	qv_rpc_call_error(x->call, &err);
	prep_free(x);
	return true;
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

/* Every step answered: the migration is prepared. */
static void prep_done(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	struct qv_mig_prep *x = ud;
	struct qv_mig *m = x->m;
	struct qv_vm *vm = qv_vm_find(x->d, m->vm);

	x->seq = NULL;
	if (error < 0 || !vm || !vm->inst) {
		struct qv_error e = {};
		if (error >= 0)
			qv_error_set(&e, ESRCH, QV_REASON_CONFLICT, "the incoming QEMU of %s is gone",
				     m->vm);
		prep_fail(x, error < 0 ? errp : &e);
		qv_error_clear(&e);
		return;
	}
	m->prep = NULL;
	m->peer = strdup(x->uri);
	m->source_uri = x->p.source ? strdup(x->p.source) : NULL;
	snprintf(m->state, sizeof(m->state), "prepared");
	m->expires_ms = qv_now_ms() + (uint64_t)x->p.timeout_s * 1000;
	qv_mig_persist(m);
	qv_mig_test_crash_point("dest-prepared");
	qv_mig_dest_rearm(m);
	log_info("VM %s: prepared for incoming migration on %s (%s)", vm->name, x->uri,
		 m->created ? "defined here" : "existing definition");
	qv_rpc_call_reply(x->call, prepare_result(vm, m, &x->p, x->uri, x->nbd_uri));
	prep_free(x);
}

/* The prepare steps: capabilities, TLS objects, migrate-incoming, the NBD
 * exports; none waits for QEMU on the loop. */
static int prep_steps(struct qv_mig_prep *x, struct qv_vm *vm, struct qv_error *errp)
{
	const struct qv_mig_prepare *p = &x->p;
	json_object *a;
	char uri[256];
	int r;

	r = qmp_seq_new(qemu_instance_qmp(vm->inst), 5000, prep_done, x, &x->seq);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot run the prepare steps");
	if (p->multifd_channels > 0)
		r = multifd_steps(x->seq, p->multifd_channels);
	if (r >= 0 && p->allow_postcopy)
		r = capability_step(x->seq, "postcopy-ram", postcopy_reply);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue the capabilities");
	if (p->tls && (r = qv_mig_tls_dest_steps(x->d, vm, p->peer_dn, x->seq, &x->stage_dir,
						 errp)) < 0)
		return r;
	snprintf(uri, sizeof(uri), "tcp:%s:%d", p->listen, x->port);
	a = json_object_new_object();
	json_object_object_add(a, "uri", json_object_new_string(uri));
	r = qmp_seq_add(x->seq, &(struct qmp_seq_step){ .command = "migrate-incoming", .args = a,
							.timeout_ms = 5000 });
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue migrate-incoming");
	if (p->copy_storage && (r = qv_mig_dest_nbd_steps(x->m, vm, p->listen, x->advert, x->seq,
							 x->nbd_uri, sizeof(x->nbd_uri), errp)) < 0)
		return r;
	/* Test hook: a QEMU that stalls here must not hold the loop. */
	qv_mig_test_stall_point(x->d, "dest-prepare", qemu_instance_pid(vm->inst));
	r = qmp_seq_start(x->seq);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot start the prepare steps");
	return 0;
}

/* The incoming QEMU is up (paused, -incoming defer), or its start failed. */
static void prep_started(struct qv_vm *vm, int error, const struct qv_error *errp, void *ud)
{
	struct qv_mig_prep *x = ud;
	struct qv_error err = {};

	if (x->abort_why) {
		qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED,
			     "incoming migration of %s torn down while preparing: %s", vm->name,
			     x->abort_why);
		prep_fail(x, &err);
		qv_error_clear(&err);
		return;
	}
	if (error < 0) {
		prep_fail(x, errp);
		return;
	}
	/* From now on the migration owns the VM: vm.stop, vm.resume (a `cont`
	 * QEMU would remember for after the incoming migration) are refused. */
	json_object *extra = json_object_new_object();
	json_object_object_add(extra, "role", json_object_new_string("destination"));
	json_object_object_add(extra, "uri", json_object_new_string(x->uri));
	qv_vm_set_state(vm, QV_VM_MIGRATING, extra);
	if (prep_steps(x, vm, &err) < 0) {
		prep_fail(x, &err);
		qv_error_clear(&err);
	}
}

/* Refused before anything was defined or started: answer, remove the
 * images m owns, drop m, free x. */
static void prep_refuse(struct qv_mig_prep *x, struct qv_error *err)
{
	struct qv_mig *m = x->m;

	m->prep = NULL;
	qv_rpc_call_error(x->call, err);
	qv_error_clear(err);
	qv_mig_dest_delete_images(m);
	qv_mig_drop(m);
	prep_free(x);
}

/* The images exist (or none were needed): define the VM unless it is,
 * then start the incoming QEMU through the start queue. */
static void prep_define_start(struct qv_mig_prep *x)
{
	struct qv_mig *m = x->m;
	struct qv_vm *vm = qv_vm_find(x->d, m->vm);
	struct qv_error err = {};
	int r;

	if (!vm) {
		r = qv_vm_define(x->d, TAKE_PTR(x->spec), &vm, &err); /* takes spec */
		if (r < 0)
			return prep_refuse(x, &err);
		m->created = true;
	} else if (x->p.copy_storage) {
		qv_error_set(&err, EBUSY, QV_REASON_CONFLICT,
			     "VM %s was defined on the destination while its images were created",
			     m->vm);
		return prep_refuse(x, &err);
	} else {
		x->spec = vm_spec_free(x->spec);
	}
	m->saved_policy = vm->spec->restart.policy;
	vm->spec->restart.policy = VM_RESTART_NO;
	/* m->prep is set: the start's callback may in principle run at once */
	r = qv_vm_start_async(vm, &(struct qv_vm_start_opts){ .incoming = "defer",
							       .paused = true },
			      prep_started, x, &err);
	if (r < 0) {
		prep_fail(x, &err);
		qv_error_clear(&err);
	}
}

static void prep_images_done(int error, const struct qv_error *errp, void *ud)
{
	struct qv_mig_prep *x = ud;
	struct qv_error err = {};

	x->create = NULL;
	if (error < 0) {
		if (errp)
			err = *errp;
		else
			qv_error_set(&err, -error, QV_REASON_IO_ERROR, "cannot create the images");
		qv_error_prefix(&err, "creating the destination images of %s", x->m->vm);
		return prep_refuse(x, &err);
	}
	prep_define_start(x);
}

static const char *prep_current_step(const struct qv_mig *m, unsigned *ret_steps)
{
	const struct qv_mig_prep *x = m->prep;
	struct qv_vm *vm;

	*ret_steps = 0;
	if (!x)
		return NULL;
	if (x->create)
		return "creating-images";
	if (x->seq) {
		*ret_steps = qmp_seq_steps_done(x->seq);
		return "configuring-incoming";
	}
	vm = qv_vm_find(x->d, m->vm);
	return vm && qv_vm_start_is_queued(vm) ? "start-queued" : "starting-qemu";
}

json_object *qv_mig_prep_status(const struct qv_mig *m)
{
	json_object *o = json_object_new_object();
	unsigned steps;
	const char *step = prep_current_step(m, &steps);

	json_object_object_add(o, "id", json_object_new_string(m->id));
	json_object_object_add(o, "name", json_object_new_string(m->vm));
	json_object_object_add(o, "role", json_object_new_string("destination"));
	json_object_object_add(o, "state", json_object_new_string("preparing"));
	json_object_object_add(o, "step", json_object_new_string(step ? step : "preparing"));
	if (steps)
		json_object_object_add(o, "steps_done", json_object_new_int((int)steps));
	json_object_object_add(o, "active", json_object_new_boolean(true));
	return o;
}

void qv_mig_prepare(qv_rpc_call *call, struct qv_daemon *d, const struct qv_mig_prepare *p,
		    json_object *params)
{
	struct vm_spec *spec = NULL;
	struct qv_mig *m;
	struct qv_mig_prep *x;
	struct qv_error err = {};
	int r;

	if (p->address && !address_valid(p->address)) {
		qv_error_set(&err, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "params.address is not a host name or address");
		goto refuse;
	}
	if (p->tls && (!p->peer_dn || !*p->peer_dn)) {
		qv_error_set(&err, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "TLS migration: which certificate will the source present? "
			     "Pass params.peer_dn (migrate.plan's tls_dn)");
		goto refuse;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		goto refuse;
	}
	*x = (struct qv_mig_prep){ .d = d, .call = call, .params = json_object_get(params),
				   .p = *p, .port = p->port };
	if (p->rpc_local) {
		snprintf(x->rpc_local, sizeof(x->rpc_local), "%s", p->rpc_local);
		x->p.rpc_local = x->rpc_local;
	}
	r = vm_spec_from_json(p->spec, &spec, &err);
	if (r < 0 || (r = prepare_check(d, &x->p, spec, &err)) < 0 ||
	    (r = prepare_advert(&x->p, x->advert, sizeof(x->advert), x->listen, sizeof(x->listen),
				&err)) < 0 ||
	    (!x->port && (r = qv_mig_pick_port(x->listen, &x->port, &err)) < 0)) {
		vm_spec_free(spec);
		prep_free(x);
		goto refuse;
	}
	x->p.listen = x->listen;
	p = &x->p;
	snprintf(x->uri, sizeof(x->uri), "tcp:%s:%d", x->advert, x->port);
	m = qv_mig_new(d, spec->name, false);
	if (!m) {
		vm_spec_free(spec);
		prep_free(x);
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		goto refuse;
	}
	m->postcopy = p->allow_postcopy;
	m->tls = p->tls;
	snprintf(m->state, sizeof(m->state), "preparing");
	x->m = m;
	x->spec = spec;
	m->prep = x;
	if ((r = new_token(m, p->token, &err)) < 0 ||
	    (p->copy_storage && (r = qv_mig_dest_images(d, m, spec, p->disk_sizes, p->disk_keys,
						       prep_images_done, x, &x->create,
						       &err)) < 0)) {
		prep_refuse(x, &err);
		return;
	}
	if (!p->copy_storage)
		prep_define_start(x);
	return;
refuse:
	qv_rpc_call_error(call, &err);
	qv_error_clear(&err);
}
