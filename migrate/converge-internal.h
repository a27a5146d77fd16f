/* SPDX-License-Identifier: MIT */
#pragma once

/* The engine's state, shared by migrate/converge.c (the loop and the
 * policy) and migrate/converge-qmp.c (QMP calls, decisions applied, events,
 * stats). */

#include "migrate/converge.h"
#include "qemu/qmp-seq.h"

#define QMP_TIMEOUT_MS 5000
#define PREMEASURE_S 1
#define NO_CAP_BPS (8ULL << 30) /* "unlimited": lifts QEMU's 32 MiB/s default */
#define ASSUMED_BW_BPS (100.0 * 1024 * 1024)

/* PH_POSTCOPY: migrate-start-postcopy issued; from then on the migration
 * cannot be cancelled without losing the guest. */
/* PH_STARTING: calc-dirty-rate or the start sequence (capabilities,
 * parameters, `migrate`) in flight; a cancel then waits for its end. */
enum engine_phase { PH_STARTING, PH_PREMEASURE, PH_ACTIVE, PH_SWITCHOVER, PH_POSTCOPY, PH_CANCELLING,
		    PH_DONE };

struct mig_engine {
	qv_loop *loop;
	mig_engine_qmp_fn get_qmp;
	char *uri;
	char *multifd_reason;
	struct mig_engine_opts opts;
	struct mig_policy_cfg cfg;
	struct mig_policy_state pst;
	struct mig_model model;
	enum engine_phase phase;
	qv_source *timer;
	uint64_t t_start;      /* `migrate` issued, monotonic ms */
	uint64_t premeasure_deadline;
	bool postcopy_on;      /* postcopy-ram capability set */
	uint64_t postcopy_ms;  /* migrate-start-postcopy issued (elapsed), 0 = never */
	bool postcopy_active;  /* switched: continued at pre-switchover, or postcopy-active */
	int cancel_error;      /* errno to report once QEMU says cancelled */
	char cancel_why[200];
	json_object *decisions;
	json_object *last_query;
	struct eng_call *inflight; /* the asynchronous poll waiting for QEMU */
	qmp_seq *seq;              /* decisions / start / continue in flight */
	bool hook_wait;            /* before_continue under way */
	bool cancel_asked;         /* mig_engine_cancel during PH_STARTING */
	struct mig_decision sw_dc; /* the switchover decision being carried out */
	bool sw_postcopy;
	struct mig_decision steer_dc[4]; /* one round's decisions, applied in order */
	size_t steer_n, steer_i;
	mig_engine_event_fn on_event;
	mig_engine_done_fn on_done;
	void *userdata;
};

void eng_emit(mig_engine *e, const char *type, json_object *data);
/* ms since `migrate` was issued, 0 before. */
uint64_t eng_elapsed(const mig_engine *e);
/* Add a decision to the record and emit it as a "decision" event. */
void eng_record(mig_engine *e, const struct mig_decision *dc, bool applied,
		const struct qv_error *err);
/* A sequence on the source QEMU's QMP client (qemu/qmp-seq.h) whose done
 * gets e as userdata; eng_seq_start sends it and records it in e->seq (the
 * done handler clears e->seq first). Nothing on the engine's path waits for
 * QEMU: each step has QMP_TIMEOUT_MS, and the poll timer is not armed
 * while a sequence (or the before_continue hook) is under way. */
int eng_seq(mig_engine *e, qmp_seq_done_fn done, qmp_seq **ret, struct qv_error *errp);
int eng_seq_start(mig_engine *e, qmp_seq *s, struct qv_error *errp);
/* A sequence of one command (args taken, also on failure). */
int eng_run_one(mig_engine *e, const char *cmd, json_object *args, qmp_seq_done_fn done,
		struct qv_error *errp);
/* The engine's periodic queries (query-migrate, query-dirty-rate) go out
 * asynchronously: the loop serves everything else while QEMU answers (or
 * stalls, up to QMP_TIMEOUT_MS). fn runs once with the reply (ret
 * borrowed), unless the engine was freed meanwhile; it may run before
 * this returns (link failure), so the caller touches e no more after it. */
typedef void (*eng_reply_fn)(mig_engine *e, int r, json_object *ret, const struct qv_error *err);
int eng_qmp_async(mig_engine *e, const char *cmd, eng_reply_fn fn, struct qv_error *errp);
/* The engine is going away: a reply still to come is dropped. */
void eng_forget_inflight(mig_engine *e);
/* migrate-set-capabilities' arguments (new reference). */
json_object *eng_caps_args(mig_engine *e);
/* The command carrying out a decision and its arguments (*ret_args new
 * reference or NULL); NULL for findings that tell QEMU nothing. initial:
 * the first throttle setting also sets cpu-throttle-initial. */
const char *eng_decision_cmd(mig_engine *e, const struct mig_decision *dc, bool initial,
			     json_object **ret_args);
/* Report the end (on_done may free e). */
void eng_finish(mig_engine *e, int error, const struct qv_error *err, const char *status);
void eng_progress(mig_engine *e, const char *status, json_object *q);
/* converge-steer.c: at pre-switchover (decide, hook, migrate-continue),
 * and one active round of the policy. */
void eng_switchover(mig_engine *e);
void eng_steer(mig_engine *e);
/* Arm the next poll unless a sequence or the hook is under way (their end
 * calls this again). */
void eng_resume_polling(mig_engine *e);
/* migrate_cancel with the errno and text to report; never during postcopy. */
void eng_cancel_now(mig_engine *e, int error, const char *why);
