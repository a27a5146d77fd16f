/* SPDX-License-Identifier: MIT */
/* spec.resources: entitlements for the host resource loop. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/json.h"
#include "qemu/spec.h"

#define HEAD "{\"name\":\"a\",\"kernel\":\"/k/vmlinuz\",\"vcpus\":2,\"memory\":512,"

static int parse(const char *text, struct vm_spec **ret, struct qv_error *err)
{
	return vm_spec_from_string(text, ret, err);
}

Test(spec_resources, defaults_without_the_section)
{
	struct vm_spec *s = NULL;

	cr_assert_eq(parse("{\"name\":\"a\",\"kernel\":\"/k\"}", &s, NULL), 0);
	cr_assert_not(s->has_resources);
	cr_assert_eq(s->resources.cpu_shares, 1000);
	cr_assert_eq(s->resources.klass, VM_CLASS_THROUGHPUT);
	cr_assert_eq(s->resources.mode, VM_LOOP_HOST);
	json_object *j = vm_spec_to_json(s);
	cr_assert_not(json_object_object_get_ex(j, "resources", NULL));
	json_object_put(j);
	vm_spec_free(s);
}

Test(spec_resources, full_section_parses_and_round_trips)
{
	struct vm_spec *s = NULL, *s2 = NULL;
	struct qv_error err = { 0 };
	const char *t = HEAD "\"resources\":{\"class\":\"latency\",\"mode\":\"advise\","
			     "\"cpu\":{\"shares\":2000,\"reservation\":0.5,\"limit\":1.5},"
			     "\"memory\":{\"reservation\":\"256M\",\"limit\":\"1G\"}}}";

	cr_assert_eq(parse(t, &s, &err), 0, "%s", err.message);
	cr_assert(s->has_resources);
	cr_assert_eq(s->resources.klass, VM_CLASS_LATENCY);
	cr_assert_eq(s->resources.mode, VM_LOOP_ADVISE);
	cr_assert_eq(s->resources.cpu_shares, 2000);
	cr_assert_eq(s->resources.cpu_reservation, 500);
	cr_assert_eq(s->resources.cpu_limit, 1500);
	cr_assert_eq(s->resources.mem_reservation, 256ull << 20);
	cr_assert_eq(s->resources.mem_limit, 1ull << 30);
	json_object *j = vm_spec_to_json(s);
	cr_assert_eq(vm_spec_from_json(j, &s2, &err), 0, "%s", err.message);
	cr_assert_eq(memcmp(&s->resources, &s2->resources, sizeof(s->resources)), 0);
	json_object_put(j);
	vm_spec_free(s);
	vm_spec_free(s2);
}

static const struct {
	const char *json, *msg;
} bad[] = {
	{ "\"resources\":{\"klass\":1}}", "spec.resources.klass: unknown field" },
	{ "\"resources\":{\"cpu\":{\"exclusive\":true}}}",
	  "spec.resources.cpu.exclusive: only the latency class gets exclusive cores" },
	{ "\"resources\":{\"class\":\"latency\",\"cpu\":{\"exclusive\":1}}}",
	  "spec.resources.cpu.exclusive" },
	{ "\"resources\":{\"class\":\"fast\"}}", "spec.resources.class: must be one of" },
	{ "\"resources\":{\"mode\":\"on\"}}", "spec.resources.mode: must be one of" },
	{ "\"resources\":{\"cpu\":{\"shares\":0}}}", "spec.resources.cpu.shares" },
	{ "\"resources\":{\"cpu\":{\"reservation\":3}}}", "outside 0.001..2 (the VM's vcpus)" },
	{ "\"resources\":{\"cpu\":{\"reservation\":\"1\"}}}", "must be a number of cores" },
	{ "\"resources\":{\"cpu\":{\"reservation\":1,\"limit\":0.5}}}", "above the limit" },
	{ "\"resources\":{\"cpu\":{\"weight\":1}}}", "spec.resources.cpu.weight: unknown field" },
	{ "\"resources\":{\"memory\":{\"limit\":\"256M\"}}}", "below the guest memory" },
	{ "\"resources\":{\"memory\":{\"reservation\":\"2G\",\"limit\":\"1G\"}}}",
	  "reservation 2147483648 bytes is above the limit" },
	{ "\"limits\":{\"cpu_weight\":50},\"resources\":{}}",
	  "conflicts with spec.limits.cpu_weight" },
};

Test(spec_resources, bad_input_is_refused_naming_the_field)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512];
		struct vm_spec *s = NULL;
		struct qv_error err = { 0 };
		snprintf(text, sizeof(text), HEAD "%s", bad[i].json);
		cr_assert_lt(parse(text, &s, &err), 0, "accepted %s", text);
		cr_assert_null(s);
		cr_assert_str_eq(err.reason, "invalid-argument");
		cr_assert_not_null(strstr(err.message, bad[i].msg), "%s: expected \"%s\" in \"%s\"",
				   bad[i].json, bad[i].msg, err.message);
	}
}

Test(spec_resources, cpu_exclusive_round_trips_for_the_latency_class)
{
	struct vm_spec *s = NULL, *s2 = NULL;
	struct qv_error err = { 0 };
	const char *t = HEAD "\"resources\":{\"class\":\"latency\",\"cpu\":{\"exclusive\":true}}}";

	cr_assert_eq(parse(t, &s, &err), 0, "%s", err.message);
	cr_assert(s->resources.cpu_exclusive);
	json_object *j = vm_spec_to_json(s);
	cr_assert_eq(vm_spec_from_json(j, &s2, &err), 0, "%s", err.message);
	cr_assert(s2->resources.cpu_exclusive);
	json_object_put(j);
	vm_spec_free(s);
	vm_spec_free(s2);
}
