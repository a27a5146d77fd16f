/* SPDX-License-Identifier: MIT */
/* One backup of a running VM, as a state machine on the loop
 * (docs/backup.md "How a backup runs"):
 *
 *   query-named-block-nodes   sizes, formats, dirty bitmaps of disk<N>
 *   decide                    incremental, or full and why
 *   targets                   <store>/.<id>.partial/disk<N>.{raw,qcow2}, opened
 *                             by the daemon, passed with add-fd, blockdev-add
 *   [guest-fsfreeze-freeze]   when the VM has a guest agent
 *   transaction               block-dirty-bitmap-add qvisor-<id> (persistent)
 *                             + blockdev-backup sync=full, or sync=bitmap on
 *                             the chain's bitmap with bitmap-mode=never
 *   [guest-fsfreeze-thaw]
 *   query-jobs every 250 ms   progress; until every job concluded
 *   job-dismiss, blockdev-del, remove-fd
 *   worker thread             fsync, checksums, metadata, rename into place
 *   chain state, then block-dirty-bitmap-remove of the previous bitmap
 *
 * The new bitmap starts at the very instant the backup's point in time is
 * taken and the old one is only removed once the new backup is published,
 * so a failure, a cancel or a daemon killed at any step leaves the old
 * bitmap in place: the next incremental still sees every write. */
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/backup-internal.h"
#include "qemu/argv.h"
#include "qemu/qga.h"
#include "storage/copy.h"
#include "storage/qemu-img.h"

#define BK_POLL_MS 250
#define BK_FDSET_BASE 3000
#define BK_FREEZE_TIMEOUT_MS 10000

struct bk_disk {
	unsigned idx;
	char node[16];
	bool found, qcow2;
	uint64_t vsize;
	bool has_old, old_inconsistent;
	char *stale[8]; /* qvisor-* bitmaps that belong to no chain */
	size_t n_stale;
	int fd;         /* target, ours */
	char file[32];
	char *error;    /* the job's error */
	bool concluded;
	uint64_t cur, total;
};

struct bk_run {
	struct bk_run *next;
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	qemu_instance *inst;
	qv_rpc_call *call;
	char store[PATH_MAX];
	char id[QV_BACKUP_ID_MAX + 1];
	char bitmap[QV_BACKUP_ID_MAX + 16];
	bool want_full, incremental, cancelled, txn_done, agent;
	const char *phase;
	struct bk_chain_state chain;
	bool have_chain;
	char forced[512];
	bool quiesced, frozen;
	char quiesce_note[256];
	int partial_fd;
	size_t n;
	struct bk_disk disks[QV_BACKUP_MAX_DISKS];
	json_object *spec;
	int64_t created_ms;
	struct qv_error err;
	qv_source *poll;
	struct qv_backup_meta *meta;
	char run_dir[PATH_MAX];
};

static struct bk_run *runs;

static struct bk_run *find_run(const char *vm)
{
	for (struct bk_run *r = runs; r; r = r->next)
		if (streq(r->vm, vm))
			return r;
	return NULL;
}

bool bk_run_busy(struct qv_daemon *d, const char *vm)
{
	return find_run(vm) != NULL;
}

static void run_free(struct bk_run *r)
{
	for (struct bk_run **p = &runs; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	qv_source_remove(r->poll);
	for (size_t i = 0; i < r->n; i++) {
		if (r->disks[i].fd >= 0)
			close(r->disks[i].fd);
		for (size_t k = 0; k < r->disks[i].n_stale; k++)
			free(r->disks[i].stale[k]);
		free(r->disks[i].error);
	}
	if (r->partial_fd >= 0)
		close(r->partial_fd);
	json_object_put(r->spec);
	qv_backup_meta_free(r->meta);
	free(r);
}

static json_object *obj2(const char *k1, json_object *v1, const char *k2, json_object *v2)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, k1, v1);
	if (k2)
		json_object_object_add(o, k2, v2);
	return o;
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

static void progress_notify(struct bk_run *r, uint64_t done, uint64_t total)
{
	qv_rpc_client *c = qv_rpc_call_client(r->call);
	json_object *p;

	if (!c || !total || qv_rpc_call_client_gone(r->call))
		return;
	p = obj2("op_id", jstr(r->id), "phase", jstr(r->phase));
	json_object_object_add(p, "done", json_object_new_int64((int64_t)done));
	json_object_object_add(p, "total", json_object_new_int64((int64_t)total));
	(void)qv_rpc_client_notify(c, "progress", p);
	json_object_put(p);
}

/* --- the end: success or failure --------------------------------------- */

static void fail_done(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	json_object *data;

	qv_backup_partial_discard(r->store, r->id);
	log_warning("VM %s: backup %s failed: %s", r->vm, r->id, r->err.message);
	data = obj2("id", jstr(r->id), "error", jstr(r->err.message));
	qv_daemon_emit(r->d, r->vm, "backup-failed", data);
	qv_rpc_call_error(r->call, &r->err);
	run_free(r);
}

/* Undo what QEMU holds (targets, fdsets, the new bitmap), drop the partial
 * directory, answer with r->err. */
static void run_fail(struct bk_run *r)
{
	struct bk_seq *s = bk_seq_new(r->d, r->vm, r->inst);
	char name[32];

	if (!r->err.set)
		qv_error_set(&r->err, EIO, QV_REASON_INTERNAL, "backup failed");
	if (!s)
		return fail_done(0, NULL, r);
	for (size_t i = 0; i < r->n; i++) {
		snprintf(name, sizeof(name), "qvbk-%zu", i);
		if (r->txn_done)
			bk_seq_add(s, "job-dismiss", obj2("id", jstr(name), NULL, NULL), -1, true, NULL,
				   NULL);
		snprintf(name, sizeof(name), "qvbk-t%zu", i);
		bk_seq_add(s, "blockdev-del", obj2("node-name", jstr(name), NULL, NULL), -1, true,
			   NULL, NULL);
		bk_seq_add(s, "remove-fd",
			   obj2("fdset-id", json_object_new_int(BK_FDSET_BASE + (int)i), NULL, NULL),
			   -1, true, NULL, NULL);
		if (r->txn_done && r->disks[i].qcow2)
			bk_seq_add(s, "block-dirty-bitmap-remove",
				   obj2("node", jstr(r->disks[i].node), "name", jstr(r->bitmap)), -1,
				   true, NULL, NULL);
	}
	bk_seq_run(s, fail_done, r);
}

static void fail_with(struct bk_run *r, int error, const struct qv_error *err, const char *what)
{
	if (!r->err.set)
		qv_error_set(&r->err, error, err && err->set ? err->reason : NULL,
			     "Backup of VM %s failed (%s): %s", r->vm, what,
			     err && err->set ? err->message : strerror(-error));
	run_fail(r);
}

static bool check_cancel(struct bk_run *r)
{
	if (!r->cancelled)
		return false;
	qv_error_set(&r->err, ECANCELED, QV_REASON_CANCELLED, "Backup %s of VM %s was cancelled",
		     r->id, r->vm);
	run_fail(r);
	return true;
}

static void old_removed(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	json_object *res = qv_backup_meta_to_json(r->meta);

	json_object_object_add(res, "store", jstr(r->store));
	qv_daemon_emit(r->d, r->vm, "backup-completed",
		       obj2("id", jstr(r->id), "kind", jstr(r->incremental ? "incremental" : "full")));
	log_info("VM %s: backup %s (%s) complete, %" PRIu64 " bytes", r->vm, r->id,
		 r->incremental ? "incremental" : "full", r->meta->size);
	qv_rpc_call_reply(r->call, res);
	run_free(r);
}

static void finalized(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	struct bk_chain_state st = {};
	struct bk_seq *s;
	int e;

	if (error < 0)
		return fail_with(r, error, err, "writing the backup store");
	snprintf(st.store, sizeof(st.store), "%s", r->store);
	snprintf(st.chain, sizeof(st.chain), "%s", r->meta->chain);
	snprintf(st.last, sizeof(st.last), "%s", r->id);
	snprintf(st.bitmap, sizeof(st.bitmap), "%s", r->meta->bitmap ? r->meta->bitmap : "");
	st.n_disks = (unsigned)r->n;
	if ((e = bk_chain_save(r->d, r->vm, &st)) < 0)
		log_error_errno(e, "VM %s: cannot save the backup chain state (next backup is full): %m",
				r->vm);
	/* The previous bitmap has served: everything it saw is in this backup. */
	if (!(s = bk_seq_new(r->d, r->vm, r->inst)))
		return old_removed(0, NULL, r);
	for (size_t i = 0; r->have_chain && i < r->n; i++)
		if (r->disks[i].has_old && r->chain.bitmap[0] && !streq(r->chain.bitmap, r->bitmap))
			bk_seq_add(s, "block-dirty-bitmap-remove",
				   obj2("node", jstr(r->disks[i].node), "name", jstr(r->chain.bitmap)),
				   -1, true, NULL, NULL);
	bk_seq_run(s, old_removed, r);
}

/* Worker thread: nothing here touches daemon state. */
static int finalize_work(void *ud, struct qv_error *err)
{
	struct bk_run *r = ud;
	struct qv_backup_meta *m = r->meta;
	char path[PATH_MAX];
	struct stat st;
	int e;

	for (size_t i = 0; i < r->n; i++) {
		struct qv_backup_disk *d = &m->disks[i];
		if (fsync(r->disks[i].fd) < 0 || fstat(r->disks[i].fd, &st) < 0)
			return qv_error_set(err, errno, errno == ENOSPC ? QV_REASON_NO_SPACE
									: QV_REASON_IO_ERROR,
					    "%s: %m", r->disks[i].file);
		d->bytes = (uint64_t)st.st_blocks * 512;
		m->size += d->bytes;
		snprintf(path, sizeof(path), "%s/.%s.partial/%s", r->store, r->id, d->file);
		if ((e = qv_copy_checksum_file(path, &d->checksum, err)) < 0)
			return e;
	}
	m->completed_ms = qv_unix_ms();
	if ((e = qv_backup_meta_write(r->partial_fd, m, err)) < 0)
		return e;
	return qv_backup_partial_publish(r->store, r->id, err);
}

static int build_meta(struct bk_run *r)
{
	struct qv_backup_meta *m = calloc(1, sizeof(*m));
	struct qv_vm *vm = qv_vm_find(r->d, r->vm);

	if (!m || !vm || !(m->disks = calloc(r->n, sizeof(*m->disks)))) {
		qv_backup_meta_free(m);
		return -ENOMEM;
	}
	m->n_disks = r->n;
	m->id = strdup(r->id);
	m->vm = strdup(r->vm);
	m->incremental = r->incremental;
	m->parent = r->incremental ? strdup(r->chain.last) : NULL;
	m->chain = strdup(r->incremental ? r->chain.chain : r->id);
	m->bitmap = r->disks[0].qcow2 ? strdup(r->bitmap) : NULL;
	m->forced_full = r->forced[0] ? strdup(r->forced) : NULL;
	m->quiesced = r->quiesced;
	m->quiesce_note = r->quiesce_note[0] ? strdup(r->quiesce_note) : NULL;
	m->created_ms = r->created_ms;
	m->spec = json_object_get(r->spec);
	for (size_t i = 0; i < r->n; i++) {
		struct qv_backup_disk *d = &m->disks[i];
		d->index = r->disks[i].idx;
		d->source = strdup(vm->spec->disks[i].path);
		d->source_format = strdup(r->disks[i].qcow2 ? "qcow2" : "raw");
		d->virtual_size = r->disks[i].vsize;
		d->file = strdup(r->disks[i].file);
		d->format = strdup(r->incremental ? "qcow2" : "raw");
	}
	r->meta = m;
	return 0;
}

static void detached(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	int e;

	if (error < 0) {
		r->txn_done = true;
		return fail_with(r, error, err, "detaching the backup targets");
	}
	r->txn_done = false; /* jobs dismissed, targets gone: only the bitmap is left */
	for (size_t i = 0; i < r->n; i++)
		if (r->disks[i].error) {
			r->txn_done = true;
			if (r->cancelled)
				qv_error_set(&r->err, ECANCELED, QV_REASON_CANCELLED,
					     "Backup %s of VM %s was cancelled", r->id, r->vm);
			else
				qv_error_set(&r->err, EIO,
					     strstr(r->disks[i].error, "No space") ? QV_REASON_NO_SPACE
									     : QV_REASON_QEMU_ERROR,
					     "Backup %s of VM %s failed: disk %u: %s", r->id, r->vm,
					     r->disks[i].idx, r->disks[i].error);
			/* only the new bitmap to remove, the rest is gone already */
			return run_fail(r);
		}
	r->phase = "finalizing";
	if ((e = build_meta(r)) < 0 || (e = bk_work_start(r->d, finalize_work, finalized, r)) < 0) {
		r->txn_done = true;
		return fail_with(r, e, NULL, "finalizing");
	}
}

static void detach(struct bk_run *r)
{
	struct bk_seq *s = bk_seq_new(r->d, r->vm, r->inst);
	char name[32];

	if (!s)
		return fail_with(r, -ENOMEM, NULL, "detaching");
	for (size_t i = 0; i < r->n; i++) {
		snprintf(name, sizeof(name), "qvbk-%zu", i);
		bk_seq_add(s, "job-dismiss", obj2("id", jstr(name), NULL, NULL), -1, true, NULL, NULL);
		snprintf(name, sizeof(name), "qvbk-t%zu", i);
		bk_seq_add(s, "blockdev-del", obj2("node-name", jstr(name), NULL, NULL), -1, false,
			   NULL, NULL);
		bk_seq_add(s, "remove-fd",
			   obj2("fdset-id", json_object_new_int(BK_FDSET_BASE + (int)i), NULL, NULL),
			   -1, true, NULL, NULL);
	}
	r->phase = "detaching";
	bk_seq_run(s, detached, r);
}

/* --- job polling ------------------------------------------------------- */

static void on_jobs(json_object *ret, void *ud)
{
	struct bk_run *r = ud;
	char name[32];

	for (size_t i = 0; i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		snprintf(name, sizeof(name), "qvbk-%zu", i);
		for (size_t k = 0; ret && k < json_object_array_length(ret); k++) {
			json_object *j = json_object_array_get_idx(ret, k), *v;
			if (!json_object_object_get_ex(j, "id", &v) ||
			    !streq(json_object_get_string(v), name))
				continue;
			if (json_object_object_get_ex(j, "current-progress", &v))
				dk->cur = (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(j, "total-progress", &v))
				dk->total = (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(j, "status", &v) &&
			    streq(json_object_get_string(v), "concluded")) {
				dk->concluded = true;
				if (json_object_object_get_ex(j, "error", &v) && !dk->error)
					dk->error = strndup(json_object_get_string(v), 300);
			}
		}
	}
}

static void poll_jobs(qv_source *src, void *ud);

static void polled(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	uint64_t done = 0, total = 0;
	bool all = true;

	if (error < 0)
		return fail_with(r, error, err, "query-jobs");
	for (size_t i = 0; i < r->n; i++) {
		done += r->disks[i].cur;
		total += r->disks[i].total;
		all = all && r->disks[i].concluded;
	}
	progress_notify(r, done, total);
	if (all)
		return detach(r);
	if (qv_loop_add_timer(r->d->loop, BK_POLL_MS, poll_jobs, r, &r->poll) < 0)
		fail_with(r, -ENOMEM, NULL, "polling");
}

static void poll_jobs(qv_source *src, void *ud)
{
	struct bk_run *r = ud;
	struct bk_seq *s = bk_seq_new(r->d, r->vm, r->inst);

	r->poll = NULL;
	if (!s)
		return fail_with(r, -ENOMEM, NULL, "polling");
	bk_seq_add(s, "query-jobs", NULL, -1, false, on_jobs, r);
	bk_seq_run(s, polled, r);
}

/* --- transaction, with the guest frozen around it when it can be -------- */

static void on_thawed(json_object *result, const struct qv_error *err, bool misbehaved, void *ud)
{
	char *vm = ud;

	if (err)
		log_warning("VM %s: guest-fsfreeze-thaw after the backup failed: %s", vm,
			    err->message);
	free(vm);
}

static void thaw(struct bk_run *r)
{
	char sock[PATH_MAX], *name;
	qga_call *qc;

	if (!r->frozen || !(name = strdup(r->vm)))
		return;
	r->frozen = false;
	snprintf(sock, sizeof(sock), "%s/" QEMU_QGA_SOCK, r->run_dir);
	if (qga_call_start(r->d->loop, sock, "guest-fsfreeze-thaw", NULL, false, 0, on_thawed, name,
			   &qc) < 0) {
		log_warning("VM %s: cannot reach the guest agent to thaw", r->vm);
		free(name);
	}
}

static void txn_done(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;

	thaw(r);
	if (error < 0)
		return fail_with(r, error, err, "transaction");
	r->txn_done = true;
	r->phase = "copying";
	if (r->cancelled)
		bk_run_cancel(r->d, r->vm);
	poll_jobs(NULL, r);
}

static json_object *action(const char *type, json_object *data)
{
	return obj2("type", jstr(type), "data", data);
}

static void run_transaction(struct bk_run *r)
{
	struct bk_seq *s = bk_seq_new(r->d, r->vm, r->inst);
	json_object *acts = json_object_new_array();
	char job[32], tgt[32];

	if (check_cancel(r)) {
		json_object_put(acts);
		bk_seq_free(s);
		thaw(r);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		snprintf(job, sizeof(job), "qvbk-%zu", i);
		snprintf(tgt, sizeof(tgt), "qvbk-t%zu", i);
		if (dk->qcow2) {
			json_object *a = obj2("node", jstr(dk->node), "name", jstr(r->bitmap));
			json_object_object_add(a, "persistent", json_object_new_boolean(true));
			json_object_array_add(acts, action("block-dirty-bitmap-add", a));
		}
		json_object *b = obj2("job-id", jstr(job), "device", jstr(dk->node));
		json_object_object_add(b, "target", jstr(tgt));
		json_object_object_add(b, "auto-dismiss", json_object_new_boolean(false));
		if (r->incremental) {
			json_object_object_add(b, "sync", jstr("bitmap"));
			json_object_object_add(b, "bitmap", jstr(r->chain.bitmap));
			json_object_object_add(b, "bitmap-mode", jstr("never"));
		} else {
			json_object_object_add(b, "sync", jstr("full"));
		}
		json_object_array_add(acts, action("blockdev-backup", b));
	}
	if (!s) {
		json_object_put(acts);
		thaw(r);
		return fail_with(r, -ENOMEM, NULL, "transaction");
	}
	r->created_ms = qv_unix_ms();
	r->phase = "starting";
	bk_seq_add(s, "transaction", obj2("actions", acts, NULL, NULL), -1, false, NULL,
		   NULL);
	bk_seq_run(s, txn_done, r);
}

static void on_frozen(json_object *result, const struct qv_error *err, bool misbehaved, void *ud)
{
	struct bk_run *r = ud;

	if (err) {
		snprintf(r->quiesce_note, sizeof(r->quiesce_note),
			 "guest-fsfreeze-freeze failed: %.200s", err->message);
		log_warning("VM %s: backup %s not quiesced: %s", r->vm, r->id, err->message);
	} else {
		r->quiesced = r->frozen = true;
	}
	run_transaction(r);
}

static void attached(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	char sock[PATH_MAX];
	qga_call *qc;

	if (error < 0)
		return fail_with(r, error, err, "attaching the backup targets");
	if (check_cancel(r))
		return;
	if (!r->agent) {
		snprintf(r->quiesce_note, sizeof(r->quiesce_note),
			 "the VM has no guest agent (spec.guest_agent): crash-consistent only");
		return run_transaction(r);
	}
	r->phase = "quiescing";
	snprintf(sock, sizeof(sock), "%s/" QEMU_QGA_SOCK, r->run_dir);
	if (qga_call_start(r->d->loop, sock, "guest-fsfreeze-freeze", NULL, false,
			   BK_FREEZE_TIMEOUT_MS, on_frozen, r, &qc) < 0) {
		snprintf(r->quiesce_note, sizeof(r->quiesce_note), "guest agent unreachable");
		run_transaction(r);
	}
}

/* --- decide full or incremental, create and attach the targets ---------- */

static void on_nodes(json_object *ret, void *ud)
{
	struct bk_run *r = ud;

	for (size_t k = 0; ret && k < json_object_array_length(ret); k++) {
		json_object *n = json_object_array_get_idx(ret, k), *v, *bms, *img;
		if (!json_object_object_get_ex(n, "node-name", &v))
			continue;
		for (size_t i = 0; i < r->n; i++) {
			struct bk_disk *dk = &r->disks[i];
			if (!streq(json_object_get_string(v), dk->node))
				continue;
			dk->found = true;
			if (json_object_object_get_ex(n, "drv", &v))
				dk->qcow2 = streq(json_object_get_string(v), "qcow2");
			if (json_object_object_get_ex(n, "image", &img) &&
			    json_object_object_get_ex(img, "virtual-size", &v))
				dk->vsize = (uint64_t)json_object_get_int64(v);
			if (!json_object_object_get_ex(n, "dirty-bitmaps", &bms))
				continue;
			for (size_t b = 0; b < json_object_array_length(bms); b++) {
				json_object *bm = json_object_array_get_idx(bms, b), *nm, *inc;
				if (!json_object_object_get_ex(bm, "name", &nm))
					continue;
				const char *name = json_object_get_string(nm);
				if (r->have_chain && streq(name, r->chain.bitmap)) {
					dk->has_old = true;
					dk->old_inconsistent =
						json_object_object_get_ex(bm, "inconsistent", &inc) &&
						json_object_get_boolean(inc);
				} else if (strncmp(name, "qvisor-", 7) == 0 && dk->n_stale < 8) {
					dk->stale[dk->n_stale++] = strdup(name);
				}
			}
		}
	}
}

/* Incremental when the chain allows it; else full and r->forced says why. */
static void decide(struct bk_run *r)
{
	struct qv_backup_meta *last = NULL;
	char *why = r->forced;
	size_t sz = sizeof(r->forced);

	r->incremental = false;
	if (r->want_full)
		return;
	if (!r->have_chain) {
		snprintf(why, sz, "first backup of VM %s (no backup chain yet)", r->vm);
		return;
	}
	if (!streq(r->chain.store, r->store)) {
		snprintf(why, sz, "the backup chain is in another store (%s)", r->chain.store);
		return;
	}
	if (qv_backup_meta_load(r->store, r->chain.last, &last, NULL) < 0) {
		snprintf(why, sz, "the previous backup %s is no longer in the store", r->chain.last);
		return;
	}
	bool same = last->n_disks == r->n;
	for (size_t i = 0; same && i < r->n; i++)
		same = last->disks[i].virtual_size == r->disks[i].vsize;
	qv_backup_meta_free(last);
	if (!same) {
		snprintf(why, sz, "the VM's disks changed since backup %s", r->chain.last);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		if (!dk->qcow2) {
			snprintf(why, sz, "disk %u is raw: raw images keep no persistent dirty bitmap",
				 dk->idx);
			return;
		}
		if (!dk->has_old) {
			snprintf(why, sz, "disk %u has no dirty bitmap %s: QEMU was killed or crashed "
				 "before it stored the bitmap in the image (it does at a clean shutdown), "
				 "or the image was replaced", dk->idx, r->chain.bitmap);
			return;
		}
		if (dk->old_inconsistent) {
			snprintf(why, sz, "the dirty bitmap of disk %u is inconsistent: QEMU did not "
				 "close the image cleanly (it crashed or was killed), so writes since "
				 "backup %s may be missing from it", dk->idx, r->chain.last);
			return;
		}
	}
	r->incremental = true;
}

static int create_target(struct bk_run *r, struct bk_disk *dk, struct qv_error *errp)
{
	char path[PATH_MAX], size[32];
	int e;

	snprintf(dk->file, sizeof(dk->file), "disk%u.%s", dk->idx, r->incremental ? "qcow2" : "raw");
	snprintf(path, sizeof(path), "%s/.%s.partial/%s", r->store, r->id, dk->file);
	if (r->incremental) {
		/* Only the changed clusters get allocated: the file's allocation
		 * is the incremental's content (docs/backup.md). */
		snprintf(size, sizeof(size), "%" PRIu64, dk->vsize);
		char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o",
				 "cluster_size=65536", path, size, NULL };
		if ((e = qv_qemu_img_run(argv, NULL, errp)) < 0)
			return e;
		dk->fd = openat(r->partial_fd, dk->file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	} else {
		dk->fd = openat(r->partial_fd, dk->file,
				O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (dk->fd >= 0 && ftruncate(dk->fd, (off_t)dk->vsize) < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", path);
	}
	if (dk->fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", path);
	return 0;
}

static void queried(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	struct qv_error e = {};
	struct bk_seq *s;
	char fdset[32], tgt[32];
	int x;

	if (error < 0)
		return fail_with(r, error, err, "query-named-block-nodes");
	for (size_t i = 0; i < r->n; i++)
		if (!r->disks[i].found || !r->disks[i].vsize) {
			qv_error_set(&e, ENODEV, QV_REASON_QEMU_ERROR, "QEMU has no block node %s",
				     r->disks[i].node);
			return fail_with(r, -ENODEV, &e, "finding the disks");
		}
	decide(r);
	snprintf(r->bitmap, sizeof(r->bitmap), "qvisor-%s", r->id);
	if (!(s = bk_seq_new(r->d, r->vm, r->inst)))
		return fail_with(r, -ENOMEM, NULL, "attaching");
	for (size_t i = 0; i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		if ((x = create_target(r, dk, &e)) < 0 || (x = fcntl(dk->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
			bk_seq_free(s);
			return fail_with(r, x, &e, "creating the backup file");
		}
		bk_seq_add(s, "add-fd", obj2("fdset-id", json_object_new_int(BK_FDSET_BASE + (int)i),
					     NULL, NULL), x, false, NULL, NULL);
		snprintf(fdset, sizeof(fdset), "/dev/fdset/%d", BK_FDSET_BASE + (int)i);
		snprintf(tgt, sizeof(tgt), "qvbk-t%zu", i);
		json_object *file = obj2("driver", jstr("file"), "filename", jstr(fdset));
		json_object_object_add(file, "discard", jstr("unmap"));
		json_object *a = obj2("driver", jstr(r->incremental ? "qcow2" : "raw"), "node-name",
				      jstr(tgt));
		json_object_object_add(a, "file", file);
		/* zeros become holes (raw) or zero clusters (qcow2): a sparse backup */
		json_object_object_add(a, "discard", jstr("unmap"));
		json_object_object_add(a, "detect-zeroes", jstr("unmap"));
		bk_seq_add(s, "blockdev-add", a, -1, false, NULL, NULL);
		for (size_t k = 0; k < dk->n_stale; k++)
			bk_seq_add(s, "block-dirty-bitmap-remove",
				   obj2("node", jstr(dk->node), "name", jstr(dk->stale[k])), -1, true,
				   NULL, NULL);
	}
	r->phase = "attaching";
	bk_seq_run(s, attached, r);
}

int bk_default_store(struct qv_daemon *d, char *buf, size_t size)
{
	snprintf(buf, size, "%s/backups", d->cfg.state_dir);
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int bk_run_start(struct qv_daemon *d, qv_rpc_call *call, const struct bk_params *p)
{
	struct qv_vm *vm = qv_vm_find(d, p->vm);
	struct qv_error err = {};
	struct bk_run *r;
	struct bk_seq *s;
	int e;

	if (!vm)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", p->vm);
	if (!vm->inst || (vm->state != QV_VM_RUNNING && vm->state != QV_VM_PAUSED))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "Cannot back up VM %s: it is %s (backups are of running or paused "
				    "VMs; copy a stopped VM's images with image clone)",
				    p->vm, qv_vm_state_to_string(vm->state));
	if (vm->spec->n_disks == 0 || vm->spec->n_disks > QV_BACKUP_MAX_DISKS)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "VM %s has %zu disks: a backup needs 1..%d", p->vm,
				    vm->spec->n_disks, QV_BACKUP_MAX_DISKS);
	if (find_run(p->vm))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "A backup of VM %s is already running", p->vm);
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	r->d = d;
	r->call = call;
	r->inst = vm->inst;
	r->partial_fd = -1;
	r->want_full = p->full;
	r->agent = vm->spec->guest_agent && vm->state == QV_VM_RUNNING && vm->run_dir;
	r->phase = "preparing";
	snprintf(r->vm, sizeof(r->vm), "%s", p->vm);
	snprintf(r->store, sizeof(r->store), "%s", p->store);
	snprintf(r->run_dir, sizeof(r->run_dir), "%s", vm->run_dir ? vm->run_dir : "");
	r->n = vm->spec->n_disks;
	for (size_t i = 0; i < r->n; i++) {
		r->disks[i].idx = (unsigned)i;
		r->disks[i].fd = -1;
		snprintf(r->disks[i].node, sizeof(r->disks[i].node), "disk%zu", i);
	}
	r->spec = vm_spec_to_json(vm->spec);
	r->have_chain = bk_chain_load(d, p->vm, &r->chain) == 0;
	_cleanup_free_ char *id = NULL;
	if ((e = qv_backup_new_id(r->store, r->vm, qv_unix_ms(), &id)) < 0 ||
	    strlen(id) > QV_BACKUP_ID_MAX ||
	    (e = qv_backup_partial_create(r->store, id, &r->partial_fd, &err)) < 0) {
		run_free(r);
		if (!err.set)
			qv_error_set(&err, e, QV_REASON_IO_ERROR, "backup store %s: %s", p->store,
				     strerror(-e));
		return qv_rpc_call_error(call, &err), 0;
	}
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->next = runs;
	runs = r;
	log_info("VM %s: backup %s to %s started", r->vm, r->id, r->store);
	if (!(s = bk_seq_new(d, r->vm, r->inst)))
		return fail_with(r, -ENOMEM, NULL, "starting"), 0;
	bk_seq_add(s, "query-named-block-nodes", obj2("flat", json_object_new_boolean(true), NULL,
						      NULL), -1, false, on_nodes, r);
	bk_seq_run(s, queried, r);
	return 0;
}

json_object *bk_run_status(struct qv_daemon *d, const char *vm)
{
	struct bk_run *r = find_run(vm);
	uint64_t done = 0, total = 0;
	json_object *o;

	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		done += r->disks[i].cur;
		total += r->disks[i].total;
	}
	o = obj2("vm", jstr(r->vm), "id", jstr(r->id));
	json_object_object_add(o, "phase", jstr(r->phase));
	json_object_object_add(o, "kind", r->txn_done ? jstr(r->incremental ? "incremental" : "full")
						      : NULL);
	json_object_object_add(o, "done", json_object_new_int64((int64_t)done));
	json_object_object_add(o, "total", json_object_new_int64((int64_t)total));
	json_object_object_add(o, "store", jstr(r->store));
	return o;
}

int bk_run_cancel(struct qv_daemon *d, const char *vm)
{
	struct bk_run *r = find_run(vm);
	struct bk_seq *s;
	char name[32];

	if (!r)
		return -ENOENT;
	r->cancelled = true;
	if (!r->txn_done || !(s = bk_seq_new(d, r->vm, r->inst)))
		return 0; /* checked before the transaction */
	for (size_t i = 0; i < r->n; i++) {
		snprintf(name, sizeof(name), "qvbk-%zu", i);
		bk_seq_add(s, "job-cancel", obj2("id", jstr(name), NULL, NULL), -1, true, NULL, NULL);
	}
	bk_seq_run(s, NULL, NULL);
	return 0;
}
