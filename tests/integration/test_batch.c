/* SPDX-License-Identifier: MIT */
/* Nothing blocks the daemon's loop: 30 VMs started and stopped with the
 * CLI's batch verbs while a second client lists, and a SIGSTOPped QEMU whose
 * vm.pause fails at its deadline while the other VMs start, stop and list.
 * Real qvisord, real QEMU (TCG), the real test guest. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>

#include "common/json.h"
#include "common/loop.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/qvisord.h"

#define N_BATCH 30
/* The daemon's QMP deadline for pause/resume/reboot (QV_VM_QMP_TIMEOUT_MS). */
#define PAUSE_DEADLINE_MS 10000
/* Margins for "answered normally" on a shared 2-core box where other suites
 * may run: a list stuck behind a blocked QMP call or a serial start would
 * take seconds (9.5 s before the loop was made asynchronous). The goal, p99
 * < 50 ms, is printed here and measured by scripts/bench/batch.sh. Every
 * list must take < 2 s; with one VM stopped and three others starting the
 * test also asserts p99 < 5x the goal (p99 measured 5 ms here). While 30
 * TCG QEMUs initialise on 2 cores the daemon waits for a CPU like everyone
 * else (p99 ~100 ms measured, the daemon itself using ~1% CPU), so there
 * only the bound on every list is asserted. */
#define LIST_P99_MS 250
#define LIST_MAX_MS 2000

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(batch, .init = setup, .fini = teardown, .timeout = 300);

static const char *cli_binary(void)
{
	static char bin[512];
	const char *b = getenv("QV_BUILD_DIR");

	snprintf(bin, sizeof(bin), "%s/qvisor", b && *b ? b : "build");
	return bin;
}

/* --- a second client listing in a loop -------------------------------------- */

#define MAX_SAMPLES 20000

struct lister {
	pthread_t thread;
	volatile bool stop;
	int n, failures;
	double ms[MAX_SAMPLES];
	char why[256];
};

static void *lister_main(void *arg)
{
	struct lister *l = arg;
	qv_rpc_conn *c = qvt_connect(&D);

	if (!c) {
		l->failures++;
		snprintf(l->why, sizeof(l->why), "cannot connect");
		return NULL;
	}
	while (!l->stop && l->n < MAX_SAMPLES) {
		struct qv_error err = {};
		uint64_t t0 = qv_now_ms();
		int r = qv_rpc_invoke(c, "vm.list", NULL, 30000, NULL, &err);
		if (r < 0) {
			l->failures++;
			snprintf(l->why, sizeof(l->why), "vm.list: %s", err.message);
			break;
		}
		l->ms[l->n++] = (double)(qv_now_ms() - t0);
		qvt_sleep_ms(10);
	}
	qv_rpc_conn_free(c);
	return NULL;
}

static void lister_start(struct lister *l)
{
	memset(l, 0, sizeof(*l));
	cr_assert_eq(pthread_create(&l->thread, NULL, lister_main, l), 0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Stop, join, print p50/p99/max; asserts every list was answered, within
 * the margins. */
static void lister_finish(struct lister *l, const char *phase, bool check_p99)
{
	l->stop = true;
	pthread_join(l->thread, NULL);
	cr_assert_eq(l->failures, 0, "%s: %s", phase, l->why);
	cr_assert_gt(l->n, 0, "%s: no vm.list was answered", phase);
	qsort(l->ms, (size_t)l->n, sizeof(double), cmp_double);
	double p50 = l->ms[l->n / 2], p99 = l->ms[(l->n * 99) / 100], max = l->ms[l->n - 1];
	cr_log_info("%s: %d vm.list answered, p50 %.0f ms, p99 %.0f ms, max %.0f ms", phase,
		    l->n, p50, p99, max);
	fprintf(stderr, "batch: %s: %d vm.list answered, p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		phase, l->n, p50, p99, max);
	if (check_p99)
		cr_assert_lt(p99, LIST_P99_MS, "%s: vm.list p99 %.0f ms", phase, p99);
	cr_assert_lt(max, LIST_MAX_MS, "%s: a vm.list took %.0f ms", phase, max);
}

/* --- helpers ------------------------------------------------------------------ */

static int count_state(const char *state)
{
	struct qv_error err = {};
	json_object *r = qvt_call(&D, "vm.list", NULL, &err), *vms, *v;
	int n = 0;

	cr_assert_not_null(r, "vm.list: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "vms", &vms));
	for (size_t i = 0; i < json_object_array_length(vms); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(vms, i), "state", &v) &&
		    streq(json_object_get_string(v), state))
			n++;
	json_object_put(r);
	return n;
}

static void define_small(const char *name)
{
	struct qv_error err = {};

	cr_assert_eq(qvt_define_guest(&D, name, "{\"memory\": 128}", &err), 0, "define %s: %s",
		     name, err.message);
}

static void run_cli(const char *what, char *const argv[])
{
	_cleanup_free_ char *out = NULL;
	int rc = qvt_run(argv, &out);

	cr_assert_eq(rc, 0, "%s failed (%d):\n%s", what, rc, out ? out : "");
}

/* --- tests ----------------------------------------------------------------------- */

Test(batch, start_all_stop_all_thirty_while_listing)
{
	struct lister *l = calloc(1, sizeof(*l));
	char name[16];

	QVT_REQUIRE_DAEMON(&D);
	if (access(cli_binary(), X_OK) < 0)
		cr_skip_test("qvisor CLI not built");
	cr_assert_not_null(l);
	for (int i = 0; i < N_BATCH; i++) {
		snprintf(name, sizeof(name), "b%02d", i);
		define_small(name);
	}

	lister_start(l);
	char *start[] = { (char *)cli_binary(), "--socket", D.socket, "start", "--all", NULL };
	run_cli("start --all", start);
	lister_finish(l, "start --all", false);
	/* The CLI returns once every VM answered QMP: all are running now. */
	cr_assert_eq(count_state("running"), N_BATCH);

	/* The guests are still booting (ACPI is not up yet): power-down gets
	 * one second, then QMP quit. */
	lister_start(l);
	char *stop[] = { (char *)cli_binary(), "--socket", D.socket, "stop", "--all",
			 "--timeout", "1", NULL };
	run_cli("stop --all", stop);
	lister_finish(l, "stop --all", false);
	cr_assert_eq(count_state("stopped"), N_BATCH);
	free(l);
}

struct pending_pause {
	qv_rpc_conn *c;
	uint64_t id;
	uint64_t sent_ms;
};

Test(batch, sigstopped_qemu_fails_pause_at_deadline_others_unaffected)
{
	struct lister *l = calloc(1, sizeof(*l));
	struct pending_pause pp = {};
	struct qv_error err = {};
	json_object *r;
	char st[32];

	QVT_REQUIRE_DAEMON(&D);
	cr_assert_not_null(l);
	for (int i = 0; i < 4; i++) {
		char name[8];
		snprintf(name, sizeof(name), "s%d", i);
		define_small(name);
	}
	r = qvt_call_name(&D, "vm.start", "s0", &err);
	cr_assert_not_null(r, "start s0: %s", err.message);
	json_object_put(r);
	int pid = qvt_vm_pid(&D, "s0");
	cr_assert_gt(pid, 0);
	cr_assert_eq(kill(pid, SIGSTOP), 0);

	/* The pause goes to a QEMU that will never answer. */
	pp.c = qvt_connect(&D);
	cr_assert_not_null(pp.c);
	cr_assert_eq(qv_rpc_send(pp.c, "vm.pause", json_tokener_parse("{\"name\": \"s0\"}"),
				 &pp.id, &err), 0, "%s", err.message);
	pp.sent_ms = qv_now_ms();

	/* Meanwhile: lists, starts and stops of the other VMs, all answered
	 * while the pause is still pending. */
	lister_start(l);
	for (int i = 1; i < 4; i++) {
		char name[8];
		snprintf(name, sizeof(name), "s%d", i);
		r = qvt_call_name(&D, "vm.start", name, &err);
		cr_assert_not_null(r, "start %s: %s", name, err.message);
		json_object_put(r);
		cr_assert_str_eq(qvt_vm_state(&D, name, st, sizeof(st)), "running");
	}
	cr_assert_eq(qvt_callf(&D, "vm.stop", NULL, &err, "{\"name\": \"s1\", \"timeout\": 1}"),
		     0, "stop s1: %s", err.message);
	cr_assert_str_eq(qvt_vm_state(&D, "s1", st, sizeof(st)), "stopped");
	uint64_t others_done = qv_now_ms() - pp.sent_ms;
	cr_assert_lt(others_done, PAUSE_DEADLINE_MS,
		     "the other VMs' operations took %llu ms: they waited for the stuck pause",
		     (unsigned long long)others_done);

	/* The pause fails at its deadline, with a clear error. */
	qv_error_clear(&err);
	int rc = qv_rpc_recv_response(pp.c, 30000, pp.id, NULL, &err);
	uint64_t took = qv_now_ms() - pp.sent_ms;
	lister_finish(l, "while s0's QEMU is stopped", true);
	cr_assert_eq(rc, -EREMOTEIO, "vm.pause on a stopped QEMU did not fail (%d)", rc);
	cr_assert_str_eq(err.reason, "timeout", "%s", err.message);
	cr_assert(strstr(err.message, "s0") && strstr(err.message, "did not reply within"),
		  "unclear error: %s", err.message);
	cr_assert_geq(took, PAUSE_DEADLINE_MS - 100, "failed after %llu ms, before its deadline",
		      (unsigned long long)took);
	fprintf(stderr, "batch: vm.pause on the stopped QEMU failed after %llu ms: %s\n",
		(unsigned long long)took, err.message);

	/* The VM is unharmed: once QEMU runs again, it pauses normally. */
	cr_assert_str_eq(qvt_vm_state(&D, "s0", st, sizeof(st)), "running");
	cr_assert_eq(kill(pid, SIGCONT), 0);
	r = qvt_call_name(&D, "vm.pause", "s0", &err);
	cr_assert_not_null(r, "pause after SIGCONT: %s", err.message);
	json_object_put(r);
	cr_assert_str_eq(qvt_vm_state(&D, "s0", st, sizeof(st)), "paused");
	qv_rpc_conn_free(pp.c);
	free(l);
}

/* --max-starts bounds the QEMUs spawned and not yet answering QMP; the other
 * starts wait in "starting" without a pid, and every one completes, except
 * the one a vm.stop took out of the queue. */
struct watch {
	pthread_t thread;
	volatile bool stop;
	int max_spawned; /* "starting" with a pid */
	int max_queued;  /* "starting" without one */
	int failures;
};

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	qv_rpc_conn *c = qvt_connect(&D);

	if (!c) {
		w->failures++;
		return NULL;
	}
	while (!w->stop) {
		json_object *r = NULL, *vms, *v;
		struct qv_error err = {};
		int spawned = 0, queued = 0;

		if (qv_rpc_invoke(c, "vm.list", NULL, 30000, &r, &err) < 0) {
			w->failures++;
			break;
		}
		json_object_object_get_ex(r, "vms", &vms);
		for (size_t i = 0; i < json_object_array_length(vms); i++) {
			json_object *e = json_object_array_get_idx(vms, i);
			if (!json_object_object_get_ex(e, "state", &v) ||
			    !streq(json_object_get_string(v), "starting"))
				continue;
			json_object_object_get_ex(e, "pid", &v);
			if (json_object_get_int(v) > 0)
				spawned++;
			else
				queued++;
		}
		json_object_put(r);
		w->max_spawned = spawned > w->max_spawned ? spawned : w->max_spawned;
		w->max_queued = queued > w->max_queued ? queued : w->max_queued;
		qvt_sleep_ms(5);
	}
	qv_rpc_conn_free(c);
	return NULL;
}

Test(batch, max_starts_bounds_qemus_waiting_for_qmp)
{
	struct watch w = {};
	struct qv_error err = {};
	uint64_t ids[6];
	qv_rpc_conn *c;

	QVT_REQUIRE_DAEMON(&D);
	cr_assert_eq(qvt_daemon_stop(&D, SIGTERM), 0);
	snprintf(D.max_starts, sizeof(D.max_starts), "2");
	cr_assert_eq(qvt_daemon_start(&D), 0, "restart with --max-starts 2 (log %s)", D.log);
	for (int i = 0; i < 6; i++) {
		char name[8];
		snprintf(name, sizeof(name), "q%d", i);
		define_small(name);
	}
	cr_assert_eq(pthread_create(&w.thread, NULL, watch_main, &w), 0);
	c = qvt_connect(&D);
	cr_assert_not_null(c);
	for (int i = 0; i < 6; i++) {
		char params[32];
		snprintf(params, sizeof(params), "{\"name\": \"q%d\"}", i);
		cr_assert_eq(qv_rpc_send(c, "vm.start", json_tokener_parse(params), &ids[i], &err),
			     0, "%s", err.message);
	}
	/* q5 is queued behind the bound: stopping it cancels its start. */
	uint64_t stop_id;
	json_object *res = NULL, *v;
	cr_assert_eq(qv_rpc_send(c, "vm.stop", json_tokener_parse("{\"name\": \"q5\"}"),
				 &stop_id, &err), 0, "%s", err.message);
	for (int i = 0; i < 5; i++) {
		qv_error_clear(&err);
		cr_assert_eq(qv_rpc_recv_response(c, 60000, ids[i], NULL, &err), 0,
			     "start q%d: %s", i, err.message);
	}
	qv_error_clear(&err);
	cr_assert_eq(qv_rpc_recv_response(c, 60000, ids[5], NULL, &err), -EREMOTEIO);
	cr_assert_str_eq(err.reason, "cancelled", "%s", err.message);
	cr_assert_eq(qv_rpc_recv_response(c, 60000, stop_id, &res, &err), 0, "%s", err.message);
	cr_assert(json_object_object_get_ex(res, "state", &v));
	cr_assert_str_eq(json_object_get_string(v), "stopped");
	json_object_put(res);
	w.stop = true;
	pthread_join(w.thread, NULL);
	qv_rpc_conn_free(c);
	cr_assert_eq(w.failures, 0);
	fprintf(stderr, "batch: --max-starts 2: at most %d spawned and %d queued at once\n",
		w.max_spawned, w.max_queued);
	cr_assert_leq(w.max_spawned, 2, "%d QEMUs were starting at once", w.max_spawned);
	cr_assert_geq(w.max_spawned, 1, "never saw a spawned VM in \"starting\"");
	cr_assert_gt(w.max_queued, 0, "no start ever waited in the queue");
	cr_assert_eq(count_state("running"), 5);
	cr_assert_eq(count_state("stopped"), 1);
}
