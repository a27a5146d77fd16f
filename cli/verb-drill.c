/* SPDX-License-Identifier: MIT */
/* qvisor drill run FILE: scripted migration drills. A drill migrates one VM
 * back and forth between two daemons, optionally injecting faults, and
 * checks after every step that exactly one running copy exists.
 *
 * {
 *   "name": "ping-pong",                          (optional)
 *   "vm": "vm1",
 *   "hosts": ["unix:///run/a.sock", "ssh://b"],
 *   "iterations": 4,
 *   "migrate": {"max_downtime_ms": 300, "bandwidth_mbps": 50,
 *               "deadline_s": 120, "plain": false},
 *   "faults": [{"iteration": 1, "kind": "cancel", "after_ms": 3000}]
 * }
 *
 * Iterations count from 0; a "cancel" fault cancels the migration from a
 * second connection after_ms into perform and expects the VM to stay on its
 * source. Exit status 0 when every step met its expectation. */
#include <getopt.h>

#include "cli/verb-migrate.h"
#include "cli/verbs.h"

#define MAX_FAULTS 32

struct drill {
	const char *name;
	const char *vm;
	const char *hosts[2];
	int64_t iterations;
	struct cli_migrate_opts mo;
	struct {
		int64_t iteration;
		int64_t after_ms;
	} faults[MAX_FAULTS];
	size_t n_faults;
};

static int parse_drill(json_object *j, struct drill *d, struct qv_error *errp)
{
	static const char *const keys[] = { "name", "vm", "hosts", "iterations", "migrate",
					    "faults", NULL };
	static const char *const mkeys[] = { "max_downtime_ms", "bandwidth_mbps", "deadline_s",
					     "plain", NULL };
	json_object *hosts, *m, *faults, *v;
	int64_t x;
	bool b;

	*d = (struct drill){ .name = "drill", .iterations = 2,
			     .mo = { .max_downtime_ms = 300, .deadline_s = 120, .quiet = true } };
	if (json_check_keys(j, keys, "drill", errp) < 0 ||
	    json_get_string(j, "vm", "drill.vm", &d->vm, errp) < 0)
		return -EINVAL;
	(void)json_get_string(j, "name", "drill.name", &d->name, NULL);
	if (json_get_int64(j, "iterations", "drill.iterations", &d->iterations, errp) == -EINVAL ||
	    d->iterations < 1 || d->iterations > 10000)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "drill.iterations must be 1..10000");
	if (!json_object_object_get_ex(j, "hosts", &hosts) ||
	    !json_object_is_type(hosts, json_type_array) || json_object_array_length(hosts) != 2)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "drill.hosts must list two daemon URIs");
	for (int i = 0; i < 2; i++)
		d->hosts[i] = json_object_get_string(json_object_array_get_idx(hosts, i));
	if (json_object_object_get_ex(j, "migrate", &m)) {
		if (json_check_keys(m, mkeys, "drill.migrate", errp) < 0)
			return -EINVAL;
		if (json_get_int64(m, "max_downtime_ms", "max_downtime_ms", &x, NULL) == 0)
			d->mo.max_downtime_ms = x;
		if (json_get_int64(m, "bandwidth_mbps", "bandwidth_mbps", &x, NULL) == 0)
			d->mo.bandwidth_mibps = x;
		if (json_get_int64(m, "deadline_s", "deadline_s", &x, NULL) == 0)
			d->mo.deadline_s = x;
		if (json_get_bool(m, "plain", "plain", &b, NULL) == 0)
			d->mo.plain = b;
	}
	if (json_object_object_get_ex(j, "faults", &faults)) {
		for (size_t i = 0; i < json_object_array_length(faults) && i < MAX_FAULTS; i++) {
			json_object *f = json_object_array_get_idx(faults, i);
			const char *kind = NULL;
			if (json_get_string(f, "kind", "fault.kind", &kind, errp) < 0 ||
			    !streq(kind, "cancel"))
				return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
						    "fault.kind must be \"cancel\"");
			d->faults[d->n_faults].iteration =
				json_object_object_get_ex(f, "iteration", &v) ? json_object_get_int64(v) : 0;
			d->faults[d->n_faults].after_ms =
				json_object_object_get_ex(f, "after_ms", &v) ? json_object_get_int64(v) : 2000;
			d->n_faults++;
		}
	}
	return 0;
}

/* "running" / "absent" / other state of vm on conn. */
static void vm_state(qv_rpc_conn *c, const char *vm, char *buf, size_t size)
{
	_cleanup_json_ json_object *r = NULL;
	struct qv_error err = {};
	json_object *p = json_object_new_object(), *v;

	json_object_object_add(p, "name", json_object_new_string(vm));
	if (qv_rpc_invoke(c, "vm.info", p, 30000, &r, &err) < 0)
		snprintf(buf, size, "%s", streq(err.reason, "not-found") ? "absent" : "unknown");
	else
		snprintf(buf, size, "%s", json_object_object_get_ex(r, "state", &v)
						  ? json_object_get_string(v) : "unknown");
}

int verb_drill_run(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *j = NULL, *report = json_object_new_array();
	_cleanup_rpc_conn_ qv_rpc_conn *c0 = NULL, *c1 = NULL, *f0 = NULL, *f1 = NULL;
	struct qv_error err = {};
	struct drill d;
	char s0[32], s1[32];
	int src, failures = 0, r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected a drill file");
	if ((r = cli_read_json_file(ctx, argv[1], &j)) != EXIT_OK)
		return r;
	if (parse_drill(j, &d, &err) < 0)
		return cli_report(ctx, argv[1], -EINVAL, &err);
	if (qv_rpc_connect(d.hosts[0], &c0, &err) < 0 || qv_rpc_connect(d.hosts[1], &c1, &err) < 0 ||
	    qv_rpc_connect(d.hosts[0], &f0, &err) < 0 || qv_rpc_connect(d.hosts[1], &f1, &err) < 0)
		return cli_report(ctx, "connect", -ECONNREFUSED, &err);
	vm_state(c0, d.vm, s0, sizeof(s0));
	vm_state(c1, d.vm, s1, sizeof(s1));
	if (streq(s0, "running") == streq(s1, "running"))
		return cli_report(ctx, d.vm, -EINVAL,
				  &(struct qv_error){ .set = true, .reason = "conflict",
						      .message = "the VM must run on exactly one of the two hosts" });
	src = streq(s0, "running") ? 0 : 1;
	printf("drill %s: %s, %lld iterations\n", d.name, d.vm, (long long)d.iterations);
	printf("%-4s %-5s %-8s %-9s %10s %10s %8s  %s\n", "it", "from", "fault", "result",
	       "total_ms", "downtime", "rounds", "check");
	for (int64_t it = 0; it < d.iterations; it++) {
		struct cli_migrate_opts mo = d.mo;
		_cleanup_json_ json_object *stats = NULL;
		qv_rpc_conn *sc = src ? c1 : c0, *dc = src ? c0 : c1;
		json_object *row = json_object_new_object(), *v;
		bool fault = false, ok;

		for (size_t k = 0; k < d.n_faults; k++)
			if (d.faults[k].iteration == it) {
				fault = true;
				mo.fault = src ? f1 : f0;
				mo.cancel_after_ms = (uint64_t)d.faults[k].after_ms;
			}
		qv_error_clear(&err);
		r = cli_migrate_run(sc, dc, d.vm, &mo, &stats, &err);
		int expect_on = (r == 0) ? 1 - src : src;
		vm_state(expect_on ? c1 : c0, d.vm, s0, sizeof(s0));
		vm_state(expect_on ? c0 : c1, d.vm, s1, sizeof(s1));
		/* exactly one running copy, where the outcome says it should be */
		ok = streq(s0, "running") && !streq(s1, "running") && (fault ? r < 0 : r == 0);
		failures += !ok;
#define NUM(k) (stats && json_object_object_get_ex(stats, k, &v) ? json_object_get_int64(v) : -1)
		printf("%-4lld %-5d %-8s %-9s %10lld %10lld %8lld  %s%s%s\n", (long long)it, src,
		       fault ? "cancel" : "-", r == 0 ? "migrated" : "failed",
		       (long long)NUM("total_time_ms"), (long long)NUM("downtime_ms"),
		       (long long)NUM("rounds"), ok ? "ok" : "VIOLATION", r < 0 ? ": " : "",
		       r < 0 ? err.message : "");
		json_object_object_add(row, "iteration", json_object_new_int64(it));
		json_object_object_add(row, "from", json_object_new_int(src));
		json_object_object_add(row, "fault", json_object_new_boolean(fault));
		json_object_object_add(row, "migrated", json_object_new_boolean(r == 0));
		json_object_object_add(row, "ok", json_object_new_boolean(ok));
		json_object_object_add(row, "stats", stats ? json_object_get(stats) : NULL);
		json_object_array_add(report, row);
#undef NUM
		if (r == 0)
			src = 1 - src;
	}
	if (ctx->json)
		printf("%s\n", json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY));
	printf("drill %s: %s (%d violation%s)\n", d.name, failures ? "FAILED" : "passed", failures,
	       failures == 1 ? "" : "s");
	return failures ? EXIT_FAILED : EXIT_OK;
}
