/* SPDX-License-Identifier: MIT */
#pragma once

/* One backup in flight, shared by daemon/backup-run.c (attach, transaction,
 * jobs, finish) and daemon/backup-start.c (start, decide, targets). */

#include <stdatomic.h>

#include "daemon/backup-internal.h"

#define BK_POLL_MS 250
#define BK_FDSET_BASE 3000
#define BK_FREEZE_TIMEOUT_MS 10000

struct bk_disk {
	unsigned idx;
	char node[16];
	bool found, qcow2;
	uint64_t vsize;
	bool has_old, old_inconsistent;
	char *stale[8]; /* qvisor-* bitmaps that belong to no chain */
	size_t n_stale;
	int fd;         /* target, ours */
	char file[32];
	char *error;    /* the job's error */
	bool concluded;
	uint64_t cur, total;
	char *src;      /* offline: the image read (a copy of the spec's path) */
};

struct bk_run {
	struct bk_run *next;
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	qemu_instance *inst;
	qv_rpc_call *call;
	char store[PATH_MAX];
	char id[QV_BACKUP_ID_MAX + 1];
	char bitmap[QV_BACKUP_ID_MAX + 32];
	bool want_full, incremental, cancelled, txn_done, agent;
	const char *phase;
	struct bk_chain_state chain;
	bool have_chain;
	char forced[512];
	bool quiesced, frozen;
	char quiesce_note[256];
	int partial_fd;
	size_t n;
	struct bk_disk disks[QV_BACKUP_MAX_DISKS];
	json_object *spec;
	int64_t created_ms;
	struct qv_error err;
	qv_source *poll;
	struct qv_backup_meta *meta;
	char run_dir[PATH_MAX];
	uint64_t started_ms;
	unsigned poll_ms;
	/* qv_now_ms() at each step's end, for the completion log line:
	 * nodes queried, targets attached, transaction, jobs concluded,
	 * detached, published */
	uint64_t t_ms[6];
	bool job_event;
	bool offline;           /* the VM is stopped: daemon/backup-offline.c */
	atomic_bool cancel_now; /* offline: stops the copy on its worker thread */ /* a job concluded since the last query-jobs was sent */
	uint64_t bandwidth;
	bk_done_fn done;
	void *done_ud;
};

extern struct bk_run *bk_runs;

struct bk_run *bk_find_run(const char *vm);
void bk_run_free(struct bk_run *r);
json_object *bk_obj2(const char *k1, json_object *v1, const char *k2, json_object *v2);
static inline json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}
/* Fail with error/err (what: the step), undoing what QEMU holds. */
void bk_fail_with(struct bk_run *r, int error, const struct qv_error *err, const char *what);
/* The targets are attached: quiesce, then the transaction. */
void bk_attached(int error, const struct qv_error *err, void *ud);
/* r->meta from the run and the VM's spec (on the loop). */
int bk_build_meta(struct bk_run *r);
/* Published: answer with the metadata, report, free r. */
void bk_run_complete(struct bk_run *r);
/* daemon/backup-offline.c: back up the stopped VM of r (registered, its
 * partial directory made); ends with bk_run_complete or bk_fail_with. */
void bk_offline_run(struct bk_run *r);
enum { BK_T_NODES, BK_T_ATTACHED, BK_T_TXN, BK_T_COPIED, BK_T_DETACHED, BK_T_PUBLISHED };
static inline void bk_mark(struct bk_run *r, int step)
{
	r->t_ms[step] = qv_now_ms();
}
