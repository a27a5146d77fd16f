/* SPDX-License-Identifier: MIT */
/* Per-VM run files, logs and the serial log cap (daemon/vm-files.h). */
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/vm-files-internal.h"
#include "qemu/runfiles.h"
#include "storage/cidata.h"

#define CAP_INTERVAL_MS 100 /* one fstat per VM: cheap; a fast console gains < max/2 per tick */
#define SERIAL_LOG_OLD "serial.log.1"
#define QV_LUKS_OPEN_TIMEOUT_MS 30000 /* extra QMP greeting time per encrypted disk */

static int close_fd(int fd)
{
	if (fd > 2)
		close(fd);
	return -1;
}

static struct qv_vm_files *files_new(void)
{
	struct qv_vm_files *f = calloc(1, sizeof(*f));

	if (f)
		f->run_fd = f->log_dir_fd = f->log_fd = f->qmp_fd = f->serial_fd =
			f->serial_log_fd = f->agent_fd = f->cidata_fd = f->master.fd = -1;
	return f;
}

static void files_free(struct qv_vm_files *f)
{
	if (!f)
		return;
	qv_source_remove(f->cap_timer);
	qv_vm_disks_close(f);
	close_fd(f->run_fd);
	close_fd(f->log_dir_fd);
	close_fd(f->log_fd);
	close_fd(f->qmp_fd);
	close_fd(f->serial_fd);
	close_fd(f->serial_log_fd);
	close_fd(f->agent_fd);
	close_fd(f->cidata_fd);
	free(f);
}

/* <root>/vms/<name> as a daemon-owned directory fd. */
static int open_vm_dir(const char *root, const char *name, int *ret_fd)
{
	_cleanup_close_ int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int vms_fd = -1;
	int r;

	if (root_fd < 0)
		return negative_errno();
	r = qemu_runfiles_open_dir(root_fd, "vms", 0700, &vms_fd);
	if (r < 0)
		return r;
	return qemu_runfiles_open_dir(vms_fd, name, 0700, ret_fd);
}

/* serial.log in the state dir, and a symlink to it in the run dir for
 * readers of the old place. */
static int open_serial_log(struct qv_vm *vm, struct qv_vm_files *f)
{
	char target[4096];
	int r;

	r = open_vm_dir(vm->d->cfg.state_dir, vm->name, &f->log_dir_fd);
	if (r < 0)
		return r;
	r = qemu_runfiles_open_log(f->log_dir_fd, QEMU_SERIAL_LOG, &f->serial_log_fd);
	if (r < 0)
		return r;
	snprintf(target, sizeof(target), "%s/vms/%s/" QEMU_SERIAL_LOG, vm->d->cfg.state_dir,
		 vm->name);
	(void)unlinkat(f->run_fd, QEMU_SERIAL_LOG, 0);
	if (symlinkat(target, f->run_fd, QEMU_SERIAL_LOG) < 0)
		log_debug_errno(errno, "VM %s: no serial.log link in the run dir: %m, ignoring",
				vm->name);
	return 0;
}

static int make_dir(int dir_fd, const char *name, mode_t mode)
{
	_cleanup_close_ int fd = -1;

	return qemu_runfiles_open_dir(dir_fd, name, mode, &fd);
}

static int open_run_files(struct qv_vm *vm, struct qv_vm_files *f, struct qv_error *errp)
{
	const char *what = "run dir";
	int r;

	r = open_vm_dir(vm->d->cfg.run_dir, vm->name, &f->run_fd);
	if (r >= 0 && (what = QV_VM_ROOT_DIR))
		r = make_dir(f->run_fd, QV_VM_ROOT_DIR, 0700);
	if (r >= 0 && (what = QV_VM_SHARE_DIR))
		r = make_dir(f->run_fd, QV_VM_SHARE_DIR, 0711);
	if (r >= 0 && (what = QEMU_LOG))
		r = qemu_runfiles_open_log(f->run_fd, QEMU_LOG, &f->log_fd);
	if (r >= 0 && (what = QEMU_QMP_SOCK))
		r = qemu_runfiles_listen(f->run_fd, QEMU_QMP_SOCK, &f->qmp_fd);
	if (r >= 0 && (what = QEMU_SERIAL_SOCK))
		r = qemu_runfiles_listen(f->run_fd, QEMU_SERIAL_SOCK, &f->serial_fd);
	if (r >= 0 && vm->spec->serial_log && (what = QEMU_SERIAL_LOG))
		r = open_serial_log(vm, f);
	if (r >= 0 && vm->spec->guest_agent && (what = QEMU_QGA_SOCK))
		r = qemu_runfiles_listen(f->run_fd, QEMU_QGA_SOCK, &f->agent_fd);
	/* The cloud-init seed was written into the run dir (vm-cidata.c). */
	if (r >= 0 && vm->spec->cloud_init && (what = "the cloud-init seed") &&
	    (f->cidata_fd = openat(f->run_fd, CIDATA_FILE,
				   O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0)
		r = negative_errno();
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "VM %s: cannot set up %s: %s",
				    vm->name, what, strerror(-r));
	return 0;
}

int qv_vm_files_prepare(struct qv_vm *vm, struct qemu_argv_opts *o,
			struct qemu_instance_config *cfg, struct qv_error *errp)
{
	struct qv_vm_files *f;
	int r;

	files_free(vm->files);
	vm->files = f = files_new();
	if (!f)
		return -ENOMEM;
	r = open_run_files(vm, f, errp);
	if (r >= 0)
		r = qv_vm_disks_open(vm, f, errp);
	if (r < 0) {
		qv_vm_files_release(vm);
		return r;
	}
	o->qmp_fd = f->qmp_fd;
	o->serial_fd = f->serial_fd;
	o->serial_log_fd = f->serial_log_fd;
	o->agent_fd = f->agent_fd;
	o->cidata_fd = f->cidata_fd;
	o->disk_fds = f->disks;
	o->secret_master_fd = f->master.fd;
	/* QEMU runs each LUKS keyslot's PBKDF (2 s nominal for an operator's
	 * passphrase, longer on a busy host) before it greets on QMP. */
	for (size_t i = 0; i < f->n_disks; i++)
		if (f->disks[i].key_data)
			cfg->connect_timeout_ms = (cfg->connect_timeout_ms > 0
							   ? cfg->connect_timeout_ms
							   : QEMU_CONNECT_TIMEOUT_MS) +
						  QV_LUKS_OPEN_TIMEOUT_MS;
	cfg->log_fd = f->log_fd;
	cfg->qmp_listen_fdp = &f->qmp_fd;
	return 0;
}

/* Keep serial.log under the cap: past half of it, its content (at most the
 * newest max bytes, so serial.log.1 never exceeds the cap however fast the
 * guest wrote since the last tick) moves to serial.log.1 and it is truncated
 * (QEMU appends: O_APPEND). */
static void rotate(struct qv_vm *vm, struct qv_vm_files *f, off_t size, off_t max)
{
	_cleanup_close_ int old = openat(f->log_dir_fd, SERIAL_LOG_OLD,
					 O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	_cleanup_close_ int in = -1;
	char p[64];
	off_t off = size > max ? size - max : 0;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", f->serial_log_fd);
	in = open(p, O_RDONLY | O_CLOEXEC);
	if (old >= 0 && in >= 0)
		while (off < size && sendfile(old, in, &off, (size_t)(size - off)) > 0)
			;
	if (ftruncate(f->serial_log_fd, 0) < 0)
		log_warning_errno(errno, "VM %s: cannot truncate serial.log: %m", vm->name);
}

static void on_cap_timer(qv_source *s, void *userdata)
{
	struct qv_vm *vm = userdata;
	struct qv_vm_files *f = vm->files;
	uint64_t max = vm->d->cfg.serial_log_max ? vm->d->cfg.serial_log_max
						 : QV_SERIAL_LOG_MAX_DEFAULT;
	struct stat st;

	qv_source_remove(s);
	f->cap_timer = NULL;
	if (fstat(f->serial_log_fd, &st) == 0 && (uint64_t)st.st_size > max / 2)
		rotate(vm, f, st.st_size, (off_t)max);
	if (qv_loop_add_timer(vm->d->loop, CAP_INTERVAL_MS, on_cap_timer, vm, &f->cap_timer) < 0)
		f->cap_timer = NULL;
}

static void start_cap(struct qv_vm *vm)
{
	struct qv_vm_files *f = vm->files;

	if (f->serial_log_fd >= 0 && f->log_dir_fd >= 0 && !f->cap_timer &&
	    qv_loop_add_timer(vm->d->loop, CAP_INTERVAL_MS, on_cap_timer, vm, &f->cap_timer) < 0)
		log_warning("VM %s: cannot arm the serial log cap timer, ignoring", vm->name);
}

void qv_vm_files_started(struct qv_vm *vm)
{
	struct qv_vm_files *f = vm->files;

	if (!f)
		return;
	qv_vm_disks_close(f);
	f->log_fd = close_fd(f->log_fd);
	f->qmp_fd = close_fd(f->qmp_fd);
	f->serial_fd = close_fd(f->serial_fd);
	f->agent_fd = close_fd(f->agent_fd);
	f->cidata_fd = close_fd(f->cidata_fd);
	f->run_fd = close_fd(f->run_fd);
	start_cap(vm);
}

void qv_vm_files_attached(struct qv_vm *vm)
{
	struct qv_vm_files *f;

	if (!vm->spec->serial_log)
		return;
	files_free(vm->files);
	vm->files = f = files_new();
	if (!f)
		return;
	if (open_vm_dir(vm->d->cfg.state_dir, vm->name, &f->log_dir_fd) < 0 ||
	    (f->serial_log_fd = openat(f->log_dir_fd, QEMU_SERIAL_LOG,
				       O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		log_warning("VM %s: serial log not found; it is not capped until restart", vm->name);
		return;
	}
	start_cap(vm);
}

void qv_vm_files_release(struct qv_vm *vm)
{
	files_free(vm->files);
	vm->files = NULL;
}

void qv_vm_files_remove(struct qv_vm *vm)
{
	const char *roots[] = { vm->d->cfg.run_dir, vm->d->cfg.state_dir };

	qv_vm_files_release(vm);
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		char p[4096];
		_cleanup_close_ int fd = -1;
		int r;

		snprintf(p, sizeof(p), "%s/vms", roots[i]);
		fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = fd < 0 ? -errno : qemu_runfiles_remove_dir(fd, vm->name);
		if (r < 0 && r != -ENOENT)
			log_warning_errno(r, "VM %s: cannot remove %s/%s: %m, ignoring", vm->name, p,
					  vm->name);
	}
}
