/* SPDX-License-Identifier: MIT */
/* spec.backup: schedules, retention, store; canonical form round trip. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/json.h"
#include "qemu/spec.h"

#define HEAD "{\"name\":\"a\",\"kernel\":\"/k/vmlinuz\","

Test(spec_backup, parse_validate_round_trip)
{
	struct qv_error err = {};
	struct vm_spec *s = NULL, *back = NULL;

	cr_assert_eq(vm_spec_from_string(HEAD "\"backup\":{\"schedule\":\"daily\",\"keep_last\":7,"
					      "\"keep_daily\":14,\"store\":\"/srv/bk\"}}", &s, &err), 0,
		     "%s", err.message);
	cr_assert_eq(s->backup.interval_s, 86400);
	cr_assert_eq(s->backup.keep_last, 7);
	cr_assert_eq(s->backup.keep_daily, 14);
	cr_assert_str_eq(s->backup.store, "/srv/bk");
	json_object *j = vm_spec_to_json(s);
	cr_assert_eq(vm_spec_from_json(j, &back, &err), 0, "%s", err.message);
	cr_assert_eq(back->backup.interval_s, 86400);
	cr_assert_str_eq(back->backup.store, "/srv/bk");
	json_object_put(j);
	vm_spec_free(back);
	vm_spec_free(s);

	static const char *const bad[] = {
		HEAD "\"backup\":{\"schedule\":\"minutely\"}}",
		HEAD "\"backup\":{\"keep_last\":3}}",
		HEAD "\"backup\":{\"schedule\":\"daily\",\"store\":\"rel/dir\"}}",
		HEAD "\"backup\":{\"schedule\":\"daily\",\"keep_last\":-1}}",
		HEAD "\"backup\":{\"schedule\":\"daily\",\"when\":3}}",
		HEAD "\"backup\":\"daily\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = NULL;
		cr_assert_eq(vm_spec_from_string(bad[i], &s, &err), -EINVAL, "accepted %s", bad[i]);
		cr_assert_str_eq(err.reason, "invalid-argument");
	}
}
