/* SPDX-License-Identifier: MIT */
/* One backup of a running VM, as a state machine on the loop
 * (docs/backup.md "How a backup bk_runs"):
 *
 *   query-named-block-nodes   sizes, formats, dirty bitmaps of disk<N>
 *   decide                    incremental, or full and why
 *   targets                   <store>/.<id>.partial/disk<N>.{raw,qcow2}, opened
 *                             by the daemon, passed with add-fd, blockdev-add
 *   [guest-fsfreeze-freeze]   when the VM has a guest agent
 *   transaction               block-dirty-bitmap-add qvisor-<id>-<rnd> (persistent)
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
#include "daemon/backup-run.h"
#include "qemu/argv.h"
#include "qemu/qga.h"
#include "storage/backup-restore.h"
#include "storage/copy.h"
#include "storage/qemu-img.h"


struct bk_run *bk_runs;

struct bk_run *bk_find_run(const char *vm)
{
	for (struct bk_run *r = bk_runs; r; r = r->next)
		if (streq(r->vm, vm))
			return r;
	return NULL;
}

bool bk_run_busy(struct qv_daemon *d, const char *vm)
{
	return bk_find_run(vm) != NULL;
}

void bk_run_free(struct bk_run *r)
{
	for (struct bk_run **p = &bk_runs; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	qv_source_remove(r->poll);
	for (size_t i = 0; i < r->n; i++) {
		free(r->disks[i].src);
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

json_object *bk_obj2(const char *k1, json_object *v1, const char *k2, json_object *v2)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, k1, v1);
	if (k2)
		json_object_object_add(o, k2, v2);
	return o;
}

static void progress_notify(struct bk_run *r, uint64_t done, uint64_t total)
{
	qv_rpc_client *c = r->call ? qv_rpc_call_client(r->call) : NULL;
	uint64_t ms = qv_now_ms() - r->started_ms;
	json_object *p;

	if (!c || !total || qv_rpc_call_client_gone(r->call))
		return;
	p = bk_obj2("op_id", jstr(r->id), "phase", jstr(r->phase));
	json_object_object_add(p, "done", json_object_new_int64((int64_t)done));
	json_object_object_add(p, "total", json_object_new_int64((int64_t)total));
	json_object_object_add(p, "rate", json_object_new_int64(ms ? (int64_t)(done * 1000 / ms) : 0));
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
	data = bk_obj2("id", jstr(r->id), "error", jstr(r->err.message));
	qv_daemon_emit(r->d, r->vm, "backup-failed", data);
	if (r->call)
		qv_rpc_call_error(r->call, &r->err);
	if (r->done)
		r->done(r->d, r->vm, r->err.error ? -abs(r->err.error) : -EIO, r->done_ud);
	bk_run_free(r);
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
			bk_seq_add(s, "job-dismiss", bk_obj2("id", jstr(name), NULL, NULL), -1, true, NULL,
				   NULL);
		snprintf(name, sizeof(name), "qvbk-t%zu", i);
		bk_seq_add(s, "blockdev-del", bk_obj2("node-name", jstr(name), NULL, NULL), -1, true,
			   NULL, NULL);
		bk_seq_add(s, "remove-fd",
			   bk_obj2("fdset-id", json_object_new_int(BK_FDSET_BASE + (int)i), NULL, NULL),
			   -1, true, NULL, NULL);
		if (r->txn_done && r->disks[i].qcow2)
			bk_seq_add(s, "block-dirty-bitmap-remove",
				   bk_obj2("node", jstr(r->disks[i].node), "name", jstr(r->bitmap)), -1,
				   true, NULL, NULL);
	}
	bk_seq_run(s, fail_done, r);
}

void bk_fail_with(struct bk_run *r, int error, const struct qv_error *err, const char *what)
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

void bk_run_complete(struct bk_run *r)
{
	json_object *res = qv_backup_meta_to_json(r->meta);

	json_object_object_add(res, "store", jstr(r->store));
	qv_daemon_emit(r->d, r->vm, "backup-completed",
		       bk_obj2("id", jstr(r->id), "kind", jstr(r->incremental ? "incremental" : "full")));
	uint64_t *t = r->t_ms;
	if (r->offline)
		log_info("VM %s: backup %s (full, VM stopped) complete, %" PRIu64 " bytes, %" PRIu64
			 " ms", r->vm, r->id, r->meta->size, qv_now_ms() - r->started_ms);
	else
		log_info("VM %s: backup %s (%s) complete, %" PRIu64 " bytes, %" PRIu64 " ms (query %" PRIu64
		 ", attach %" PRIu64 ", transaction %" PRIu64 ", copy %" PRIu64 ", detach %" PRIu64
		 ", publish %" PRIu64 ")", r->vm, r->id, r->incremental ? "incremental" : "full",
		 r->meta->size, qv_now_ms() - r->started_ms, t[BK_T_NODES] - r->started_ms,
		 t[BK_T_ATTACHED] - t[BK_T_NODES], t[BK_T_TXN] - t[BK_T_ATTACHED],
		 t[BK_T_COPIED] - t[BK_T_TXN], t[BK_T_DETACHED] - t[BK_T_COPIED],
		 t[BK_T_PUBLISHED] - t[BK_T_DETACHED]);
	if (r->call)
		qv_rpc_call_reply(r->call, res);
	else
		json_object_put(res);
	if (r->done)
		r->done(r->d, r->vm, 0, r->done_ud);
	bk_run_free(r);
}

static void finalized(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	struct bk_chain_state st = {};
	struct bk_seq *s;
	int e;

	if (error < 0)
		return bk_fail_with(r, error, err, "writing the backup store");
	bk_mark(r, BK_T_PUBLISHED);
	snprintf(st.store, sizeof(st.store), "%s", r->store);
	snprintf(st.chain, sizeof(st.chain), "%s", r->meta->chain);
	snprintf(st.last, sizeof(st.last), "%s", r->id);
	snprintf(st.bitmap, sizeof(st.bitmap), "%s", r->meta->bitmap ? r->meta->bitmap : "");
	st.n_disks = (unsigned)r->n;
	if ((e = bk_chain_save(r->d, r->vm, &st)) < 0)
		log_error_errno(e, "VM %s: cannot save the backup chain state (next backup is full): %m",
				r->vm);
	/* The previous bitmap has served: everything it saw is in this backup.
	 * Its removal needs no answer, so the call is answered meanwhile (a
	 * next backup's QMP commands queue behind it; one that still saw it
	 * would remove it as stale). */
	if ((s = bk_seq_new(r->d, r->vm, r->inst))) {
		for (size_t i = 0; r->have_chain && i < r->n; i++)
			if (r->disks[i].has_old && r->chain.bitmap[0] &&
			    !streq(r->chain.bitmap, r->bitmap))
				bk_seq_add(s, "block-dirty-bitmap-remove",
					   bk_obj2("node", jstr(r->disks[i].node), "name",
						   jstr(r->chain.bitmap)), -1, true, NULL, NULL);
		bk_seq_run(s, NULL, NULL);
	}
	bk_run_complete(r);
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
		/* a full: zero blocks become holes, checksummed in the same pass */
		if (!r->incremental && (e = qv_backup_sparsify(r->disks[i].fd, &d->checksum, err)) < 0)
			return e;
		if (fsync(r->disks[i].fd) < 0 || fstat(r->disks[i].fd, &st) < 0)
			return qv_error_set(err, errno, errno == ENOSPC ? QV_REASON_NO_SPACE
									: QV_REASON_IO_ERROR,
					    "%s: %m", r->disks[i].file);
		d->bytes = (uint64_t)st.st_blocks * 512;
		m->size += d->bytes;
		snprintf(path, sizeof(path), "%s/.%s.partial/%s", r->store, r->id, d->file);
		if (r->incremental && (e = qv_copy_checksum_file(path, &d->checksum, err)) < 0)
			return e;
	}
	m->completed_ms = qv_unix_ms();
	if ((e = qv_backup_meta_write(r->partial_fd, m, err)) < 0)
		return e;
	return qv_backup_partial_publish(r->store, r->id, err);
}

int bk_build_meta(struct bk_run *r)
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
		return bk_fail_with(r, error, err, "detaching the backup targets");
	}
	bk_mark(r, BK_T_DETACHED);
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
	if ((e = bk_build_meta(r)) < 0 || (e = bk_work_start(r->d, finalize_work, finalized, r)) < 0) {
		r->txn_done = true;
		return bk_fail_with(r, e, NULL, "finalizing");
	}
}

static void detach(struct bk_run *r)
{
	struct bk_seq *s = bk_seq_new(r->d, r->vm, r->inst);
	char name[32];

	if (!s)
		return bk_fail_with(r, -ENOMEM, NULL, "detaching");
	for (size_t i = 0; i < r->n; i++) {
		snprintf(name, sizeof(name), "qvbk-%zu", i);
		bk_seq_add(s, "job-dismiss", bk_obj2("id", jstr(name), NULL, NULL), -1, true, NULL, NULL);
		snprintf(name, sizeof(name), "qvbk-t%zu", i);
		bk_seq_add(s, "blockdev-del", bk_obj2("node-name", jstr(name), NULL, NULL), -1, false,
			   NULL, NULL);
		bk_seq_add(s, "remove-fd",
			   bk_obj2("fdset-id", json_object_new_int(BK_FDSET_BASE + (int)i), NULL, NULL),
			   -1, true, NULL, NULL);
	}
	r->phase = "detaching";
	bk_seq_run_pipelined(s, detached, r);
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
		return bk_fail_with(r, error, err, "query-jobs");
	for (size_t i = 0; i < r->n; i++) {
		done += r->disks[i].cur;
		total += r->disks[i].total;
		all = all && r->disks[i].concluded;
	}
	progress_notify(r, done, total);
	if (all) {
		bk_mark(r, BK_T_COPIED);
		return detach(r);
	}
	/* 25, 50, 100, 200, 250 ms... for the progress; a job's end is seen
	 * at once through its JOB_STATUS_CHANGE event (bk_job_event), also
	 * when it came while this query was in flight */
	r->poll_ms = r->poll_ms ? (r->poll_ms * 2 > BK_POLL_MS ? BK_POLL_MS : r->poll_ms * 2) : 25;
	if (qv_loop_add_timer(r->d->loop, r->job_event ? 0 : r->poll_ms, poll_jobs, r, &r->poll) < 0)
		bk_fail_with(r, -ENOMEM, NULL, "polling");
}

static void poll_jobs(qv_source *src, void *ud)
{
	struct bk_run *r = ud;
	struct bk_seq *s = bk_seq_new(r->d, r->vm, r->inst);

	r->poll = NULL;
	r->job_event = false;
	if (!s)
		return bk_fail_with(r, -ENOMEM, NULL, "polling");
	bk_seq_add(s, "query-jobs", NULL, -1, false, on_jobs, r);
	bk_seq_run(s, polled, r);
}

void bk_job_event(struct qv_daemon *d, const char *vm, json_object *event)
{
	struct bk_run *r = bk_find_run(vm);
	json_object *data, *v;

	if (!r || !r->txn_done || !json_object_object_get_ex(event, "data", &data) ||
	    !json_object_object_get_ex(data, "id", &v) ||
	    strncmp(json_object_get_string(v), "qvbk-", 5) != 0 ||
	    !json_object_object_get_ex(data, "status", &v) ||
	    !streq(json_object_get_string(v), "concluded"))
		return;
	r->job_event = true;
	if (r->poll) { /* waiting for the next poll: poll now */
		qv_source_remove(r->poll);
		poll_jobs(NULL, r);
	}
}

/* --- transaction, with the guest frozen around it when it can be -------- */

static void on_thawed(json_object *result, const struct qv_error *err, bool misbehaved, void *ud)
{
	char *vm = ud;

	if (err)
		log_warning("VM %s: guest-fsfreeze-thaw after the backup failed: %s", vm,
			    err->message);
	else
		log_info("VM %s: guest thawed after the backup's transaction (%d filesystem(s))", vm,
			 result && json_object_is_type(result, json_type_int)
				 ? json_object_get_int(result) : -1);
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
		return bk_fail_with(r, error, err, "transaction");
	r->txn_done = true;
	bk_mark(r, BK_T_TXN);
	r->phase = "copying";
	if (r->cancelled)
		bk_run_cancel(r->d, r->vm);
	poll_jobs(NULL, r);
}

static json_object *action(const char *type, json_object *data)
{
	return bk_obj2("type", jstr(type), "data", data);
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
			json_object *a = bk_obj2("node", jstr(dk->node), "name", jstr(r->bitmap));
			json_object_object_add(a, "persistent", json_object_new_boolean(true));
			json_object_array_add(acts, action("block-dirty-bitmap-add", a));
		}
		json_object *b = bk_obj2("job-id", jstr(job), "device", jstr(dk->node));
		json_object_object_add(b, "target", jstr(tgt));
		json_object_object_add(b, "auto-dismiss", json_object_new_boolean(false));
		if (r->bandwidth)
			json_object_object_add(b, "speed", json_object_new_int64((int64_t)r->bandwidth));
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
		return bk_fail_with(r, -ENOMEM, NULL, "transaction");
	}
	r->created_ms = qv_unix_ms();
	r->phase = "starting";
	bk_seq_add(s, "transaction", bk_obj2("actions", acts, NULL, NULL), -1, false, NULL,
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
		/* the agent answers with the number of filesystems it froze */
		r->quiesced = r->frozen = true;
		snprintf(r->quiesce_note, sizeof(r->quiesce_note),
			 "guest agent froze %d filesystem(s) for the transaction",
			 result && json_object_is_type(result, json_type_int)
				 ? json_object_get_int(result) : -1);
	}
	run_transaction(r);
}

void bk_attached(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	char sock[PATH_MAX];
	qga_call *qc;

	if (error < 0)
		return bk_fail_with(r, error, err, "attaching the backup targets");
	bk_mark(r, BK_T_ATTACHED);
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

