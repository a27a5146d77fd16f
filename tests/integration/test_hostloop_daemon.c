/* SPDX-License-Identifier: MIT */
/* The resource loop in a real qvisord on this host: admission control at
 * vm.start (names the short resource, leaves the VM stopped, admits again
 * once a running VM stops), host.pressure, policy.show, policy.set-mode.
 * Allocation itself needs a whole cgroup v2: tests/lab/. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

static unsigned long long mem_total_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kb = 0;
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "MemTotal: %llu kB", &kb), 1);
	fclose(f);
	return kb / 1024;
}

static const char *str(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

TestSuite(hostloop_daemon, .init = setup, .fini = teardown);

Test(hostloop_daemon, admission_refuses_what_does_not_fit_and_names_it, .timeout = 300)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qv_error err = { 0 };
	char extra[256], st[32];
	unsigned long long r = mem_total_mib() * 6 / 10;

	snprintf(extra, sizeof(extra), "{\"resources\":{\"memory\":{\"reservation\":\"%lluM\"}}}",
		 r);
	cr_assert_eq(qvt_define_guest(&D, "big1", extra, &err), 0, "%s", err.message);
	cr_assert_eq(qvt_define_guest(&D, "big2", extra, &err), 0, "%s", err.message);
	cr_assert_eq(qvt_define_guest(&D, "lat",
				      "{\"vcpus\":64,\"resources\":{\"class\":\"latency\","
				      "\"cpu\":{\"reservation\":64}}}", &err), 0, "%s", err.message);

	cr_assert_eq(qvt_callf(&D, "vm.start", NULL, &err, "{\"name\":\"big1\"}"), 0, "%s",
		     err.message);
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "vm.start", NULL, &err, "{\"name\":\"big2\"}"), 0);
	cr_assert_str_eq(err.reason, "unavailable");
	cr_assert_not_null(strstr(err.message, "not enough memory for VM big2"), "%s", err.message);
	printf("refused: %s\n", err.message);
	cr_assert_str_eq(qvt_vm_state(&D, "big2", st, sizeof(st)), "stopped");
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "vm.start", NULL, &err, "{\"name\":\"lat\"}"), 0);
	cr_assert_not_null(strstr(err.message, "not enough exclusive cores for VM lat"), "%s",
			   err.message);
	printf("refused: %s\n", err.message);

	/* host.pressure and policy.show answer; big1 is accounted */
	json_object *p = NULL;
	cr_assert_eq(qvt_callf(&D, "host.pressure", &p, &err, "{}"), 0, "%s", err.message);
	json_object *h, *v;
	cr_assert(json_object_object_get_ex(p, "host", &h));
	cr_assert(json_object_object_get_ex(h, "ncpus", &v) && json_object_get_int(v) >= 1);
	cr_assert(json_object_object_get_ex(p, "overloaded", &v));
	json_object_put(p);
	cr_assert_eq(qvt_callf(&D, "policy.show", &p, &err, "{}"), 0, "%s", err.message);
	const char *mode = str(p, "mode");
	cr_assert(strcmp(mode, "advise") == 0 || strcmp(mode, "enforce") == 0, "mode %s", mode);
	json_object_put(p);
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "policy.set-mode", NULL, &err, "{\"mode\":\"fast\"}"), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");

	/* once big1 stops, big2 fits */
	cr_assert_eq(qvt_callf(&D, "vm.stop", NULL, &err, "{\"name\":\"big1\",\"force\":true}"), 0,
		     "%s", err.message);
	for (int i = 0; i < 100 && strcmp(qvt_vm_state(&D, "big1", st, sizeof(st)), "stopped"); i++)
		qvt_sleep_ms(100);
	cr_assert_eq(qvt_callf(&D, "vm.start", NULL, &err, "{\"name\":\"big2\"}"), 0, "%s",
		     err.message);
	/* mode off: no admission control */
	cr_assert_eq(qvt_callf(&D, "policy.set-mode", NULL, &err, "{\"mode\":\"off\"}"), 0, "%s",
		     err.message);
	cr_assert_eq(qvt_callf(&D, "vm.start", NULL, &err, "{\"name\":\"big1\"}"), 0, "%s",
		     err.message);
}
