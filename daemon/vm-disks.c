/* SPDX-License-Identifier: MIT */
/* A VM's disks, opened by the daemon and passed to QEMU as /dev/fdset.
 * qcow2 headers are read on the opened fd: an external data file is
 * refused; a backing file (linked clones) is followed only to an image of
 * the daemon's pool that no VM writes, and passed as an fd too, so a header
 * rewritten by a compromised QEMU cannot make root open another file. */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/secret.h"
#include "daemon/hooks.h"
#include "daemon/snapshot.h"
#include "daemon/vm-files-internal.h"
#include "storage/qcow2-refs.h"

#define BAD(errp, ...) qv_error_set(errp, EPERM, QV_REASON_PERMISSION, __VA_ARGS__)

/* Is path a writable disk of some defined VM? */
static bool written_by_a_vm(struct qv_daemon *d, const char *path)
{
	char real[PATH_MAX];

	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		for (size_t i = 0; vm->spec && i < vm->spec->n_disks; i++) {
			const struct vm_disk *dk = &vm->spec->disks[i];
			if (!dk->readonly && realpath(dk->path, real) && streq(real, path))
				return true;
		}
	return false;
}

/* Resolve a backing name found in `image` to an open pool image. */
static int open_backing(struct qv_vm *vm, const char *image, const char *name, int *ret_fd,
			char *ret_real, struct qv_error *errp)
{
	char pool[PATH_MAX], joined[PATH_MAX * 2], real[PATH_MAX];
	_cleanup_free_ char *dir = strdup(image);
	size_t n;

	if (!dir)
		return -ENOMEM;
	snprintf(joined, sizeof(joined), "%s/images", vm->d->cfg.state_dir);
	if (!realpath(joined, pool))
		return BAD(errp, "%s has a backing file but the image pool is missing", image);
	if (strncmp(name, "json:", 5) == 0 || (strchr(name, ':') && name[0] != '/'))
		return BAD(errp, "%s names backing \"%.200s\": protocol and json: names are refused",
			   image, name);
	if (name[0] == '/')
		snprintf(joined, sizeof(joined), "%s", name);
	else
		snprintf(joined, sizeof(joined), "%s/%s", dirname(dir), name);
	n = strlen(pool);
	/* Outside the pool: only an image of the VM's own snapshot tree
	 * (daemon/vm-snapshot-store.c), e.g. its original disk. */
	if (!realpath(joined, real) ||
	    ((strncmp(real, pool, n) != 0 || real[n] != '/') && !qv_snapshot_owns_file(vm, real)))
		return BAD(errp, "%s names backing \"%.200s\", which is not an image of the pool %s",
			   image, name, pool);
	if (written_by_a_vm(vm->d, real))
		return BAD(errp, "%s names backing %s, a writable disk of a VM: refused", image,
			   real);
	*ret_fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (*ret_fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", real);
	snprintf(ret_real, PATH_MAX, "%s", real);
	return 0;
}

/* Read fd's qcow2 references; follow the backing chain into backing[]. */
static int open_chain(struct qv_vm *vm, const char *path, int fd, struct qemu_disk_fds *out,
		      struct qemu_backing_fd *backing, struct qv_error *errp)
{
	char cur[PATH_MAX], next_path[PATH_MAX];
	int r = 0;

	snprintf(cur, sizeof(cur), "%s", path);
	for (;;) {
		struct qv_qcow2_refs refs;

		r = qv_qcow2_read_refs(fd, &refs, errp);
		if (r < 0)
			return qv_error_prefix(errp, "%s", cur), r;
		if (refs.external_data || refs.data_file)
			r = BAD(errp, "%s has an external data file: refused", cur);
		else if (out->n_backing && refs.crypt_method)
			r = BAD(errp, "%s is encrypted: encrypted backing images are not "
				"supported", cur);
		else if (refs.backing && out->n_backing == QEMU_MAX_BACKING)
			r = BAD(errp, "%s: backing chain longer than %d", path, QEMU_MAX_BACKING);
		else if (refs.backing)
			r = open_backing(vm, cur, refs.backing, &fd, next_path, errp);
		if (r >= 0 && refs.backing) {
			struct qv_qcow2_refs next;
			backing[out->n_backing].fd = fd;
			backing[out->n_backing].format = VM_DISK_RAW;
			if (qv_qcow2_read_refs(fd, &next, NULL) == 0 && next.is_qcow2)
				backing[out->n_backing].format = VM_DISK_QCOW2;
			qv_qcow2_refs_clear(&next);
			out->n_backing++;
			memcpy(cur, next_path, sizeof(cur));
		}
		bool more = refs.backing && r >= 0 &&
			    backing[out->n_backing - 1].format == VM_DISK_QCOW2;
		qv_qcow2_refs_clear(&refs);
		if (!more)
			return r;
	}
}

/* An encrypted disk: its key, encrypted with this start's master key. */
static int open_disk_key(struct qv_vm *vm, struct qv_vm_files *f, size_t i,
			 struct qv_error *errp)
{
	struct qemu_disk_fds *out = &f->disks[i];
	_cleanup_secret_ struct qv_secret *key = NULL;
	char *ct = NULL, *iv = NULL;
	int r;

	r = qv_image_disk_key(vm->d, vm->spec->disks[i].path, out->fd, &key, errp);
	if (r < 0)
		return qv_error_prefix(errp, "VM %s", vm->name), r;
	if (!key)
		return 0;
	if (f->master.fd < 0 && (r = qemu_master_key_new(&f->master)) < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "VM %s: no master key: %s",
				    vm->name, strerror(-r));
	r = qemu_secret_encrypt(&f->master, key->data, key->len, &ct, &iv);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL,
				    "VM %s: cannot encrypt the key of disk %zu: %s", vm->name, i,
				    strerror(-r));
	out->key_data = ct;
	out->key_iv = iv;
	return 0;
}

static int open_disk(struct qv_vm *vm, struct qv_vm_files *f, size_t i, struct qv_error *errp)
{
	const struct vm_disk *dk = &vm->spec->disks[i];
	struct qemu_disk_fds *out = &f->disks[i];
	struct stat st;

	out->backing = &f->backing[i * QEMU_MAX_BACKING];
	out->fd = open(dk->path, (dk->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	if (out->fd < 0)
		return qv_error_set(errp, errno, errno == ENOENT ? QV_REASON_NOT_FOUND
								 : QV_REASON_IO_ERROR,
				    "VM %s: cannot open disk %s: %m", vm->name, dk->path);
	if (fstat(out->fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "VM %s: disk %s is not a regular file or block device",
				    vm->name, dk->path);
	if (dk->format != VM_DISK_QCOW2)
		return 0;
	int r = open_disk_key(vm, f, i, errp);
	if (r < 0)
		return r;
	return open_chain(vm, dk->path, out->fd, out, (struct qemu_backing_fd *)out->backing,
			  errp);
}

int qv_vm_disks_open(struct qv_vm *vm, struct qv_vm_files *f, struct qv_error *errp)
{
	size_t n = vm->spec->n_disks;
	int r;

	if (n == 0)
		return 0;
	f->disks = calloc(n, sizeof(*f->disks));
	f->backing = calloc(n * QEMU_MAX_BACKING, sizeof(*f->backing));
	if (!f->disks || !f->backing)
		return -ENOMEM;
	f->n_disks = n;
	for (size_t i = 0; i < n; i++)
		f->disks[i].fd = -1;
	for (size_t i = 0; i < n; i++) {
		r = open_disk(vm, f, i, errp);
		if (r < 0)
			return r;
	}
	return 0;
}

void qv_vm_disks_close(struct qv_vm_files *f)
{
	for (size_t i = 0; i < f->n_disks; i++) {
		if (f->disks[i].fd > 2)
			close(f->disks[i].fd);
		for (size_t k = 0; k < f->disks[i].n_backing; k++)
			close(f->disks[i].backing[k].fd);
		free((char *)f->disks[i].key_data);
		free((char *)f->disks[i].key_iv);
	}
	qemu_master_key_clear(&f->master);
	free(f->disks);
	free(f->backing);
	f->disks = NULL;
	f->backing = NULL;
	f->n_disks = 0;
}
