/* SPDX-License-Identifier: MIT */
/* Starting a backup: the VM's block nodes, the full-or-incremental decision
 * (and why), the target files and their attachment to QEMU; status and
 * cancel. The rest of the state machine is in daemon/backup-run.c. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/backup-run.h"
#include "storage/qcow2-create.h"

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
	char path[PATH_MAX];

	snprintf(dk->file, sizeof(dk->file), "disk%u.%s", dk->idx, r->incremental ? "qcow2" : "raw");
	snprintf(path, sizeof(path), "%s/.%s.partial/%s", r->store, r->id, dk->file);
	dk->fd = openat(r->partial_fd, dk->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			0600);
	if (dk->fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", path);
	if (r->incremental)
		/* Only the changed clusters get allocated: the file's allocation
		 * is the incremental's content (docs/backup.md). Written here,
		 * not by a qemu-img fork: part of every incremental's fixed cost. */
		return qv_qcow2_create_empty(dk->fd, dk->vsize, errp);
	if (ftruncate(dk->fd, (off_t)dk->vsize) < 0)
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
		return bk_fail_with(r, error, err, "query-named-block-nodes");
	bk_mark(r, BK_T_NODES);
	for (size_t i = 0; i < r->n; i++)
		if (!r->disks[i].found || !r->disks[i].vsize) {
			qv_error_set(&e, ENODEV, QV_REASON_QEMU_ERROR, "QEMU has no block node %s",
				     r->disks[i].node);
			return bk_fail_with(r, -ENODEV, &e, "finding the disks");
		}
	decide(r);
	if (!(s = bk_seq_new(r->d, r->vm, r->inst)))
		return bk_fail_with(r, -ENOMEM, NULL, "attaching");
	for (size_t i = 0; i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		if ((x = create_target(r, dk, &e)) < 0 || (x = fcntl(dk->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
			bk_seq_free(s);
			return bk_fail_with(r, x, &e, "creating the backup file");
		}
		bk_seq_add(s, "add-fd", bk_obj2("fdset-id", json_object_new_int(BK_FDSET_BASE + (int)i),
					     NULL, NULL), x, false, NULL, NULL);
		snprintf(fdset, sizeof(fdset), "/dev/fdset/%d", BK_FDSET_BASE + (int)i);
		snprintf(tgt, sizeof(tgt), "qvbk-t%zu", i);
		json_object *file = bk_obj2("driver", jstr("file"), "filename", jstr(fdset));
		json_object_object_add(file, "discard", jstr("unmap"));
		json_object *a = bk_obj2("driver", jstr(r->incremental ? "qcow2" : "raw"), "node-name",
				      jstr(tgt));
		json_object_object_add(a, "file", file);
		/* zeros become holes (raw) or zero clusters (qcow2): a sparse backup */
		json_object_object_add(a, "discard", jstr("unmap"));
		json_object_object_add(a, "detect-zeroes", jstr("unmap"));
		bk_seq_add(s, "blockdev-add", a, -1, false, NULL, NULL);
		for (size_t k = 0; k < dk->n_stale; k++)
			bk_seq_add(s, "block-dirty-bitmap-remove",
				   bk_obj2("node", jstr(dk->node), "name", jstr(dk->stale[k])), -1, true,
				   NULL, NULL);
	}
	r->phase = "attaching";
	/* a failed add-fd makes its blockdev-add fail: no order is lost */
	bk_seq_run_pipelined(s, bk_attached, r);
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
	const char *enc;
	struct bk_run *r;
	struct bk_seq *s;
	int e;

#define qv_call_fail(call, e, ...) ((call) ? qv_call_fail(call, e, __VA_ARGS__) : -(e))
	if (!vm)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", p->vm);
	bool offline = !vm->inst && !vm->starting &&
		       (vm->state == QV_VM_STOPPED || vm->state == QV_VM_CRASHED);
	if (!offline && (!vm->inst || (vm->state != QV_VM_RUNNING && vm->state != QV_VM_PAUSED)))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "Cannot back up VM %s: it is %s (backups are of running, paused "
				    "or stopped VMs)", p->vm, qv_vm_state_to_string(vm->state));
	if (vm->spec->n_disks == 0 || vm->spec->n_disks > QV_BACKUP_MAX_DISKS)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "VM %s has %zu disks: a backup needs 1..%d", p->vm,
				    vm->spec->n_disks, QV_BACKUP_MAX_DISKS);
	if ((enc = qv_image_vm_encrypted_disk(vm)))
		return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
				    "Cannot back up VM %s: disk %s is encrypted (LUKS) and a backup "
				    "would store its data unencrypted", p->vm, enc);
	if (bk_find_run(p->vm))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "A backup of VM %s is already running", p->vm);
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	r->d = d;
	r->call = call;
	r->done = p->done;
	r->done_ud = p->done_ud;
	r->started_ms = qv_now_ms();
	r->inst = vm->inst;
	r->partial_fd = -1;
	r->want_full = p->full;
	r->bandwidth = p->bandwidth;
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
		bk_run_free(r);
		if (!err.set)
			qv_error_set(&err, e, QV_REASON_IO_ERROR, "backup store %s: %s", p->store,
				     strerror(-e));
		if (!call)
			return e < 0 ? e : -EIO;
		return qv_rpc_call_error(call, &err), 0;
	}
	snprintf(r->id, sizeof(r->id), "%s", id);
	/* ids are unique per store only: the random part keeps two stores'
	 * backups of the same second from naming the same bitmap */
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)qv_now_ms();
	snprintf(r->bitmap, sizeof(r->bitmap), "qvisor-%s-%08x", r->id, rnd);
	r->next = bk_runs;
	bk_runs = r;
	log_info("VM %s: backup %s to %s started%s", r->vm, r->id, r->store,
		 offline ? " (VM stopped)" : "");
	if (offline)
		return bk_offline_run(r), 0;
	if (!(s = bk_seq_new(d, r->vm, r->inst)))
		return bk_fail_with(r, -ENOMEM, NULL, "starting"), 0;
	bk_seq_add(s, "query-named-block-nodes", bk_obj2("flat", json_object_new_boolean(true), NULL,
						      NULL), -1, false, on_nodes, r);
	bk_seq_run(s, queried, r);
	return 0;
}

#undef qv_call_fail

json_object *bk_run_status(struct qv_daemon *d, const char *vm)
{
	struct bk_run *r = bk_find_run(vm);
	uint64_t done = 0, total = 0;
	json_object *o;

	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		done += r->disks[i].cur;
		total += r->disks[i].total;
	}
	o = bk_obj2("vm", jstr(r->vm), "id", jstr(r->id));
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
	struct bk_run *r = bk_find_run(vm);
	struct bk_seq *s;
	char name[32];

	if (!r)
		return -ENOENT;
	r->cancelled = true;
	atomic_store(&r->cancel_now, true);
	if (!r->txn_done || !(s = bk_seq_new(d, r->vm, r->inst)))
		return 0; /* checked before the transaction */
	for (size_t i = 0; i < r->n; i++) {
		snprintf(name, sizeof(name), "qvbk-%zu", i);
		bk_seq_add(s, "job-cancel", bk_obj2("id", jstr(name), NULL, NULL), -1, true, NULL, NULL);
	}
	bk_seq_run(s, NULL, NULL);
	return 0;
}
