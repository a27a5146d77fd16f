/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* The live-migration protocol (docs/migration.md), as a state machine with
 * no I/O of its own: plan and perform on the source, prepare and finish on
 * the destination, confirm on the source, and what to cancel or retry on
 * which failure. The driver (qvisord's vm.migrate) carries each step over
 * whatever transport it has and feeds the answer back with
 * mig_proto_answer(); nothing here blocks.
 *
 * Safety rules the machine keeps:
 *  - the source is resumed only while the destination cannot have run the
 *    guest: before finish is sent, or after the destination said it tore
 *    the incoming VM down (migrate.cancel answered "torn-down"/not-found);
 *  - once finish was sent, finish (idempotent by token) is retried across
 *    lost connections and a restarting peer for opts.retry_s, and the source
 *    stays paused if the outcome stays unknown (the record keeps the phase
 *    "finishing" for a later resume);
 *  - after the postcopy switch nothing is cancelled.
 *
 * A restarted driver re-creates the machine from the persisted record with
 * mig_proto_resume(). */

typedef struct mig_proto mig_proto;

enum mig_side { MIG_SIDE_SOURCE, MIG_SIDE_DEST };

/* Persisted phases, in order. */
enum mig_phase {
	MIG_PHASE_PLANNING,   /* vm.info + migrate.plan on the source */
	MIG_PHASE_PREPARING,  /* migrate.prepare sent: the destination may hold an incoming VM */
	MIG_PHASE_PERFORMING, /* migrate.perform sent (mirror + RAM copy) */
	MIG_PHASE_FINISHING,  /* migrate.finish sent: the destination may run the guest */
	MIG_PHASE_CONFIRMING, /* the destination runs the guest; retire the source */
	MIG_PHASE_ABORTING,   /* undo: cancel the destination, then resume the source */
	MIG_PHASE_DONE,
	MIG_PHASE_FAILED,
};
const char *mig_phase_to_string(enum mig_phase p);
/* -1 when unknown. */
int mig_phase_from_string(const char *s);

struct mig_proto_opts {
	const char *name;
	int max_downtime_ms;     /* 0 -> 300 */
	int bandwidth_mibps;     /* 0 = no cap */
	int deadline_s;          /* 0 -> 300 */
	bool allow_postcopy;
	bool plain;
	bool keep_definition;
	bool copy_storage;
	const char *dest_address; /* migrate.prepare address */
	const char *listen;       /* migrate.prepare listen */
	const char *source_uri;   /* how the destination reaches the source daemon (recorded there) */
	bool insecure;            /* plain-TCP migration stream (prepare tls: false) */
	const char *dest_tls_host; /* the name the destination's certificate must carry (tls://HOST) */
	json_object *extra_perform; /* borrowed: extra members for migrate.perform */
	unsigned retry_s;         /* finish/cancel retry window, 0 -> 120 */
	unsigned retry_ms;        /* pause between retries, 0 -> 500 */
};

/* What the driver provides. All callbacks may be called from inside
 * mig_proto_answer()/mig_proto_tick(), never from mig_proto_new(). */
struct mig_proto_ops {
	/* Send `method` with params (taken) to `side`; the answer must come
	 * back later through mig_proto_answer(tag). timeout_ms bounds the
	 * wait. < 0 when it could not even be sent: the machine treats that
	 * like a lost connection (retry or fail, per phase). */
	int (*call)(void *ud, enum mig_side side, const char *method, json_object *params,
		    unsigned timeout_ms, uint64_t tag);
	/* Call mig_proto_tick() after ms. */
	int (*later)(void *ud, unsigned ms);
	/* The phase changed (persist it with mig_proto_token()/_peer_token()). */
	void (*phase)(void *ud, enum mig_phase phase);
	/* Human-readable step notes ("retrying finish: ..."), for progress. */
	void (*note)(void *ud, const char *what, const char *detail);
	/* Exactly once: 0 with stats (borrowed), or < 0 with errp. *phase in
	 * errp's message names the step that failed. */
	void (*done)(void *ud, int error, const struct qv_error *errp, json_object *stats);
};

int mig_proto_new(const struct mig_proto_opts *opts, const struct mig_proto_ops *ops, void *ud,
		  mig_proto **ret);
mig_proto *mig_proto_free(mig_proto *p);

/* Begin at planning. */
int mig_proto_start(mig_proto *p);
/* Continue a persisted migration at `phase` (PREPARING: abort;
 * PERFORMING: ask the source's record through migrate.status, then finish
 * or abort; FINISHING: retry finish; CONFIRMING: confirm; ABORTING: abort).
 * token is the destination's (may be NULL before prepare answered). */
int mig_proto_resume(mig_proto *p, enum mig_phase phase, const char *token);

/* The answer to call `tag`: error 0 with result (borrowed), -EREMOTEIO with
 * errp (the peer refused), other < 0 = transport failure (errp may be set). */
void mig_proto_answer(mig_proto *p, uint64_t tag, int error, const struct qv_error *errp,
		      json_object *result);
void mig_proto_tick(mig_proto *p);

/* Operator cancel. 0: cancelling (done() follows); -EBUSY: too late (the
 * destination may already run the guest), errp says why. */
int mig_proto_cancel(mig_proto *p, struct qv_error *errp);

/* The driver saw the start-postcopy decision applied: from now on nothing
 * is cancelled (the destination runs the guest). */
void mig_proto_postcopy_switched(mig_proto *p);

enum mig_phase mig_proto_phase(const mig_proto *p);
/* The destination's token, "" before prepare answered. */
const char *mig_proto_token(const mig_proto *p);

/* Honest downtime: the source's STOP event to the destination's RESUME
 * event (unix µs from QEMU's event timestamps), in ms; -1 when either is
 * missing or they are out of order. Pure. */
int64_t mig_blackout_ms(int64_t stop_unix_us, int64_t resume_unix_us);
