/* SPDX-License-Identifier: MIT */
/* Cold migration, the source's driver (vm.move): checks, the journal
 * <state_dir>/move-out/<vm>.json, the copy, the ONE inventory transaction
 * that changes the owner, move.finish on the destination, then the local
 * copy removed. Until the owner changed, any failure aborts the
 * destination and leaves the VM as it was here (docs/cluster.md "Cold
 * migration"). */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster.h"
#include "daemon/image-internal.h"
#include "daemon/migrate-internal.h"
#include "daemon/vm-move-source.h"
#include "daemon/vm.h"
#include "storage/keystore.h"
#include "storage/pool.h"
#include "storage/qcow2-refs.h"

#define FINISH_RETRY_MS 3000
#define FINISH_TRIES_ANSWERED 40 /* then answer the caller, keep retrying */

static struct mv_out *outgoing;

static struct mv_out *find_vm(const char *vm)
{
	for (struct mv_out *o = outgoing; o; o = o->next)
		if (streq(o->vm, vm))
			return o;
	return NULL;
}

static void journal_path(struct mv_out *o, char *buf, size_t size)
{
	snprintf(buf, size, "%s/" MV_OUT_DIR "/%s.json", o->d->cfg.state_dir, o->vm);
}

static int journal(struct mv_out *o, const char *phase)
{
	_cleanup_json_ json_object *j = json_object_new_object();
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/" MV_OUT_DIR, o->d->cfg.state_dir);
	(void)mkdir(path, 0700);
	journal_path(o, path, sizeof(path));
	json_object_object_add(j, "vm", json_object_new_string(o->vm));
	json_object_object_add(j, "token", json_object_new_string(o->token));
	json_object_object_add(j, "to", json_object_new_string(o->to));
	json_object_object_add(j, "dest_host", json_object_new_string(o->dest_host));
	json_object_object_add(j, "phase", json_object_new_string(phase));
	return mv_write_json(path, j);
}

static void out_free(struct mv_out *o)
{
	char path[PATH_MAX];

	for (struct mv_out **p = &outgoing; *p; p = &(*p)->next)
		if (*p == o) {
			*p = o->next;
			break;
		}
	journal_path(o, path, sizeof(path));
	(void)unlink(path);
	qv_source_remove(o->tick);
	json_object_put(o->spec);
	json_object_put(o->keys);
	json_object_put(o->dest_paths);
	free(o);
}

/* The VM is ours again, as it was. */
static void release_vm(struct mv_out *o)
{
	struct qv_vm *vm = qv_vm_find(o->d, o->vm);

	if (vm && vm->state == QV_VM_MIGRATING && !vm->inst)
		vm->state = QV_VM_STOPPED;
}

static void progress(struct mv_out *o)
{
	qv_rpc_client *c = o->call ? qv_rpc_call_client(o->call) : NULL;
	uint64_t done = atomic_load(&o->done), ms = qv_now_ms() - o->started_ms;
	json_object *p;

	if (!c || qv_rpc_call_client_gone(o->call))
		return;
	p = json_object_new_object();
	json_object_object_add(p, "op_id", json_object_new_string(o->token));
	json_object_object_add(p, "vm", json_object_new_string(o->vm));
	json_object_object_add(p, "phase", json_object_new_string("copy"));
	json_object_object_add(p, "done", json_object_new_int64((int64_t)done));
	json_object_object_add(p, "total", json_object_new_int64((int64_t)o->total));
	json_object_object_add(p, "rate", json_object_new_int64(ms ? (int64_t)(done * 1000 / ms) : 0));
	(void)qv_rpc_client_notify(c, "progress", p);
	json_object_put(p);
}

static void tick(qv_source *s, void *ud)
{
	struct mv_out *o = ud;

	(void)s;
	o->tick = NULL;
	progress(o);
	if (o->phase == MV_OUT_COPYING)
		(void)qv_loop_add_timer(o->d->loop, 1000, tick, o, &o->tick);
}

static int push_job(struct mv_out *o, qv_work_fn run, qv_done_fn done)
{
	qv_workq *q;
	int r = mv_workq(o->d, &q);

	return r < 0 ? r : qv_workq_push(q, run, done, o);
}

/* --- failure before the owner changed: abort the destination ------------- */

static void abort_done(void *ud, bool cancelled)
{
	struct mv_out *o = ud;

	if (!cancelled && o->r < 0)
		log_warning("VM %s: move.abort on %s failed, ignoring (the destination drops the "
			    "partial copy after %d s idle or at its restart): %s", o->vm, o->to,
			    MV_IDLE_MS / 1000, o->err.message);
	release_vm(o);
	if (o->call)
		qv_rpc_call_error(o->call, &o->fail);
	log_warning("VM %s: move to %s failed, the VM stays here: %s", o->vm, o->to,
		    o->fail.message);
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "to", json_object_new_string(o->to));
	json_object_object_add(ev, "error", json_object_new_string(o->fail.message));
	qv_daemon_emit(o->d, o->vm, "move-failed", ev);
	out_free(o);
}

static void fail(struct mv_out *o, const struct qv_error *err)
{
	o->fail = *err;
	o->phase = MV_OUT_ABORTING;
	if (o->prepared) {
		o->step_finish = false;
		if (push_job(o, mv_step_run, abort_done) >= 0)
			return;
	}
	o->r = 0;
	abort_done(o, false);
}

/* --- success: the destination defined it; remove our copy ---------------- */

static void remove_disk(struct qv_daemon *d, const char *path)
{
	struct image_state *ist = d->image_state;
	_cleanup_free_ char *dup = strdup(path);
	struct qv_error err = {};

	if (!dup)
		return;
	if (ist && ist->pool && streq(dirname(dup), qv_pool_dir(ist->pool))) {
		char name[PATH_MAX];
		const char *base = strrchr(path, '/') + 1;
		snprintf(name, sizeof(name), "%s", base);
		char *dot = strrchr(name, '.');
		if (dot)
			*dot = '\0';
		if (qv_pool_delete(ist->pool, name, &err) == 0) {
			if (ist->keys && qv_keystore_has(ist->keys, name))
				(void)qv_keystore_remove(ist->keys, name, NULL);
			return;
		}
		log_warning("Cannot delete pool image %s, unlinking it: %s", name, err.message);
	}
	if (unlink(path) < 0 && errno != ENOENT)
		log_warning_errno(errno, "Cannot remove %s, ignoring: %m", path);
}

static void complete(struct mv_out *o)
{
	struct qv_vm *vm = qv_vm_find(o->d, o->vm);
	struct qv_error err = {};
	json_object *res = json_object_new_object(), *disks = json_object_new_array();

	if (vm) {
		_cleanup_free_ char *run_dir = vm->run_dir ? strdup(vm->run_dir) : NULL;
		vm->state = QV_VM_STOPPED;
		if (qv_vm_undefine(vm, &err) < 0)
			log_error("VM %s moved to %s but cannot be undefined here: %s", o->vm,
				  o->to, err.message);
		else if (run_dir)
			mv_rm_dir(run_dir); /* its logs went with it: nothing left here */
		qv_cluster_vm_undefined(o->d, o->vm);
	}
	for (size_t i = 0; i < o->n; i++) {
		char h[17];
		json_object *dk = json_object_new_object();
		if (!o->disks[i].copy) {
			json_object_put(dk);
			continue;
		}
		remove_disk(o->d, o->disks[i].path);
		mv_hex64(o->disks[i].csum, h);
		json_object_object_add(dk, "source", json_object_new_string(o->disks[i].path));
		json_object *p = o->dest_paths ? json_object_array_get_idx(o->dest_paths,
									    json_object_array_length(disks))
					       : NULL;
		json_object_object_add(dk, "path", json_object_get(p));
		json_object_object_add(dk, "size", json_object_new_int64((int64_t)o->disks[i].size));
		json_object_object_add(dk, "checksum", json_object_new_string(h));
		json_object_array_add(disks, dk);
	}
	log_info("VM %s: moved to %s (%s); local copy removed", o->vm,
		 o->dest_host[0] ? o->dest_host : o->to, o->token);
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "to", json_object_new_string(o->dest_host[0] ? o->dest_host : o->to));
	qv_daemon_emit(o->d, o->vm, "moved-out", ev);
	json_object_object_add(res, "name", json_object_new_string(o->vm));
	json_object_object_add(res, "from", o->d->cfg.cluster_host
						    ? json_object_new_string(o->d->cfg.cluster_host)
						    : NULL);
	json_object_object_add(res, "to", json_object_new_string(o->to));
	json_object_object_add(res, "host", o->dest_host[0] ? json_object_new_string(o->dest_host)
							    : NULL);
	json_object_object_add(res, "token", json_object_new_string(o->token));
	json_object_object_add(res, "bytes", json_object_new_int64((int64_t)o->total));
	json_object_object_add(res, "elapsed_ms",
			       json_object_new_int64((int64_t)(qv_now_ms() - o->started_ms)));
	json_object_object_add(res, "disks", disks);
	if (o->call)
		qv_rpc_call_reply(o->call, res);
	else
		json_object_put(res);
	out_free(o);
}

static void finish_push(struct mv_out *o);

static void finish_retry(qv_source *s, void *ud)
{
	struct mv_out *o = ud;

	(void)s;
	o->tick = NULL;
	finish_push(o);
}

static void finish_done(void *ud, bool cancelled)
{
	struct mv_out *o = ud;

	if (cancelled)
		return; /* shutting down: the journal says "switched", the restart finishes */
	if (o->r >= 0) {
		complete(o);
		return;
	}
	o->finish_tries++;
	log_warning("VM %s: move.finish on %s failed (try %u), retrying: %s", o->vm, o->to,
		    o->finish_tries, o->err.message);
	if (o->finish_tries == FINISH_TRIES_ANSWERED && o->call) {
		qv_error_prefix(&o->err, "VM %s now belongs to %s (inventory) but the destination "
				"did not finish yet; this daemon keeps retrying", o->vm,
				o->dest_host[0] ? o->dest_host : o->to);
		qv_rpc_call_error(TAKE_PTR(o->call), &o->err);
	}
	(void)qv_loop_add_timer(o->d->loop,
				o->finish_tries < FINISH_TRIES_ANSWERED ? FINISH_RETRY_MS : 30000,
				finish_retry, o, &o->tick);
}

static void finish_push(struct mv_out *o)
{
	o->phase = MV_OUT_FINISHING;
	o->step_finish = true;
	if (push_job(o, mv_step_run, finish_done) < 0)
		(void)qv_loop_add_timer(o->d->loop, FINISH_RETRY_MS, finish_retry, o, &o->tick);
}

/* --- the owner switch ------------------------------------------------------- */

static void switched(struct qv_daemon *d, int r, const struct qv_error *err, const char *value,
		     void *ud);

static void owner_checked(struct qv_daemon *d, int r, const struct qv_error *err,
			  const char *owner, void *ud);

static void owner_retry(qv_source *s, void *ud)
{
	struct mv_out *o = ud;

	(void)s;
	o->tick = NULL;
	if (mv_cluster_owner(o->d, o->vm, owner_checked, o) < 0)
		(void)qv_loop_add_timer(o->d->loop, 5000, owner_retry, o, &o->tick);
}

static void owner_checked(struct qv_daemon *d, int r, const struct qv_error *err,
			  const char *owner, void *ud)
{
	struct mv_out *o = ud;
	struct qv_error e = {};

	(void)d;
	if (r >= 0 && streq(owner, o->dest_host)) {
		switched(d, 0, NULL, owner, o);
		return;
	}
	if (r < 0 && o->call == NULL) { /* recovery, etcd unreachable: ask again later */
		log_warning("VM %s: cannot read the inventory to resolve an interrupted move, "
			    "retrying in 5 s: %s", o->vm, err->message);
		(void)qv_loop_add_timer(d->loop, 5000, owner_retry, o, &o->tick);
		return;
	}
	if (o->fail.message[0])
		e = o->fail;
	else
		qv_error_set(&e, EAGAIN, QV_REASON_CONFLICT, "the inventory owner was not changed");
	fail(o, &e);
}

static void switched(struct qv_daemon *d, int r, const struct qv_error *err, const char *value,
		     void *ud)
{
	struct mv_out *o = ud;

	(void)value;
	if (r < 0) {
		o->fail = *err;
		qv_error_prefix(&o->fail, "changing the owner in the cluster inventory");
		/* A transaction whose answer was lost may have committed: the
		 * inventory decides. A refused one (conflict) did not. */
		if (r != -ESTALE && r != -EEXIST && r != -EBUSY &&
		    mv_cluster_owner(d, o->vm, owner_checked, o) >= 0)
			return;
		fail(o, &o->fail);
		return;
	}
	/* The point of no return: the destination owns the VM now. */
	if (journal(o, "switched") < 0)
		log_warning("VM %s: cannot update the move journal, ignoring", o->vm);
	qv_mig_test_crash_point("move-switched"); /* tests: the restart must finish it */
	log_info("VM %s: owner is now %s", o->vm, o->dest_host[0] ? o->dest_host : o->to);
	finish_push(o);
}

static void copy_done(void *ud, bool cancelled)
{
	struct mv_out *o = ud;
	struct qv_error err = {};

	qv_source_remove(TAKE_PTR(o->tick));
	if (cancelled || o->r < 0) {
		if (cancelled)
			qv_error_set(&err, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
		fail(o, cancelled ? &err : &o->err);
		return;
	}
	progress(o);
	o->phase = MV_OUT_SWITCHING;
	if (journal(o, "verified") < 0) {
		qv_error_set(&err, EIO, QV_REASON_IO_ERROR, "cannot write the move journal");
		fail(o, &err);
		return;
	}
	if (!o->d->cluster) { /* two daemons without a cluster: the journal is the switch */
		switched(o->d, 0, NULL, NULL, o);
		return;
	}
	if (!o->dest_host[0] || streq(o->dest_host, o->d->cfg.cluster_host)) {
		qv_error_set(&err, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "the destination is not another host of this cluster");
		fail(o, &err);
		return;
	}
	if (mv_cluster_switch(o->d, o->vm, o->dest_host, switched, o) < 0) {
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		fail(o, &err);
	}
}

static void copy_start(struct mv_out *o)
{
	struct qv_error err = {};

	o->phase = MV_OUT_COPYING;
	o->started_ms = qv_now_ms();
	log_info("VM %s: moving to %s (%s, %llu bytes to read)", o->vm, o->to, o->token,
		 (unsigned long long)o->total);
	(void)qv_loop_add_timer(o->d->loop, 1000, tick, o, &o->tick);
	if (push_job(o, mv_copy_run, copy_done) < 0) {
		qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "cannot start the copy thread");
		fail(o, &err);
	}
}

static void resolved(struct qv_daemon *d, int r, const struct qv_error *err, const char *addr,
		     void *ud)
{
	struct mv_out *o = ud;

	(void)d;
	if (r < 0) {
		fail(o, err);
		return;
	}
	snprintf(o->to, sizeof(o->to), "tls://%s", addr);
	if (journal(o, "copying") < 0)
		log_warning("VM %s: cannot update the move journal, ignoring", o->vm);
	copy_start(o);
}

/* --- start ------------------------------------------------------------------ */

int mv_source_begin(struct mv_out *o, const char *host, struct qv_error *errp)
{
	struct qv_vm *vm = qv_vm_find(o->d, o->vm);
	int r;

	if (!vm || journal(o, "copying") < 0) {
		r = vm ? qv_error_set(errp, EIO, QV_REASON_IO_ERROR,
				      "cannot write the move journal in %s/" MV_OUT_DIR,
				      o->d->cfg.state_dir)
		       : qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "VM %s is gone", o->vm);
		out_free(o);
		return r;
	}
	/* In memory only: a restart finds it stopped and the journal says what
	 * to do. Refuses start, undefine and migrate meanwhile. */
	vm->state = QV_VM_MIGRATING;
	o->next = outgoing;
	outgoing = o;
	if (!host) {
		copy_start(o);
		return 0;
	}
	o->phase = MV_OUT_RESOLVING;
	r = mv_cluster_resolve(o->d, host, resolved, o);
	if (r < 0) {
		release_vm(o);
		out_free(o);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot query the cluster store");
	}
	return 0;
}

bool mv_source_busy(const char *vm)
{
	return find_vm(vm) != NULL;
}

/* --- restart ---------------------------------------------------------------- */

static void resume_one(struct qv_daemon *d, json_object *j, const char *path)
{
	struct mv_out *o = calloc(1, sizeof(*o));
	const char *phase = NULL;
	json_object *v;
	struct qv_vm *vm;

	if (!o)
		return;
	o->d = d;
	o->started_ms = qv_now_ms();
	if (json_object_object_get_ex(j, "vm", &v))
		snprintf(o->vm, sizeof(o->vm), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(j, "token", &v))
		snprintf(o->token, sizeof(o->token), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(j, "to", &v))
		snprintf(o->to, sizeof(o->to), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(j, "dest_host", &v))
		snprintf(o->dest_host, sizeof(o->dest_host), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(j, "phase", &v))
		phase = json_object_get_string(v);
	vm = qv_vm_find(d, o->vm);
	if (!vm || !mv_token_valid(o->token) || !phase) {
		/* Finished (the VM is gone) or unreadable. */
		(void)unlink(path);
		free(o);
		return;
	}
	vm->state = QV_VM_MIGRATING;
	o->next = outgoing;
	outgoing = o;
	o->prepared = true;
	/* The disks to remove once finished: the VM's own (still defined here). */
	o->n = vm->spec->n_disks < MV_MAX_DISKS ? vm->spec->n_disks : MV_MAX_DISKS;
	for (size_t i = 0; i < o->n; i++) {
		snprintf(o->disks[i].path, sizeof(o->disks[i].path), "%s", vm->spec->disks[i].path);
		o->disks[i].copy = !vm->spec->disks[i].readonly;
	}
	qv_error_set(&o->fail, EINTR, QV_REASON_CANCELLED, "interrupted by a restart");
	log_info("VM %s: resuming the move %s to %s cut in phase %s", o->vm, o->token, o->to,
		 phase);
	if (streq(phase, "switched"))
		finish_push(o);
	else if (streq(phase, "verified") && d->cluster && o->dest_host[0] &&
		 mv_cluster_owner(d, o->vm, owner_checked, o) >= 0)
		; /* the inventory decides */
	else
		fail(o, &o->fail);
}

static void load_journal(struct qv_daemon *d, const char *path, const char *name)
{
	size_t n = strlen(name);
	_cleanup_json_ json_object *j = NULL;

	if (n < 6 || !streq(name + n - 5, ".json"))
		return;
	j = mv_read_json(path);
	if (j)
		resume_one(d, j, path);
	else
		(void)unlink(path);
}

void mv_source_load(struct qv_daemon *d)
{
	mv_scan_dir(d, MV_OUT_DIR, load_journal);
}

void mv_source_cancel_all(void)
{
	for (struct mv_out *o = outgoing; o; o = o->next)
		atomic_store(&o->cancel, true);
}
