/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"

/* QEMU's own mount namespace: the spawned child (still root, before it drops
 * its ids) unshares CLONE_NEWNS and pivots into a read-only tmpfs that shows
 * only /usr (and the /bin, /lib... links or binds of this host), /proc,
 * /sys (read-only), a /dev with null, zero, full, random, urandom and kvm,
 * and the files listed (kernel, initrd, a QEMU binary outside /usr), each
 * read-only at its own path. Everything else QEMU gets as an fd. The host's
 * state dir, run dir, images, /home, /root, /etc and /tmp are not there.
 *
 * Built in the parent (allocations); applied in the child with raw
 * syscalls only (qemu/rawsys.h): the child shares the daemon's memory until
 * it execs. The plan must live until the child exec'd or died. */

typedef struct qemu_mountns qemu_mountns;

/* mount_point: an existing directory owned by the caller, used as the new
 * root's mount point inside the child's namespace (the host never sees the
 * mount; it must not be an ancestor of the files or share_dir). files:
 * absolute paths (NULL entries skipped). share_dir (may be NULL): a
 * directory bound writable at its own path, for files the daemon hands
 * QEMU later by name (TLS credentials). */
int qemu_mountns_new(const char *mount_point, const char *const *files, size_t n_files,
		     const char *share_dir, qemu_mountns **ret, struct qv_error *errp);
qemu_mountns *qemu_mountns_free(qemu_mountns *ns);
void qemu_mountns_freep(qemu_mountns **ns);

/* For qemu_proc_opts.child_setup_privileged (userdata = the qemu_mountns).
 * 0 or -errno. */
int qemu_mountns_child_apply(void *userdata);
