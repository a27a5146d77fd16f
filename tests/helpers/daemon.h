/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/rpc-client.h"

/* Launch a real qvisord for a test: the build dir's binary ($QV_BUILD_DIR,
 * default ./build; the file <dir>/qvisord) with --state-dir, --run-dir and
 * --socket under a fresh mkdtemp dir /tmp/qvd-<tag>-XXXXXX, --no-kvm-probe.
 * The daemon inherits the caller's network namespace (call
 * qvt_netns_enter() first for a private one) and its stderr goes to
 * <dir>/qvisord.log. */
struct qvtd {
	pid_t pid;            /* 0 once stopped */
	char *dir;            /* the temp dir (state/, run/, qvisord.log) */
	char *state_dir;
	char *run_dir;
	char *socket;
	qv_rpc_conn *conn;    /* connected client, or NULL */
};

/* Absolute path of the qvisord binary, or NULL if missing (static storage). */
const char *qvtd_qvisord_path(void);

#define QVTD_REQUIRE_QVISORD()                                                      \
	do {                                                                       \
		if (!qvtd_qvisord_path())                                           \
			cr_skip_test("qvisord not built (set QV_BUILD_DIR)");      \
	} while (0)

/* Start and wait (up to timeout_ms) until the socket accepts, then connect.
 * extra_args: NULL-terminated extra options (may be NULL). 0 or -errno; on
 * failure the log tail is printed to stderr. */
int qvtd_start(struct qvtd *qd, const char *tag, const char *const *extra_args,
		     int timeout_ms);
/* Start again on the same dirs (after a stop or kill). */
int qvtd_restart(struct qvtd *qd, int timeout_ms);
/* SIGTERM and reap (SIGKILL after timeout_ms). Returns the wait status. */
int qvtd_stop(struct qvtd *qd, int timeout_ms);
/* SIGKILL and reap: a crash. */
int qvtd_kill9(struct qvtd *qd);
/* Stop if running, kill dnsmasq processes it left (run/net/(name)/dnsmasq.pid),
 * remove the temp dir, free the strings. */
void qvtd_cleanup(struct qvtd *qd);

/* One call on qd->conn (timeout_ms <= 0: 60 s). Returns 0 and *ret (new
 * reference, may be NULL to discard), or < 0 with *err filled (err->reason
 * is data.reason for daemon errors). */
int qvtd_call(struct qvtd *qd, const char *method, json_object *params, int timeout_ms,
	     json_object **ret, struct qv_error *err);
/* Same with params given as JSON text (printf format). */
int qvtd_callf(struct qvtd *qd, const char *method, json_object **ret,
	      struct qv_error *err, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* "<run_dir>/vms/<vm>/serial.log" (malloc'd). */
char *qvtd_serial_log(struct qvtd *qd, const char *vm);
