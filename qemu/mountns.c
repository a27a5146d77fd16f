/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common/macro.h"
#include "qemu/mountns.h"
#include "qemu/rawsys.h"

#define MAX_OPS 64

enum op_kind {
	OP_MKDIR,   /* target */
	OP_SYMLINK, /* source -> target */
	OP_BIND_RO, /* source onto target (dir or file); missing source skipped */
	OP_BIND_RW, /* the same, writable (device nodes, /proc) */
	OP_TOUCH,   /* empty file as a mount point */
};

struct op {
	enum op_kind kind;
	char *source;
	char *target; /* inside the new root: mount_point + path */
};

struct qemu_mountns {
	char root[PATH_MAX];
	char old[PATH_MAX];
	struct op *ops;
	size_t n;
};

static int add(qemu_mountns *ns, enum op_kind kind, const char *source, const char *path)
{
	struct op *o;

	if (ns->n == MAX_OPS)
		return -E2BIG;
	/* Strings, not PATH_MAX arrays: the plan is built for every start and
	 * 64 ops of 8 KiB each cost the daemon half a MiB of page faults. */
	o = &ns->ops[ns->n++];
	o->kind = kind;
	o->source = strdup(source ? source : "");
	if (!o->source || asprintf(&o->target, "%s%s", ns->root, path) < 0) {
		o->target = NULL;
		return -ENOMEM;
	}
	if (strlen(o->target) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Top-level system dirs: replicate a symlink (merged /usr), bind a dir. */
static int add_system_dir(qemu_mountns *ns, const char *path)
{
	char link[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st) < 0)
		return 0;
	if (S_ISLNK(st.st_mode)) {
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			return 0;
		link[n] = '\0';
		return add(ns, OP_SYMLINK, link, path);
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	int r = add(ns, OP_MKDIR, NULL, path);
	return r < 0 ? r : add(ns, OP_BIND_RO, path, path);
}

/* mkdir -p of the parents of path inside the new root, then the file (or
 * with dir, the directory). */
static int add_path(qemu_mountns *ns, const char *path, bool dir)
{
	char buf[PATH_MAX];
	int r;

	if (!path || path[0] != '/' || strncmp(path, "/usr/", 5) == 0)
		return 0;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strchr(buf + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		r = add(ns, OP_MKDIR, NULL, buf);
		*p = '/';
		if (r < 0)
			return r;
	}
	if (dir)
		r = add(ns, OP_MKDIR, NULL, path);
	else
		r = add(ns, OP_TOUCH, NULL, path);
	return r < 0 ? r : add(ns, dir ? OP_BIND_RW : OP_BIND_RO, path, path);
}

static int plan(qemu_mountns *ns, const char *const *files, size_t n_files, const char *share)
{
	static const char *const sys[] = { "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32" };
	static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
					    "/dev/urandom", "/dev/kvm" };
	int r = 0;

	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(sys); i++)
		r = add_system_dir(ns, sys[i]);
	if (r >= 0)
		r = add(ns, OP_MKDIR, NULL, "/proc");
	if (r >= 0)
		r = add(ns, OP_BIND_RW, "/proc", "/proc");
	if (r >= 0)
		r = add(ns, OP_MKDIR, NULL, "/sys");
	if (r >= 0)
		r = add(ns, OP_BIND_RO, "/sys", "/sys");
	if (r >= 0)
		r = add(ns, OP_MKDIR, NULL, "/dev");
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(devs); i++)
		if (access(devs[i], F_OK) == 0 && (r = add(ns, OP_TOUCH, NULL, devs[i])) >= 0)
			r = add(ns, OP_BIND_RW, devs[i], devs[i]);
	for (size_t i = 0; r >= 0 && i < n_files; i++)
		r = add_path(ns, files[i], false);
	if (r >= 0 && share)
		r = add_path(ns, share, true);
	return r;
}

int qemu_mountns_new(const char *mount_point, const char *const *files, size_t n_files,
		     const char *share_dir, qemu_mountns **ret, struct qv_error *errp)
{
	qemu_mountns *ns = calloc(1, sizeof(*ns));
	int r;

	if (!ns || !(ns->ops = calloc(MAX_OPS, sizeof(*ns->ops)))) {
		free(ns);
		return -ENOMEM;
	}
	snprintf(ns->root, sizeof(ns->root), "%s", mount_point);
	snprintf(ns->old, sizeof(ns->old), "%s/.old", mount_point);
	r = plan(ns, files, n_files, share_dir);
	if (r < 0) {
		qemu_mountns_free(ns);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL,
				    "Cannot plan QEMU's mount namespace: %s", strerror(-r));
	}
	*ret = ns;
	return 0;
}

qemu_mountns *qemu_mountns_free(qemu_mountns *ns)
{
	if (ns) {
		for (size_t i = 0; ns->ops && i < ns->n; i++) {
			free(ns->ops[i].source);
			free(ns->ops[i].target);
		}
		free(ns->ops);
		free(ns);
	}
	return NULL;
}

void qemu_mountns_freep(qemu_mountns **ns)
{
	*ns = qemu_mountns_free(*ns);
}

/* ---- child side: raw syscalls only (qemu/rawsys.h) ----------------------- */

static int bind_op(const struct op *o, bool ro)
{
	unsigned long fl = MS_BIND | MS_REC;
	long r;

	r = qv_sys(SYS_mount, o->source, o->target, NULL, fl, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : (int)r; /* QEMU reports a missing file itself */
	if (ro)
		r = qv_sys(SYS_mount, NULL, o->target, NULL,
			   MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, NULL);
	return r < 0 ? (int)r : 0;
}

static int apply_op(const struct op *o)
{
	long r;

	switch (o->kind) {
	case OP_MKDIR:
		r = qv_sys(SYS_mkdirat, AT_FDCWD, o->target, 0755);
		return r < 0 && r != -EEXIST ? (int)r : 0;
	case OP_SYMLINK:
		r = qv_sys(SYS_symlinkat, o->source, AT_FDCWD, o->target);
		return r < 0 && r != -EEXIST ? (int)r : 0;
	case OP_TOUCH:
		r = qv_sys(SYS_openat, AT_FDCWD, o->target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (r < 0)
			return (int)r;
		qv_sys(SYS_close, r);
		return 0;
	case OP_BIND_RO:
		return bind_op(o, true);
	case OP_BIND_RW:
		return bind_op(o, false);
	}
	return -EINVAL;
}

/* Make ns->root the process's root. pivot_root detaches the host's tree
 * completely; it refuses (EINVAL) when the current root is the initramfs
 * (rootfs), as in a lab VM booted from one. There, move the new root over it
 * and chroot, as switch_root does: the host's tree stays in the namespace
 * but out of reach, since QEMU holds no capability to chroot out. */
static int enter_root(const qemu_mountns *ns)
{
	long r;

	if ((r = qv_sys(SYS_chdir, ns->root)) < 0)
		return (int)r;
	r = qv_sys(SYS_pivot_root, ".", ".old");
	if (r == 0) {
		if ((r = qv_sys(SYS_chdir, "/")) < 0 ||
		    (r = qv_sys(SYS_umount2, "/.old", MNT_DETACH)) < 0)
			return (int)r;
		return 0;
	}
	if (r != -EINVAL)
		return (int)r;
	if ((r = qv_sys(SYS_mount, ".", "/", NULL, MS_MOVE, NULL)) < 0 ||
	    (r = qv_sys(SYS_chroot, ".")) < 0 || (r = qv_sys(SYS_chdir, "/")) < 0)
		return (int)r;
	return 0;
}

int qemu_mountns_child_apply(void *userdata)
{
	const qemu_mountns *ns = userdata;
	long r;

	qv_sys(SYS_umask, 022); /* the daemon's 077 would hide the new root's dirs from QEMU */
	if ((r = qv_sys(SYS_unshare, CLONE_NEWNS)) < 0 ||
	    (r = qv_sys(SYS_mount, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) < 0)
		return (int)r;
	r = qv_sys(SYS_mount, "qvisor-qemu-root", ns->root, "tmpfs", MS_NOSUID | MS_NODEV,
		   "mode=0755,size=256k");
	if (r < 0)
		return (int)r;
	for (size_t i = 0; i < ns->n; i++)
		if ((r = apply_op(&ns->ops[i])) < 0)
			return (int)r;
	if ((r = qv_sys(SYS_mkdirat, AT_FDCWD, ns->old, 0700)) < 0)
		return (int)r;
	if ((r = enter_root(ns)) < 0)
		return (int)r;
	if ((r = qv_sys(SYS_unlinkat, AT_FDCWD, "/.old", AT_REMOVEDIR)) < 0)
		return (int)r;
	r = qv_sys(SYS_mount, NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
	return r < 0 ? (int)r : 0;
}
