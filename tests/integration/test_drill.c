/* SPDX-License-Identifier: MIT */
/* `qvisor drill run FILE --report DIR` end to end: two real qvisord in two
 * network namespaces (tests/helpers/twohosts), a drill that creates the
 * test guest, shapes the veth (tc tbf + netem), migrates it back and forth
 * twice and then cancels a migration midway. The report must say every
 * expectation passed, the SVG must hold the chart, and exactly one running
 * copy must be left. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/twohosts.h"

#define VM "drill1"

static struct qvt_twohosts *const H = &qvt_hosts;

TestSuite(drill, .init = qvt_twohosts_setup, .fini = qvt_twohosts_teardown, .timeout = 600);

static const char *cli_binary(void)
{
	static char bin[512];
	const char *b = getenv("QV_BUILD_DIR");

	snprintf(bin, sizeof(bin), "%s/qvisor", b && *b ? b : "build");
	return bin;
}

static int running_copies(void)
{
	int n = 0;

	for (int i = 0; i < 2; i++) {
		struct qv_error err = {};
		json_object *r = qvt_call(&H->d[i], "vm.list", NULL, &err), *vms, *v;
		cr_assert_not_null(r, "vm.list: %s", err.message);
		cr_assert(json_object_object_get_ex(r, "vms", &vms));
		for (size_t k = 0; k < json_object_array_length(vms); k++) {
			json_object *e = json_object_array_get_idx(vms, k);
			if (json_object_object_get_ex(e, "name", &v) &&
			    streq(json_object_get_string(v), VM) &&
			    json_object_object_get_ex(e, "state", &v) &&
			    streq(json_object_get_string(v), "running"))
				n++;
		}
		json_object_put(r);
	}
	return n;
}

static bool file_contains(const char *path, const char *needle)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");
	bool found;

	if (!f)
		return false;
	found = getdelim(&buf, &len, '\0', f) > 0 && strstr(buf, needle);
	fclose(f);
	return found;
}

Test(drill, baseline_round_trips_and_cancel_report)
{
	char path[256], dir[256], svg[300], rep[300], ns[2][64];
	_cleanup_free_ char *out = NULL;
	json_object *report, *v, *ms;
	size_t checks = 0;
	FILE *f;
	int rc;

	QVT_REQUIRE_HOSTS();
	if (access(cli_binary(), X_OK) < 0)
		cr_skip_test("qvisor CLI not built");
	for (int i = 0; i < 2; i++)
		snprintf(ns[i], sizeof(ns[i]), "/proc/%d/ns/net", (int)H->ns_pid[i]);
	snprintf(path, sizeof(path), "%s/drill.json", H->d[0].dir);
	snprintf(dir, sizeof(dir), "%s/report", H->d[0].dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"name\": \"test-baseline\",\n"
		" \"hosts\": [{\"uri\": \"unix://%s\", \"netns\": \"%s\", \"dev\": \"%s\"},\n"
		"           {\"uri\": \"unix://%s\", \"netns\": \"%s\", \"dev\": \"%s\"}],\n"
		" \"link\": {\"rate_mbps\": 200},\n"
		" \"vms\": [{\"name\": \"%s\", \"template\": \"test-guest\", \"guest_dir\": \"%s\",\n"
		"           \"memory_mib\": 256, \"dirty\": \"5:32\"}],\n"
		" \"defaults\": {\"max_downtime_ms\": 300, \"deadline_s\": 120},\n"
		" \"steps\": [\n"
		"   {\"name\": \"round-trips\", \"repeat\": 4,\n"
		"    \"expect\": {\"must_converge\": true, \"max_downtime_ms\": 2000,\n"
		"               \"max_total_s\": 120}},\n"
		/* 5 s in: well inside the ~30 s RAM copy at 8 MiB/s even when prepare
		 * is slow on a loaded host (at 1.5 s the cancel could land before
		 * the first progress sample). */
		"   {\"name\": \"cancel\", \"migrate\": {\"bandwidth_mbps\": 8},\n"
		"    \"fault\": {\"kind\": \"cancel\", \"at_ms\": 5000},\n"
		"    \"expect\": {\"expect_failure\": true}}]}\n",
		H->d[0].socket, ns[0], H->veth[0], H->d[1].socket, ns[1], H->veth[1], VM,
		qvt_guest_dir());
	fclose(f);

	char *argv[] = { (char *)cli_binary(), "drill", "run", path, "--report", dir, NULL };
	rc = qvt_run(argv, &out);
	cr_assert_eq(rc, 0, "drill failed (%d):\n%s", rc, out ? out : "");
	cr_assert(strstr(out, "passed"), "%s", out);

	snprintf(rep, sizeof(rep), "%s/report.json", dir);
	report = json_object_from_file(rep);
	cr_assert_not_null(report, "report.json does not parse");
	cr_assert(json_object_object_get_ex(report, "passed", &v) && json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(report, "migrations", &ms));
	cr_assert_eq(json_object_array_length(ms), 5, "4 round-trip migrations + 1 cancel");
	for (size_t i = 0; i < json_object_array_length(ms); i++) {
		json_object *m = json_object_array_get_idx(ms, i), *ex, *series;
		cr_assert(json_object_object_get_ex(m, "expectations", &ex));
		cr_assert_gt(json_object_array_length(ex), 0);
		for (size_t k = 0; k < json_object_array_length(ex); k++, checks++) {
			json_object *c = json_object_array_get_idx(ex, k), *p, *n;
			cr_assert(json_object_object_get_ex(c, "pass", &p));
			json_object_object_get_ex(c, "name", &n);
			cr_assert(json_object_get_boolean(p), "migration %zu: %s failed", i,
				  json_object_get_string(n));
		}
		cr_assert(json_object_object_get_ex(m, "series", &series));
		cr_assert_gt(json_object_array_length(series), 0, "migration %zu: no time series", i);
		cr_assert(json_object_object_get_ex(m, "result", &v));
		cr_assert_str_eq(json_object_get_string(v), i < 4 ? "migrated" : "failed");
	}
	cr_assert_gt(checks, 10);
	json_object_put(report);

	snprintf(svg, sizeof(svg), "%s/report.svg", dir);
	cr_assert(file_contains(svg, "<svg"), "no report.svg");
	cr_assert(file_contains(svg, "<polyline"), "report.svg has no polyline");
	snprintf(rep, sizeof(rep), "%s/report.txt", dir);
	cr_assert(file_contains(rep, "cancel@5000"), "report.txt lacks the fault row");

	/* After 4 migrations the guest is home on host 0 and the cancel kept
	 * it there: exactly one running copy. */
	cr_assert_eq(running_copies(), 1);
	char buf[32];
	cr_assert_str_eq(qvt_vm_state(&H->d[0], VM, buf, sizeof(buf)), "running");
}

/* An invalid drill file (unknown field) is refused before anything runs:
 * exit 2, not 3 (the hosts do not exist, so connecting would fail). */
Test(drill, invalid_file_is_rejected)
{
	char path[] = "/tmp/qvt-drill-XXXXXX";
	_cleanup_free_ char *out = NULL;
	int fd, rc;

	if (access(cli_binary(), X_OK) < 0)
		cr_skip_test("qvisor CLI not built");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	dprintf(fd, "{\"hosts\": [\"unix:///nonexistent/a\", \"unix:///nonexistent/b\"],"
		    " \"vms\": [\"v\"], \"steps\": [{\"fault\": {\"kind\": \"cancel\", "
		    "\"at_ms\": 10, \"when\": 1}}]}");
	close(fd);
	char *argv[] = { (char *)cli_binary(), "drill", "run", path, NULL };
	rc = qvt_run(argv, &out);
	unlink(path);
	cr_assert_eq(rc, 2, "exit %d (the message goes to stderr)", rc);
}
