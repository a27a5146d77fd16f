/* SPDX-License-Identifier: MIT */
#pragma once

/* The engine's state, shared by migrate/converge.c (the loop and the
 * policy) and migrate/converge-qmp.c (QMP calls, decisions applied, events,
 * stats). */

#include "migrate/converge.h"

#define QMP_TIMEOUT_MS 5000
#define PREMEASURE_S 1
#define NO_CAP_BPS (8ULL << 30) /* "unlimited": lifts QEMU's 32 MiB/s default */
#define ASSUMED_BW_BPS (100.0 * 1024 * 1024)

/* PH_POSTCOPY: migrate-start-postcopy issued; from then on the migration
 * cannot be cancelled without losing the guest. */
enum engine_phase { PH_PREMEASURE, PH_ACTIVE, PH_SWITCHOVER, PH_POSTCOPY, PH_CANCELLING,
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
int eng_qmp(mig_engine *e, const char *cmd, json_object *args, json_object **ret,
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
/* migrate-set-parameters with args (taken). */
int eng_set_params(mig_engine *e, json_object *args, struct qv_error *errp);
int eng_set_caps(mig_engine *e, struct qv_error *errp);
/* Carry out one decision on the source QEMU. */
int eng_apply(mig_engine *e, const struct mig_decision *dc, struct qv_error *errp);
/* Report the end (on_done may free e). */
void eng_finish(mig_engine *e, int error, const struct qv_error *err, const char *status);
void eng_progress(mig_engine *e, const char *status, json_object *q);
/* migrate_cancel with the errno and text to report; never during postcopy. */
void eng_cancel_now(mig_engine *e, int error, const char *why);
