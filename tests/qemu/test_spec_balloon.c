/* SPDX-License-Identifier: MIT */
/* spec.balloon: parsing, validation, canonical form and the argv device. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/json.h"
#include "qemu/argv.h"
#include "qemu/spec.h"

#define HEAD "{\"name\":\"a\",\"kernel\":\"/k/vmlinuz\",\"memory\":256,"

static struct vm_spec *parse_ok(const char *text)
{
	struct qv_error err = {};
	struct vm_spec *s = NULL;

	cr_assert_eq(vm_spec_from_string(text, &s, &err), 0, "%s: %s", text, err.message);
	return s;
}

Test(spec_balloon, absent_true_and_object)
{
	_cleanup_(vm_spec_freep) struct vm_spec *none = parse_ok(HEAD "\"vcpus\":1}");
	_cleanup_(vm_spec_freep) struct vm_spec *on = parse_ok(HEAD "\"balloon\":true}");
	_cleanup_(vm_spec_freep) struct vm_spec *off = parse_ok(HEAD "\"balloon\":false}");
	_cleanup_(vm_spec_freep) struct vm_spec *obj =
		parse_ok(HEAD "\"balloon\":{\"target\":\"96M\",\"stats_interval\":0}}");
	_cleanup_(vm_spec_freep) struct vm_spec *full =
		parse_ok(HEAD "\"balloon\":{\"target\":\"256M\"}}");

	cr_assert_not(none->balloon.enabled);
	cr_assert_not(off->balloon.enabled);
	cr_assert(on->balloon.enabled);
	cr_assert_eq(on->balloon.target, 0);
	cr_assert_eq(on->balloon.stats_interval_s, VM_BALLOON_STATS_DEFAULT_S);
	cr_assert(obj->balloon.enabled);
	cr_assert_eq(obj->balloon.target, 96ull << 20);
	cr_assert_eq(obj->balloon.stats_interval_s, 0);
	cr_assert_eq(full->balloon.target, 0, "a target of all memory is no target");
}

Test(spec_balloon, round_trips_and_stays_absent_when_off)
{
	_cleanup_(vm_spec_freep) struct vm_spec *s =
		parse_ok(HEAD "\"balloon\":{\"target\":100663296,\"stats_interval\":7}}");
	_cleanup_(vm_spec_freep) struct vm_spec *off = parse_ok(HEAD "\"balloon\":false}");
	struct vm_spec *s2 = NULL;
	struct qv_error err = {};
	json_object *j = vm_spec_to_json(s), *b;

	cr_assert(json_object_object_get_ex(j, "balloon", &b));
	cr_assert_eq(vm_spec_from_json(j, &s2, &err), 0, "%s", err.message);
	cr_assert_eq(memcmp(&s->balloon, &s2->balloon, sizeof(s->balloon)), 0);
	json_object_put(j);
	vm_spec_free(s2);
	s2 = vm_spec_dup(s);
	cr_assert_eq(s2->balloon.target, 96ull << 20);
	vm_spec_free(s2);
	j = vm_spec_to_json(off);
	cr_assert_not(json_object_object_get_ex(j, "balloon", NULL));
	json_object_put(j);
}

static const struct {
	const char *json, *msg;
} bad[] = {
	{ "\"balloon\":\"yes\"}", "spec.balloon: must be a boolean or an object" },
	{ "\"balloon\":{\"size\":1}}", "spec.balloon.size: unknown field" },
	{ "\"balloon\":{\"target\":\"512M\"}}", "spec.balloon.target: 536870912 bytes is above" },
	{ "\"balloon\":{\"target\":\"1M\"}}", "spec.balloon.target" },
	{ "\"balloon\":{\"target\":100000000}}", "not a whole number of MiB" },
	{ "\"balloon\":{\"target\":\"lots\"}}", "spec.balloon.target" },
	{ "\"balloon\":{\"stats_interval\":-1}}", "spec.balloon.stats_interval" },
	{ "\"balloon\":{\"stats_interval\":99999}}", "spec.balloon.stats_interval" },
};

Test(spec_balloon, bad_input_is_named)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512];
		struct qv_error err = {};
		struct vm_spec *s = NULL;

		snprintf(text, sizeof(text), HEAD "%s", bad[i].json);
		cr_assert_eq(vm_spec_from_string(text, &s, &err), -EINVAL, "%s accepted", text);
		cr_assert_null(s);
		cr_assert(strstr(err.message, bad[i].msg), "%s: got \"%s\"", text, err.message);
	}
}

static json_object *balloon_device(char **argv)
{
	for (size_t i = 0; argv[i]; i++) {
		json_object *o, *v;
		if (strcmp(argv[i], "-device") || !argv[i + 1] || argv[i + 1][0] != '{')
			continue;
		o = json_tokener_parse(argv[i + 1]);
		if (o && json_object_object_get_ex(o, "driver", &v) &&
		    !strcmp(json_object_get_string(v), "virtio-balloon-pci"))
			return o;
		json_object_put(o);
	}
	return NULL;
}

Test(spec_balloon, argv_has_the_device_only_when_enabled)
{
	_cleanup_(vm_spec_freep) struct vm_spec *on = parse_ok(HEAD "\"balloon\":true}");
	_cleanup_(vm_spec_freep) struct vm_spec *off = parse_ok(HEAD "\"vcpus\":1}");
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_TCG };
	struct qv_error err = {};
	_cleanup_strv_free_ char **a = NULL;
	_cleanup_strv_free_ char **b = NULL;
	json_object *dev, *v;

	cr_assert_eq(qemu_argv_build(on, &opts, &a, &err), 0, "%s", err.message);
	cr_assert_eq(qemu_argv_build(off, &opts, &b, &err), 0, "%s", err.message);
	dev = balloon_device(a);
	cr_assert_not_null(dev);
	cr_assert(json_object_object_get_ex(dev, "id", &v));
	cr_assert_str_eq(json_object_get_string(v), QEMU_BALLOON_ID);
	cr_assert(json_object_object_get_ex(dev, "bus", &v), "q35: behind its own root port");
	json_object_put(dev);
	cr_assert_null(balloon_device(b));
}
