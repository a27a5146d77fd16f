/* SPDX-License-Identifier: MIT */
/* The seccomp filter QEMU runs under, and file-access checks for its user. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "qemu/rawsys.h"
#include "qemu/sandbox.h"

const char *const qemu_sandbox_denied[] = {
	/* file system namespace and mounts (old and new mount API) */
	"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
	"move_mount", "open_tree", "fspick", "mount_setattr", "open_by_handle_at",
	/* kernel code and machine state */
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "swapon", "swapoff", "bpf", "acct", "settimeofday", "clock_settime",
	"clock_adjtime", "adjtimex",
	/* other processes, keys, execution domain, namespaces */
	"ptrace", "process_vm_writev", "keyctl", "add_key", "request_key", "personality",
	"unshare", "setns",
	/* reaching into other processes: memory, fds, identity, signals */
	"process_vm_readv", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "kcmp",
	"tkill", "perf_event_open",
	NULL,
};

/* Signals only to QEMU itself: the first argument must be its own pid.
 * The filter is built once with a placeholder that the child replaces by
 * getpid() in its copy of the program right before loading it. */
static const char *const self_only[] = { "kill", "tgkill", "rt_sigqueueinfo",
					 "rt_tgsigqueueinfo" };
#define SELF_PID_PLACEHOLDER 0x7ffe5eedu

#define NS_FLAGS                                                                   \
	(CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | \
	 CLONE_NEWIPC | CLONE_NEWCGROUP)

struct variant {
	struct sock_fprog prog;
	struct sock_filter *insns;
};

/* v[0] (first, so a qemu_sandbox * is its userdata): userfaultfd denied;
 * v[1]: allowed, for an incoming migration that may switch to postcopy. */
struct qemu_sandbox {
	struct variant v[2];
};

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

static int build_self_only(scmp_filter_ctx ctx, bool allow_uffd, struct qv_error *errp)
{
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(self_only); i++) {
		int nr = seccomp_syscall_resolve_name(self_only[i]);
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
				     SCMP_A0(SCMP_CMP_NE, SELF_PID_PLACEHOLDER));
		if (r < 0)
			return qv_error_set(errp, -r, QV_REASON_INTERNAL,
					    "seccomp: cannot restrict %s: %s", self_only[i],
					    strerror(-r));
	}
	if (allow_uffd)
		return 0;
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(userfaultfd), 0);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL,
				    "seccomp: cannot deny userfaultfd: %s", strerror(-r));
	return 0;
}

static int build(scmp_filter_ctx ctx, bool allow_uffd, struct qv_error *errp)
{
	static const unsigned long ns_flags[] = { CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID,
						  CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC,
						  CLONE_NEWCGROUP };
	int r;

	for (size_t i = 0; qemu_sandbox_denied[i]; i++) {
		int nr = seccomp_syscall_resolve_name(qemu_sandbox_denied[i]);
		if (nr == __NR_SCMP_ERROR) {
			log_debug("seccomp: %s unknown on this architecture, skipped",
				  qemu_sandbox_denied[i]);
			continue;
		}
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (r < 0)
			return qv_error_set(errp, -r, QV_REASON_INTERNAL,
					    "seccomp: cannot deny %s: %s", qemu_sandbox_denied[i],
					    strerror(-r));
	}
	/* clone(flags, ...): x86-64 passes flags in arg 0. One rule per flag:
	 * libseccomp ANDs the comparisons of one rule, rules are ORed. */
	for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
		if (r < 0)
			return qv_error_set(errp, -r, QV_REASON_INTERNAL,
					    "seccomp: cannot add the clone rule: %s", strerror(-r));
	}
	/* clone3 passes flags in memory, out of a filter's reach: make glibc
	 * fall back to clone. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL,
				    "seccomp: cannot add the clone3 rule: %s", strerror(-r));
	return build_self_only(ctx, allow_uffd, errp);
}

static int build_variant(struct variant *v, bool allow_uffd, struct qv_error *errp)
{
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	_cleanup_close_ int mfd = -1;
	struct stat st;
	int r;

	if (!ctx)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "seccomp_init failed");
	/* Foreign ABIs (i386 int 0x80, x32) are not in the filter: kill. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "seccomp: %s", strerror(-r));
	r = build(ctx, allow_uffd, errp);
	if (r < 0)
		return r;
	mfd = memfd_create("qvisor-seccomp", MFD_CLOEXEC);
	if (mfd < 0)
		return qv_error_set(errp, errno, QV_REASON_INTERNAL, "memfd_create: %m");
	r = seccomp_export_bpf(ctx, mfd);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "seccomp_export_bpf: %s",
				    strerror(-r));
	if (fstat(mfd, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_INTERNAL, "fstat: %m");
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return qv_error_set(errp, EINVAL, QV_REASON_INTERNAL,
				    "seccomp: exported filter has an odd size (%lld bytes)",
				    (long long)st.st_size);
	v->insns = malloc((size_t)st.st_size);
	if (!v->insns)
		return -ENOMEM;
	if (pread(mfd, v->insns, (size_t)st.st_size, 0) != st.st_size)
		return qv_error_set(errp, EIO, QV_REASON_INTERNAL, "seccomp: short read");
	v->prog.len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	v->prog.filter = v->insns;
	return 0;
}

int qemu_sandbox_new(qemu_sandbox **ret, struct qv_error *errp)
{
	qemu_sandbox *sb = calloc(1, sizeof(*sb));
	int r;

	if (!sb)
		return -ENOMEM;
	for (int i = 0; i < 2; i++) {
		r = build_variant(&sb->v[i], i == 1, errp);
		if (r < 0) {
			qemu_sandbox_free(sb);
			return r;
		}
	}
	*ret = sb;
	return 0;
}

const void *qemu_sandbox_variant(const qemu_sandbox *sb, bool allow_userfaultfd)
{
	return &sb->v[allow_userfaultfd ? 1 : 0];
}

qemu_sandbox *qemu_sandbox_free(qemu_sandbox *sb)
{
	if (sb) {
		free(sb->v[0].insns);
		free(sb->v[1].insns);
		free(sb);
	}
	return NULL;
}

void qemu_sandbox_freep(qemu_sandbox **sb)
{
	*sb = qemu_sandbox_free(*sb);
}

unsigned qemu_sandbox_filter_len(const qemu_sandbox *sb)
{
	return sb->v[0].prog.len;
}

int qemu_sandbox_child_setup(void *userdata)
{
	const struct variant *v = userdata;
	struct sock_filter insns[v->prog.len]; /* <= BPF_MAXINSNS, checked at build */
	struct sock_fprog prog = { .len = v->prog.len, .filter = insns };
	uint32_t self = (uint32_t)qv_sys(SYS_getpid);
	long r;

	/* The child may share the daemon's memory (qemu/proc.c): patch our pid
	 * into a copy on our own stack, never into the shared program. A
	 * volatile source keeps the compiler from calling memcpy. */
	for (unsigned i = 0; i < v->prog.len; i++) {
		insns[i] = ((const volatile struct sock_filter *)v->insns)[i];
		if (insns[i].k == SELF_PID_PLACEHOLDER)
			insns[i].k = self;
	}
	/* Not dumpable until exec (which resets it): see docs/security.md. */
	qv_sys(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
	r = qv_sys(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
	return r < 0 ? (int)r : 0;
}

int qemu_sandbox_install(const qemu_sandbox *sb)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return qemu_sandbox_child_setup((void *)&sb->v[0]);
}

int qemu_sandbox_lookup_user(const char *name, uid_t *ret_uid, gid_t *ret_gid,
			     struct qv_error *errp)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);

	if (r != 0 || !res)
		return qv_error_set(errp, r ? r : ENOENT, QV_REASON_UNAVAILABLE,
				    "user %s does not exist: QEMU runs as that unprivileged user "
				    "(create it with: useradd --system --no-create-home "
				    "--shell /usr/sbin/nologin %s, or run scripts/install-deps.sh)",
				    name, name);
	if (res->pw_uid == 0)
		return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
				    "user %s has uid 0; QEMU must run unprivileged", name);
	*ret_uid = res->pw_uid;
	*ret_gid = res->pw_gid;
	return 0;
}

/* Permission bits that apply to uid/gid for st. */
static mode_t bits_for(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid == uid)
		return (st->st_mode >> 6) & 7;
	if (st->st_gid == gid)
		return (st->st_mode >> 3) & 7;
	return st->st_mode & 7;
}

int qemu_sandbox_check_access(const char *path, uid_t uid, gid_t gid, int want,
			      struct qv_error *errp)
{
	char buf[PATH_MAX];
	struct stat st;

	if (!realpath(path, buf))
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND, "%s: %m", path);
	/* Every ancestor needs search (x) permission. */
	for (char *p = strchr(buf + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (stat(buf, &st) == 0 && !(bits_for(&st, uid, gid) & 1)) {
			int e = qv_error_set(errp, EACCES, QV_REASON_PERMISSION,
					     "%s is not reachable by the QEMU user (uid %u): "
					     "directory %s has mode %04o, owner %u:%u (needs "
					     "search permission, e.g. chmod o+x)",
					     path, (unsigned)uid, buf, st.st_mode & 07777,
					     (unsigned)st.st_uid, (unsigned)st.st_gid);
			*p = '/';
			return e;
		}
		*p = '/';
	}
	if (stat(buf, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND, "%s: %m", buf);
	mode_t have = bits_for(&st, uid, gid);
	if (((want & R_OK) && !(have & 4)) || ((want & W_OK) && !(have & 2)) ||
	    ((want & X_OK) && !(have & 1)))
		return qv_error_set(errp, EACCES, QV_REASON_PERMISSION,
				    "%s is not %s by the QEMU user (uid %u): mode %04o, owner "
				    "%u:%u",
				    path, (want & W_OK) ? "writable" : "readable", (unsigned)uid,
				    st.st_mode & 07777, (unsigned)st.st_uid, (unsigned)st.st_gid);
	return 0;
}
