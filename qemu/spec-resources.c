/* SPDX-License-Identifier: MIT */
/* spec.resources: the entitlements the host resource loop enforces
 * (shares, reservations, limits, class, loop mode). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "common/macro.h"
#include "qemu/spec-internal.h"

#define INVALID(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

static const char *const class_names[] = { "throughput", "latency", "best-effort" };
static const char *const mode_names[] = { "host", "off", "advise", "enforce" };

const char *vm_class_to_string(enum vm_class c)
{
	return (unsigned)c < ARRAY_SIZE(class_names) ? class_names[c] : "?";
}

int vm_class_from_string(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(class_names); i++)
		if (streq(s, class_names[i]))
			return (int)i;
	return -EINVAL;
}

const char *vm_loop_mode_to_string(enum vm_loop_mode m)
{
	return (unsigned)m < ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

int vm_loop_mode_from_string(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(mode_names); i++)
		if (streq(s, mode_names[i]))
			return (int)i;
	return -EINVAL;
}

/* Cores as a JSON number (0.5, 2) into millicores, within [0, max_cores]. */
static int get_cores(json_object *o, const char *key, const char *path, uint32_t max_cores,
		     uint32_t *ret, struct qv_error *errp)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return INVALID(errp, "%s.%s: must be a number of cores (e.g. 0.5)", path, key);
	double d = json_object_get_double(v);
	if (!isfinite(d) || d < 0.001 || d > max_cores)
		return INVALID(errp, "%s.%s: %g cores is outside 0.001..%u (the VM's vcpus)", path,
			       key, d, max_cores);
	*ret = (uint32_t)(d * 1000 + 0.5); /* no libm */
	return 0;
}

static int opt(int r)
{
	return r == -ENOENT ? 0 : r;
}

static int parse_cpu(json_object *o, const char *path, uint32_t vcpus, struct vm_resources *res,
		     struct qv_error *errp)
{
	static const char *const keys[] = { "shares", "reservation", "limit", "exclusive", NULL };
	int64_t i;
	int r;

	if ((r = spec_check_keys(o, keys, path, errp)) < 0)
		return r;
	r = spec_get_int(o, "shares", path, 1, VM_SHARES_MAX, &i, errp);
	if (r == 0)
		res->cpu_shares = (uint32_t)i;
	if ((r = opt(r)) < 0 ||
	    (r = opt(get_cores(o, "reservation", path, vcpus, &res->cpu_reservation, errp))) < 0 ||
	    (r = opt(get_cores(o, "limit", path, vcpus, &res->cpu_limit, errp))) < 0)
		return r;
	if (res->cpu_limit && res->cpu_reservation > res->cpu_limit)
		return INVALID(errp, "%s: reservation %.3g cores is above the limit %.3g", path,
			       res->cpu_reservation / 1000.0, res->cpu_limit / 1000.0);
	if ((r = opt(spec_get_bool(o, "exclusive", path, &res->cpu_exclusive, errp))) < 0)
		return r;
	if (res->cpu_exclusive && res->klass != VM_CLASS_LATENCY)
		return INVALID(errp, "%s.exclusive: only the latency class gets exclusive cores "
			       "(this VM is %s)", path, vm_class_to_string(res->klass));
	return 0;
}

static int parse_memory(json_object *o, const char *path, uint64_t guest, struct vm_resources *res,
			struct qv_error *errp)
{
	static const char *const keys[] = { "reservation", "limit", NULL };
	const uint64_t max = VM_MEMORY_MAX_MIB << 20;
	int r;

	if ((r = spec_check_keys(o, keys, path, errp)) < 0 ||
	    (r = opt(spec_get_size(o, "reservation", path, 1 << 20, max, &res->mem_reservation,
				   errp))) < 0 ||
	    (r = opt(spec_get_size(o, "limit", path, 1 << 20, max, &res->mem_limit, errp))) < 0)
		return r;
	if (res->mem_limit && res->mem_limit < guest)
		return INVALID(errp, "%s.limit: %" PRIu64 " bytes is below the guest memory "
			       "(%" PRIu64 " MiB); QEMU would be OOM-killed", path, res->mem_limit,
			       guest >> 20);
	if (res->mem_limit && res->mem_reservation > res->mem_limit)
		return INVALID(errp, "%s: reservation %" PRIu64 " bytes is above the limit %" PRIu64,
			       path, res->mem_reservation, res->mem_limit);
	return 0;
}

static int parse_enum(json_object *o, const char *key, const char *path,
		      int (*from)(const char *), const char *allowed, int *ret,
		      struct qv_error *errp)
{
	const char *s;
	int r = spec_get_string(o, key, path, &s, errp);

	if (r < 0)
		return r;
	if ((r = from(s)) < 0)
		return INVALID(errp, "%s.%s: must be one of %s", path, key, allowed);
	*ret = r;
	return 0;
}

/* The loop owns these knobs; a static limit on the same file would fight it. */
static int check_conflicts(const struct vm_limits *l, struct qv_error *errp)
{
	const char *f = l->cpu_weight ? "cpu_weight" : l->cpu_max_quota_us ? "cpu_max" :
			l->cpuset_cpus ? "cpuset_cpus" : l->memory_high ? "memory_high" :
			l->memory_max ? "memory_max" : NULL;

	if (f)
		return INVALID(errp, "spec.resources: conflicts with spec.limits.%s (the resource "
			       "loop sets that knob; use resources.cpu/memory instead)", f);
	return 0;
}

int spec_parse_resources(json_object *o, const char *path, struct vm_spec *spec,
			 struct qv_error *errp)
{
	static const char *const keys[] = { "class", "mode", "cpu", "memory", NULL };
	struct vm_resources res = { .cpu_shares = VM_SHARES_DEFAULT };
	char sub[64];
	json_object *v;
	int r, e;

	if ((r = spec_check_keys(o, keys, path, errp)) < 0)
		return r;
	e = VM_CLASS_THROUGHPUT;
	if ((r = opt(parse_enum(o, "class", path, vm_class_from_string,
				"\"throughput\", \"latency\", \"best-effort\"", &e, errp))) < 0)
		return r;
	res.klass = (enum vm_class)e;
	e = VM_LOOP_HOST;
	if ((r = opt(parse_enum(o, "mode", path, vm_loop_mode_from_string,
				"\"host\", \"off\", \"advise\", \"enforce\"", &e, errp))) < 0)
		return r;
	res.mode = (enum vm_loop_mode)e;
	if (json_object_object_get_ex(o, "cpu", &v) && !json_object_is_type(v, json_type_null)) {
		snprintf(sub, sizeof(sub), "%s.cpu", path);
		if ((r = parse_cpu(v, sub, spec->vcpus, &res, errp)) < 0)
			return r;
	}
	if (json_object_object_get_ex(o, "memory", &v) && !json_object_is_type(v, json_type_null)) {
		snprintf(sub, sizeof(sub), "%s.memory", path);
		if ((r = parse_memory(v, sub, spec->memory_mib << 20, &res, errp)) < 0)
			return r;
	}
	if ((r = check_conflicts(&spec->limits, errp)) < 0)
		return r;
	spec->resources = res;
	spec->has_resources = true;
	return 0;
}

void vm_resources_to_json(const struct vm_resources *res, json_object *out)
{
	json_object *cpu = json_object_new_object(), *mem = json_object_new_object();

	json_object_object_add(out, "class",
			       json_object_new_string(vm_class_to_string(res->klass)));
	json_object_object_add(out, "mode", json_object_new_string(vm_loop_mode_to_string(res->mode)));
	json_object_object_add(cpu, "shares", json_object_new_int64(res->cpu_shares));
	if (res->cpu_reservation)
		json_object_object_add(cpu, "reservation",
				       json_object_new_double(res->cpu_reservation / 1000.0));
	if (res->cpu_limit)
		json_object_object_add(cpu, "limit", json_object_new_double(res->cpu_limit / 1000.0));
	if (res->cpu_exclusive)
		json_object_object_add(cpu, "exclusive", json_object_new_boolean(true));
	json_object_object_add(out, "cpu", cpu);
	if (res->mem_reservation)
		json_object_object_add(mem, "reservation",
				       json_object_new_int64((int64_t)res->mem_reservation));
	if (res->mem_limit)
		json_object_object_add(mem, "limit", json_object_new_int64((int64_t)res->mem_limit));
	json_object_object_add(out, "memory", mem);
}
