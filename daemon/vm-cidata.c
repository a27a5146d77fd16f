/* SPDX-License-Identifier: MIT */
/* cloud-init NoCloud seed per VM: built from the spec, written into the run
 * dir without following links (QEMU's user owns that dir). */
#include <fcntl.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/vm-cidata.h"
#include "storage/cidata.h"

#define CIDATA_TMP CIDATA_FILE ".tmp"

static char *seed_dir(struct qv_vm *vm)
{
	char *p;

	if (vm->run_dir)
		return strdup(vm->run_dir);
	return asprintf(&p, "%s/vms/%s", vm->d->cfg.run_dir, vm->name) < 0 ? NULL : p;
}

static int write_all(int fd, const uint8_t *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		buf += w, n -= (size_t)w;
	}
	return 0;
}

/* tmp file (O_EXCL|O_NOFOLLOW), owner, then rename over the old seed. */
static int write_seed(int dfd, const uint8_t *buf, size_t n, const struct qemu_proc_opts *proc)
{
	_cleanup_close_ int fd = -1;
	int r;

	(void)unlinkat(dfd, CIDATA_TMP, 0);
	fd = openat(dfd, CIDATA_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	if ((r = write_all(fd, buf, n)) < 0 || (proc->drop_ids && fchown(fd, proc->uid, proc->gid) < 0) ||
	    fsync(fd) < 0 || renameat(dfd, CIDATA_TMP, dfd, CIDATA_FILE) < 0) {
		r = r < 0 ? r : -errno;
		(void)unlinkat(dfd, CIDATA_TMP, 0);
		return r;
	}
	return 0;
}

int qv_vm_cidata_prepare(struct qv_vm *vm, const struct qemu_proc_opts *proc,
			 struct qemu_argv_opts *opts, char **ret_path, struct qv_error *errp)
{
	const struct vm_cloud_init *ci = vm->spec->cloud_init;
	_cleanup_free_ char *dir = NULL, *path = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_close_ int dfd = -1;
	size_t n;
	int r;

	if (!ci)
		return 0;
	struct cidata_docs docs = { .instance_id = vm->spec->uuid, .hostname = vm->name,
				    .user_data = ci->user_data, .meta_data = ci->meta_data,
				    .network_config = ci->network_config };
	if ((r = cidata_build(&docs, &buf, &n)) < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "Cannot build the cloud-init seed: %s",
				    strerror(-r));
	if (!(dir = seed_dir(vm)) || asprintf(&path, "%s/" CIDATA_FILE, dir) < 0)
		return -ENOMEM;
	(void)mkdir(dir, 0700);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || (r = write_seed(dfd, buf, n, proc)) < 0) {
		r = dfd < 0 ? -errno : r;
		return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "Cannot write %s: %s", path,
				    strerror(-r));
	}
	log_debug("VM %s: cloud-init seed %s (%zu bytes)", vm->name, path, n);
	opts->cidata_path = path;
	*ret_path = TAKE_PTR(path);
	return 0;
}

void qv_vm_cidata_remove(struct qv_vm *vm)
{
	_cleanup_free_ char *dir = seed_dir(vm);
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;

	if (dfd < 0)
		return;
	if (unlinkat(dfd, CIDATA_FILE, 0) < 0 && errno != ENOENT)
		log_warning_errno(-errno, "VM %s: cannot remove its cloud-init seed, ignoring: %m",
				  vm->name);
	(void)unlinkat(dfd, CIDATA_TMP, 0);
}
