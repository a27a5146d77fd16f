/* SPDX-License-Identifier: MIT */
/* spec.limits (cgroup v2) and spec.restart. */
#include <inttypes.h>

#include "common/macro.h"
#include "qemu/spec-internal.h"

#define CPU_PERIOD_DEFAULT 100000
#define CPU_PERIOD_MIN 1000
#define CPU_PERIOD_MAX 1000000
#define CPU_QUOTA_MIN 1000
#define SIZE_LIMIT_MIN (4ULL << 20)
#define SIZE_LIMIT_MAX (1ULL << 50)

static int parse_cpu_max(json_object *lim, const char *path, struct vm_limits *l,
			 struct qv_error *errp)
{
	json_object *v;
	char sub[160];
	int64_t q, per = CPU_PERIOD_DEFAULT;
	int r;

	if (!json_object_object_get_ex(lim, "cpu_max", &v) || json_object_is_type(v, json_type_null))
		return -ENOENT;
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		char *end;
		if (streq(s, "max"))
			return 0; /* explicit "no limit" */
		errno = 0;
		long pct = strtol(s, &end, 10);
		if (end == s || !streq(end, "%") || errno || pct < 1 || pct > 100L * VM_VCPUS_MAX ||
		    s[0] == '-' || s[0] == '+' || s[0] == ' ')
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s.cpu_max: must be \"max\", a percentage of one CPU "
					    "(\"1%%\"..\"6400%%\") or {\"quota_us\", \"period_us\"}",
					    path);
		l->cpu_max_period_us = CPU_PERIOD_DEFAULT;
		l->cpu_max_quota_us = (uint64_t)pct * CPU_PERIOD_DEFAULT / 100;
		return 0;
	}
	snprintf(sub, sizeof(sub), "%s.cpu_max", path);
	static const char *const keys[] = { "quota_us", "period_us", NULL };
	r = spec_check_keys(v, keys, sub, errp);
	if (r < 0)
		return r;
	r = spec_get_int(v, "period_us", sub, CPU_PERIOD_MIN, CPU_PERIOD_MAX, &per, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	r = spec_get_int(v, "quota_us", sub, CPU_QUOTA_MIN, (int64_t)CPU_PERIOD_MAX * VM_VCPUS_MAX,
			 &q, errp);
	if (r == -ENOENT)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s.quota_us: required", sub);
	if (r < 0)
		return r;
	l->cpu_max_quota_us = (uint64_t)q;
	l->cpu_max_period_us = (uint64_t)per;
	return 0;
}

/* Treat -ENOENT as "absent, fine", anything else as failure; count presence. */
#define OPT(expr, present)                  \
	do {                                \
		int _r = (expr);            \
		if (_r == 0)                \
			(present) = true;   \
		else if (_r != -ENOENT)     \
			return _r;          \
	} while (0)

int spec_parse_limits(json_object *o, const char *path, struct vm_limits *l,
		      bool *ret_has_limits, struct qv_error *errp)
{
	static const char *const keys[] = { "cpu_max", "cpu_weight", "cpuset_cpus",
					    "cpuset_mems", "memory_max", "memory_high",
					    "memory_swap_max", "pids_max", NULL };
	const char *s;
	int64_t i;
	bool any = false;
	int r = spec_check_keys(o, keys, path, errp);

	if (r < 0)
		return r;
	OPT(parse_cpu_max(o, path, l, errp), any);
	r = spec_get_int(o, "cpu_weight", path, 1, 10000, &i, errp);
	OPT(r, any);
	if (r == 0)
		l->cpu_weight = (uint32_t)i;
	static const char *const sets[] = { "cpuset_cpus", "cpuset_mems" };
	for (size_t k = 0; k < ARRAY_SIZE(sets); k++) {
		r = spec_get_string(o, sets[k], path, &s, errp);
		OPT(r, any);
		if (r < 0)
			continue;
		if (!spec_cpuset_valid(s))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s.%s: must be a list like \"0-3,6\"", path, sets[k]);
		char *dup = strdup(s);
		if (!dup)
			return -ENOMEM;
		char **dst = k == 0 ? &l->cpuset_cpus : &l->cpuset_mems;
		free(*dst);
		*dst = dup;
	}
	OPT(spec_get_size(o, "memory_max", path, SIZE_LIMIT_MIN, SIZE_LIMIT_MAX, &l->memory_max,
			  errp), any);
	OPT(spec_get_size(o, "memory_high", path, SIZE_LIMIT_MIN, SIZE_LIMIT_MAX, &l->memory_high,
			  errp), any);
	uint64_t swap;
	r = spec_get_size(o, "memory_swap_max", path, 0, SIZE_LIMIT_MAX, &swap, errp);
	OPT(r, any);
	if (r == 0)
		l->memory_swap_max = (int64_t)swap;
	r = spec_get_int(o, "pids_max", path, 1, 4194304, &i, errp);
	OPT(r, any);
	if (r == 0)
		l->pids_max = (uint64_t)i;
	/* "Has limits" means something is actually set ("cpu_max": "max" is not). */
	(void)any;
	*ret_has_limits = l->cpu_max_quota_us || l->cpu_weight || l->cpuset_cpus ||
			  l->cpuset_mems || l->memory_max || l->memory_high ||
			  l->memory_swap_max >= 0 || l->pids_max;
	return 0;
}

int spec_parse_restart(json_object *o, const char *path, struct vm_restart *rs,
		       struct qv_error *errp)
{
	static const char *const keys[] = { "policy", "max_restarts", "window_s", "backoff_ms",
					    NULL };
	const char *s;
	int64_t i;
	int r = spec_check_keys(o, keys, path, errp);

	if (r < 0)
		return r;
	r = spec_get_string(o, "policy", path, &s, errp);
	if (r == 0) {
		int p = vm_restart_policy_from_string(s);
		if (p < 0)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s.policy: must be \"no\" or \"on-failure\"", path);
		rs->policy = (enum vm_restart_policy)p;
	} else if (r != -ENOENT)
		return r;
	r = spec_get_int(o, "max_restarts", path, 0, 1000, &i, errp);
	if (r == 0)
		rs->max_restarts = (uint32_t)i;
	else if (r != -ENOENT)
		return r;
	r = spec_get_int(o, "window_s", path, 1, 86400, &i, errp);
	if (r == 0)
		rs->window_s = (uint32_t)i;
	else if (r != -ENOENT)
		return r;
	r = spec_get_int(o, "backoff_ms", path, 0, 3600000, &i, errp);
	if (r == 0)
		rs->backoff_ms = (uint32_t)i;
	else if (r != -ENOENT)
		return r;
	return 0;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

void spec_limits_to_json(const struct vm_limits *l, json_object *out)
{
	if (l->cpu_max_quota_us) {
		json_object *c = json_object_new_object();
		add_u64(c, "quota_us", l->cpu_max_quota_us);
		add_u64(c, "period_us", l->cpu_max_period_us ? l->cpu_max_period_us
							      : CPU_PERIOD_DEFAULT);
		json_object_object_add(out, "cpu_max", c);
	}
	if (l->cpu_weight)
		add_u64(out, "cpu_weight", l->cpu_weight);
	if (l->cpuset_cpus)
		json_object_object_add(out, "cpuset_cpus", json_object_new_string(l->cpuset_cpus));
	if (l->cpuset_mems)
		json_object_object_add(out, "cpuset_mems", json_object_new_string(l->cpuset_mems));
	if (l->memory_max)
		add_u64(out, "memory_max", l->memory_max);
	if (l->memory_high)
		add_u64(out, "memory_high", l->memory_high);
	if (l->memory_swap_max >= 0)
		add_u64(out, "memory_swap_max", (uint64_t)l->memory_swap_max);
	if (l->pids_max)
		add_u64(out, "pids_max", l->pids_max);
}
