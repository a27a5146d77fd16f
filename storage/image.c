/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/macro.h"
#include "storage/image.h"
#include "storage/qcow2-refs.h"
#include "storage/qemu-img.h"

static const char *const format_names[_QV_IMAGE_FORMAT_MAX] = {
	[QV_IMAGE_RAW] = "raw",
	[QV_IMAGE_QCOW2] = "qcow2",
};

bool qv_image_name_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strlen(name);
	if (n < 1 || n > QV_IMAGE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');
		if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-')))
			return false;
	}
	return true;
}

const char *qv_image_format_to_string(enum qv_image_format f)
{
	if (f < 0 || f >= _QV_IMAGE_FORMAT_MAX)
		return NULL;
	return format_names[f];
}

int qv_image_format_from_string(const char *s, enum qv_image_format *ret)
{
	for (int i = 0; i < _QV_IMAGE_FORMAT_MAX; i++)
		if (s && streq(s, format_names[i])) {
			*ret = (enum qv_image_format)i;
			return 0;
		}
	return -EINVAL;
}

int qv_image_sniff_format(const char *path, enum qv_image_format *ret, struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char magic[4];

	if (fd < 0)
		return qv_error_set(errp, errno, NULL, "open %s: %m", path);
	ssize_t n = pread(fd, magic, sizeof(magic), 0);
	if (n < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "read %s: %m", path);
	*ret = n == 4 && !memcmp(magic, "QFI\xfb", 4) ? QV_IMAGE_QCOW2 : QV_IMAGE_RAW;
	return 0;
}

int qv_image_create(const char *path, enum qv_image_format fmt, uint64_t size,
		    struct qv_error *errp)
{
	char sz[32];

	if (size > INT64_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "size too large");
	if (fmt == QV_IMAGE_RAW) {
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return qv_error_set(errp, errno, errno == EEXIST ? QV_REASON_CONFLICT : NULL,
					    "create %s: %m", path);
		if (ftruncate(fd, (off_t)size) < 0) {
			int r = qv_error_set(errp, errno, NULL, "resize %s: %m", path);
			unlink(path);
			return r;
		}
		return 0;
	}
	if (fmt != QV_IMAGE_QCOW2)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "unknown image format");
	if (access(path, F_OK) == 0)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "%s already exists", path);
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", (char *)path, sz, NULL };
	return qv_qemu_img_run(argv, NULL, errp);
}

int qv_image_create_linked(const char *path, const char *backing,
			   enum qv_image_format backing_fmt, struct qv_error *errp)
{
	const char *bf = qv_image_format_to_string(backing_fmt);

	if (!bf || !backing || backing[0] != '/')
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "a linked clone needs an absolute backing path and a format");
	if (access(path, F_OK) == 0)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "%s already exists", path);
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", (char *)backing,
			 "-F", (char *)bf, (char *)path, NULL };
	return qv_qemu_img_run(argv, NULL, errp);
}

/* An external data file is opened by every qemu-img call, backing null or
 * not: refuse an image whose header names one (qvisor never makes them). */
static int refuse_external_data(const char *path, struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct qv_qcow2_refs refs;
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, NULL, "open %s: %m", path);
	r = qv_qcow2_read_refs(fd, &refs, errp);
	if (r < 0)
		return r;
	if (refs.external_data || refs.data_file)
		r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				 "%s names an external data file \"%.200s\": refusing to open it",
				 path, refs.data_file ? refs.data_file : "?");
	qv_qcow2_refs_clear(&refs);
	return r;
}

static int info_qcow2(const char *path, struct qv_image_info *info, struct qv_error *errp)
{
	_cleanup_free_ char *out = NULL;
	_cleanup_json_ json_object *j = NULL;
	json_object *v;
	char *argv[] = { "qemu-img", "info", "-U", "-f", "qcow2", "--output=json", (char *)path, NULL };
	int r = refuse_external_data(path, errp);

	if (r >= 0)
		r = qv_qemu_img_run(argv, &out, errp);
	if (r < 0)
		return r;
	j = json_tokener_parse(out);
	if (!j || !json_object_object_get_ex(j, "virtual-size", &v))
		return qv_error_set(errp, EPROTO, QV_REASON_QEMU_ERROR,
				    "qemu-img info %s: unexpected output", path);
	info->virtual_size = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(j, "actual-size", &v))
		info->allocated_size = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(j, "encrypted", &v))
		info->encrypted = json_object_get_boolean(v);
	json_object *fs, *data, *enc, *slots;
	if (json_object_object_get_ex(j, "format-specific", &fs) &&
	    json_object_object_get_ex(fs, "data", &data) &&
	    json_object_object_get_ex(data, "encrypt", &enc) &&
	    json_object_object_get_ex(enc, "slots", &slots) &&
	    json_object_is_type(slots, json_type_array))
		for (size_t i = 0; i < json_object_array_length(slots); i++)
			if (json_object_object_get_ex(json_object_array_get_idx(slots, i), "active",
						      &v) && json_object_get_boolean(v))
				info->key_slots++;
	if (json_object_object_get_ex(j, "backing-filename", &v)) {
		info->backing = strdup(json_object_get_string(v));
		if (!info->backing)
			return -ENOMEM;
		info->backing_format = QV_IMAGE_RAW;
		if (json_object_object_get_ex(j, "backing-filename-format", &v))
			(void)qv_image_format_from_string(json_object_get_string(v),
							  &info->backing_format);
	}
	return 0;
}

int qv_image_info(const char *path, enum qv_image_format fmt, struct qv_image_info *ret,
		  struct qv_error *errp)
{
	struct qv_image_info info = { .format = fmt };
	struct stat st;
	int r;

	if (stat(path, &st) < 0)
		return qv_error_set(errp, errno, NULL, "stat %s: %m", path);
	info.virtual_size = (uint64_t)st.st_size;
	info.allocated_size = (uint64_t)st.st_blocks * 512;
	if (fmt == QV_IMAGE_QCOW2) {
		r = info_qcow2(path, &info, errp);
		if (r < 0) {
			qv_image_info_clear(&info);
			return r;
		}
	}
	*ret = info;
	return 0;
}

void qv_image_info_clear(struct qv_image_info *info)
{
	if (!info)
		return;
	free(info->backing);
	info->backing = NULL;
}

int qv_image_resize(const char *path, enum qv_image_format fmt, uint64_t size, bool shrink,
		    struct qv_error *errp)
{
	struct stat st;
	struct qv_image_info info = { 0 };
	char sz[32];
	int r;

	if (size > INT64_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "size too large");
	r = qv_image_info(path, fmt, &info, errp);
	if (r < 0)
		return r;
	qv_image_info_clear(&info);
	if (size < info.virtual_size && !shrink)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "refusing to shrink %s from %" PRIu64 " to %" PRIu64
				    " bytes (data past the end would be lost)",
				    path, info.virtual_size, size);
	if (fmt == QV_IMAGE_RAW) {
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) < 0)
			return qv_error_set(errp, errno, NULL, "open %s: %m", path);
		if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0)
			return qv_error_set(errp, errno, NULL, "resize %s: %m", path);
		return 0;
	}
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	/* Resizing needs no backing file: root's qemu-img must not open the
	 * one the header names (a guest's QEMU could have rewritten it). */
	_cleanup_free_ char *name = qv_qemu_img_json_name(path, NULL);
	if (!name)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	char *argv[] = { "qemu-img", "resize", "-q", name, sz, NULL };
	char *argv_shrink[] = { "qemu-img", "resize", "-q", "--shrink", name, sz, NULL };
	return qv_qemu_img_run(size < info.virtual_size ? argv_shrink : argv, NULL, errp);
}
