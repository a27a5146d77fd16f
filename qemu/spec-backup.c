/* SPDX-License-Identifier: MIT */
/* spec.backup: {"schedule": "hourly"|"daily"|"weekly", "keep_last": N,
 * "keep_daily": N, "store": "/abs/dir"} — the daemon backs the VM up on that
 * schedule while it runs and prunes afterwards (docs/backup.md). */
#include "common/json.h"
#include "common/macro.h"
#include "qemu/spec-internal.h"

#define INVALID(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

static const struct {
	const char *name;
	uint32_t s;
} schedules[] = { { "hourly", 3600 }, { "daily", 86400 }, { "weekly", 604800 } };

int spec_parse_backup(json_object *o, const char *path, struct vm_backup *b,
		      struct qv_error *errp)
{
	static const char *const keys[] = { "schedule", "keep_last", "keep_daily", "store", NULL };
	struct vm_backup x = {};
	const char *s = NULL, *why = NULL;
	int64_t v;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return INVALID(errp, "%s: must be an object", path);
	if ((r = spec_check_keys(o, keys, path, errp)) < 0)
		return r;
	if ((r = spec_get_string(o, "schedule", path, &s, errp)) < 0)
		return r == -ENOENT ? INVALID(errp, "%s.schedule is required (hourly, daily or weekly)",
					      path) : r;
	for (size_t i = 0; i < ARRAY_SIZE(schedules); i++)
		if (streq(s, schedules[i].name))
			x.interval_s = schedules[i].s;
	if (!x.interval_s)
		return INVALID(errp, "%s.schedule: \"%.40s\" is not hourly, daily or weekly", path, s);
	if ((r = spec_get_int(o, "keep_last", path, 0, 100000, &v, errp)) < 0 && r != -ENOENT)
		return r;
	x.keep_last = r == 0 ? (uint32_t)v : 0;
	if ((r = spec_get_int(o, "keep_daily", path, 0, 100000, &v, errp)) < 0 && r != -ENOENT)
		return r;
	x.keep_daily = r == 0 ? (uint32_t)v : 0;
	if ((r = spec_get_string(o, "store", path, &s, errp)) < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		if (s[0] != '/' || strlen(s) >= sizeof(x.store) || !spec_path_valid(s, &why))
			return INVALID(errp, "%s.store: must be an absolute path under %zu bytes%s%s",
				       path, sizeof(x.store), why ? ": " : "", why ? why : "");
		snprintf(x.store, sizeof(x.store), "%s", s);
	}
	*b = x;
	return 0;
}

json_object *vm_backup_to_json(const struct vm_backup *b)
{
	json_object *o = json_object_new_object();
	const char *s = "daily";

	for (size_t i = 0; i < ARRAY_SIZE(schedules); i++)
		if (schedules[i].s == b->interval_s)
			s = schedules[i].name;
	json_object_object_add(o, "schedule", json_object_new_string(s));
	if (b->keep_last)
		json_object_object_add(o, "keep_last", json_object_new_int64(b->keep_last));
	if (b->keep_daily)
		json_object_object_add(o, "keep_daily", json_object_new_int64(b->keep_daily));
	if (b->store[0])
		json_object_object_add(o, "store", json_object_new_string(b->store));
	return o;
}
