/* SPDX-License-Identifier: MIT */
/* Postcopy end to end: two real qvisord in two network namespaces, real
 * QEMU (TCG), the test guest dirtying faster than the migration may send.
 * With allow_postcopy the controller switches to postcopy instead of
 * failing the deadline; the guest must end up running on the destination
 * only. The test process plays the coordinator (what `qvisor migrate`
 * does). */
#include <criterion/criterion.h>
#include <signal.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/twohosts.h"

#define BOOT_TIMEOUT_MS 180000
#define VM "pc1"

static struct qvt_twohosts *const H = &qvt_hosts;
/* QEMU 7.2 opens userfaultfd with the plain syscall; it runs as an
 * unprivileged user here, which needs vm.unprivileged_userfaultfd = 1. */
#define UFFD_SYSCTL "/proc/sys/vm/unprivileged_userfaultfd"
static int uffd_saved = -1;

static int sysctl_rw(int set)
{
	FILE *f = fopen(UFFD_SYSCTL, set < 0 ? "r" : "w");
	int v = -1;

	if (!f)
		return -1;
	if (set < 0) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
	} else {
		v = fprintf(f, "%d\n", set) > 0 ? set : -1;
	}
	if (fclose(f) != 0)
		v = -1;
	return v;
}

static void setup(void)
{
	if (!qvt_guest_dir())
		return;
	uffd_saved = sysctl_rw(-1);
	if (uffd_saved == 0 && sysctl_rw(1) != 1) {
		fprintf(stderr, "cannot enable %s\n", UFFD_SYSCTL);
		return;
	}
	qvt_twohosts_setup();
}

static void teardown(void)
{
	qvt_twohosts_teardown();
	if (uffd_saved == 0)
		(void)sysctl_rw(0);
}

static json_object *find_decision(json_object *decisions, const char *action)
{
	json_object *v;

	for (size_t i = 0; i < json_object_array_length(decisions); i++) {
		json_object *dk = json_object_array_get_idx(decisions, i);
		if (json_object_object_get_ex(dk, "action", &v) &&
		    streq(json_object_get_string(v), action))
			return dk;
	}
	return NULL;
}

TestSuite(migrate_postcopy, .init = setup, .fini = teardown, .timeout = 600);

/* Dirtier guest on d[0], link shaped, prepared on d[1] with allow_postcopy;
 * perform sent on a new connection (*ret_conn, request *ret_id). */
static void start_postcopy_migration(char *uri, size_t uri_size, char *token,
				     size_t token_size, int *ret_src_pid, qv_rpc_conn **ret_conn,
				     uint64_t *ret_id)
{
	struct qv_error err = {};
	json_object *r, *p, *v, *info, *spec;

	/* The guest rewrites whole pages with random data at 40 MB/s over
	 * 64 MB (XBZRLE off, so nothing shrinks them); the link is shaped to
	 * 6 MiB/s and the migration capped at 4 MiB/s. Under TCG dirty logging
	 * the guest's rate during the migration falls to ~5.4 MB/s (measured),
	 * (2.8 MB/s with the host at load 17), and the controller prefers
	 * postcopy once D > ~B/2 = 2.1 MB/s (pre-copy would take B/(B-D) times
	 * postcopy's R/B, see docs/migration.md). (The old 8-byte-per-page
	 * dirtier at 8 MiB/s let XBZRLE converge on a loaded host: the test
	 * was flaky.) Forcing the switch with postcopy_after_precopy was tried:
	 * after such an early switch the destination guest stopped printing in
	 * 3 of 3 runs here (not investigated, docs/migration.md). */
	qvt_start_dirtier_guest(&H->d[0], VM, "40:64:random", BOOT_TIMEOUT_MS);
	cr_assert_eq(qvt_twohosts_shape(H, 0, 6), 0, "tc shaping");
	*ret_src_pid = qvt_vm_pid(&H->d[0], VM);

	/* prepare with allow_postcopy (postcopy-ram on the destination) */
	info = qvt_call_name(&H->d[0], "vm.info", VM, &err);
	cr_assert_not_null(info, "%s", err.message);
	cr_assert(json_object_object_get_ex(info, "spec", &spec));
	p = json_object_new_object();
	json_object_object_add(p, "spec", json_object_get(spec));
	json_object_object_add(p, "allow_postcopy", json_object_new_boolean(true));
	json_object_put(info);
	r = qvt_call(&H->d[1], "migrate.prepare", p, &err);
	cr_assert_not_null(r, "prepare: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "allow_postcopy", &v) && json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(r, "uri", &v));
	snprintf(uri, uri_size, "%s", json_object_get_string(v));
	cr_assert(json_object_object_get_ex(r, "token", &v));
	snprintf(token, token_size, "%s", json_object_get_string(v));
	json_object_put(r);

	/* perform: a deadline pre-copy could not meet */
	*ret_conn = qvt_connect(&H->d[0]);
	cr_assert_not_null(*ret_conn);
	p = json_tokener_parse("{\"max_downtime_ms\": 50, \"bandwidth_mbps\": 4, "
			       "\"deadline_s\": 150, \"allow_postcopy\": true, \"xbzrle\": false}");
	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "uri", json_object_new_string(uri));
	cr_assert_eq(qv_rpc_send(*ret_conn, "migrate.perform", p, ret_id, &err), 0, "%s",
		     err.message);
}

/* migrate.finish on d[1] accepts the guest already running after postcopy. */
static void finish_on_destination(const char *token)
{
	struct qv_error err = {};
	json_object *p = json_object_new_object(), *r, *v;
	char buf[32];

	json_object_object_add(p, "name", json_object_new_string(VM));
	json_object_object_add(p, "token", json_object_new_string(token));
	r = qvt_call(&H->d[1], "migrate.finish", p, &err);
	cr_assert_not_null(r, "finish: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "postcopy", &v) && json_object_get_boolean(v));
	json_object_put(r);
	cr_assert_str_eq(qvt_vm_state(&H->d[1], VM, buf, sizeof(buf)), "running");
}

/* The source cannot take over any more (its RAM is stale). */
static void source_cancel_refused(void)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&H->d[0], "migrate.cancel", VM, &err);

	cr_assert_null(r, "cancel after a postcopy switch must be refused");
	cr_assert_str_eq(err.reason, "conflict", "%s", err.message);
}

Test(migrate_postcopy, dirtier_beyond_link_completes_via_postcopy)
{
	char uri[128], token[64];
	struct qv_error err = {};
	json_object *r, *v, *decs, *dk;
	qv_rpc_conn *c;
	uint64_t id;
	int src_pid;

	QVT_REQUIRE_GUEST();
	if (!qvt_hosts_up)
		cr_skip_test("two hosts (root, netns, veth, qvisord, userfaultfd) unavailable");
	start_postcopy_migration(uri, sizeof(uri), token, sizeof(token), &src_pid, &c, &id);
	cr_assert_eq(qv_rpc_recv_response(c, 400000, id, &r, &err), 0, "perform: %s", err.message);
	qv_rpc_conn_free(c);
	fprintf(stderr, "postcopy stats: %s\n",
		json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	cr_assert(json_object_object_get_ex(r, "status", &v));
	cr_assert_str_eq(json_object_get_string(v), "completed");
	cr_assert(json_object_object_get_ex(r, "postcopy", &v) && json_object_get_boolean(v),
		  "the migration should have completed via postcopy");
	cr_assert(json_object_object_get_ex(r, "downtime_ms", &v));
	cr_assert_geq(json_object_get_int64(v), 0);
	cr_assert(json_object_object_get_ex(r, "decisions", &decs));
	dk = find_decision(decs, "start-postcopy");
	cr_assert_not_null(dk, "no start-postcopy decision");
	cr_assert(json_object_object_get_ex(dk, "applied", &v) && json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(dk, "reason", &v) &&
		  strlen(json_object_get_string(v)) > 10);
	cr_assert_null(find_decision(decs, "cancel"), "no cancel decision expected");
	json_object_put(r);

	finish_on_destination(token);
	source_cancel_refused();
	qvt_twohosts_confirm_moved(H, VM, src_pid);
}
