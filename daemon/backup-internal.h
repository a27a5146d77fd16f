/* SPDX-License-Identifier: MIT */
#pragma once

/* Backups of running VMs (docs/backup.md). Shared between
 * daemon/backup-run.c (the QMP state machine of one backup),
 * daemon/backup-seq.c (sequential QMP commands), daemon/backup-work.c
 * (file work on worker threads), daemon/backup-chain.c (chain state) and
 * daemon/methods-backup.c (the backup.* handlers). */

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/vm.h"
#include "storage/backup-store.h"

/* --- a sequence of QMP commands run one after the other ------------------ */

struct bk_cmd {
	char *command;
	json_object *args; /* owned */
	int fd;            /* sent with the command (add-fd), -1 none; owned */
	bool ignore_error; /* cleanup: go on whatever QEMU says */
	void (*on_ret)(json_object *ret, void *ud);
	void *ud;
	struct bk_seq *seq; /* pipelined: the sequence it belongs to */
};

struct bk_seq;
/* error 0: every command succeeded (or was allowed to fail). */
typedef void (*bk_seq_done_fn)(int error, const struct qv_error *err, void *ud);
struct bk_seq *bk_seq_new(struct qv_daemon *d, const char *vm, qemu_instance *inst);
struct bk_seq *bk_seq_free(struct bk_seq *s);
/* args and fd are stolen. */
void bk_seq_add(struct bk_seq *s, const char *command, json_object *args, int fd,
		bool ignore_error, void (*on_ret)(json_object *ret, void *ud), void *ud);
/* Run the queued commands, then fn; the sequence frees itself after fn.
 * A command that fails (and may not) ends the sequence: the remaining
 * commands are skipped. QEMU gone (the VM's instance changed) fails it. */
void bk_seq_run(struct bk_seq *s, bk_seq_done_fn fn, void *ud);
/* The same with every command sent at once (QEMU still runs them in
 * order): for commands that do not depend on an earlier one's success.
 * fn gets the first error of a command that may not fail, after every
 * reply came. */
void bk_seq_run_pipelined(struct bk_seq *s, bk_seq_done_fn fn, void *ud);
/* The VM's instance if it is still the same QEMU, else NULL. */
qemu_instance *bk_vm_inst(struct qv_daemon *d, const char *vm, qemu_instance *inst);

/* --- work on a worker thread --------------------------------------------- */

/* fn runs on a new thread (no json-c shared with the loop, no daemon
 * state); done runs on the loop thread afterwards with fn's result. */
typedef int (*bk_work_fn)(void *ud, struct qv_error *err);
typedef void (*bk_work_done_fn)(int r, const struct qv_error *err, void *ud);
int bk_work_start(struct qv_daemon *d, bk_work_fn fn, bk_work_done_fn done, void *ud);

/* --- chain state (<state-dir>/backup-chains/<vm>.json) ------------------- */

struct bk_chain_state {
	char store[PATH_MAX];
	char chain[QV_BACKUP_ID_MAX + 1]; /* the chain's full backup */
	char last[QV_BACKUP_ID_MAX + 1];  /* the newest backup of the chain */
	char bitmap[QV_BACKUP_ID_MAX + 32]; /* dirty bitmap since `last` ("" for raw) */
	unsigned n_disks;
};
/* -ENOENT when the VM has no chain. */
int bk_chain_load(struct qv_daemon *d, const char *vm, struct bk_chain_state *ret);
int bk_chain_save(struct qv_daemon *d, const char *vm, const struct bk_chain_state *st);
void bk_chain_forget(struct qv_daemon *d, const char *vm);

/* --- one backup in flight (daemon/backup-run.c) -------------------------- */

typedef void (*bk_done_fn)(struct qv_daemon *d, const char *vm, int error, void *ud);
struct bk_params {
	bk_done_fn done;    /* may be NULL; runs once the backup ended */
	void *done_ud;
	const char *vm;
	const char *store;  /* absolute, existing directory */
	bool full;          /* asked for a full backup */
	uint64_t bandwidth; /* bytes/s for QEMU's copy (blockdev-backup speed), 0 = unlimited */
};
/* Start a backup; the call is answered when it completes (the backup's
 * metadata) or fails. Answers the call itself on refusal. call NULL (the
 * scheduler): a refusal returns -errno, p->done reports the end. */
int bk_run_start(struct qv_daemon *d, qv_rpc_call *call, const struct bk_params *p);
/* {vm, id, kind, phase, done, total} of the backup of vm in flight, NULL. */
json_object *bk_run_status(struct qv_daemon *d, const char *vm);
/* Cancel the backup of vm in flight: -ENOENT when there is none. */
int bk_run_cancel(struct qv_daemon *d, const char *vm);
bool bk_run_busy(struct qv_daemon *d, const char *vm);
/* The id of a backup of the stopped VM vm in flight (its disks are being
 * read: the VM must not start), NULL. */
const char *bk_run_offline(struct qv_daemon *d, const char *vm);
/* A JOB_STATUS_CHANGE event of vm's QEMU (daemon/vm.c): a backup job that
 * concluded is seen at once instead of at the next poll. */
void bk_job_event(struct qv_daemon *d, const char *vm, json_object *event);
/* daemon/backup-schedule.c: spec.backup schedules, checked every minute. */
void bk_schedule_start(struct qv_daemon *d);

/* The daemon's default store: <state-dir>/backups (created 0700). */
int bk_default_store(struct qv_daemon *d, char *buf, size_t size);

/* daemon/methods-backup.c */
extern const struct qv_rpc_method qv_backup_methods[];
extern const size_t qv_backup_methods_count;
