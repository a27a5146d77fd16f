/* SPDX-License-Identifier: MIT */
/* qvisord end to end: lifecycle, concurrency, restarts, bad input.
 * Real qvisord, real QEMU (TCG), the real test guest. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 120000

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

#define REQUIRE_DAEMON() QVT_REQUIRE_DAEMON(&D)

static json_object *must_call(const char *method, const char *name)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&D, method, name, &err);

	cr_assert_not_null(r, "%s %s failed: %s (%s)", method, name, err.message, err.reason);
	return r;
}

static const char *str_member(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return "";
	return json_object_get_string(v);
}

/* Alive and not a zombie (a re-parented QEMU may linger as one until its new
 * parent reaps it). */
static bool process_alive(int pid)
{
	char path[64], buf[512];
	FILE *f;
	bool alive = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f)) {
		char *p = strrchr(buf, ')');
		alive = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	}
	fclose(f);
	return alive;
}

static void start_and_wait_ready(const char *name)
{
	json_object_put(must_call("vm.start", name));
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, name), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS),
		     0, "guest %s never printed the ready marker", name);
}

/* Define and start three test guests (booting side by side), wait until
 * each is ready; their QEMU pids in pids. */
static void define_start_three(const char *const names[3], int pids[3])
{
	struct qv_error err = {};

	for (int i = 0; i < 3; i++) {
		cr_assert_eq(qvt_define_guest(&D, names[i], NULL, &err), 0, "%s", err.message);
		json_object_put(must_call("vm.start", names[i]));
	}
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, names[i]),
						       QVT_GUEST_READY, BOOT_TIMEOUT_MS), 0);
		pids[i] = qvt_vm_pid(&D, names[i]);
		cr_assert_gt(pids[i], 0);
	}
}

TestSuite(daemon, .init = setup, .fini = teardown);

Test(daemon, lifecycle_define_start_pause_resume_stop)
{
	REQUIRE_DAEMON();
	struct qv_error err = {};
	char st[32];

	cr_assert_eq(qvt_define_guest(&D, "life", NULL, &err), 0, "%s", err.message);
	cr_assert_str_eq(qvt_vm_state(&D, "life", st, sizeof(st)), "stopped");
	start_and_wait_ready("life");
	cr_assert_str_eq(qvt_vm_state(&D, "life", st, sizeof(st)), "running");
	int pid = qvt_vm_pid(&D, "life");
	cr_assert_gt(pid, 0);

	json_object *r = must_call("vm.pause", "life");
	cr_assert_str_eq(str_member(r, "state"), "paused");
	json_object_put(r);
	cr_assert_str_eq(qvt_vm_state(&D, "life", st, sizeof(st)), "paused");
	r = must_call("vm.resume", "life");
	cr_assert_str_eq(str_member(r, "state"), "running");
	json_object_put(r);

	r = must_call("vm.stop", "life");
	cr_assert_str_eq(str_member(r, "state"), "stopped");
	cr_assert_str_eq(str_member(r, "how"), "powerdown", "guest did not power off via ACPI");
	json_object_put(r);
	cr_assert(!process_alive(pid), "QEMU pid %d still alive after stop", pid);
	/* A stopped VM keeps its logs; an undefined one (also how a migrated-away
	 * VM leaves its source host) leaves no run dir behind. */
	char vm_dir[160];
	snprintf(vm_dir, sizeof(vm_dir), "%s/vms/life", D.run_dir);
	cr_assert_eq(access(qvt_serial_log(&D, "life"), F_OK), 0, "serial.log gone after stop");
	json_object_put(must_call("vm.undefine", "life"));
	cr_assert_null(qvt_call_name(&D, "vm.info", "life", &err));
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert_neq(access(vm_dir, F_OK), 0, "%s left behind after undefine", vm_dir);
}

/* --- concurrency ---------------------------------------------------------- */

#define N_CLIENTS 20
#define N_VMS 4
static const char *const conc_vms[N_VMS] = { "c0", "c1", "c2", "c3" };
static volatile bool conc_stop;

struct client_result {
	int calls;
	int bad;
	char why[256];
};

static void *client_thread(void *arg)
{
	struct client_result *res = arg;
	qv_rpc_conn *c = qvt_connect(&D);
	unsigned n = 0;

	if (!c) {
		res->bad++;
		snprintf(res->why, sizeof(res->why), "cannot connect");
		return NULL;
	}
	while (!conc_stop) {
		struct qv_error err = {};
		json_object *r = NULL;
		const char *name = conc_vms[n % N_VMS];
		/* Pipeline a list and an info; each answer must match its request. */
		uint64_t id_list, id_info;
		json_object *p = json_object_new_object();
		json_object_object_add(p, "name", json_object_new_string(name));
		if (qv_rpc_send(c, "vm.list", NULL, &id_list, &err) < 0 ||
		    qv_rpc_send(c, "vm.info", p, &id_info, &err) < 0) {
			res->bad++;
			snprintf(res->why, sizeof(res->why), "send: %s", err.message);
			break;
		}
		if (qv_rpc_recv_response(c, 60000, id_info, &r, &err) < 0 ||
		    !streq(str_member(r, "name"), name)) {
			res->bad++;
			snprintf(res->why, sizeof(res->why), "info %s answered %s (%s)", name,
				 str_member(r, "name"), err.message);
		}
		json_object_put(r);
		r = NULL;
		json_object *vms = NULL;
		if (qv_rpc_recv_response(c, 60000, id_list, &r, &err) < 0 ||
		    !json_object_object_get_ex(r, "vms", &vms) ||
		    json_object_array_length(vms) != N_VMS) {
			res->bad++;
			snprintf(res->why, sizeof(res->why), "list answered wrongly (%s)",
				 err.message);
		}
		json_object_put(r);
		res->calls += 2;
		n++;
	}
	qv_rpc_conn_free(c);
	return NULL;
}

Test(daemon, twenty_clients_while_vms_start_and_stop, .timeout = 600)
{
	REQUIRE_DAEMON();
	struct qv_error err = {};
	pthread_t th[N_CLIENTS];
	struct client_result res[N_CLIENTS] = {};

	for (int i = 0; i < N_VMS; i++)
		cr_assert_eq(qvt_define_guest(&D, conc_vms[i], NULL, &err), 0, "%s", err.message);
	for (int i = 0; i < N_CLIENTS; i++)
		pthread_create(&th[i], NULL, client_thread, &res[i]);

	/* Start all four (pipelined, like `qvisor start c0 c1 c2 c3`). */
	qv_rpc_conn *c = qvt_connect(&D);
	cr_assert_not_null(c);
	uint64_t ids[N_VMS];
	for (int i = 0; i < N_VMS; i++) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "name", json_object_new_string(conc_vms[i]));
		cr_assert_eq(qv_rpc_send(c, "vm.start", p, &ids[i], &err), 0);
	}
	for (int i = 0; i < N_VMS; i++) {
		json_object *r = NULL;
		cr_assert_eq(qv_rpc_recv_response(c, 120000, ids[i], &r, &err), 0, "start %s: %s",
			     conc_vms[i], err.message);
		cr_assert_str_eq(str_member(r, "name"), conc_vms[i]);
		json_object_put(r);
	}
	for (int i = 0; i < N_VMS; i++)
		cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, conc_vms[i]),
						       QVT_GUEST_READY, BOOT_TIMEOUT_MS),
			     0, "%s did not boot", conc_vms[i]);
	for (int i = 0; i < N_VMS; i++) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "name", json_object_new_string(conc_vms[i]));
		cr_assert_eq(qv_rpc_send(c, "vm.stop", p, &ids[i], &err), 0);
	}
	for (int i = 0; i < N_VMS; i++) {
		json_object *r = NULL;
		cr_assert_eq(qv_rpc_recv_response(c, 180000, ids[i], &r, &err), 0, "stop %s: %s",
			     conc_vms[i], err.message);
		cr_assert_str_eq(str_member(r, "state"), "stopped");
		json_object_put(r);
	}
	qv_rpc_conn_free(c);

	conc_stop = true;
	int total = 0;
	for (int i = 0; i < N_CLIENTS; i++) {
		pthread_join(th[i], NULL);
		cr_expect_eq(res[i].bad, 0, "client %d: %s", i, res[i].why);
		total += res[i].calls;
	}
	cr_assert_gt(total, N_CLIENTS * 2, "clients made only %d calls", total);
}

/* --- daemon SIGKILL and re-attach ----------------------------------------- */

Test(daemon, sigkill_daemon_reattaches_running_vms, .timeout = 600)
{
	REQUIRE_DAEMON();
	static const char *const names[] = { "k0", "k1", "k2" };
	int pids[3];
	char st[32];

	define_start_three(names, pids);
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);
	for (int i = 0; i < 3; i++)
		cr_assert(process_alive(pids[i]), "QEMU %d died with the daemon", pids[i]);
	cr_assert_eq(qvt_daemon_start(&D), 0, "restart failed (log %s)", D.log);

	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(qvt_vm_state(&D, names[i], st, sizeof(st)), "running");
		cr_assert_eq(qvt_vm_pid(&D, names[i]), pids[i], "%s has a new pid", names[i]);
	}
	/* QMP works through the re-attached client. */
	json_object *r = must_call("vm.pause", "k1");
	cr_assert_str_eq(str_member(r, "state"), "paused");
	json_object_put(r);
	json_object_put(must_call("vm.resume", "k1"));
	for (int i = 0; i < 3; i++) {
		r = must_call("vm.stop", names[i]);
		cr_assert_str_eq(str_member(r, "state"), "stopped");
		json_object_put(r);
		cr_assert(!process_alive(pids[i]), "QEMU %d survived vm.stop", pids[i]);
	}
}


/* vm.list's entry for name (borrowed from list), NULL if absent. */
static json_object *list_entry(json_object *list, const char *name)
{
	json_object *vms;

	if (!json_object_object_get_ex(list, "vms", &vms))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *e = json_object_array_get_idx(vms, i);
		if (streq(str_member(e, "name"), name))
			return e;
	}
	return NULL;
}

static bool is_attaching(json_object *e)
{
	json_object *v;
	return e && json_object_object_get_ex(e, "attaching", &v) && json_object_get_boolean(v);
}

/* Waits up to timeout_ms until name is no longer re-attaching. */
static void wait_not_attaching(const char *name, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 50) {
		json_object *r = qvt_call(&D, "vm.list", NULL, NULL);
		bool done = r && list_entry(r, name) && !is_attaching(list_entry(r, name));
		json_object_put(r);
		if (done)
			return;
		qvt_sleep_ms(50);
	}
	cr_assert_fail("%s still re-attaching after %d ms", name, timeout_ms);
}

/* Re-attach runs on the loop: one QEMU is SIGSTOPped when qvisord is
 * SIGKILLed and restarted (its re-attach deadline raised to 120 s so the
 * window is certain on any host). While that QEMU stays stopped the new
 * daemon answers vm.list (several times; the VM shows its recorded state
 * and "attaching": true, and calls naming it answer "unavailable"), and the
 * other VMs are re-attached and operable (pause/resume). After SIGCONT the
 * re-attach completes: the same QEMU, running, and it pauses too. A
 * synchronous re-attach answered nothing until the stopped QEMU's deadline
 * had passed. Then the deadline path: stopped again across a restart with
 * a 2 s deadline, the VM ends "crashed" with the reason while its QEMU is
 * left running (never a second copy). */
Test(daemon, reattach_does_not_wait_for_a_stopped_qemu, .timeout = 600)
{
	REQUIRE_DAEMON();
	static const char *const names[] = { "s0", "s1", "s2" };
	struct qv_error err = {};
	int pids[3];
	char st[32];

	define_start_three(names, pids);
	cr_assert_eq(kill(pids[2], SIGSTOP), 0);
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);
	setenv("QVISORD_TEST_ATTACH_TIMEOUT_MS", "120000", 1);
	D.no_attach_wait = true;
	cr_assert_eq(qvt_daemon_start(&D), 0, "restart failed (log %s)", D.log);

	/* The two others re-attach while s2 stays stopped. */
	wait_not_attaching("s0", 120000);
	wait_not_attaching("s1", 120000);
	for (int i = 0; i < 5; i++) {
		json_object *r = qvt_call(&D, "vm.list", NULL, &err);
		cr_assert_not_null(r, "vm.list: %s", err.message);
		json_object *e = list_entry(r, "s2");
		cr_assert(is_attaching(e), "s2 is not shown re-attaching");
		cr_assert_str_eq(str_member(e, "state"), "running", "s2: its recorded state");
		cr_assert_eq(qvt_json_int(e, "pid"), pids[2]);
		cr_assert(!is_attaching(list_entry(r, "s0")) && !is_attaching(list_entry(r, "s1")));
		json_object_put(r);
		qvt_sleep_ms(100);
	}
	json_object *r = qvt_call_name(&D, "vm.pause", "s2", &err);
	cr_assert_null(r, "vm.pause on a re-attaching VM was accepted");
	cr_assert_str_eq(err.reason, "unavailable", "%s", err.message);
	r = must_call("vm.pause", "s1");
	cr_assert_str_eq(str_member(r, "state"), "paused");
	json_object_put(r);
	json_object_put(must_call("vm.resume", "s1"));
	cr_assert_str_eq(qvt_vm_state(&D, "s0", st, sizeof(st)), "running");
	cr_assert_eq(qvt_proc_state(pids[2]), 'T', "all of this was answered only after SIGCONT");

	cr_assert_eq(kill(pids[2], SIGCONT), 0);
	wait_not_attaching("s2", 120000);
	cr_assert_str_eq(qvt_vm_state(&D, "s2", st, sizeof(st)), "running");
	cr_assert_eq(qvt_vm_pid(&D, "s2"), pids[2], "s2 has a new pid");
	r = must_call("vm.pause", "s2");
	cr_assert_str_eq(str_member(r, "state"), "paused");
	json_object_put(r);
	json_object_put(must_call("vm.resume", "s2"));

	/* The deadline path: QMP deaf past the deadline -> crashed, left running. */
	for (int i = 0; i < 2; i++)
		json_object_put(must_call("vm.stop", names[i]));
	cr_assert_eq(kill(pids[2], SIGSTOP), 0);
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);
	setenv("QVISORD_TEST_ATTACH_TIMEOUT_MS", "2000", 1);
	cr_assert_eq(qvt_daemon_start(&D), 0, "restart failed (log %s)", D.log);
	wait_not_attaching("s2", 120000);
	cr_assert_eq(qvt_proc_state(pids[2]), 'T');
	r = must_call("vm.info", "s2");
	cr_assert_str_eq(str_member(r, "state"), "crashed");
	json_object *rt = NULL;
	cr_assert(json_object_object_get_ex(r, "runtime", &rt));
	cr_assert(strstr(str_member(rt, "last_exit"), "did not answer"), "last_exit: %s",
		  str_member(rt, "last_exit"));
	json_object_put(r);
	cr_assert(process_alive(pids[2]), "the deaf QEMU was killed");
	kill(pids[2], SIGKILL);
	kill(pids[2], SIGCONT);
}

/* --- QEMU crash and restart policy ---------------------------------------- */

Test(daemon, sigkill_qemu_reports_crash_and_restarts, .timeout = 600)
{
	REQUIRE_DAEMON();
	struct qv_error err = {};

	cr_assert_eq(qvt_define_guest(&D, "crashy",
				      "{\"restart\":{\"policy\":\"on-failure\",\"max_restarts\":2,"
				      "\"window_s\":600,\"backoff_ms\":500}}",
				      &err),
		     0, "%s", err.message);
	start_and_wait_ready("crashy");
	int pid = qvt_vm_pid(&D, "crashy");

	qv_rpc_conn *ev = qvt_connect(&D);
	cr_assert_not_null(ev);
	cr_assert_eq(qv_rpc_invoke(ev, "events.subscribe", NULL, 5000, NULL, &err), 0);
	cr_assert_eq(kill(pid, SIGKILL), 0);

	bool crashed = false, restarted = false;
	while (!restarted) {
		char *method = NULL;
		json_object *params = NULL;
		int r = qv_rpc_wait_notification(ev, 60000, &method, &params, &err);
		cr_assert_eq(r, 0, "no event (crashed=%d): %s", crashed, err.message);
		const char *type = str_member(params, "type");
		if (streq(type, "crashed")) {
			json_object *data = NULL;
			json_object_object_get_ex(params, "data", &data);
			cr_assert(strstr(str_member(data, "exit"), "signal 9"), "exit: %s",
				  str_member(data, "exit"));
			crashed = true;
		}
		if (streq(type, "restarted")) {
			cr_assert(crashed, "restart before crash event");
			restarted = true;
		}
		free(method);
		json_object_put(params);
	}
	qv_rpc_conn_free(ev);
	int pid2 = qvt_vm_pid(&D, "crashy");
	cr_assert_gt(pid2, 0);
	cr_assert_neq(pid2, pid);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "crashy"), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS), 0);
	json_object *info = must_call("vm.info", "crashy"), *rt, *n;
	cr_assert(json_object_object_get_ex(info, "runtime", &rt));
	cr_assert(json_object_object_get_ex(rt, "restarts", &n));
	cr_assert_eq(json_object_get_int(n), 1);
	json_object_put(info);
}

/* --- bad input -------------------------------------------------------------- */

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", D.socket);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Send raw bytes, return the first response line parsed. */
static json_object *raw_exchange(int fd, const char *data, size_t len)
{
	static char buf[65536];
	size_t got = 0;

	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
		cr_assert_gt(n, 0, "send: %m");
		off += (size_t)n;
	}
	while (got < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		cr_assert_gt(n, 0, "daemon closed the connection");
		got += (size_t)n;
		buf[got] = '\0';
		char *nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			return json_tokener_parse(buf);
		}
	}
	return NULL;
}

static void assert_error(json_object *resp, int code, const char *reason)
{
	json_object *e, *c, *data;

	cr_assert_not_null(resp);
	cr_assert(json_object_object_get_ex(resp, "error", &e), "no error in %s",
		  json_object_to_json_string(resp));
	cr_assert(json_object_object_get_ex(e, "code", &c));
	if (code)
		cr_assert_eq(json_object_get_int(c), code, "%s", json_object_to_json_string(e));
	cr_assert(json_object_object_get_ex(e, "data", &data));
	cr_assert_str_eq(str_member(data, "reason"), reason, "%s", json_object_to_json_string(e));
	cr_assert_gt(strlen(str_member(e, "message")), 5);
	json_object_put(resp);
}

static void expect_call_error(const char *method, const char *params_json, const char *reason,
			      const char *needle)
{
	struct qv_error err = {};
	json_object *r = qvt_call(&D, method, params_json ? json_tokener_parse(params_json) : NULL,
				  &err);
	cr_assert_null(r, "%s %s unexpectedly succeeded", method, params_json);
	cr_assert_str_eq(err.reason, reason, "%s: %s", method, err.message);
	if (needle)
		cr_assert(strstr(err.message, needle), "message \"%s\" lacks \"%s\"", err.message,
			  needle);
}

Test(daemon, bad_input_is_refused_and_daemon_keeps_serving, .timeout = 600)
{
	REQUIRE_DAEMON();
	struct qv_error err = {};
	int fd = raw_connect();

	/* malformed JSON, then the same connection still works */
	assert_error(raw_exchange(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\n", 34), -32700,
		     "invalid-argument");
	/* a 2 MiB line */
	size_t big = 2 * 1024 * 1024;
	char *line = malloc(big + 1);
	memset(line, 'x', big);
	line[0] = '"';
	line[big] = '\n';
	assert_error(raw_exchange(fd, line, big + 1), -32600, "invalid-argument");
	free(line);
	/* unknown method */
	const char *unk = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"vm.explode\"}\n";
	assert_error(raw_exchange(fd, unk, strlen(unk)), -32601, "not-found");
	/* still serving on the same connection */
	const char *ok = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"vm.list\"}\n";
	json_object *resp = raw_exchange(fd, ok, strlen(ok)), *res;
	cr_assert(json_object_object_get_ex(resp, "result", &res));
	json_object_put(resp);
	close(fd);

	/* names: '/' and 200 characters, via info and via define */
	expect_call_error("vm.info", "{\"name\":\"a/b\"}", "invalid-argument", "a/b");
	char name200[201], params[512];
	memset(name200, 'n', 200);
	name200[200] = '\0';
	snprintf(params, sizeof(params), "{\"name\":\"%s\"}", name200);
	expect_call_error("vm.start", params, "invalid-argument", NULL);
	snprintf(params, sizeof(params),
		 "{\"spec\":{\"name\":\"%s\",\"kernel\":\"/boot/vmlinuz\"}}", name200);
	expect_call_error("vm.define", params, "invalid-argument", "name");
	expect_call_error("vm.define", "{\"spec\":{\"name\":\"x/y\",\"kernel\":\"/vmlinuz\"}}",
			  "invalid-argument", "name");
	/* unknown spec field, named in the message */
	expect_call_error("vm.define",
			  "{\"spec\":{\"name\":\"u1\",\"kernel\":\"/vmlinuz\",\"colour\":\"red\"}}",
			  "invalid-argument", "colour");
	expect_call_error("vm.define", "{\"spec\":{\"name\":\"u2\",\"kernel\":\"/vmlinuz\","
				       "\"disks\":[{\"path\":\"/x.img\",\"formt\":\"raw\"}]}}",
			  "invalid-argument", "formt");
	/* none of the refused defines left anything behind */
	json_object *list = qvt_call(&D, "vm.list", NULL, &err), *vms;
	cr_assert(json_object_object_get_ex(list, "vms", &vms));
	cr_assert_eq(json_object_array_length(vms), 0);
	json_object_put(list);

	/* starting a running VM; undefining a running VM */
	cr_assert_eq(qvt_define_guest(&D, "busy", NULL, &err), 0, "%s", err.message);
	json_object_put(must_call("vm.start", "busy"));
	expect_call_error("vm.start", "{\"name\":\"busy\"}", "conflict", "busy");
	expect_call_error("vm.undefine", "{\"name\":\"busy\"}", "conflict", "stop it");
	char st[32];
	cr_assert_str_eq(qvt_vm_state(&D, "busy", st, sizeof(st)), "running");
	json_object *r = qvt_call(&D, "vm.stop",
				  json_tokener_parse("{\"name\":\"busy\",\"force\":true}"), &err);
	cr_assert_not_null(r, "%s", err.message);
	json_object_put(r);

	/* the state store is intact */
	json_object *chk = qvt_call(&D, "host.check", NULL, &err), *checks;
	cr_assert(json_object_object_get_ex(chk, "checks", &checks));
	bool state_ok = false;
	for (size_t i = 0; i < json_object_array_length(checks); i++) {
		json_object *c = json_object_array_get_idx(checks, i);
		if (streq(str_member(c, "name"), "state"))
			state_ok = streq(str_member(c, "status"), "ok");
	}
	json_object_put(chk);
	cr_assert(state_ok, "state database integrity check failed");
}
