/* SPDX-License-Identifier: MIT */
/* Strict validation of a drill file (docs/migration.md, "Drills"). Unknown
 * fields are errors. The older one-VM form ({vm, iterations, migrate,
 * faults}) is translated into steps. */
#include <stdlib.h>
#include <string.h>

#include "cli/drill.h"

static const struct drill_mopts MO_UNSET = { -1, -1, -1, -1, -1 };
static const struct drill_expect EX_UNSET = { -1, -1, -1, -1, -1 };

static int bad(struct qv_error *errp, const char *fmt, const char *what)
{
	return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, fmt, what);
}

/* A string field; a whole value "${NAME}" or "${NAME:-default}" is replaced
 * by the environment variable (so shipped drills can name the hosts). */
static int get_str(json_object *o, const char *key, const char *what, const char **ret,
		   struct qv_error *errp)
{
	json_object *v;
	const char *s;
	size_t n;
	int r;

	if ((r = json_get_string(o, key, what, &s, errp)) < 0)
		return r;
	n = strlen(s);
	if (n > 3 && s[0] == '$' && s[1] == '{' && s[n - 1] == '}') {
		_cleanup_free_ char *var = strndup(s + 2, n - 3);
		char *dflt = var ? strstr(var, ":-") : NULL;
		const char *e;
		if (!var)
			return -ENOMEM;
		if (dflt)
			*dflt = 0, dflt += 2;
		e = getenv(var);
		if (!e || !*e)
			e = dflt;
		if (!e)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s: environment variable %s is not set", what, var);
		json_object_object_get_ex(o, key, &v);
		json_object_set_string(v, e);
		s = json_object_get_string(v);
	}
	if (!*s)
		return bad(errp, "%s must not be empty", what);
	*ret = s;
	return 0;
}

static int get_int(json_object *o, const char *key, const char *what, int64_t lo, int64_t hi,
		   int64_t *ret, struct qv_error *errp)
{
	int64_t x;
	int r = json_get_int64(o, key, what, &x, errp);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (x < lo || x > hi)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s must be %lld..%lld", what, (long long)lo, (long long)hi);
	*ret = x;
	return 0;
}

static int get_tri(json_object *o, const char *key, const char *what, int *ret,
		   struct qv_error *errp)
{
	bool b;
	int r = json_get_bool(o, key, what, &b, errp);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	*ret = b;
	return 0;
}

static int parse_mopts(json_object *o, const char *what, struct drill_mopts *m,
		       struct qv_error *errp)
{
	static const char *const keys[] = { "max_downtime_ms", "bandwidth_mbps", "deadline_s",
					    "plain", "copy_storage", NULL };
	if (!json_object_is_type(o, json_type_object))
		return bad(errp, "%s must be an object", what);
	if (json_check_keys(o, keys, what, errp) < 0 ||
	    get_int(o, "max_downtime_ms", "max_downtime_ms", 1, 60000, &m->max_downtime_ms, errp) < 0 ||
	    get_int(o, "bandwidth_mbps", "bandwidth_mbps", 0, 100000, &m->bandwidth_mbps, errp) < 0 ||
	    get_int(o, "deadline_s", "deadline_s", 1, 86400, &m->deadline_s, errp) < 0 ||
	    get_tri(o, "plain", "plain", &m->plain, errp) < 0 ||
	    get_tri(o, "copy_storage", "copy_storage", &m->copy_storage, errp) < 0)
		return -EINVAL;
	return 0;
}

static int parse_expect(json_object *o, const char *what, struct drill_expect *e,
			struct qv_error *errp)
{
	static const char *const keys[] = { "must_converge", "expect_failure",
					    "exactly_one_running_copy", "max_downtime_ms",
					    "max_total_s", NULL };
	if (!json_object_is_type(o, json_type_object))
		return bad(errp, "%s must be an object", what);
	if (json_check_keys(o, keys, what, errp) < 0 ||
	    get_tri(o, "must_converge", "must_converge", &e->must_converge, errp) < 0 ||
	    get_tri(o, "expect_failure", "expect_failure", &e->expect_failure, errp) < 0 ||
	    get_tri(o, "exactly_one_running_copy", "exactly_one_running_copy", &e->one_copy, errp) < 0 ||
	    get_int(o, "max_downtime_ms", "expect.max_downtime_ms", 0, 3600000, &e->max_downtime_ms, errp) < 0 ||
	    get_int(o, "max_total_s", "expect.max_total_s", 1, 86400, &e->max_total_s, errp) < 0)
		return -EINVAL;
	if (e->must_converge == 1 && e->expect_failure == 1)
		return bad(errp, "%s: must_converge and expect_failure contradict", what);
	return 0;
}

static const struct {
	const char *name;
	enum drill_fault_kind kind;
} fault_kinds[] = {
	{ "cancel", DRILL_FAULT_CANCEL },
	{ "kill-dest-qemu", DRILL_FAULT_KILL_DEST_QEMU },
	{ "link-cut", DRILL_FAULT_LINK_CUT },
};

const char *drill_fault_name(enum drill_fault_kind k)
{
	for (size_t i = 0; i < ARRAY_SIZE(fault_kinds); i++)
		if (fault_kinds[i].kind == k)
			return fault_kinds[i].name;
	return "none";
}

static int parse_fault(const struct drill *d, json_object *o, const char *what,
		       struct drill_fault *f, struct qv_error *errp)
{
	static const char *const keys[] = { "kind", "at_ms", "duration_ms", "side", NULL };
	const char *kind = NULL, *side = "source";

	if (!json_object_is_type(o, json_type_object))
		return bad(errp, "%s must be an object", what);
	if (json_check_keys(o, keys, what, errp) < 0 ||
	    json_get_string(o, "kind", "fault.kind", &kind, errp) < 0)
		return -EINVAL;
	*f = (struct drill_fault){ .at_ms = 2000, .duration_ms = 3000 };
	for (size_t i = 0; i < ARRAY_SIZE(fault_kinds); i++)
		if (streq(kind, fault_kinds[i].name))
			f->kind = fault_kinds[i].kind;
	if (f->kind == DRILL_FAULT_NONE)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s.kind \"%.40s\": expected cancel, kill-dest-qemu or link-cut",
				    what, kind);
	if (get_int(o, "at_ms", "fault.at_ms", 0, 3600000, &f->at_ms, errp) < 0 ||
	    get_int(o, "duration_ms", "fault.duration_ms", 1, 3600000, &f->duration_ms, errp) < 0 ||
	    (json_get_string(o, "side", "fault.side", &side, errp) == -EINVAL))
		return -EINVAL;
	if (!streq(side, "source") && !streq(side, "destination"))
		return bad(errp, "%s.side must be \"source\" or \"destination\"", what);
	f->side = streq(side, "destination");
	if (f->kind == DRILL_FAULT_LINK_CUT && (!d->hosts[0].dev || !d->hosts[1].dev))
		return bad(errp, "%s: link-cut needs hosts[].dev (and hosts[].netns)", what);
	return 0;
}

static int find_vm(const struct drill *d, const char *name)
{
	for (size_t i = 0; i < d->n_vms; i++)
		if (streq(d->vms[i].name, name))
			return (int)i;
	return -1;
}

static int parse_host(json_object *o, int i, struct drill_host *h, struct qv_error *errp)
{
	static const char *const keys[] = { "uri", "netns", "dev", NULL };
	char what[32];

	snprintf(what, sizeof(what), "hosts[%d]", i);
	if (json_object_is_type(o, json_type_string)) {
		json_object *wrap = json_object_new_object(); /* reuse get_str's expansion */
		json_object_object_add(wrap, "uri", json_object_get(o));
		int r = get_str(wrap, "uri", what, &h->uri, errp);
		json_object_put(wrap); /* o keeps the (expanded) string alive */
		return r;
	}
	if (!json_object_is_type(o, json_type_object))
		return bad(errp, "%s must be a URI or an object", what);
	if (json_check_keys(o, keys, what, errp) < 0 ||
	    get_str(o, "uri", "hosts[].uri", &h->uri, errp) < 0)
		return -EINVAL;
	if (get_str(o, "netns", "hosts[].netns", &h->netns, errp) == -EINVAL ||
	    get_str(o, "dev", "hosts[].dev", &h->dev, errp) == -EINVAL)
		return -EINVAL;
	return 0;
}

static int parse_vm(json_object *o, struct drill_vm *vm, struct qv_error *errp)
{
	static const char *const keys[] = { "name", "spec", "template", "guest_dir", "dirty",
					    "memory_mib", "vcpus", "host", "boot_timeout_s", "disk",
					    NULL };
	json_object *spec;
	double rate, wss;
	char junk;

	*vm = (struct drill_vm){ .memory_mib = 256, .vcpus = 1, .boot_timeout_s = 300 };
	if (json_object_is_type(o, json_type_string)) {
		vm->name = json_object_get_string(o); /* an existing VM */
		return 0;
	}
	if (!json_object_is_type(o, json_type_object))
		return bad(errp, "%s must be a VM name or an object", "vms[]");
	if (json_check_keys(o, keys, "vms[]", errp) < 0 ||
	    json_get_string(o, "name", "vms[].name", &vm->name, errp) < 0 ||
	    json_get_string(o, "template", "vms[].template", &vm->template, errp) == -EINVAL ||
	    get_str(o, "guest_dir", "vms[].guest_dir", &vm->guest_dir, errp) == -EINVAL ||
	    json_get_string(o, "dirty", "vms[].dirty", &vm->dirty, errp) == -EINVAL ||
	    get_str(o, "disk", "vms[].disk", &vm->disk, errp) == -EINVAL ||
	    get_int(o, "memory_mib", "vms[].memory_mib", 32, 1 << 20, &vm->memory_mib, errp) < 0 ||
	    get_int(o, "vcpus", "vms[].vcpus", 1, 256, &vm->vcpus, errp) < 0 ||
	    get_int(o, "host", "vms[].host", 0, 1, &vm->host, errp) < 0 ||
	    get_int(o, "boot_timeout_s", "vms[].boot_timeout_s", 1, 3600, &vm->boot_timeout_s, errp) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(o, "spec", &spec)) {
		if (!json_object_is_type(spec, json_type_object))
			return bad(errp, "%s must be an object", "vms[].spec");
		vm->spec = spec;
	}
	if (vm->spec && vm->template)
		return bad(errp, "%s: give either spec or template", "vms[]");
	if (vm->template && !streq(vm->template, "test-guest"))
		return bad(errp, "%s: the only template is \"test-guest\"", "vms[].template");
	if ((vm->dirty || vm->guest_dir || vm->disk) && !vm->template)
		return bad(errp, "%s: dirty, disk and guest_dir need template \"test-guest\"", "vms[]");
	if (vm->dirty && (sscanf(vm->dirty, "%lf:%lf%c", &rate, &wss, &junk) != 2 || rate < 0 ||
			  wss < 1))
		return bad(errp, "%s must be \"RATE_MBPS:WSS_MIB\", e.g. \"30:64\"", "vms[].dirty");
	return 0;
}

static int parse_step(struct drill *d, json_object *o, size_t idx, struct qv_error *errp)
{
	static const char *const keys[] = { "name", "vm", "repeat", "migrate", "fault", "expect",
					    NULL };
	struct drill_step *s = &d->steps[idx];
	const char *vm = NULL;
	json_object *v;

	*s = (struct drill_step){ .repeat = 1, .mo = MO_UNSET, .ex = EX_UNSET };
	if (!json_object_is_type(o, json_type_object))
		return bad(errp, "%s must be an object", "steps[]");
	if (json_check_keys(o, keys, "steps[]", errp) < 0 ||
	    json_get_string(o, "name", "steps[].name", &s->name, errp) == -EINVAL ||
	    json_get_string(o, "vm", "steps[].vm", &vm, errp) == -EINVAL ||
	    get_int(o, "repeat", "steps[].repeat", 1, DRILL_MAX_MIGRATIONS, &s->repeat, errp) < 0)
		return -EINVAL;
	s->vm = vm ? find_vm(d, vm) : 0;
	if (s->vm < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "steps[%zu].vm \"%.60s\" is not in vms", idx, vm);
	if (json_object_object_get_ex(o, "migrate", &v) &&
	    parse_mopts(v, "steps[].migrate", &s->mo, errp) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(o, "fault", &v) &&
	    parse_fault(d, v, "steps[].fault", &s->fault, errp) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(o, "expect", &v) &&
	    parse_expect(v, "steps[].expect", &s->ex, errp) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(o, "name", &v) == false)
		s->name = s->fault.kind ? drill_fault_name(s->fault.kind) : "migrate";
	return 0;
}

/* {vm, iterations, migrate, faults[{iteration, kind, after_ms}]} */
static int parse_legacy(struct drill *d, json_object *j, struct qv_error *errp)
{
	static const char *const fkeys[] = { "iteration", "kind", "after_ms", NULL };
	json_object *v, *faults = NULL;
	int64_t n = 2;

	if (!json_object_object_get_ex(j, "vm", &v) || parse_vm(v, &d->vms[0], errp) < 0)
		return bad(errp, "%s: vm must name the VM", "drill");
	d->n_vms = 1;
	if (get_int(j, "iterations", "drill.iterations", 1, DRILL_MAX_STEPS, &n, errp) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(j, "migrate", &v) &&
	    parse_mopts(v, "drill.migrate", &d->defaults, errp) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(j, "faults", &faults) &&
	    !json_object_is_type(faults, json_type_array))
		return bad(errp, "%s must be an array", "drill.faults");
	for (int64_t it = 0; it < n; it++)
		d->steps[it] = (struct drill_step){ .name = "migrate", .repeat = 1, .mo = MO_UNSET,
						    .ex = EX_UNSET };
	d->n_steps = (size_t)n;
	for (size_t i = 0; faults && i < json_object_array_length(faults); i++) {
		json_object *f = json_object_array_get_idx(faults, i);
		const char *kind = NULL;
		int64_t it = 0, after = 2000;
		if (!json_object_is_type(f, json_type_object) ||
		    json_check_keys(f, fkeys, "drill.faults[]", errp) < 0 ||
		    json_get_string(f, "kind", "fault.kind", &kind, errp) < 0 ||
		    get_int(f, "iteration", "fault.iteration", 0, n - 1, &it, errp) < 0 ||
		    get_int(f, "after_ms", "fault.after_ms", 0, 3600000, &after, errp) < 0)
			return bad(errp, "%s: invalid fault", "drill.faults[]");
		if (!streq(kind, "cancel"))
			return bad(errp, "%s.kind must be \"cancel\" in this form", "drill.faults[]");
		d->steps[it].name = "cancel";
		d->steps[it].fault = (struct drill_fault){ .kind = DRILL_FAULT_CANCEL, .at_ms = after };
	}
	return 0;
}

static int parse_array(json_object *j, const char *key, size_t max, json_object **ret,
		       struct qv_error *errp)
{
	json_object *a;

	if (!json_object_object_get_ex(j, key, &a) || !json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) < 1 || json_object_array_length(a) > max)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "drill.%s must be an array of 1..%zu entries", key, max);
	*ret = a;
	return 0;
}

static int parse_link(struct drill *d, json_object *j, struct qv_error *errp)
{
	static const char *const keys[] = { "rate_mbps", "delay_ms", NULL };
	json_object *l;

	if (!json_object_object_get_ex(j, "link", &l))
		return 0;
	if (!json_object_is_type(l, json_type_object) ||
	    json_check_keys(l, keys, "drill.link", errp) < 0 ||
	    get_int(l, "rate_mbps", "link.rate_mbps", 1, 100000, &d->link.rate_mbps, errp) < 0 ||
	    get_int(l, "delay_ms", "link.delay_ms", 0, 10000, &d->link.delay_ms, errp) < 0)
		return bad(errp, "%s: invalid link", "drill.link");
	if ((d->link.rate_mbps || d->link.delay_ms) && (!d->hosts[0].dev || !d->hosts[1].dev))
		return bad(errp, "%s: shaping needs hosts[].dev (and hosts[].netns)", "drill.link");
	return 0;
}

int drill_parse(json_object *j, struct drill *d, struct qv_error *errp)
{
	static const char *const keys[] = { "name", "description", "hosts", "link", "vms", "defaults",
					    "expect", "steps", "cleanup", "vm", "iterations",
					    "migrate", "faults", NULL };
	json_object *a, *v;
	bool legacy;
	int b;

	*d = (struct drill){ .name = "drill", .defaults = MO_UNSET, .expect = EX_UNSET };
	if (!json_object_is_type(j, json_type_object))
		return bad(errp, "%s must be a JSON object", "drill");
	if (json_check_keys(j, keys, "drill", errp) < 0 ||
	    json_get_string(j, "name", "drill.name", &d->name, errp) == -EINVAL)
		return -EINVAL;
	legacy = json_object_object_get_ex(j, "vm", NULL);
	if (legacy && (json_object_object_get_ex(j, "vms", NULL) ||
		       json_object_object_get_ex(j, "steps", NULL) ||
		       json_object_object_get_ex(j, "defaults", NULL)))
		return bad(errp, "%s: \"vm\"/\"iterations\"/\"migrate\"/\"faults\" (the one-VM form) "
			   "cannot be mixed with vms/steps/defaults", "drill");
	if (!legacy && (json_object_object_get_ex(j, "iterations", NULL) ||
			json_object_object_get_ex(j, "migrate", NULL) ||
			json_object_object_get_ex(j, "faults", NULL)))
		return bad(errp, "%s: iterations/migrate/faults belong to the one-VM form; use "
			   "steps and defaults", "drill");
	if (!json_object_object_get_ex(j, "hosts", &a) || !json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) != 2)
		return bad(errp, "%s.hosts must list exactly two daemons", "drill");
	for (int i = 0; i < 2; i++)
		if (parse_host(json_object_array_get_idx(a, i), i, &d->hosts[i], errp) < 0)
			return -EINVAL;
	if (parse_link(d, j, errp) < 0)
		return -EINVAL;
	b = -1;
	if (get_tri(j, "cleanup", "drill.cleanup", &b, errp) < 0)
		return -EINVAL;
	d->cleanup = b == 1;
	if (json_object_object_get_ex(j, "expect", &v) &&
	    parse_expect(v, "drill.expect", &d->expect, errp) < 0)
		return -EINVAL;
	if (legacy) {
		if (parse_legacy(d, j, errp) < 0)
			return -EINVAL;
	} else {
		if (parse_array(j, "vms", DRILL_MAX_VMS, &a, errp) < 0)
			return -EINVAL;
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			if (parse_vm(json_object_array_get_idx(a, i), &d->vms[i], errp) < 0)
				return -EINVAL;
			if (find_vm(d, d->vms[i].name) >= 0)
				return bad(errp, "vms[]: duplicate name \"%s\"", d->vms[i].name);
			d->n_vms++;
		}
		if (json_object_object_get_ex(j, "defaults", &v) &&
		    parse_mopts(v, "drill.defaults", &d->defaults, errp) < 0)
			return -EINVAL;
		if (parse_array(j, "steps", DRILL_MAX_STEPS, &a, errp) < 0)
			return -EINVAL;
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			if (parse_step(d, json_object_array_get_idx(a, i), i, errp) < 0)
				return qv_error_prefix(errp, "steps[%zu]", i), -EINVAL;
			d->n_steps++;
		}
	}
	d->root = json_object_get(j);
	return 0;
}

static int64_t pick(int64_t a, int64_t b, int64_t dflt)
{
	return a >= 0 ? a : b >= 0 ? b : dflt;
}

struct drill_mopts drill_step_mopts(const struct drill *d, const struct drill_step *s)
{
	const struct drill_mopts *a = &s->mo, *b = &d->defaults;

	return (struct drill_mopts){
		.max_downtime_ms = pick(a->max_downtime_ms, b->max_downtime_ms, 300),
		.bandwidth_mbps = pick(a->bandwidth_mbps, b->bandwidth_mbps, 0),
		.deadline_s = pick(a->deadline_s, b->deadline_s, 120),
		.plain = (int)pick(a->plain, b->plain, 0),
		.copy_storage = (int)pick(a->copy_storage, b->copy_storage, 0),
	};
}

struct drill_expect drill_step_expect(const struct drill *d, const struct drill_step *s)
{
	const struct drill_expect *a = &s->ex, *b = &d->expect;
	struct drill_expect e = {
		.expect_failure = (int)pick(a->expect_failure, -1, -1),
		.one_copy = (int)pick(a->one_copy, b->one_copy, 1),
		.max_downtime_ms = pick(a->max_downtime_ms, b->max_downtime_ms, -1),
		.max_total_s = pick(a->max_total_s, b->max_total_s, -1),
	};
	/* A fault step is expected to fail unless it says otherwise (a short
	 * link cut may well be survived). */
	if (e.expect_failure < 0)
		e.expect_failure = s->fault.kind && s->fault.kind != DRILL_FAULT_LINK_CUT &&
				   a->must_converge != 1;
	e.must_converge = (int)pick(a->must_converge, e.expect_failure ? 0 : b->must_converge,
				    !e.expect_failure);
	return e;
}
