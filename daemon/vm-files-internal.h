/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/vm-files.h"
#include "qemu/secret.h"

struct qv_vm_files {
	int run_fd;           /* <run>/vms/<name> */
	int log_dir_fd;       /* <state>/vms/<name> */
	int log_fd;           /* qemu.log */
	int qmp_fd, serial_fd, agent_fd; /* listening sockets until QEMU holds them */
	int cidata_fd;        /* the cloud-init seed, until QEMU holds it */
	int serial_log_fd;    /* kept while QEMU runs: rotated by the cap timer */
	struct qemu_disk_fds *disks;
	struct qemu_backing_fd *backing; /* n_disks * QEMU_MAX_BACKING */
	size_t n_disks;
	struct qemu_master_key master; /* for encrypted disks (qemu/secret.h) */
	qv_source *cap_timer;
};

/* daemon/vm-disks.c: open vm's disks and their checked backing chains into
 * f->disks / f->backing. */
int qv_vm_disks_open(struct qv_vm *vm, struct qv_vm_files *f, struct qv_error *errp);
void qv_vm_disks_close(struct qv_vm_files *f);
