/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by migrate/protocol.c (steps) and migrate/protocol-answer.c. */
#include "migrate/protocol.h"

#define CALL_TIMEOUT_MS 60000
#define PLAN_WAIT_TRIES 240 /* a draining mirror: 240 x 250 ms */

enum step { ST_NONE, ST_INFO, ST_PLAN, ST_PREPARE, ST_PERFORM, ST_STATUS, ST_FINISH, ST_CONFIRM,
	    ST_CANCEL_DST, ST_CANCEL_SRC };

struct mig_proto {
	struct mig_proto_opts o;
	char *name, *dest_address, *listen, *source_uri, *dest_tls_host;
	json_object *extra;
	const struct mig_proto_ops *ops;
	void *ud;
	enum mig_phase phase;
	enum step step;       /* the call in flight, or the one to retry at tick */
	uint64_t tag;
	bool unsent;         /* the last call could not be sent: report at tick */
	bool never_sent;     /* the answer being handled is that report */
	int plan_tries;
	uint64_t retry_until; /* monotonic ms; 0 = not retrying */
	bool cancel_requested;
	bool retry_pending;    /* re-send p->step at tick */
	bool completed;        /* the source QEMU completed: it is paused for good */
	bool postcopy;        /* perform switched to postcopy */
	bool resumed;         /* restarted from a record */
	char token[64];
	json_object *spec, *plan, *prep, *stats;
	struct qv_error fail;  /* the error to report once aborted */
	int fail_errno;
};

json_object *mp_name_params(const mig_proto *p);
void mp_send_step(mig_proto *p, enum step st, enum mig_side side, const char *method,
		  json_object *params, unsigned timeout_ms);
void mp_set_phase(mig_proto *p, enum mig_phase ph);
void mp_finish_ok(mig_proto *p);
void mp_finish_fail(mig_proto *p);
void mp_remember_failure(mig_proto *p, int error, const struct qv_error *errp, const char *where);
void mp_start_abort(mig_proto *p);
void mp_send_cancel_dst(mig_proto *p);
void mp_send_cancel_src(mig_proto *p);
void mp_send_plan(mig_proto *p);
void mp_send_prepare(mig_proto *p);
void mp_send_perform(mig_proto *p);
void mp_send_status(mig_proto *p);
void mp_start_finish(mig_proto *p);
void mp_send_finish(mig_proto *p);
void mp_send_confirm(mig_proto *p);
