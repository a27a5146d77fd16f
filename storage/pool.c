/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "storage/image-crypt.h"
#include "storage/pool.h"
#include "storage/qcow2-refs.h"
#include "storage/tmpfile.h"

struct qv_pool {
	char *dir;
	int dirfd;
	qv_pool_in_use_fn in_use;
	void *in_use_ud;
};

/* flock on the pool directory for the duration of a scope. */
static void unlockp(int *fd)
{
	if (*fd >= 0)
		(void)flock(*fd, LOCK_UN);
}
#define POOL_LOCK(p) _cleanup_(unlockp) int _lock_ = pool_lock(p)
static int pool_lock(qv_pool *p)
{
	while (flock(p->dirfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -1;
	return p->dirfd;
}

int qv_pool_open(const char *dir, qv_pool **ret, struct qv_error *errp)
{
	_cleanup_free_ qv_pool *p = calloc(1, sizeof(*p));
	char real[PATH_MAX];

	if (!p)
		return -ENOMEM;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return qv_error_set(errp, errno, NULL, "create pool directory %s: %m", dir);
	if (!realpath(dir, real))
		return qv_error_set(errp, errno, NULL, "resolve pool directory %s: %m", dir);
	p->dirfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0)
		return qv_error_set(errp, errno, NULL, "open pool directory %s: %m", real);
	p->dir = strdup(real);
	if (!p->dir) {
		close(p->dirfd);
		return -ENOMEM;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

qv_pool *qv_pool_free(qv_pool *p)
{
	if (!p)
		return NULL;
	if (p->dirfd >= 0)
		close(p->dirfd);
	free(p->dir);
	free(p);
	return NULL;
}

const char *qv_pool_dir(const qv_pool *p)
{
	return p->dir;
}

void qv_pool_set_in_use_hook(qv_pool *p, qv_pool_in_use_fn fn, void *userdata)
{
	p->in_use = fn;
	p->in_use_ud = userdata;
}

static int check_name(const char *name, struct qv_error *errp)
{
	if (!qv_image_name_valid(name))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid image name \"%.80s\" (want [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62})",
				    name ? name : "");
	return 0;
}

static char *file_name(const char *name, enum qv_image_format fmt)
{
	char *s;
	if (asprintf(&s, "%s.%s", name, qv_image_format_to_string(fmt)) < 0)
		return NULL;
	return s;
}

static char *abs_path(qv_pool *p, const char *file)
{
	char *s;
	if (asprintf(&s, "%s/%s", p->dir, file) < 0)
		return NULL;
	return s;
}

/* 1 and *ret_fmt if name exists, 0 if not, -errno (errp) if it is not a
 * regular file. */
static int find(qv_pool *p, const char *name, enum qv_image_format *ret_fmt,
		struct qv_error *errp)
{
	for (int f = 0; f < _QV_IMAGE_FORMAT_MAX; f++) {
		_cleanup_free_ char *fn = file_name(name, (enum qv_image_format)f);
		struct stat st;
		if (!fn)
			return -ENOMEM;
		if (fstatat(p->dirfd, fn, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return qv_error_set(errp, errno, NULL, "stat %s/%s: %m", p->dir, fn);
		}
		if (!S_ISREG(st.st_mode))
			return qv_error_set(errp, ELOOP, QV_REASON_INVALID_ARGUMENT,
					    "%s/%s is not a regular file (symlinks are refused)",
					    p->dir, fn);
		*ret_fmt = (enum qv_image_format)f;
		return 1;
	}
	return 0;
}

int qv_pool_lookup(qv_pool *p, const char *name, char **ret_path,
		   enum qv_image_format *ret_fmt, struct qv_error *errp)
{
	enum qv_image_format fmt;
	int r = check_name(name, errp);

	if (r < 0)
		return r;
	r = find(p, name, &fmt, errp);
	if (r < 0)
		return r;
	if (r == 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "no image \"%s\" in pool %s",
				    name, p->dir);
	_cleanup_free_ char *fn = file_name(name, fmt);
	char *path = fn ? abs_path(p, fn) : NULL;
	if (!path)
		return -ENOMEM;
	if (ret_path)
		*ret_path = path;
	else
		free(path);
	if (ret_fmt)
		*ret_fmt = fmt;
	return 0;
}

/* Validate a new name and return the absolute path it will have. */
static int new_image_path(qv_pool *p, const char *name, enum qv_image_format fmt,
			  char **ret_path, struct qv_error *errp)
{
	enum qv_image_format existing;
	int r = check_name(name, errp);

	if (r < 0)
		return r;
	if (!qv_image_format_to_string(fmt))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "bad image format");
	r = find(p, name, &existing, errp);
	if (r < 0)
		return r;
	if (r > 0)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "image \"%s\" already exists in pool %s", name, p->dir);
	_cleanup_free_ char *fn = file_name(name, fmt);
	*ret_path = fn ? abs_path(p, fn) : NULL;
	return *ret_path ? 0 : -ENOMEM;
}

/* Run create(tmp path) on a fresh ".name.XXXXXX" file, then link it to its
 * final name (never replacing) and remove the temp name. */
typedef int (*make_fn)(const char *tmp_path, const void *arg, struct qv_error *errp);
static int publish_via_tmp(qv_pool *p, const char *final_path, make_fn make, const void *arg,
			   struct qv_error *errp)
{
	_cleanup_free_ char *dir = NULL, *base = NULL, *tn = NULL, *tp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	r = qv_path_split(final_path, &dir, &base);
	if (r < 0)
		return r;
	r = qv_tmpname_create(p->dirfd, base, &tn);
	if (r < 0)
		return qv_error_set(errp, -r, NULL, "create a temporary file in %s: %s", p->dir,
				    strerror(-r));
	tp = abs_path(p, tn);
	if (!tp) {
		r = -ENOMEM;
		goto out;
	}
	r = make(tp, arg, errp);
	if (r < 0)
		goto out;
	fd = openat(p->dirfd, tn, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsync(fd) < 0) {
		r = qv_error_set(errp, errno, NULL, "sync %s: %m", tp);
		goto out;
	}
	if (linkat(p->dirfd, tn, p->dirfd, base, 0) < 0) {
		r = qv_error_set(errp, errno, errno == EEXIST ? QV_REASON_CONFLICT : NULL,
				 "publish %s: %m", final_path);
		goto out;
	}
	(void)fsync(p->dirfd);
out:
	(void)unlinkat(p->dirfd, tn, 0);
	return r;
}

struct create_arg {
	enum qv_image_format fmt;
	uint64_t size;
	const char *backing;
	enum qv_image_format backing_fmt;
	const struct qv_secret *key; /* LUKS qcow2 */
	unsigned iter_time_ms;
};

static int make_image(const char *tmp_path, const void *arg, struct qv_error *errp)
{
	const struct create_arg *a = arg;

	/* qemu-img create and our raw create both want a fresh path. */
	if (unlink(tmp_path) < 0)
		return qv_error_set(errp, errno, NULL, "unlink %s: %m", tmp_path);
	if (a->backing)
		return qv_image_create_linked(tmp_path, a->backing, a->backing_fmt, errp);
	if (a->key)
		return qv_image_create_luks(tmp_path, a->size, a->key, a->iter_time_ms, errp);
	return qv_image_create(tmp_path, a->fmt, a->size, errp);
}

int qv_pool_create(qv_pool *p, const char *name, enum qv_image_format fmt, uint64_t size,
		   struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	struct create_arg a = { .fmt = fmt, .size = size };
	POOL_LOCK(p);
	int r = new_image_path(p, name, fmt, &path, errp);

	if (r < 0)
		return r;
	return publish_via_tmp(p, path, make_image, &a, errp);
}

int qv_pool_create_luks(qv_pool *p, const char *name, uint64_t size,
			const struct qv_secret *key, unsigned iter_time_ms, struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	struct create_arg a = { .fmt = QV_IMAGE_QCOW2, .size = size, .key = key,
				.iter_time_ms = iter_time_ms };
	POOL_LOCK(p);
	int r = new_image_path(p, name, QV_IMAGE_QCOW2, &path, errp);

	if (r < 0)
		return r;
	if (!key)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "no key");
	return publish_via_tmp(p, path, make_image, &a, errp);
}

static int copy_in(qv_pool *p, const char *src, const char *dst,
		   const struct qv_copy_opts *copy_opts, struct qv_copy_stats *ret_stats,
		   struct qv_error *errp)
{
	struct qv_copy_opts o;

	if (copy_opts)
		o = *copy_opts;
	else
		qv_copy_opts_init(&o);
	o.no_replace = true;
	int r = qv_copy_file(src, dst, &o, ret_stats, errp);
	/* The copy kept the source's mode: pool images are private. */
	if (r >= 0 && chmod(dst, 0600) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "chmod %s: %m", dst);
	return r;
}

/* The published copy is checked again: only we can write it, so what a
 * VM will read is what was checked, whatever the source did meanwhile. */
static int recheck_published(qv_pool *p, const char *path, const char *src,
			     struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", path);
	r = qv_qcow2_check_self_contained(fd, src, errp);
	if (r < 0)
		(void)unlink(path);
	return r;
}

int qv_pool_import(qv_pool *p, const char *src_path, const char *name,
		   enum qv_image_format fmt, const struct qv_copy_opts *copy_opts,
		   struct qv_copy_stats *ret_stats, struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = open(src_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	char via_fd[64];
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND, "cannot open %s: %m",
				    src_path);
	/* Every later step reads this open file, never the name again. */
	snprintf(via_fd, sizeof(via_fd), "/proc/self/fd/%d", fd);
	r = qv_qcow2_check_self_contained(fd, src_path, errp);
	if (r < 0)
		return r;
	if (fmt == QV_IMAGE_AUTO) {
		r = qv_image_sniff_format(via_fd, &fmt, errp);
		if (r < 0)
			return r;
	}
	POOL_LOCK(p);
	r = new_image_path(p, name, fmt, &path, errp);
	if (r < 0)
		return r;
	r = copy_in(p, via_fd, path, copy_opts, ret_stats, errp);
	if (r < 0)
		return r;
	return fmt == QV_IMAGE_QCOW2 ? recheck_published(p, path, src_path, errp) : 0;
}

int qv_pool_clone(qv_pool *p, const char *src_name, const char *dst_name,
		  enum qv_clone_mode mode, const struct qv_copy_opts *copy_opts,
		  struct qv_copy_stats *ret_stats, struct qv_error *errp)
{
	_cleanup_free_ char *src = NULL, *dst = NULL;
	enum qv_image_format fmt;
	POOL_LOCK(p);
	int r = qv_pool_lookup(p, src_name, &src, &fmt, errp);

	if (r < 0)
		return r;
	if (mode == QV_CLONE_LINKED) {
		struct create_arg a = { .backing = src, .backing_fmt = fmt };
		r = new_image_path(p, dst_name, QV_IMAGE_QCOW2, &dst, errp);
		if (r < 0)
			return r;
		return publish_via_tmp(p, dst, make_image, &a, errp);
	}
	if (mode != QV_CLONE_FULL)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "bad clone mode");
	r = new_image_path(p, dst_name, fmt, &dst, errp);
	if (r < 0)
		return r;
	return copy_in(p, src, dst, copy_opts, ret_stats, errp);
}

int qv_pool_info(qv_pool *p, const char *name, struct qv_image_info *ret,
		 struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	enum qv_image_format fmt;
	struct qv_image_info info;
	int r = qv_pool_lookup(p, name, &path, &fmt, errp);

	if (r < 0)
		return r;
	r = qv_image_info(path, fmt, &info, errp);
	if (r < 0)
		return r;
	snprintf(info.name, sizeof(info.name), "%s", name);
	*ret = info;
	return 0;
}

void qv_image_info_array_free(struct qv_image_info *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		qv_image_info_clear(&a[i]);
	free(a);
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct qv_image_info *)a)->name,
		      ((const struct qv_image_info *)b)->name);
}

/* Image name of a directory entry, or false if it is not a pool image. */
static bool entry_name(const char *file, char name[static QV_IMAGE_NAME_MAX + 1])
{
	const char *dot = strrchr(file, '.');
	enum qv_image_format fmt;

	if (!dot || qv_image_format_from_string(dot + 1, &fmt) < 0)
		return false;
	size_t n = (size_t)(dot - file);
	if (n > QV_IMAGE_NAME_MAX)
		return false;
	memcpy(name, file, n);
	name[n] = '\0';
	return qv_image_name_valid(name);
}

int qv_pool_list(qv_pool *p, struct qv_image_info **ret, size_t *ret_n,
		 struct qv_error *errp)
{
	struct qv_image_info *a = NULL;
	size_t n = 0;
	int fd = openat(p->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int r = 0;

	if (!d) {
		r = qv_error_set(errp, errno, NULL, "open pool %s: %m", p->dir);
		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		char name[QV_IMAGE_NAME_MAX + 1];
		struct qv_image_info info;
		if (!entry_name(de->d_name, name))
			continue;
		r = qv_pool_info(p, name, &info, errp);
		if (r == -ENOENT) { /* deleted meanwhile */
			qv_error_clear(errp);
			continue;
		}
		if (r < 0)
			break;
		struct qv_image_info *na = realloc(a, (n + 1) * sizeof(*a));
		if (!na) {
			qv_image_info_clear(&info);
			r = -ENOMEM;
			break;
		}
		a = na;
		a[n++] = info;
	}
	closedir(d);
	if (r < 0) {
		qv_image_info_array_free(a, n);
		return r;
	}
	if (n)
		qsort(a, n, sizeof(*a), cmp_info);
	*ret = a;
	*ret_n = n;
	return 0;
}

/* Name of a pool image that uses path as its backing file, if any. */
static int find_dependent(qv_pool *p, const char *path, char dep[static QV_IMAGE_NAME_MAX + 1],
			  struct qv_error *errp)
{
	struct qv_image_info *a = NULL;
	size_t n = 0;
	int r = qv_pool_list(p, &a, &n, errp), found = 0;

	if (r < 0)
		return r;
	for (size_t i = 0; i < n && !found; i++)
		if (a[i].backing && streq(a[i].backing, path)) {
			memcpy(dep, a[i].name, QV_IMAGE_NAME_MAX + 1);
			found = 1;
		}
	qv_image_info_array_free(a, n);
	return found;
}

static int check_busy(qv_pool *p, const char *name, const char *path, struct qv_error *errp)
{
	if (p->in_use && p->in_use(name, path, p->in_use_ud))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "image \"%s\" is in use", name);
	return 0;
}

int qv_pool_delete(qv_pool *p, const char *name, struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	char dep[QV_IMAGE_NAME_MAX + 1];
	enum qv_image_format fmt;
	POOL_LOCK(p);
	int r = qv_pool_lookup(p, name, &path, &fmt, errp);

	if (r < 0)
		return r;
	r = check_busy(p, name, path, errp);
	if (r < 0)
		return r;
	r = find_dependent(p, path, dep, errp);
	if (r < 0)
		return r;
	if (r > 0)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "image \"%s\" is the backing file of \"%s\"", name, dep);
	_cleanup_free_ char *fn = file_name(name, fmt);
	if (!fn)
		return -ENOMEM;
	if (unlinkat(p->dirfd, fn, 0) < 0)
		return qv_error_set(errp, errno, NULL, "delete %s: %m", path);
	(void)fsync(p->dirfd);
	return 0;
}

int qv_pool_resize(qv_pool *p, const char *name, uint64_t size, bool shrink,
		   struct qv_error *errp)
{
	return qv_pool_resize_luks(p, name, size, shrink, NULL, errp);
}

int qv_pool_resize_luks(qv_pool *p, const char *name, uint64_t size, bool shrink,
			const struct qv_secret *key, struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	enum qv_image_format fmt;
	POOL_LOCK(p);
	int r = qv_pool_lookup(p, name, &path, &fmt, errp);

	if (r < 0)
		return r;
	r = check_busy(p, name, path, errp);
	if (r < 0)
		return r;
	if (key && fmt != QV_IMAGE_QCOW2)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "image %s is not an encrypted qcow2", name);
	if (key) {
		struct qv_image_info info;
		r = qv_image_info(path, fmt, &info, errp);
		if (r < 0)
			return r;
		qv_image_info_clear(&info);
		if (size < info.virtual_size && !shrink)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "refusing to shrink %s from %" PRIu64 " to %" PRIu64
					    " bytes (data past the end would be lost)",
					    path, info.virtual_size, size);
		return qv_image_resize_luks(path, size, size < info.virtual_size, key, errp);
	}
	return qv_image_resize(path, fmt, size, shrink, errp);
}

int qv_pool_rekey(qv_pool *p, const char *name, const struct qv_secret *old_key,
		  const struct qv_secret *new_key, unsigned iter_time_ms,
		  int (*commit)(void *userdata, struct qv_error *errp), void *userdata,
		  struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	enum qv_image_format fmt;
	POOL_LOCK(p);
	int r = qv_pool_lookup(p, name, &path, &fmt, errp);

	if (r < 0)
		return r;
	if (fmt != QV_IMAGE_QCOW2)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "image %s is not an encrypted qcow2", name);
	/* No in-use hook: a defined VM that is not running may keep the image;
	 * whether a running one has it open is the caller's check. */
	r = qv_image_rekey_add(path, old_key, new_key, iter_time_ms, errp);
	if (r >= 0 && commit)
		r = commit(userdata, errp);
	if (r >= 0)
		r = qv_image_rekey_drop(path, old_key, new_key, errp);
	return r;
}
