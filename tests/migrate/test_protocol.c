/* SPDX-License-Identifier: MIT */
/* The migration protocol state machine against a scripted fake peer: which
 * step follows which answer, what is retried, when the source may resume. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "common/json.h"
#include "migrate/protocol.h"

struct fake {
	char log[2048];       /* "side:method " for every call */
	uint64_t tag;
	int later_calls;
	bool done;
	int error;
	char message[256];
	json_object *stats;
	enum mig_phase phases[32];
	int n_phases;
};

static int f_call(void *ud, enum mig_side side, const char *method, json_object *params,
		  unsigned timeout_ms, uint64_t tag)
{
	struct fake *f = ud;

	snprintf(f->log + strlen(f->log), sizeof(f->log) - strlen(f->log), "%c:%s ",
		 side == MIG_SIDE_SOURCE ? 'S' : 'D', method);
	f->tag = tag;
	json_object_put(params);
	return 0;
}

static int f_later(void *ud, unsigned ms)
{
	((struct fake *)ud)->later_calls++;
	return 0;
}

static void f_phase(void *ud, enum mig_phase ph)
{
	struct fake *f = ud;
	if (f->n_phases < 32)
		f->phases[f->n_phases++] = ph;
}

static void f_done(void *ud, int error, const struct qv_error *errp, json_object *stats)
{
	struct fake *f = ud;

	f->done = true;
	f->error = error;
	if (errp)
		snprintf(f->message, sizeof(f->message), "%s", errp->message);
	f->stats = stats ? json_object_get(stats) : NULL;
}

static const struct mig_proto_ops ops = { f_call, f_later, f_phase, NULL, f_done };

static void ok(mig_proto *p, struct fake *f, const char *json)
{
	json_object *r = json_tokener_parse(json);
	mig_proto_answer(p, f->tag, 0, NULL, r);
	json_object_put(r);
}

static void refuse(mig_proto *p, struct fake *f, const char *reason)
{
	struct qv_error e = {};
	qv_error_set(&e, EIO, reason, "refused: %s", reason);
	mig_proto_answer(p, f->tag, -EREMOTEIO, &e, NULL);
}

static void lost(mig_proto *p, struct fake *f)
{
	struct qv_error e = {};
	qv_error_set(&e, ECONNRESET, QV_REASON_UNAVAILABLE, "connection lost");
	mig_proto_answer(p, f->tag, -ECONNRESET, &e, NULL);
}

static mig_proto *start(struct fake *f)
{
	struct mig_proto_opts o = { .name = "vm1", .retry_s = 60 };
	mig_proto *p = NULL;

	cr_assert_eq(mig_proto_new(&o, &ops, f, &p), 0);
	cr_assert_eq(mig_proto_start(p), 0);
	ok(p, f, "{\"spec\": {\"name\": \"vm1\"}}");
	ok(p, f, "{\"multifd_channels\": 0}");
	ok(p, f, "{\"uri\": \"tcp:10.0.0.2:4444\", \"token\": \"t0k\"}");
	cr_assert_str_eq(mig_proto_token(p), "t0k");
	cr_assert_eq(mig_proto_phase(p), MIG_PHASE_PERFORMING);
	return p;
}

Test(protocol, happy_path_reports_the_stop_to_resume_blackout)
{
	struct fake f = {};
	mig_proto *p = start(&f);
	json_object *v;

	ok(p, &f, "{\"status\": \"completed\", \"downtime_ms\": 12, \"stop_unix_us\": 1000000}");
	ok(p, &f, "{\"state\": \"running\", \"resume_unix_us\": 1250400}");
	ok(p, &f, "{\"state\": \"undefined\"}");
	cr_assert(f.done);
	cr_assert_eq(f.error, 0);
	cr_assert_str_eq(f.log, "S:vm.info S:migrate.plan D:migrate.prepare S:migrate.perform "
				"D:migrate.finish S:migrate.confirm ");
	cr_assert(json_object_object_get_ex(f.stats, "downtime_ms", &v));
	cr_assert_eq(json_object_get_int64(v), 250);
	cr_assert(json_object_object_get_ex(f.stats, "qemu_downtime_ms", &v));
	cr_assert_eq(json_object_get_int64(v), 12);
	cr_assert_eq(f.phases[f.n_phases - 1], MIG_PHASE_DONE);
	json_object_put(f.stats);
	mig_proto_free(p);
}

Test(protocol, lost_finish_is_retried_and_cancel_is_refused_meanwhile)
{
	struct fake f = {};
	struct qv_error e = {};
	mig_proto *p = start(&f);

	ok(p, &f, "{\"status\": \"completed\"}");
	cr_assert_eq(mig_proto_phase(p), MIG_PHASE_FINISHING);
	lost(p, &f);                /* the destination daemon died */
	cr_assert_eq(f.later_calls, 1);
	cr_assert_eq(mig_proto_cancel(p, &e), -EBUSY);
	cr_assert_str_eq(e.reason, QV_REASON_CONFLICT);
	mig_proto_tick(p);          /* retry */
	refuse(p, &f, QV_REASON_UNAVAILABLE); /* restarting */
	mig_proto_tick(p);
	ok(p, &f, "{\"state\": \"running\", \"already_finished\": true}");
	ok(p, &f, "{}");
	cr_assert(f.done);
	cr_assert_eq(f.error, 0);
	cr_assert(strstr(f.log, "D:migrate.finish D:migrate.finish D:migrate.finish S:migrate.confirm"),
		  "%s", f.log);
	cr_assert_null(strstr(f.log, "migrate.cancel"), "%s", f.log);
	json_object_put(f.stats);
	mig_proto_free(p);
}

Test(protocol, finish_not_found_cancels_destination_before_resuming_source)
{
	struct fake f = {};
	mig_proto *p = start(&f);

	ok(p, &f, "{\"status\": \"completed\"}");
	refuse(p, &f, QV_REASON_NOT_FOUND);
	cr_assert_eq(mig_proto_phase(p), MIG_PHASE_ABORTING);
	ok(p, &f, "{\"action\": \"torn-down\"}");
	ok(p, &f, "{\"action\": \"resumed\"}");
	cr_assert(f.done);
	cr_assert_lt(f.error, 0);
	cr_assert(strstr(f.log, "D:migrate.finish D:migrate.cancel S:migrate.cancel"), "%s", f.log);
	json_object_put(f.stats);
	mig_proto_free(p);
}

Test(protocol, destination_that_already_runs_the_guest_is_confirmed_not_cancelled)
{
	struct fake f = {};
	mig_proto *p = start(&f);

	ok(p, &f, "{\"status\": \"completed\"}");
	refuse(p, &f, QV_REASON_NOT_FOUND);
	refuse(p, &f, QV_REASON_CONFLICT); /* cancel on the destination: it runs there */
	ok(p, &f, "{}");
	cr_assert(f.done);
	cr_assert_eq(f.error, 0);
	cr_assert(strstr(f.log, "D:migrate.cancel S:migrate.confirm"), "%s", f.log);
	json_object_put(f.stats);
	mig_proto_free(p);
}

Test(protocol, unreachable_destination_after_completion_leaves_the_source_paused)
{
	struct fake f = {};
	struct mig_proto_opts o = { .name = "vm1", .retry_s = 1, .retry_ms = 1 };
	mig_proto *p = NULL;

	cr_assert_eq(mig_proto_new(&o, &ops, &f, &p), 0);
	cr_assert_eq(mig_proto_resume(p, MIG_PHASE_FINISHING, "t0k"), 0);
	for (int i = 0; i < 1000 && !f.done; i++) {
		lost(p, &f);
		usleep(5000);
		mig_proto_tick(p);
	}
	cr_assert(f.done);
	cr_assert_lt(f.error, 0);
	cr_assert(strstr(f.message, "stays paused"), "%s", f.message);
	cr_assert_null(strstr(f.log, "migrate.cancel"), "never resume blindly: %s", f.log);
	mig_proto_free(p);
}

Test(protocol, failed_perform_removes_the_incoming_vm)
{
	struct fake f = {};
	mig_proto *p = start(&f);

	refuse(p, &f, QV_REASON_CANCELLED); /* the operator cancelled: the source resumed itself */
	cr_assert_eq(mig_proto_phase(p), MIG_PHASE_ABORTING);
	ok(p, &f, "{}");
	ok(p, &f, "{}");
	cr_assert(f.done);
	cr_assert_lt(f.error, 0);
	mig_proto_free(p);
}

Test(protocol, blackout_is_stop_to_resume)
{
	cr_assert_eq(mig_blackout_ms(1000000, 1300000), 300);
	cr_assert_eq(mig_blackout_ms(0, 1300000), -1);
	cr_assert_eq(mig_blackout_ms(2000000, 1000000), -1);
}

static int f_call_refused(void *ud, enum mig_side side, const char *method, json_object *params,
			  unsigned timeout_ms, uint64_t tag)
{
	f_call(ud, side, method, NULL, timeout_ms, tag);
	json_object_put(params);
	return side == MIG_SIDE_DEST ? -ECONNREFUSED : 0;
}

Test(protocol, unreachable_destination_fails_at_once_before_prepare_left)
{
	static const struct mig_proto_ops refused = { f_call_refused, f_later, f_phase, NULL,
						      f_done };
	struct mig_proto_opts o = { .name = "vm1" };
	struct fake f = {};
	mig_proto *p = NULL;

	cr_assert_eq(mig_proto_new(&o, &refused, &f, &p), 0);
	cr_assert_eq(mig_proto_start(p), 0);
	ok(p, &f, "{\"spec\": {}}");
	ok(p, &f, "{}");
	cr_assert_eq(f.later_calls, 1);
	mig_proto_tick(p);
	cr_assert(f.done);
	cr_assert_lt(f.error, 0);
	cr_assert(strstr(f.message, "prepare on the destination"), "%s", f.message);
	cr_assert_null(strstr(f.log, "migrate.cancel"), "%s", f.log);
	mig_proto_free(p);
}
