/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>

#include "common/error.h"

static inline void json_object_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

/* Typed getters for strict validation. Each returns 0, -ENOENT when the key
 * is absent (ret untouched), or -EINVAL with errp filled when the type is
 * wrong. `what` names the field in messages ("spec.vcpus"). */
int json_get_string(json_object *obj, const char *key, const char *what,
		    const char **ret, struct qv_error *errp);
int json_get_int64(json_object *obj, const char *key, const char *what,
		   int64_t *ret, struct qv_error *errp);
int json_get_bool(json_object *obj, const char *key, const char *what,
		  bool *ret, struct qv_error *errp);
/* Reject keys not in the NULL-terminated `allowed` list. */
int json_check_keys(json_object *obj, const char *const *allowed, const char *what,
		    struct qv_error *errp);
