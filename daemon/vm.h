/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/daemon.h"
#include "daemon/event-limit-state.h"
#include "qemu/instance.h"
#include "qemu/spec.h"

/* The VM registry: every defined VM, its runtime state and its QEMU instance.
 * State changes are persisted (one statement or transaction each) and
 * emitted as events. */

enum qv_vm_state {
	QV_VM_STOPPED,
	QV_VM_STARTING,
	QV_VM_RUNNING,
	QV_VM_PAUSED,
	QV_VM_STOPPING,
	QV_VM_CRASHED,
	QV_VM_MIGRATING,
};

struct qv_vm {
	struct qv_daemon *d;
	struct qv_vm *next;
	char *name;
	struct vm_spec *spec;
	enum qv_vm_state state;
	qemu_instance *inst;
	char *run_dir;
	enum vm_accel accel;       /* resolved accel of the running instance */
	int64_t started_at;        /* unix ms */
	int64_t restarts;          /* automatic restarts since define */
	int64_t restart_times[32]; /* unix ms of recent automatic restarts */
	qv_source *restart_timer;
	bool saw_shutdown;
	bool lost_at_load;         /* QEMU vanished while the daemon was down */         /* QMP SHUTDOWN seen: exit is intentional */
	char last_exit[160];
	/* QEMU's last STOP/RESUME event times (unix µs, from the events'
	 * timestamps): a migration's real blackout is STOP here to RESUME there. */
	int64_t last_stop_us, last_resume_us;
	void *nic_state;           /* daemon/vm-nics.c */
	void *cgroup_state;        /* daemon/vm-cgroup.c */
	struct qv_vm_files *files; /* daemon/vm-files.c: fds handed to QEMU */
	struct qv_event_limit event_limit; /* daemon/event-limit.c */
	struct qv_vm_starting *starting; /* asynchronous start in progress */
	uint64_t balloon_target;   /* bytes set through QMP; 0 = unknown */
	uint64_t balloon_actual;   /* bytes, last BALLOON_CHANGE; 0 = unknown */
	bool balloon_stats_busy;   /* the resource loop's guest-stats query is out */
	bool blockstats_busy;      /* the collector's query-blockstats is out */
	/* daemon/vm-load.c: re-attaching to its QEMU after a daemon restart
	 * (QMP connect, handshake, query-status on the loop). inst is set (pid
	 * known, QMP not ready), state is the recorded one; vm.list/vm.info say
	 * "attaching": true and other calls naming the VM answer "unavailable". */
	bool attaching;
};

const char *qv_vm_state_to_string(enum qv_vm_state s);
bool qv_vm_is_active(const struct qv_vm *vm); /* has a QEMU process */

struct qv_vm *qv_vm_find(struct qv_daemon *d, const char *name);
/* Load definitions and runtime records; start re-attaching to live QEMUs
 * (asynchronous: d->n_attaching counts those still running). */
int qv_vm_registry_load(struct qv_daemon *d);
/* After qv_vm_registry_load: the migration records are loaded now, or once
 * the last re-attach ended; and the RPC gate (qv_rpc_server_set_gate_fn). */
void qv_vm_load_migrations_when_attached(struct qv_daemon *d);
bool qv_vm_attach_gate(const char *method, json_object *params, struct qv_error *errp,
		       void *userdata);
void qv_vm_registry_free(struct qv_daemon *d);

int qv_vm_define(struct qv_daemon *d, struct vm_spec *spec, struct qv_vm **ret_vm,
		 struct qv_error *errp); /* takes spec */
int qv_vm_undefine(struct qv_vm *vm, struct qv_error *errp);
/* Start options: an incoming QEMU ("-incoming defer") or a paused one (-S)
 * for migration; the VM is then "paused" until resumed/finished. NULL: a
 * plain start. */
struct qv_vm_start_opts {
	const char *incoming;
	bool paused;
};
/* error 0: the VM is running (or paused); else errp says why and the VM is
 * stopped again. */
typedef void (*qv_vm_start_fn)(struct qv_vm *vm, int error, const struct qv_error *errp,
			       void *userdata);
/* Asynchronous start on the daemon's loop: the VM is "starting" when this
 * returns 0, and fn (may be NULL) runs once QEMU's QMP is ready or the start
 * failed, within the connect deadline. < 0: refused, fn is not called. */
int qv_vm_start_async(struct qv_vm *vm, const struct qv_vm_start_opts *opts, qv_vm_start_fn fn,
		      void *userdata, struct qv_error *errp);
/* Write vm's runtime record (state, pid, start time, QMP path) to the store. */
void qv_vm_persist(struct qv_vm *vm);
/* Persist the state, log and emit "state-changed" (extra is stolen, may be
 * NULL). For subsystems that drive state themselves (migration). */
void qv_vm_set_state(struct qv_vm *vm, enum qv_vm_state s, json_object *extra);

typedef void (*qv_vm_stop_fn)(struct qv_vm *vm, int error, enum qemu_stop_step step,
			      const char *exit_text, void *userdata);
int qv_vm_stop(struct qv_vm *vm, bool force, int timeout_ms, qv_vm_stop_fn fn, void *userdata,
	       struct qv_error *errp);
/* A VM found crashed (e.g. at daemon start): restart it if its policy says so. */
void qv_vm_apply_restart_policy(struct qv_vm *vm);
/* The same for the migration engine, which owns a "migrating" VM: confirm
 * (source QEMU is postmigrate) and teardown of a failed incoming QEMU. */
int qv_vm_stop_migrated(struct qv_vm *vm, bool force, int timeout_ms, qv_vm_stop_fn fn,
			void *userdata, struct qv_error *errp);
/* daemon/vm-ops.c: pause (QMP stop), resume (cont), reboot (system_reset),
 * asynchronous, each bounded by QV_VM_QMP_TIMEOUT_MS. 0: fn (may be NULL)
 * runs once with the outcome; a QEMU that does not answer in time fails only
 * this operation, with reason "timeout". < 0: refused (wrong state), fn is
 * not called. */
#define QV_VM_QMP_TIMEOUT_MS 10000
typedef qv_vm_start_fn qv_vm_op_fn;
int qv_vm_pause(struct qv_vm *vm, qv_vm_op_fn fn, void *userdata, struct qv_error *errp);
int qv_vm_resume(struct qv_vm *vm, qv_vm_op_fn fn, void *userdata, struct qv_error *errp);
int qv_vm_reboot(struct qv_vm *vm, qv_vm_op_fn fn, void *userdata, struct qv_error *errp);

/* daemon/vm-balloon.c: vm.balloon. target 0 queries (actual size and the
 * guest's statistics), else sets the target in bytes; the call is answered
 * on the loop within QV_VM_QMP_TIMEOUT_MS. < 0: refused (no balloon, not
 * running, target out of range), errp says why, the call is not answered. */
int qv_vm_balloon(struct qv_vm *vm, uint64_t target, qv_rpc_call *call, struct qv_error *errp);
/* After a start: stats polling and the spec's target (not for incoming). */
void qv_vm_balloon_started(struct qv_vm *vm, bool incoming);
void qv_vm_balloon_event(struct qv_vm *vm, json_object *event);
/* {target, actual, memory} in bytes (target/actual null when unknown), or
 * NULL (no balloon / not running). */
json_object *qv_vm_balloon_json(const struct qv_vm *vm);

/* Internal: the instance callbacks for vm (daemon/vm.c). */
void qv_vm_bind_instance_config(struct qv_vm *vm, struct qemu_instance_config *cfg);

json_object *qv_vm_summary_json(const struct qv_vm *vm);
json_object *qv_vm_info_json(const struct qv_vm *vm);
