/* SPDX-License-Identifier: MIT */
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>

#include "common/json.h"
#include "common/macro.h"
#include "storage/foreign.h"
#include "storage/qemu-img.h"

#define REFUSE(errp, ...) qv_error_set(errp, EPERM, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

static const char *const names[] = { "vmdk", "vhdx", "vdi", "qed" };

int qv_foreign_format_from_string(const char *s, enum qv_foreign_format *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (s && streq(s, names[i]))
			return *ret = (enum qv_foreign_format)i, 0;
	return -EINVAL;
}

const char *qv_foreign_format_to_string(enum qv_foreign_format f)
{
	return (size_t)f < ARRAY_SIZE(names) ? names[f] : "?";
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) : NULL;
}

/* VMDK extents must all be the descriptor file itself (monolithic). */
static int check_extents(json_object *info, const char *path, struct qv_error *errp)
{
	json_object *fs, *data, *extents;

	if (!json_object_object_get_ex(info, "format-specific", &fs) ||
	    !json_object_object_get_ex(fs, "data", &data) ||
	    !json_object_object_get_ex(data, "extents", &extents))
		return 0;
	if (!json_object_is_type(extents, json_type_array))
		return REFUSE(errp, "%s: unexpected extent list", path);
	for (size_t i = 0; i < json_object_array_length(extents); i++) {
		const char *f = str(json_object_array_get_idx(extents, i), "filename");
		if (!f || !streq(f, path))
			return REFUSE(errp, "%s: VMDK extent %s is another file; only monolithic "
				      "VMDK images (one file) are imported", path, f ? f : "?");
	}
	return 0;
}

int qv_foreign_check_info(const char *info_json, const char *path, enum qv_foreign_format fmt,
			  uint64_t *ret_virtual_size, struct qv_error *errp)
{
	_cleanup_json_ json_object *info = json_tokener_parse(info_json);
	json_object *vs;
	const char *f;
	int r;

	if (!info || !json_object_is_type(info, json_type_object))
		return qv_error_set(errp, EIO, QV_REASON_QEMU_ERROR, "qemu-img info: unreadable output");
	if (!(f = str(info, "format")) || !streq(f, qv_foreign_format_to_string(fmt)))
		return REFUSE(errp, "%s: not a %s image", path, qv_foreign_format_to_string(fmt));
	if (str(info, "backing-filename") || str(info, "full-backing-filename"))
		return REFUSE(errp, "%s: has a backing file (%s); import the whole chain flattened "
			      "instead", path, str(info, "backing-filename") ?: "?");
	if ((r = check_extents(info, path, errp)) < 0)
		return r;
	if (!json_object_object_get_ex(info, "virtual-size", &vs) || !json_object_is_type(vs, json_type_int) ||
	    json_object_get_int64(vs) <= 0)
		return qv_error_set(errp, EIO, QV_REASON_QEMU_ERROR, "%s: no virtual size", path);
	*ret_virtual_size = (uint64_t)json_object_get_int64(vs);
	return 0;
}

int qv_foreign_inspect(const char *path, enum qv_foreign_format fmt, uint64_t *ret_virtual_size,
		       struct qv_error *errp)
{
	const char *argv[] = { "qemu-img", "info", "--output=json", "-f",
			       qv_foreign_format_to_string(fmt), path, NULL };
	_cleanup_free_ char *out = NULL;
	int r;

	if (path[0] != '/')
		return REFUSE(errp, "%s: not an absolute path", path);
	/* "file.vmdk" names only this file: qemu-img sees no "json:" or protocol prefix */
	r = qv_qemu_img_run((char *const *)argv, &out, errp);
	if (r < 0)
		return r;
	return qv_foreign_check_info(out, path, fmt, ret_virtual_size, errp);
}

int qv_foreign_convert(const char *src, enum qv_foreign_format fmt, const char *dst,
		       enum qv_image_format dst_fmt, struct qv_error *errp)
{
	const char *argv[] = { "qemu-img", "convert", "-f", qv_foreign_format_to_string(fmt), "-O",
			       qv_image_format_to_string(dst_fmt), src, dst, NULL };

	return qv_qemu_img_run((char *const *)argv, NULL, errp);
}
