/* SPDX-License-Identifier: MIT */
/* The engine's decisions carried out on the source QEMU without blocking
 * the loop: one pre-copy round's decisions in order, and the switchover
 * (before_continue hook, then migrate-continue), each as a QMP sequence
 * whose end resumes the poll. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "migrate/converge-internal.h"

static void on_continued(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	mig_engine *e = ud;

	e->seq = NULL;
	eng_record(e, &e->sw_dc, error >= 0, errp);
	if (error < 0) {
		eng_cancel_now(e, -error, errp ? errp->message : "migrate-continue failed");
	} else if (e->sw_postcopy && e->phase == PH_SWITCHOVER) {
		e->phase = PH_POSTCOPY;
		e->postcopy_active = true;
	}
	eng_resume_polling(e);
}

/* migrate-continue (the decision in e->sw_dc), asynchronously. */
static void continue_now(mig_engine *e)
{
	struct qv_error err = {};
	json_object *args;
	const char *cmd = eng_decision_cmd(e, &e->sw_dc, false, &args);

	if (eng_run_one(e, cmd, args, on_continued, &err) < 0) {
		eng_record(e, &e->sw_dc, false, &err);
		eng_cancel_now(e, err.error, err.message);
	}
}

void mig_engine_before_continue_done(mig_engine *e, int error, const struct qv_error *errp)
{
	if (!e || !e->hook_wait || e->phase != PH_SWITCHOVER)
		return;
	e->hook_wait = false;
	if (error < 0) {
		eng_cancel_now(e, -error, errp && errp->set ? errp->message : "before switchover");
		eng_resume_polling(e);
		return;
	}
	continue_now(e);
	eng_resume_polling(e);
}

/* QEMU waits at pre-switchover (pause-before-switchover): decide whether to
 * let it go, then the before_continue hook (storage mirror in sync), then
 * migrate-continue. Any refusal cancels; the source keeps running. The
 * hook and migrate-continue run on the loop: the poll resumes after. */
void eng_switchover(mig_engine *e)
{
	struct qv_error err = {};
	struct mig_decision dc;
	bool to_postcopy = e->phase == PH_POSTCOPY;
	int r;

	if (to_postcopy) {
		/* pause-before-switchover also stops at the postcopy switch: the
		 * decision was taken, go (no downtime check: only the device
		 * state moves while paused, RAM follows on demand). */
		dc = (struct mig_decision){ .action = MIG_ACT_CONTINUE };
		snprintf(dc.reason, sizeof(dc.reason),
			 "pre-switchover before postcopy: R %.1f MB follows on demand",
			 (double)e->model.remaining / 1e6);
	} else if (e->opts.plain) {
		dc = (struct mig_decision){ .action = MIG_ACT_CONTINUE };
		snprintf(dc.reason, sizeof(dc.reason), "plain mode");
	} else {
		mig_policy_switchover(&e->cfg, &e->model, &dc);
	}
	e->phase = PH_SWITCHOVER;
	if (dc.action == MIG_ACT_CANCEL) {
		eng_record(e, &dc, true, NULL);
		eng_cancel_now(e, ERANGE, dc.reason);
		return;
	}
	e->sw_dc = dc;
	e->sw_postcopy = to_postcopy;
	/* Nothing ran on the destination yet: cancelling is safe. */
	if (e->opts.before_continue) {
		e->hook_wait = true;
		r = e->opts.before_continue(e, e->userdata, &err);
		if (r < 0 && e->hook_wait) {
			e->hook_wait = false;
			eng_cancel_now(e, -r, err.message);
		}
		return; /* mig_engine_before_continue_done() goes on */
	}
	continue_now(e);
}

static void steer_next(mig_engine *e);

static void on_steered(qmp_seq *s, int error, const struct qv_error *errp, void *ud)
{
	mig_engine *e = ud;
	const struct mig_decision *dc = &e->steer_dc[e->steer_i++];

	e->seq = NULL;
	eng_record(e, dc, error >= 0, errp);
	if (dc->action == MIG_ACT_POSTCOPY && error >= 0) {
		e->postcopy_ms = eng_elapsed(e) ? eng_elapsed(e) : 1;
		e->steer_i = e->steer_n;
	} else if (dc->action == MIG_ACT_POSTCOPY) {
		e->phase = PH_ACTIVE; /* the switch was refused: pre-copy goes on */
	}
	/* A failed postcopy switch leaves pre-copy going (the deadline
	 * cancels); other failures are recorded and skipped. */
	steer_next(e);
	eng_resume_polling(e);
}

/* Apply the round's decisions in order, one command at a time. */
static void steer_next(mig_engine *e)
{
	struct qv_error err = {};

	while (e->steer_i < e->steer_n && e->phase != PH_CANCELLING && e->phase != PH_DONE) {
		const struct mig_decision *dc = &e->steer_dc[e->steer_i];
		json_object *args;
		const char *cmd;

		if (dc->action == MIG_ACT_CANCEL) {
			eng_record(e, dc, true, NULL);
			e->steer_i = e->steer_n;
			eng_cancel_now(e, ETIMEDOUT, dc->reason);
			return;
		}
		cmd = eng_decision_cmd(e, dc, false, &args);
		if (!cmd) {
			eng_record(e, dc, true, NULL);
			e->steer_i++;
			continue;
		}
		/* From the moment migrate-start-postcopy may reach QEMU the
		 * migration is no longer cancelled (mig_engine_cancel: -EBUSY). */
		if (dc->action == MIG_ACT_POSTCOPY)
			e->phase = PH_POSTCOPY;
		if (eng_run_one(e, cmd, args, on_steered, &err) < 0) {
			if (dc->action == MIG_ACT_POSTCOPY)
				e->phase = PH_ACTIVE;
			eng_record(e, dc, false, &err);
			qv_error_clear(&err);
			e->steer_i++;
			continue;
		}
		return; /* on_steered goes on */
	}
}

/* One pre-copy round of the policy. */
void eng_steer(mig_engine *e)
{
	if (e->opts.plain) {
		if (eng_elapsed(e) >= e->cfg.deadline_ms)
			eng_cancel_now(e, ETIMEDOUT, "deadline reached (plain mode)");
		return;
	}
	e->steer_n = mig_policy_step(&e->cfg, &e->model, eng_elapsed(e), &e->pst, e->steer_dc, 4);
	e->steer_i = 0;
	steer_next(e);
}

