/* SPDX-License-Identifier: MIT */
/* Backups of stopped VMs (docs/backup.md "Stopped VMs"). No QEMU runs, so
 * the daemon reads the disks itself, on a worker thread, while the VM
 * cannot be started (vm.start refuses while bk_run_offline() names it):
 *
 *   raw disk     the io_uring copy engine copies the image (holes stay holes)
 *   qcow2 disk   its clusters are written onto a sparse raw file at their
 *                guest offsets (qv_qcow2_apply; an image with a backing file,
 *                compressed clusters or an external data file is refused)
 *
 * then every file is checksummed (zero blocks punched), fsync'd, and the
 * backup published like any other. Always a full: the dirty bitmap of a
 * qcow2 image is read by a running QEMU only. For the next backup of the
 * running VM to be incremental on this one, each qcow2 disk gets a new
 * persistent bitmap (`qemu-img bitmap --add`, the image is not in use) and
 * the chain's previous one is removed. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/backup-run.h"
#include "storage/backup-restore.h"
#include "storage/copy.h"
#include "storage/qcow2-refs.h"
#include "storage/qemu-img.h"

const char *bk_run_offline(struct qv_daemon *d, const char *vm)
{
	struct bk_run *r = bk_find_run(vm);

	return r && r->offline ? r->id : NULL;
}

static int copy_disk(struct bk_run *r, struct bk_disk *dk, struct qv_error *err)
{
	char dst[PATH_MAX];
	struct qv_copy_opts co;
	_cleanup_close_ int src = -1;
	uint64_t vsize = 0;
	int e;

	snprintf(dst, sizeof(dst), "%s/.%s.partial/%s", r->store, r->id, dk->file);
	if (!dk->qcow2) {
		qv_copy_opts_init(&co);
		co.reflink = false; /* the backup shares nothing with the disk */
		co.no_replace = true;
		co.cancel = &r->cancel_now;
		if ((e = qv_copy_file(dk->src, dst, &co, NULL, err)) < 0)
			return e;
		dk->fd = openat(r->partial_fd, dk->file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		return dk->fd < 0 ? qv_error_set(err, errno, QV_REASON_IO_ERROR, "%s: %m", dst) : 0;
	}
	if ((src = open(dk->src, O_RDONLY | O_CLOEXEC)) < 0)
		return qv_error_set(err, errno, QV_REASON_IO_ERROR, "%s: %m", dk->src);
	if ((e = qv_qcow2_check_self_contained(src, dk->src, err)) < 0)
		return e;
	dk->fd = openat(r->partial_fd, dk->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			0600);
	if (dk->fd < 0 || ftruncate(dk->fd, (off_t)dk->vsize) < 0)
		return qv_error_set(err, errno, QV_REASON_IO_ERROR, "%s: %m", dst);
	if ((e = qv_qcow2_apply(src, dk->fd, &vsize, &r->cancel_now, err)) < 0)
		return qv_error_prefix(err, "disk %u (%s)", dk->idx, dk->src), e;
	if (vsize != dk->vsize)
		return qv_error_set(err, EIO, QV_REASON_IO_ERROR, "%s changed size during the backup",
				    dk->src);
	return 0;
}

/* The new bitmap on every qcow2 disk; "" in r->bitmap when one failed
 * (the next backup is then full and says that the bitmap is missing). */
static void move_bitmaps(struct bk_run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		struct qv_error e = {};
		if (!dk->qcow2)
			continue;
		if (r->have_chain && r->chain.bitmap[0]) {
			char *rm[] = { "qemu-img", "bitmap", "--remove", "-f", "qcow2", dk->src,
				       r->chain.bitmap, NULL };
			(void)qv_qemu_img_run(rm, NULL, NULL); /* may be gone already */
		}
		char *add[] = { "qemu-img", "bitmap", "--add", "-f", "qcow2", dk->src, r->bitmap, NULL };
		if (qv_qemu_img_run(add, NULL, &e) < 0) {
			log_warning("VM %s: disk %u: cannot add dirty bitmap %s (the next backup is "
				    "full): %s", r->vm, dk->idx, r->bitmap, e.message);
			r->bitmap[0] = '\0';
		}
	}
}

/* Worker thread: nothing here touches daemon state. */
static int offline_work(void *ud, struct qv_error *err)
{
	struct bk_run *r = ud;
	struct qv_backup_meta *m = r->meta;
	struct stat st;
	int e;

	for (size_t i = 0; i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		struct qv_backup_disk *d = &m->disks[i];
		if ((e = copy_disk(r, dk, err)) < 0)
			return e;
		if ((e = qv_backup_sparsify(dk->fd, &d->checksum, err)) < 0)
			return e;
		if (fsync(dk->fd) < 0 || fstat(dk->fd, &st) < 0)
			return qv_error_set(err, errno, errno == ENOSPC ? QV_REASON_NO_SPACE
									: QV_REASON_IO_ERROR,
					    "%s: %m", dk->file);
		d->bytes = (uint64_t)st.st_blocks * 512;
		m->size += d->bytes;
	}
	if (atomic_load(&r->cancel_now))
		return qv_error_set(err, ECANCELED, QV_REASON_CANCELLED,
				    "Backup %s of VM %s was cancelled", r->id, r->vm);
	m->completed_ms = qv_unix_ms();
	if ((e = qv_backup_meta_write(r->partial_fd, m, err)) < 0 ||
	    (e = qv_backup_partial_publish(r->store, r->id, err)) < 0)
		return e;
	move_bitmaps(r);
	return 0;
}

static void offline_done(int error, const struct qv_error *err, void *ud)
{
	struct bk_run *r = ud;
	struct bk_chain_state st = {};
	int e;

	if (error < 0)
		return bk_fail_with(r, error, err, "copying the stopped VM's disks");
	snprintf(st.store, sizeof(st.store), "%s", r->store);
	snprintf(st.chain, sizeof(st.chain), "%s", r->id);
	snprintf(st.last, sizeof(st.last), "%s", r->id);
	snprintf(st.bitmap, sizeof(st.bitmap), "%s", r->bitmap);
	st.n_disks = (unsigned)r->n;
	if ((e = bk_chain_save(r->d, r->vm, &st)) < 0)
		log_error_errno(e, "VM %s: cannot save the backup chain state (next backup is full): %m",
				r->vm);
	bk_run_complete(r);
}

void bk_offline_run(struct bk_run *r)
{
	struct qv_vm *vm = qv_vm_find(r->d, r->vm);
	struct qv_error e = {};
	bool all_qcow2 = true;
	struct stat st;
	int x;

	r->offline = true;
	r->phase = "copying";
	for (size_t i = 0; vm && i < r->n; i++) {
		struct bk_disk *dk = &r->disks[i];
		const struct vm_disk *sd = &vm->spec->disks[i];
		_cleanup_close_ int fd = open(sd->path, O_RDONLY | O_CLOEXEC);
		uint8_t h[32];
		dk->qcow2 = sd->format == VM_DISK_QCOW2;
		all_qcow2 = all_qcow2 && dk->qcow2;
		snprintf(dk->file, sizeof(dk->file), "disk%u.raw", dk->idx);
		if (!(dk->src = strdup(sd->path)))
			return bk_fail_with(r, -ENOMEM, NULL, "preparing");
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			qv_error_set(&e, fd < 0 ? errno : EINVAL, QV_REASON_INVALID_ARGUMENT,
				     "disk %u (%s) is not a readable image file", dk->idx, sd->path);
			return bk_fail_with(r, -EINVAL, &e, "opening the disks");
		}
		dk->vsize = (uint64_t)st.st_size;
		/* the qcow2 header's size; the worker's cluster walk checks the rest */
		if (dk->qcow2 && (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
				  memcmp(h, "QFI\xfb", 4) != 0)) {
			qv_error_set(&e, EINVAL, QV_REASON_INVALID_ARGUMENT,
				     "disk %u (%s) is not a qcow2 image", dk->idx, sd->path);
			return bk_fail_with(r, -EINVAL, &e, "opening the disks");
		}
		if (dk->qcow2)
			dk->vsize = qv_be64_at(h + 24);
	}
	if (!r->want_full)
		snprintf(r->forced, sizeof(r->forced),
			 "VM %s is stopped: a stopped VM's backup is full (%s)", r->vm,
			 all_qcow2 ? "the dirty bitmap is read by a running QEMU only; the next "
				     "backup of the running VM is incremental on this one"
				   : "a raw disk keeps no dirty bitmap");
	snprintf(r->quiesce_note, sizeof(r->quiesce_note),
		 "the VM was stopped: its disks as its last run left them");
	r->created_ms = qv_unix_ms();
	if ((x = bk_build_meta(r)) < 0 || (x = bk_work_start(r->d, offline_work, offline_done, r)) < 0)
		return bk_fail_with(r, x, NULL, "starting the copy");
}
