/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/loop.h"
#include "migrate/model.h"
#include "qemu/qmp.h"

/* The pre-copy convergence engine: drives one outgoing migration of one
 * QEMU (its QMP client) from the daemon loop.
 *
 *   1. pre-measure D with calc-dirty-rate (1 s) unless plain mode;
 *   2. capabilities (events, pause-before-switchover, auto-converge) and
 *      parameters (max-bandwidth, downtime-limit, throttle) from the policy;
 *   3. `migrate`, then poll query-migrate every QV_MIG_POLL_MS: update the
 *      model, report progress, apply policy decisions;
 *   4. at pre-switchover: migrate-continue when the predicted downtime fits
 *      the bound, else cancel;
 *   4b. with allow_postcopy, a MIG_ACT_POSTCOPY decision issues
 *      migrate-start-postcopy (pre-switchover then continues without a
 *      downtime check) and the engine waits for postcopy-active -> completed;
 *   5. completed -> done(0, stats); failed/cancelled/deadline/QMP loss ->
 *      done(-errno, errp). The engine never resumes the guest: QEMU itself
 *      restarts the source vCPUs when a migration fails or is cancelled, and
 *      the caller verifies it.
 *
 * Plain mode (bench peer): no pre-measurement, no capabilities beyond
 * events, QEMU's default parameters except max-bandwidth, no decisions. */

typedef struct mig_engine mig_engine;

#define QV_MIG_POLL_MS 200
#define QV_MIG_FAST_POLL_MS 5 /* near the switchover */
#define QV_MIG_DEFAULT_DOWNTIME_MS 300
#define QV_MIG_DEFAULT_DEADLINE_S 300

struct mig_engine_opts {
	const char *uri;          /* "tcp:IP:PORT" */
	int max_downtime_ms;      /* operator bound, 0 -> default */
	double bandwidth_bps;     /* 0 -> no cap (QEMU's default cap is lifted) */
	unsigned deadline_s;      /* 0 -> default */
	/* postcopy-ram on (the destination must have it too: migrate.prepare
	 * allow_postcopy) and the policy may switch to postcopy
	 * (MIG_ACT_POSTCOPY). Ignored in plain mode and with multifd (QEMU 7.2
	 * cannot combine them). Once switched, the engine no longer cancels:
	 * postcopy-active -> completed, or postcopy-paused/failed -> done(-EIO)
	 * with stats.postcopy true: the guest cannot be resumed on the source. */
	bool allow_postcopy;
	bool postcopy_after_precopy; /* with allow_postcopy: switch after the first pass */
	bool plain;               /* QEMU defaults, no controller */
	bool premeasure;          /* calc-dirty-rate before start (default on) */
	uint64_t ram_bytes;       /* guest RAM, sizes the XBZRLE cache */
	bool no_xbzrle;
	/* multifd channels (0 = off). Must match the destination's setting
	 * (migrate.prepare): decide it once with mig_multifd_plan(). XBZRLE is
	 * off with multifd (QEMU 7.2 sends multifd pages without it). */
	unsigned multifd_channels;
	const char *multifd_reason; /* recorded as the "multifd" decision */
	/* Called at pre-switchover (guest paused) right before
	 * migrate-continue, e.g. to complete the storage mirror. It starts
	 * the work and returns 0; the caller then reports its end with
	 * mig_engine_before_continue_done() (also allowed before returning).
	 * < 0 (errp set) cancels the migration at once. The engine waits
	 * without polling and without blocking the loop. Forces
	 * pause-before-switchover on, also in plain mode. NULL = none. */
	int (*before_continue)(struct mig_engine *e, void *userdata, struct qv_error *errp);
};

/* The multifd decision, made by the coordinator before prepare/perform
 * (both QEMUs need the same setting before migrate/migrate-incoming).
 * Enabled with 2..4 channels when the bandwidth-bound time RAM / B (B = the
 * cap, or the 100 MiB/s assumed for an uncapped link) exceeds
 * QV_MIG_MULTIFD_MIN_S and the host has at least 2 idle CPUs (online CPUs
 * minus the 1-min load average); channels = min(4, idle CPUs). Returns the
 * channel count (0 = off) and the reason in reason. Pure given idle_cpus. */
#define QV_MIG_MULTIFD_MIN_S 10.0
unsigned mig_multifd_plan(uint64_t ram_bytes, double bandwidth_bps, double idle_cpus,
			  char *reason, size_t reason_size);
/* Online CPUs minus the 1-min load average (never below 0). */
double mig_host_idle_cpus(void);

/* Every decision ("decision", data {action, value, reason, t_ms}) and every
 * poll ("progress", data {...}); data is borrowed. */
typedef void (*mig_engine_event_fn)(mig_engine *e, const char *type, json_object *data,
				    void *userdata);
/* Exactly once. stats (borrowed) is set on success and on failure alike:
 * {status, total_time_ms, downtime_ms, ram_transferred, rounds, decisions[]}. */
typedef void (*mig_engine_done_fn)(mig_engine *e, int error, const struct qv_error *errp,
				   json_object *stats, void *userdata);

/* The QMP client of the source QEMU, looked up before every command (the
 * QEMU may exit, and its client be freed, at any time): NULL = gone. */
typedef qmp_client *(*mig_engine_qmp_fn)(void *userdata);

int mig_engine_start(qv_loop *loop, mig_engine_qmp_fn get_qmp, const struct mig_engine_opts *opts,
		     mig_engine_event_fn on_event, mig_engine_done_fn on_done, void *userdata,
		     mig_engine **ret_engine, struct qv_error *errp);
/* Ask QEMU to cancel; done() follows with -ECANCELED. -EBUSY after the
 * postcopy switch (cancelling would lose the guest). */
int mig_engine_cancel(mig_engine *e, const char *why);
/* The before_continue hook's work ended: 0 sends migrate-continue, < 0
 * (errp) cancels. Ignored unless the engine is waiting for it (it may have
 * been cancelled meanwhile). */
void mig_engine_before_continue_done(mig_engine *e, int error, const struct qv_error *errp);
/* Stops polling and any command sequence (its reply is dropped); does not
 * touch QEMU. done() is not called. */
mig_engine *mig_engine_free(mig_engine *e);
bool mig_engine_finished(const mig_engine *e);

/* query-migrate's ram section into a sample (pure; for tests). */
void mig_sample_from_query(json_object *ret, uint64_t t_ms, struct mig_sample *s);
