/* SPDX-License-Identifier: MIT */
#include "common/json.h"

int json_get_string(json_object *obj, const char *key, const char *what,
		    const char **ret, struct qv_error *errp)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s must be a string", what);
	*ret = json_object_get_string(v);
	return 0;
}

int json_get_int64(json_object *obj, const char *key, const char *what,
		   int64_t *ret, struct qv_error *errp)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_int))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s must be an integer", what);
	errno = 0;
	int64_t x = json_object_get_int64(v);
	if (errno == ERANGE)
		return qv_error_set(errp, ERANGE, QV_REASON_INVALID_ARGUMENT,
				    "%s is out of range", what);
	*ret = x;
	return 0;
}

int json_get_bool(json_object *obj, const char *key, const char *what,
		  bool *ret, struct qv_error *errp)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_boolean))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s must be true or false", what);
	*ret = json_object_get_boolean(v);
	return 0;
}

int json_check_keys(json_object *obj, const char *const *allowed, const char *what,
		    struct qv_error *errp)
{
	if (!json_object_is_type(obj, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s must be an object", what);
	json_object_object_foreach(obj, key, val) {
		(void)val;
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (streq(*a, key)) {
				ok = true;
				break;
			}
		if (!ok)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s: unknown field \"%s\"", what, key);
	}
	return 0;
}
