/* SPDX-License-Identifier: MIT */
/* Destination side: migrate.prepare / finish and the incoming watchdog.
 *
 * The incoming QEMU runs with -S -incoming defer: it never starts the guest
 * by itself; migrate.finish sends `cont` once the incoming migration is
 * completed. With allow_postcopy the watchdog sends `cont` as soon as the
 * incoming side reports postcopy-active (the source is stopped by then);
 * finish then only waits for completed. While prepared, the VM's restart policy is off, so a QEMU that
 * exits (the source cancelled, the link broke) is not restarted as a fresh
 * boot; the watchdog then removes it. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <ctype.h>

#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster.h"
#include "daemon/fw.h"
#include "daemon/image-internal.h"
#include "daemon/migrate-internal.h"
#include "qemu/tls-creds.h"
#include "storage/pool.h"

#define WATCH_MS 300
#define FINISH_POLL_MS 20 /* blackout: the source is stopped for good */
#define FINISH_TIMEOUT_MS 60000
#define POSTCOPY_POLL_MS 20 /* the guest is paused from the switch until our cont */

static void dest_watch(qv_source *s, void *ud);

void qv_mig_dest_rearm(struct qv_mig *m)
{
	m->watch = qv_source_remove(m->watch);
	if (!m->expires_ms)
		m->expires_ms = qv_now_ms() + 600 * 1000;
	if (qv_loop_add_timer(m->d->loop,
			      m->finish_call ? FINISH_POLL_MS
			      : m->postcopy && !m->postcopy_running ? POSTCOPY_POLL_MS : WATCH_MS,
			      dest_watch,
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
	/* QEMU may still hold them open: unlinking is fine, it is killed next. */
	qv_mig_dest_delete_images(m);
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

static void finish_now(struct qv_mig *m, struct qv_vm *vm)
{
	qv_rpc_call *call = m->finish_call;
	struct qv_error err = {};
	json_object *res;

	m->finish_call = NULL;
	/* The exports hold write access the guest device must get back. */
	qv_mig_dest_nbd_stop(m, vm);
	/* After postcopy the guest already runs (cont at postcopy-active). */
	if (!m->postcopy_running &&
	    qmp_client_execute(qemu_instance_qmp(vm->inst), "cont", NULL, 5000, NULL, &err) < 0) {
		if (call)
			qv_rpc_call_error(call, &err);
		qv_mig_teardown_dest(m, "cont failed on the destination");
		return;
	}
	restore_policy(m, vm);
	m->n_images = 0; /* they are the VM's disks now */
	/* RESUME arrives before cont's reply; fall back to now. */
	m->resume_unix_us = vm->last_resume_us > 0 ? vm->last_resume_us : qv_unix_ms() * 1000;
	qv_vm_set_state(vm, QV_VM_RUNNING, NULL);
	qv_daemon_emit(m->d, m->vm, "migration-finished", NULL);
	qv_cluster_vm_arrived(m->d, m->vm);
	log_info("VM %s: incoming migration finished%s, guest running", m->vm,
		 m->postcopy_running ? " (postcopy)" : "");
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(m->vm));
	json_object_object_add(res, "state", json_object_new_string("running"));
	if (m->postcopy_running)
		json_object_object_add(res, "postcopy", json_object_new_boolean(true));
	json_object_object_add(res, "resume_unix_us", json_object_new_int64(m->resume_unix_us));
	/* Keep the record as a tombstone: a repeated finish (the source lost
	 * our answer) is answered again, a cancel refused. */
	snprintf(m->state, sizeof(m->state), "finished");
	qv_mig_persist(m);
	qv_mig_test_crash_point("dest-finished");
	qv_mig_retire(m);
	if (call)
		qv_rpc_call_reply(call, res);
	else
		json_object_put(res);
}

/* Postcopy: QEMU leaves a -S destination paused at the switch (it starts
 * the guest itself only with autostart). postcopy-active on the
 * destination means the source has stopped its vCPUs and sent the device
 * state, so starting here cannot make two copies run. */
static void postcopy_cont(struct qv_mig *m, struct qv_vm *vm)
{
	struct qv_error err = {};

	if (qmp_client_execute(qemu_instance_qmp(vm->inst), "cont", NULL, 5000, NULL, &err) < 0) {
		log_warning("VM %s: cont at postcopy-active failed: %s", m->vm, err.message);
		return;
	}
	m->postcopy_running = true;
	snprintf(m->state, sizeof(m->state), "postcopy-running");
	qv_mig_persist(m);
	log_info("VM %s: postcopy switch: guest running here, pages fetched from the source",
		 m->vm);
	qv_daemon_emit(m->d, m->vm, "migration-postcopy", NULL);
}

/* What the watch does with the incoming side's status (st: QEMU's
 * query-migrate status, NULL when QEMU did not answer). */
static void dest_decide(struct qv_mig *m, struct qv_vm *vm, const char *st)
{
	if (m->finish_call) {
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
	} else if (m->postcopy) {
		if (st && streq(st, "postcopy-active") && !m->postcopy_running)
			postcopy_cont(m, vm);
		else if (st && streq(st, "completed") && m->postcopy_running &&
			 qv_now_ms() > m->expires_ms)
			return finish_now(m, vm); /* nobody finishes: it runs here anyway */
		else if (st && streq(st, "failed") && m->postcopy_running)
			return qv_mig_teardown_dest(m, "the incoming migration failed during "
						       "postcopy (guest lost)");
		else if (qv_now_ms() > m->expires_ms && !m->postcopy_running)
			return qv_mig_teardown_dest(m, "not finished before its timeout");
	} else if (qv_now_ms() > m->expires_ms) {
		return qv_mig_teardown_dest(m, "not finished before its timeout");
	} else if (m->source_uri && !m->asking) {
		qv_mig_dest_check_stuck(m, st);
	}
	qv_mig_dest_rearm(m);
}

/* The query's answer finds its migration again by VM and token: it may
 * have been finished, torn down or replaced meanwhile. */
struct dest_query {
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	char token[33];
};

static void on_incoming_status(qmp_client *c, int error, json_object *ret,
			       const struct qv_error *errp, void *userdata)
{
	struct dest_query *q = userdata;
	struct qv_mig *m = qv_mig_find(q->vm, false);
	struct qv_vm *vm = qv_vm_find(q->d, q->vm);
	char buf[32];
	const char *st = NULL;
	json_object *v;

	if (!m || !streq(m->token, q->token)) {
		free(q);
		return;
	}
	free(q);
	m->querying = false;
	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return qv_mig_teardown_dest(m, "the incoming QEMU exited");
	if (error >= 0) {
		snprintf(buf, sizeof(buf), "%s", json_object_object_get_ex(ret, "status", &v)
							 ? json_object_get_string(v) : "none");
		st = buf;
	}
	dest_decide(m, vm, st);
}

/* Looks at the incoming QEMU without waiting for it: the status comes
 * back to on_incoming_status() (within 3 s, else as "no answer"), and the
 * loop serves everything else meanwhile. */
static void dest_watch(qv_source *s, void *ud)
{
	struct qv_mig *m = ud;
	struct qv_vm *vm = qv_vm_find(m->d, m->vm);
	struct dest_query *q;

	m->watch = NULL;
	if (!vm || !vm->inst || qemu_instance_exited(vm->inst))
		return qv_mig_teardown_dest(m, "the incoming QEMU exited");
	if (m->querying)
		return; /* the answer decides and re-arms */
	if (!m->finish_call && !m->postcopy && (qv_now_ms() > m->expires_ms ||
						 !m->source_uri || m->asking))
		return dest_decide(m, vm, NULL); /* no status needed */
	q = calloc(1, sizeof(*q));
	if (!q)
		return qv_mig_dest_rearm(m);
	q->d = m->d;
	snprintf(q->vm, sizeof(q->vm), "%s", m->vm);
	snprintf(q->token, sizeof(q->token), "%s", m->token);
	m->querying = true;
	if (qmp_client_execute_async(qemu_instance_qmp(vm->inst), "query-migrate", NULL, NULL, 0,
				     3000, on_incoming_status, q) < 0) {
		m->querying = false;
		free(q);
		dest_decide(m, vm, NULL);
	}
}

int qv_mig_finish(qv_rpc_call *call, struct qv_mig *m)
{
	if (m->finish_call)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "migrate.finish of %s is already waiting", m->vm);
	m->finish_call = call;
	m->finish_deadline = qv_now_ms() + FINISH_TIMEOUT_MS;
	snprintf(m->state, sizeof(m->state), "finishing");
	/* The guest is paused until our cont: look at once, not after a poll
	 * interval (every ms here is blackout). */
	m->watch = qv_source_remove(m->watch);
	if (qv_loop_add_timer(m->d->loop, 0, dest_watch, m, &m->watch) < 0)
		qv_mig_dest_rearm(m);
	return 0;
}

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

static int set_postcopy(struct qv_vm *vm, struct qv_error *errp)
{
	json_object *a = json_object_new_object(), *caps = json_object_new_array(), *cap;
	int r;

	cap = json_object_new_object();
	json_object_object_add(cap, "capability", json_object_new_string("postcopy-ram"));
	json_object_object_add(cap, "state", json_object_new_boolean(true));
	json_object_array_add(caps, cap);
	json_object_object_add(a, "capabilities", caps);
	r = qmp_client_execute(qemu_instance_qmp(vm->inst), "migrate-set-capabilities", a, 5000,
			       NULL, errp);
	json_object_put(a);
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
	json_object *a = json_object_new_object(), *caps = json_object_new_array(), *cap;
	int r;

	cap = json_object_new_object();
	json_object_object_add(cap, "capability", json_object_new_string("multifd"));
	json_object_object_add(cap, "state", json_object_new_boolean(true));
	json_object_array_add(caps, cap);
	json_object_object_add(a, "capabilities", caps);
	r = qmp_client_execute(c, "migrate-set-capabilities", a, 5000, NULL, errp);
	json_object_put(a);
	if (r < 0)
		return r;
	a = json_object_new_object();
	json_object_object_add(a, "multifd-channels", json_object_new_int((int)channels));
	r = qmp_client_execute(c, "migrate-set-parameters", a, 5000, NULL, errp);
	json_object_put(a);
	return r;
}

/* --- copy_storage ------------------------------------------------------------ */

/* Destination images go into this daemon's pool: <pool>/<name>.<fmt>, the
 * name being the source file's base name without its format suffix (else
 * "<vm>-disk<i>"). An existing image is never reused or overwritten. */
int qv_mig_dest_image_name(const char *vm, size_t i, const struct vm_disk *dk, char *buf,
			    size_t size)
{
	const char *base = strrchr(dk->path, '/');
	const char *ext = dk->format == VM_DISK_QCOW2 ? ".qcow2" : ".raw";
	size_t n;

	base = base ? base + 1 : dk->path;
	n = strlen(base);
	if (n > strlen(ext) && streq(base + n - strlen(ext), ext))
		n -= strlen(ext);
	snprintf(buf, size, "%.*s", (int)n, base);
	if (!qv_image_name_valid(buf))
		snprintf(buf, size, "%s-disk%zu", vm, i);
	return qv_image_name_valid(buf) ? 0 : -EINVAL;
}

/* disk_keys[i] as a secret, *ret NULL for null/absent. */
static int dest_disk_key(json_object *keys, size_t i, struct qv_secret **ret,
			 struct qv_error *errp)
{
	json_object *v = keys ? json_object_array_get_idx(keys, i) : NULL;

	*ret = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk_keys[%zu] must be a string or null", i);
	return qv_secret_new(json_object_get_string(v), (size_t)json_object_get_string_len(v),
			     ret, errp);
}

int qv_mig_dest_images(struct qv_daemon *d, struct qv_mig *m, struct vm_spec *spec,
		       json_object *sizes, json_object *keys, struct qv_error *errp)
{
	struct image_state *ist = d->image_state;
	int r;

	if (!ist || !ist->pool)
		return qv_error_set(errp, ENODEV, QV_REASON_UNAVAILABLE,
				    "the destination has no image pool");
	if (!sizes || !json_object_is_type(sizes, json_type_array) ||
	    json_object_array_length(sizes) != spec->n_disks)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk_sizes must list one size per spec disk");
	m->images = calloc(spec->n_disks + 1, sizeof(*m->images));
	if (!m->images)
		return -ENOMEM;
	for (size_t i = 0; i < spec->n_disks; i++) {
		struct vm_disk *dk = &spec->disks[i];
		json_object *v = json_object_array_get_idx(sizes, i);
		int64_t size = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
		enum qv_image_format fmt = dk->format == VM_DISK_QCOW2 ? QV_IMAGE_QCOW2 : QV_IMAGE_RAW;
		char name[QV_IMAGE_NAME_MAX + 1];
		char *path = NULL;

		if (dk->readonly)
			continue; /* read-only disks must be shared (same path) */
		if (size <= 0 || size % 512)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "params.disk_sizes[%zu] must be a positive multiple of 512",
					    i);
		if (qv_mig_dest_image_name(spec->name, i, dk, name, sizeof(name)) < 0)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "no valid image name for disk %zu", i);
		if (qv_pool_lookup(ist->pool, name, NULL, NULL, NULL) == 0)
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "image %s already exists in the destination pool %s",
					    name, qv_pool_dir(ist->pool));
		_cleanup_secret_ struct qv_secret *key = NULL;
		r = dest_disk_key(keys, i, &key, errp);
		if (r >= 0 && key && fmt != QV_IMAGE_QCOW2)
			r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					 "params.disk_keys[%zu]: disk %zu is not qcow2", i, i);
		/* The destination's copy: a new LUKS header (its own volume key)
		 * opened by the same passphrase; the mirror writes plaintext
		 * through it. */
		if (r >= 0 && key && (r = qv_keystore_put(ist->keys, name, key, errp)) >= 0 &&
		    (r = qv_pool_create_luks(ist->pool, name, (uint64_t)size, key, 0, errp)) < 0)
			(void)qv_keystore_remove(ist->keys, name, NULL);
		if (r >= 0 && !key)
			r = qv_pool_create(ist->pool, name, fmt, (uint64_t)size, errp);
		m->luks |= key != NULL;
		if (r < 0)
			return r;
		r = qv_pool_lookup(ist->pool, name, &path, NULL, errp);
		if (r < 0)
			return r;
		m->images[m->n_images++] = path;
		free(dk->path);
		dk->path = strdup(path);
		if (!dk->path)
			return -ENOMEM;
		log_info("VM %s: disk %zu created as %s (%" PRId64 " bytes%s) for storage migration",
			 spec->name, i, path, size, key ? ", LUKS" : "");
	}
	return 0;
}

void qv_mig_dest_delete_images(struct qv_mig *m)
{
	struct image_state *ist = m->d ? m->d->image_state : NULL;

	for (size_t i = 0; i < m->n_images; i++) {
		const char *base = strrchr(m->images[i], '/');
		char name[QV_IMAGE_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s", base ? base + 1 : m->images[i]);
		char *dot = strrchr(name, '.');
		if (dot)
			*dot = '\0';
		if (ist && qv_keystore_has(ist->keys, name))
			(void)qv_keystore_remove(ist->keys, name, NULL);
		if (unlink(m->images[i]) < 0 && errno != ENOENT)
			log_warning_errno(errno, "Cannot remove %s, ignoring: %m", m->images[i]);
		else
			log_info("VM %s: removed %s (storage migration not finished)", m->vm,
				 m->images[i]);
	}
	m->n_images = 0;
}

int qv_mig_dest_nbd_start(struct qv_mig *m, struct qv_vm *vm, const char *listen,
			  const char *advert, char *ret_uri, size_t uri_size, struct qv_error *errp)
{
	qmp_client *c = qemu_instance_qmp(vm->inst);
	json_object *a, *addr, *data;
	char port_s[16];
	int port, r;

	r = qv_mig_pick_port(listen, &port, errp);
	if (r < 0)
		return r;
	snprintf(port_s, sizeof(port_s), "%d", port);
	data = json_object_new_object();
	json_object_object_add(data, "host", json_object_new_string(listen));
	json_object_object_add(data, "port", json_object_new_string(port_s));
	addr = json_object_new_object();
	json_object_object_add(addr, "type", json_object_new_string("inet"));
	json_object_object_add(addr, "data", data);
	a = json_object_new_object();
	json_object_object_add(a, "addr", addr);
	if (m->tls) { /* the objects qv_mig_tls_dest() created */
		size_t n = 0;
		for (size_t i = 0; i < vm->spec->n_disks; i++)
			n += !vm->spec->disks[i].readonly;
		json_object_object_add(a, "tls-creds", json_object_new_string(QEMU_TLS_CREDS_ID));
		json_object_object_add(a, "tls-authz", json_object_new_string(QEMU_TLS_AUTHZ_ID));
		/* one NBD client per mirrored disk */
		json_object_object_add(a, "max-connections", json_object_new_int((int)n));
	}
	r = qmp_client_execute(c, "nbd-server-start", a, 5000, NULL, errp);
	json_object_put(a);
	if (r < 0)
		return qv_error_prefix(errp, "nbd-server-start"), r;
	m->nbd = true;
	for (size_t i = 0; i < vm->spec->n_disks; i++) {
		char id[32], node[32];
		if (vm->spec->disks[i].readonly)
			continue;
		snprintf(id, sizeof(id), "qvmig-exp%zu", i);
		snprintf(node, sizeof(node), "disk%zu", i);
		a = json_object_new_object();
		json_object_object_add(a, "type", json_object_new_string("nbd"));
		json_object_object_add(a, "id", json_object_new_string(id));
		json_object_object_add(a, "node-name", json_object_new_string(node));
		json_object_object_add(a, "name", json_object_new_string(node));
		json_object_object_add(a, "writable", json_object_new_boolean(true));
		/* A writable export activates the node: for LUKS QEMU reopens the
		 * image and runs the keyslot's PBKDF again (seconds). */
		r = qmp_client_execute(c, "block-export-add", a, m->luks ? 60000 : 5000, NULL, errp);
		json_object_put(a);
		if (r < 0)
			return qv_error_prefix(errp, "block-export-add %s", node), r;
	}
	snprintf(ret_uri, uri_size, "tcp:%s:%d", advert, port);
	return 0;
}

void qv_mig_dest_nbd_stop(struct qv_mig *m, struct qv_vm *vm)
{
	struct qv_error err = {};

	if (!m->nbd || !vm || !vm->inst)
		return;
	if (qmp_client_execute(qemu_instance_qmp(vm->inst), "nbd-server-stop", NULL, 5000, NULL,
			       &err) < 0)
		log_warning("VM %s: nbd-server-stop failed: %s, ignoring", m->vm, err.message);
	m->nbd = false;
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
