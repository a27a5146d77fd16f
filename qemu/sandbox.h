/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"

/* The QEMU sandbox: a seccomp filter built by qvisor with libseccomp, plus
 * checks that the files QEMU needs are reachable by its unprivileged user.
 *
 * The filter is built and exported to classic BPF in the parent
 * (qemu_sandbox_new); the spawned child only calls
 * prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) from its child_setup hook
 * (qemu_sandbox_child_setup), which is async-signal-safe. no_new_privs must
 * be set first (qemu_proc does it before child_setup). QEMU's own
 * "-sandbox on,..." filter is layered on top of ours by QEMU itself.
 *
 * Denied with EPERM: every syscall in qemu_sandbox_denied[], userfaultfd
 * (unless the postcopy variant), kill/tgkill/rt_sigqueueinfo/
 * rt_tgsigqueueinfo to any pid but QEMU's own, and clone()
 * with any namespace flag (CLONE_NEWNS|NEWUSER|NEWPID|NEWNET|NEWUTS|NEWIPC|
 * NEWCGROUP). clone3() fails with ENOSYS so glibc falls back to clone(),
 * whose flags a filter can inspect. Syscalls of foreign architectures
 * (i386, x32 ABI) kill the process. docs/security.md has the threat model. */

typedef struct qemu_sandbox qemu_sandbox;

#define QEMU_SANDBOX_USER "qvisor-qemu"

/* NULL-terminated. */
extern const char *const qemu_sandbox_denied[];

int qemu_sandbox_new(qemu_sandbox **ret, struct qv_error *errp);
qemu_sandbox *qemu_sandbox_free(qemu_sandbox *sb);
void qemu_sandbox_freep(qemu_sandbox **sb);
/* Number of BPF instructions of the exported filter. */
unsigned qemu_sandbox_filter_len(const qemu_sandbox *sb);

/* The child_setup userdata of a filter variant: the default one denies
 * userfaultfd; allow_userfaultfd for a QEMU that may run postcopy (an
 * incoming migration). The qemu_sandbox pointer itself is the default. */
const void *qemu_sandbox_variant(const qemu_sandbox *sb, bool allow_userfaultfd);

/* For qemu_proc_opts.child_setup (userdata = a variant, or the
 * qemu_sandbox). Patches the child's own pid into a copy of the program on
 * its stack (kill/tgkill/rt_(tg)sigqueueinfo only to itself), then prctls:
 * raw syscalls only (the child may share the daemon's memory, see
 * qemu/rawsys.h), no allocation. Returns 0 or -errno. */
int qemu_sandbox_child_setup(void *userdata);
/* Set no_new_privs and load the filter into the calling thread (tests). */
int qemu_sandbox_install(const qemu_sandbox *sb);

/* uid/gid of a user; -ENOENT with a hint when it does not exist. */
int qemu_sandbox_lookup_user(const char *name, uid_t *ret_uid, gid_t *ret_gid,
			     struct qv_error *errp);
/* Can uid/gid (no supplementary groups) reach path (search permission on
 * every ancestor) and access it with `want` (R_OK, W_OK, X_OK bits)?
 * 0, or -EACCES with errp naming the blocking component and its mode. */
int qemu_sandbox_check_access(const char *path, uid_t uid, gid_t gid, int want,
			      struct qv_error *errp);
