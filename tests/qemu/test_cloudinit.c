/* SPDX-License-Identifier: MIT */
/* spec.cloud_init: validation, canonical form, and the seed disk in argv. */
#include <criterion/criterion.h>

#include "common/json.h"
#include "qemu/argv.h"
#include "qemu/spec.h"

#define BASE "{\"name\":\"a\",\"kernel\":\"/k\",\"machine\":\"q35\","

static int parse(const char *text, struct vm_spec **ret, struct qv_error *err)
{
	return vm_spec_from_string(text, ret, err);
}

Test(cloudinit, parses_and_round_trips)
{
	_cleanup_(vm_spec_freep) struct vm_spec *s = NULL, *s2 = NULL;
	struct qv_error err = {};

	cr_assert_eq(parse(BASE "\"cloud_init\":{\"user_data\":\"#cloud-config\\n\","
			  "\"network_config\":\"version: 2\\n\"}}", &s, &err), 0, "%s", err.message);
	cr_assert_not_null(s->cloud_init);
	cr_assert_str_eq(s->cloud_init->user_data, "#cloud-config\n");
	cr_assert_str_eq(s->cloud_init->meta_data, "");
	cr_assert_str_eq(s->cloud_init->network_config, "version: 2\n");
	_cleanup_json_ json_object *j = vm_spec_to_json(s);
	cr_assert_eq(vm_spec_from_json(j, &s2, &err), 0, "%s", err.message);
	_cleanup_json_ json_object *j2 = vm_spec_to_json(s2);
	cr_assert_str_eq(json_object_to_json_string(j), json_object_to_json_string(j2));
	_cleanup_(vm_spec_freep) struct vm_spec *d = vm_spec_dup(s);
	cr_assert_str_eq(d->cloud_init->network_config, "version: 2\n");

	_cleanup_(vm_spec_freep) struct vm_spec *none = NULL;
	cr_assert_eq(parse(BASE "\"cloud_init\":null}", &none, &err), 0);
	cr_assert_null(none->cloud_init);
	_cleanup_json_ json_object *jn = vm_spec_to_json(none);
	cr_assert(!json_object_object_get_ex(jn, "cloud_init", NULL));
}

Test(cloudinit, refuses_bad_documents)
{
	static const char *const bad[][2] = {
		{ BASE "\"cloud_init\":{\"userdata\":\"x\"}}", "spec.cloud_init.userdata: unknown field" },
		{ BASE "\"cloud_init\":{\"user_data\":5}}", "spec.cloud_init.user_data: must be a string" },
		{ BASE "\"cloud_init\":\"x\"}", "spec.cloud_init: must be an object" },
		{ BASE "\"cloud_init\":{\"meta_data\":\"a: 1\\ninstance-id: x\\n\"}}",
		  "instance-id and local-hostname are set" },
		{ BASE "\"cloud_init\":{\"user_data\":\"a\\u0000b\"}}", "contains a NUL" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vm_spec *s = NULL;
		struct qv_error err = {};
		cr_assert_lt(parse(bad[i][0], &s, &err), 0, "%s", bad[i][0]);
		cr_assert(strstr(err.message, bad[i][1]), "%s: %s", bad[i][0], err.message);
	}
	/* size cap */
	size_t n = VM_CLOUD_INIT_MAX + 1;
	char *big = malloc(n + 200);
	int k = snprintf(big, 200, BASE "\"cloud_init\":{\"user_data\":\"");
	memset(big + k, 'x', n);
	strcpy(big + k + n, "\"}}");
	struct vm_spec *s = NULL;
	struct qv_error err = {};
	cr_assert_lt(parse(big, &s, &err), 0);
	cr_assert(strstr(err.message, "at most"), "%s", err.message);
	free(big);
}

static bool has_arg(char **argv, const char *needle)
{
	for (char **p = argv; *p; p++)
		if (strstr(*p, needle))
			return true;
	return false;
}

Test(cloudinit, seed_is_a_read_only_disk_in_argv)
{
	_cleanup_(vm_spec_freep) struct vm_spec *s = NULL;
	_cleanup_strv_free_ char **argv = NULL;
	struct qv_error err = {};
	struct qemu_argv_opts opts = { .run_dir = "/run/qv/a", .accel = VM_ACCEL_TCG };

	cr_assert_eq(parse(BASE "\"cloud_init\":{}}", &s, &err), 0, "%s", err.message);
	cr_assert_lt(qemu_argv_build(s, &opts, &argv, &err), 0, "no seed path must be refused");
	cr_assert(strstr(err.message, "cloud_init"), "%s", err.message);
	opts.cidata_path = "/run/qv/a/cidata.iso";
	cr_assert_eq(qemu_argv_build(s, &opts, &argv, &err), 0, "%s", err.message);
	cr_assert(has_arg(argv, "{\"driver\":\"file\",\"filename\":\"\\/run\\/qv\\/a\\/cidata.iso\","
				"\"node-name\":\"cidata-file\",\"read-only\":true}") ||
		  has_arg(argv, "\"filename\":\"/run/qv/a/cidata.iso\""));
	cr_assert(has_arg(argv, "\"node-name\":\"cidata\",\"read-only\":true"));
	cr_assert(has_arg(argv, "\"id\":\"cidata-dev\",\"drive\":\"cidata\",\"bus\":\"rp-cidata\""));
}

Test(disk_serial, validated_and_passed_to_virtio_blk)
{
	_cleanup_(vm_spec_freep) struct vm_spec *s = NULL;
	_cleanup_strv_free_ char **argv = NULL;
	struct qv_error err = {};
	struct qemu_argv_opts opts = { .run_dir = "/run/qv/a", .accel = VM_ACCEL_TCG };

	cr_assert_eq(parse(BASE "\"disks\":[{\"path\":\"/d\",\"serial\":\"ABC-1.x_2\"}]}", &s, &err),
		     0, "%s", err.message);
	cr_assert_str_eq(s->disks[0].serial, "ABC-1.x_2");
	cr_assert_eq(qemu_argv_build(s, &opts, &argv, &err), 0, "%s", err.message);
	cr_assert(has_arg(argv, "\"serial\":\"ABC-1.x_2\""));
	static const char *const bad[] = { "\"\"", "\"123456789012345678901\"", "\"a b\"", "\"a,b\"", "5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		struct vm_spec *x = NULL;
		snprintf(text, sizeof(text), BASE "\"disks\":[{\"path\":\"/d\",\"serial\":%s}]}", bad[i]);
		cr_assert_lt(parse(text, &x, &err), 0, "%s", text);
	}
}
