/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/rpc-client.h"
#include "helpers/guest.h"

/* Launch a real qvisord for a test: its own state/run dirs under a fresh
 * /tmp/qvd-XXXXXX, --no-kvm-probe, in the caller's network namespace.
 * The binary is $QV_BUILD_DIR/qvisord (default ./build/qvisord). */
struct qvt_daemon {
	pid_t pid;
	char dir[64];
	char state_dir[96];
	char run_dir[96];
	char socket[128];
	char log[128];
	const char *extra_args[24]; /* more qvisord options (NULL-terminated), e.g.
				    * "--metrics-listen", "127.0.0.1:PORT" */
	/* Set before (re)starting: --pki-dir pki_dir (else a missing
	 * DIR/nopki and --insecure: plain migrations, like before TLS) and
	 * --listen listen (e.g. "tls://10.231.0.2:16515"). */
	char pki_dir[128];
	char listen[64];
	/* Set before (re)starting: --max-starts max_starts (e.g. "2"). */
	char max_starts[8];
	/* Set before (re)starting: return once host.info answers, without
	 * waiting for "ready" (re-attaches, migration recoveries). */
	bool no_attach_wait;
};

/* Start (or restart, reusing dirs when d->dir is already set) and wait until
 * the socket answers host.info and (unless d->no_attach_wait) says "ready":
 * the re-attaches and migration recoveries after a restart ended (up to
 * 120 s). 0 or -errno (-ENOENT:
 * binary not built). */
int qvt_daemon_start(struct qvt_daemon *d);
/* The same, but the daemon runs in the network namespace of netns_pid and a
 * fresh d->dir is made from tmpl (mkdtemp template, e.g. "/tmp/qvm-XXXXXX",
 * mode left at 0700). 0 or -errno (-ECHILD: it exited, e.g. setns failed). */
int qvt_daemon_start_netns(struct qvt_daemon *d, pid_t netns_pid, const char *tmpl);
/* $QV_BUILD_DIR/qvisord (default build/qvisord), static storage. */
const char *qvt_daemon_binary(void);
/* Criterion .init body: start d when the test guest and the qvisord binary
 * exist (else d->pid stays 0 and QVT_REQUIRE_DAEMON skips); asserts on any
 * other failure. */
void qvt_daemon_fixture_start(struct qvt_daemon *d);
#define QVT_REQUIRE_DAEMON(d)                                                   \
	do {                                                                    \
		QVT_REQUIRE_GUEST();                                            \
		if ((d)->pid <= 0)                                              \
			cr_skip_test("qvisord binary not built (QV_BUILD_DIR)"); \
	} while (0)

/* SIGTERM (graceful; VMs keep running) or SIGKILL (a crash), then reap.
 * 0, or -ETIMEDOUT when it had to be SIGKILLed after 30 s. */
int qvt_daemon_stop(struct qvt_daemon *d, int sig);
/* Stop every VM (force), stop the daemon, kill the dnsmasq processes its
 * networks left (run/net/NAME/dnsmasq.pid; they outlive the daemon by
 * design), remove the dirs (kept if $QVT_KEEP is set), reset *d. */
void qvt_daemon_cleanup(struct qvt_daemon *d);

/* A fresh connection; NULL on failure. */
qv_rpc_conn *qvt_connect(const struct qvt_daemon *d);
/* Call and return the result (new ref) or NULL with *errp filled.
 * params is stolen. */
json_object *qvt_call(const struct qvt_daemon *d, const char *method, json_object *params,
		      struct qv_error *errp);
/* The same call returning 0 and *ret_result (new ref; ret_result may be NULL
 * to discard), or -errno with *errp filled (errp->reason is the daemon's
 * data.reason). params is stolen. */
int qvt_invoke(const struct qvt_daemon *d, const char *method, json_object *params,
	       json_object **ret_result, struct qv_error *errp);
/* qvt_invoke with params given as JSON text (printf format). */
int qvt_callf(const struct qvt_daemon *d, const char *method, json_object **ret_result,
	      struct qv_error *errp, const char *fmt, ...) _printf_(5, 6);
/* Run `qvisor --socket SOCKET ARGS 2>&1` (ARGS go through the shell) with
 * its output in out (NUL-terminated, truncated to size - 1); returns its exit
 * status, -1 if it did not exit normally. */
int qvt_cli(const struct qvt_daemon *d, const char *args, char *out, size_t size);
/* qvt_call with {"name": name}. */
json_object *qvt_call_name(const struct qvt_daemon *d, const char *method, const char *name,
			   struct qv_error *errp);
/* Define a guest VM from the default test spec (qvt_guest_spec) with extra
 * JSON members merged in (may be NULL, e.g. "{\"restart\":{...}}"). */
int qvt_define_guest(const struct qvt_daemon *d, const char *name, const char *extra_json,
		     struct qv_error *errp);
/* Entries in the daemon's image pool directory (<state_dir>/images), hidden
 * ones (temporary files) included. Criterion-asserts that it can be read. */
int qvt_pool_entries(const struct qvt_daemon *d);
/* "<run_dir>/vms/<name>/serial.log" in a static buffer. */
const char *qvt_serial_log(const struct qvt_daemon *d, const char *name);
/* vm.info's "state" / "pid" ("" / -1 on error). */
const char *qvt_vm_state(const struct qvt_daemon *d, const char *name, char *buf, size_t size);
int qvt_vm_pid(const struct qvt_daemon *d, const char *name);
/* The state letter of process pid in /proc ('T': stopped), 0 if gone. */
char qvt_proc_state(int pid);
/* Poll vm.info every 200 ms until it answers not-found: true, or false
 * after timeout_ms. */
bool qvt_wait_vm_undefined(const struct qvt_daemon *d, const char *name, int timeout_ms);
/* Define name from the test spec with 256 MiB and the guest dirtier
 * (qv.dirty=dirty, "rate:wss"), start it and wait for QVISOR-DIRTIER-START
 * on its serial log. Criterion-asserts each step. */
void qvt_start_dirtier_guest(const struct qvt_daemon *d, const char *name, const char *dirty,
			     int boot_timeout_ms);
/* The same with memory_mib of guest memory. */
void qvt_start_dirtier_guest_mem(const struct qvt_daemon *d, const char *name, const char *dirty,
				 int memory_mib, int boot_timeout_ms);

/* o[key] as a string, "" when absent or null (o may be NULL). */
const char *qvt_json_str(json_object *o, const char *key);
/* o[key] as an integer, -1 when absent (o may be NULL). */
int64_t qvt_json_int(json_object *o, const char *key);
/* md5 (hex) of a shell pipeline's output, e.g. "blkpat S 4 | md5sum".
 * Criterion-asserts that the pipeline printed one. */
void qvt_md5_of_cmd(const char *cmd, char out[33]);
