/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>

#include "common/error.h"
#include "common/loop.h"
#include "qemu/argv.h"
#include "qemu/proc.h"
#include "qemu/qmp.h"
#include "qemu/spec.h"

/* A running VM: a supervised QEMU process plus its QMP client, both driven by
 * one qv_loop, so a daemon can own many instances from a single loop.
 * Freeing an instance never stops QEMU (it runs in its own session); a
 * restarted daemon re-attaches with qemu_instance_attach().
 *
 * Callbacks run from the loop. Each callback may free the instance. */

typedef struct qemu_instance qemu_instance;

#define QEMU_CONNECT_TIMEOUT_MS 10000
#define QEMU_POWERDOWN_TIMEOUT_MS 60000
#define QEMU_QUIT_TIMEOUT_MS 3000
#define QEMU_KILL_TIMEOUT_MS 10000

/* Every QMP event, forwarded (event is borrowed). */
typedef void (*qemu_instance_event_fn)(qemu_instance *vm, const char *name, json_object *event,
				       void *userdata);
/* Optional cheap pre-filter (qmp_client_set_event_filter): false drops
 * the event before it is parsed. SHUTDOWN always passes (stop needs it). */
typedef bool (*qemu_instance_event_filter_fn)(qemu_instance *vm, const char *name,
					      void *userdata);
/* QEMU exited while no stop was in progress (crash, guest poweroff, outside
 * kill). Detected through the pidfd. */
typedef void (*qemu_instance_exit_fn)(qemu_instance *vm, const struct qemu_exit_status *st,
				      void *userdata);

struct qemu_instance_config {
	qemu_instance_event_fn on_event;
	qemu_instance_event_filter_fn event_filter;
	qemu_instance_exit_fn on_exit;
	void *userdata;
	int connect_timeout_ms; /* 0 -> QEMU_CONNECT_TIMEOUT_MS */
	/* Spawn extras (cgroup fd, uid/gid, no_new_privs, child_setup). Its
	 * log/keep_fds fields are ignored: start fills them in. May be NULL. */
	const struct qemu_proc_opts *proc;
	/* > 0: the caller prepared run_dir (qemu/runfiles.h): this is QEMU's
	 * stderr, and qmp.sock is already listening (its fd is in the argv);
	 * run_dir is then neither created nor cleaned here. */
	int log_fd;
	/* *qmp_listen_fdp > 0: the QMP listening socket in the argv. Start
	 * closes it (and sets -1) once QEMU holds a copy, so that an early exit
	 * of QEMU resets the pending connection at once. */
	int *qmp_listen_fdp;
};

/* SYNCHRONOUS (tests, tools; a daemon uses qemu_instance_start_async):
 * build argv from spec + argv_opts, create argv_opts->run_dir (0700), spawn
 * QEMU (stdout/stderr appended to run_dir/qemu.log, NIC fds kept), connect
 * QMP within the connect deadline while watching the pidfd (if QEMU dies
 * first, the error carries its exit status and last log line), attach it to
 * the loop. Blocks the caller until QMP is ready. On failure QEMU is killed. */
int qemu_instance_start(qv_loop *loop, const struct vm_spec *spec,
			const struct qemu_argv_opts *argv_opts,
			const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			struct qv_error *errp);
/* Asynchronous start, for a daemon's loop: builds argv, creates run_dir and
 * spawns QEMU before returning (errors there are returned, fn is not
 * called); connecting QMP and the handshake then run on the loop within the
 * connect deadline while the pidfd is watched. fn runs exactly once, never
 * before this returns: error 0 and the instance ready (as after
 * qemu_instance_start), or error < 0 with errp ("QEMU exited with status 1
 * during startup: <last log line>", "QEMU did not open its QMP socket ...
 * within N ms", a QMP handshake error); QEMU is then gone (killed and
 * reaped, or exited) and the caller frees vm. fn may free vm. Freeing vm
 * before fn ran abandons the start without calling fn; like any free it
 * leaves QEMU running. */
typedef void (*qemu_instance_started_fn)(qemu_instance *vm, int error,
					 const struct qv_error *errp, void *userdata);
int qemu_instance_start_async(qv_loop *loop, const struct vm_spec *spec,
			      const struct qemu_argv_opts *argv_opts,
			      const struct qemu_instance_config *cfg, qemu_instance_started_fn fn,
			      void *userdata, qemu_instance **ret_vm, struct qv_error *errp);
/* Same with a prepared argv whose QMP socket is run_dir/qmp.sock. */
int qemu_instance_start_argv(qv_loop *loop, char *const *argv, const char *run_dir,
			     const int *keep_fds, size_t n_keep_fds,
			     const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			     struct qv_error *errp);
/* Re-attach to a running QEMU (pid + recorded start time) and its QMP socket.
 * SYNCHRONOUS (bounded by the connect deadline): qvisord calls it while
 * loading its registry, before it serves clients. */
int qemu_instance_attach(qv_loop *loop, pid_t pid, uint64_t start_time, const char *qmp_path,
			 const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			 struct qv_error *errp);
/* Asynchronous re-attach, for a daemon's loop: the process is checked
 * (pid + start time; -ESRCH when gone) and *ret_vm returned before this
 * returns; connecting to qmp_path and the QMP handshake then run on the
 * loop within the connect deadline while the pidfd is watched. fn runs
 * exactly once, never before this returns: error 0 and the instance ready
 * (as after qemu_instance_attach), or error < 0 with errp (-ESRCH "QEMU N
 * exited while re-attaching", -ETIMEDOUT "QEMU N did not accept a QMP
 * connection on PATH within N ms", a handshake error). Never kills QEMU: on
 * failure it keeps running and the caller frees vm. Until fn ran the
 * instance is "starting" (qemu_instance_starting; QMP commands refused). */
int qemu_instance_attach_async(qv_loop *loop, pid_t pid, uint64_t start_time,
			       const char *qmp_path, const struct qemu_instance_config *cfg,
			       qemu_instance_started_fn fn, void *userdata, qemu_instance **ret_vm,
			       struct qv_error *errp);

/* Detaches from QEMU without stopping it. A pending stop is abandoned. */
qemu_instance *qemu_instance_free(qemu_instance *vm);
void qemu_instance_freep(qemu_instance **vm);

enum qemu_stop_mode {
	QEMU_STOP_GRACEFUL, /* system_powerdown, then quit, then SIGKILL */
	QEMU_STOP_FORCE,    /* SIGKILL */
};
enum qemu_stop_step {
	QEMU_STOP_STEP_POWERDOWN, /* the guest powered off (ACPI) */
	QEMU_STOP_STEP_QUIT,      /* QMP quit */
	QEMU_STOP_STEP_KILL,      /* SIGKILL */
};
const char *qemu_stop_step_to_string(enum qemu_stop_step step);

/* error == 0: QEMU is gone, `step` ended it, st is its exit status.
 * error == -ETIMEDOUT: even SIGKILL did not end it within
 * QEMU_KILL_TIMEOUT_MS (st is NULL). */
typedef void (*qemu_instance_stop_fn)(qemu_instance *vm, int error, enum qemu_stop_step step,
				      const struct qemu_exit_status *st, void *userdata);

/* Asynchronous stop on the loop. powerdown_timeout_ms: how long the guest
 * gets to power off (0 -> QEMU_POWERDOWN_TIMEOUT_MS); then `quit` gets
 * QEMU_QUIT_TIMEOUT_MS, then SIGKILL. -EBUSY if a stop is in progress,
 * -ESRCH if QEMU already exited. on_exit is not called for this exit. */
int qemu_instance_stop(qemu_instance *vm, enum qemu_stop_mode mode, int powerdown_timeout_ms,
		       qemu_instance_stop_fn fn, void *userdata);

/* Asynchronous QMP command with a deadline (timeout_ms <= 0:
 * QMP_DEFAULT_TIMEOUT_MS); args borrowed. 0 and fn runs exactly once (see
 * qmp_reply_fn), or < 0 with errp set ("QMP connection of QEMU N is closed",
 * or the start is not finished) and fn is never called. */
int qemu_instance_execute_async(qemu_instance *vm, const char *command, json_object *args,
				int timeout_ms, qmp_reply_fn fn, void *userdata,
				struct qv_error *errp);

/* SYNCHRONOUS QMP helpers (QMP_DEFAULT_TIMEOUT_MS): stop / cont / system_reset.
 * They block the caller up to the deadline: not for a daemon's loop. */
int qemu_instance_pause(qemu_instance *vm, struct qv_error *errp);
int qemu_instance_resume(qemu_instance *vm, struct qv_error *errp);
int qemu_instance_reset(qemu_instance *vm, struct qv_error *errp);
/* query-status: *ret_status = "running", "paused", ... (malloc'ed). */
int qemu_instance_query_status(qemu_instance *vm, char **ret_status, struct qv_error *errp);

qemu_proc *qemu_instance_proc(qemu_instance *vm);
qmp_client *qemu_instance_qmp(qemu_instance *vm);
pid_t qemu_instance_pid(qemu_instance *vm);
uint64_t qemu_instance_start_time(qemu_instance *vm);
/* NULL for an attached instance. */
const char *qemu_instance_run_dir(qemu_instance *vm);
/* The QEMU process has exited (its exit was seen). */
bool qemu_instance_exited(qemu_instance *vm);
bool qemu_instance_stopping(qemu_instance *vm);
/* An asynchronous start has not completed yet. */
bool qemu_instance_starting(qemu_instance *vm);
