/* SPDX-License-Identifier: MIT */
/* spec.balloon: true, or { "target": SIZE, "stats_interval": SECONDS }. */
#include <inttypes.h>

#include "common/json.h"
#include "common/macro.h"
#include "qemu/spec-internal.h"

#define INVALID(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

int spec_parse_balloon(json_object *o, const char *path, struct vm_spec *spec,
		       struct qv_error *errp)
{
	static const char *const keys[] = { "target", "stats_interval", NULL };
	struct vm_balloon b = { .enabled = true, .stats_interval_s = VM_BALLOON_STATS_DEFAULT_S };
	uint64_t mem = spec->memory_mib << 20;
	int64_t iv;
	int r;

	if (json_object_is_type(o, json_type_boolean)) {
		b.enabled = json_object_get_boolean(o);
		if (!b.enabled)
			b.stats_interval_s = 0;
		spec->balloon = b;
		return 0;
	}
	if (!json_object_is_type(o, json_type_object))
		return INVALID(errp, "%s: must be a boolean or an object", path);
	if ((r = spec_check_keys(o, keys, path, errp)) < 0)
		return r;
	/* The guest keeps at least the spec's minimum memory: a balloon that
	 * takes all of it kills the guest, not reclaims from it. */
	r = spec_get_size(o, "target", path, VM_MEMORY_MIN_MIB << 20, UINT64_MAX, &b.target, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	if (b.target % (1ULL << 20))
		return INVALID(errp, "%s.target: %" PRIu64 " bytes is not a whole number of MiB "
			       "(like memory)", path, b.target);
	if (b.target > mem)
		return INVALID(errp, "%s.target: %" PRIu64 " bytes is above the guest memory (%" PRIu64
			       " MiB); a balloon can only take memory away", path, b.target,
			       spec->memory_mib);
	if (b.target == mem)
		b.target = 0;
	r = spec_get_int(o, "stats_interval", path, 0, VM_BALLOON_STATS_MAX_S, &iv, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0)
		b.stats_interval_s = (uint32_t)iv;
	spec->balloon = b;
	return 0;
}

json_object *vm_balloon_to_json(const struct vm_balloon *b)
{
	json_object *o;

	if (!b->enabled)
		return NULL;
	o = json_object_new_object();
	if (b->target)
		json_object_object_add(o, "target", json_object_new_int64((int64_t)b->target));
	json_object_object_add(o, "stats_interval", json_object_new_int64(b->stats_interval_s));
	return o;
}
