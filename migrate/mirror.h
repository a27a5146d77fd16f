/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "qemu/qmp-seq.h"
#include "qemu/qmp.h"

/* Storage mirror for migrations without shared storage (source side).
 *
 * For every copied disk the source QEMU gets an NBD client node
 * ("qvmig-nbd<i>") connected to the destination's export of the same disk,
 * and a mirror job ("qvmig-mirror<i>", sync full, copy-mode write-blocking,
 * auto-dismiss off so a failed job stays visible) from the disk's root node
 * to that NBD node. Once every job is READY, guest writes reach both sides
 * synchronously, and RAM migration may start.
 *
 * At pre-switchover (guest paused) mig_mirror_complete() soft-cancels each
 * READY job: QEMU then ends it with both sides in sync and without pivoting
 * the source device to the NBD node, so a migration cancelled afterwards
 * still runs on the source's own image. The NBD nodes are deleted before
 * `migrate-continue`.
 *
 * mig_mirror_complete_async() runs on the loop (qemu/qmp-seq.h), so a
 * stalled QEMU at pre-switchover holds only its own migration; the other
 * calls are blocking QMP commands (short) on the start and failure paths. */

typedef struct mig_mirror mig_mirror;

/* The QMP client of the source QEMU, looked up before every command: NULL =
 * gone. */
typedef qmp_client *(*mig_mirror_qmp_fn)(void *userdata);

struct mig_mirror_disk {
	unsigned index;       /* disk index in the spec: names the job and node */
	const char *device;   /* root node of the disk on the source */
	const char *export;   /* export name on the destination NBD server */
};

/* The destination's NBD server. With tls_creds (the id of a client
 * tls-creds-x509 object in the source QEMU) the NBD clients use TLS and
 * check that the server's certificate names tls_hostname. */
struct mig_mirror_target {
	const char *host;
	int port;
	const char *tls_creds;    /* NULL: plain */
	const char *tls_hostname; /* NULL: host */
};

/* blockdev-add + blockdev-mirror for each disk against the target. On
 * failure everything started so far is undone. */
int mig_mirror_start(mig_mirror_qmp_fn get_qmp, void *userdata,
		     const struct mig_mirror_target *target, const struct mig_mirror_disk *disks,
		     size_t n, mig_mirror **ret, struct qv_error *errp);
/* The same without blocking: the blockdev-add/blockdev-mirror steps are
 * appended to s (the caller's sequence, started by the caller); each reply
 * records what QEMU now holds, so after the sequence failed
 * mig_mirror_abort() undoes exactly that. *ret is valid at once. */
int mig_mirror_start_steps(mig_mirror_qmp_fn get_qmp, void *userdata,
			   const struct mig_mirror_target *target,
			   const struct mig_mirror_disk *disks, size_t n, qmp_seq *s,
			   mig_mirror **ret, struct qv_error *errp);
/* query-block-jobs: refresh the offsets. *ret_ready = every job READY.
 * A job that failed, concluded or vanished is an error (-EIO). */
int mig_mirror_poll(mig_mirror *m, bool *ret_ready, struct qv_error *errp);
/* The same from an answer to query-block-jobs the caller sent itself
 * (asynchronously, so nothing waits for QEMU); jobs borrowed. */
int mig_mirror_poll_reply(mig_mirror *m, json_object *jobs, bool *ret_ready,
			  struct qv_error *errp);
/* {ready, offset, len, disks: [{index, job, offset, len, ready, status}]}
 * from the last poll (new reference). */
json_object *mig_mirror_progress_json(const mig_mirror *m);
/* Pre-switchover: soft-cancel (complete without pivot) every job, wait
 * until they concluded (timeout_ms in all), dismiss them, delete the NBD
 * nodes. After success m holds nothing in QEMU. */
int mig_mirror_complete(mig_mirror *m, int timeout_ms, struct qv_error *errp);
/* The same without blocking: a QMP sequence on the source QEMU's client
 * (attached to a loop). done runs exactly once, never before this returns,
 * unless mig_mirror_abort()/mig_mirror_free() comes first (they drop the
 * sequence: its reply is ignored). < 0 (errp set): not started. */
typedef void (*mig_mirror_done_fn)(mig_mirror *m, int error, const struct qv_error *errp,
				   void *userdata);
int mig_mirror_complete_async(mig_mirror *m, int timeout_ms, mig_mirror_done_fn done,
			      void *userdata, struct qv_error *errp);
/* Failure/cancel: force-cancel the jobs, wait up to timeout_ms, dismiss,
 * delete the NBD nodes. true when nothing is left in QEMU; otherwise
 * (in-flight NBD writes still draining over a slow link) keep calling
 * mig_mirror_reap(). Best effort, idempotent. */
bool mig_mirror_abort(mig_mirror *m, int timeout_ms);
/* One non-blocking cleanup step after abort: dismiss concluded jobs, delete
 * freed NBD nodes. true when nothing is left (or QEMU is gone). */
bool mig_mirror_reap(mig_mirror *m);
/* The same without blocking, for a loop: one QMP sequence (per-step
 * deadline timeout_ms, <= 0: 5 s): with abort, force-cancel the started
 * jobs; then query-block-jobs, dismiss the concluded ones and, once none
 * runs, delete the NBD nodes. 0: fn runs once, never before this returns
 * (error < 0: QEMU failed a query; mig_mirror_active() says what is
 * left); call again (from a timer) while mig_mirror_active(). 1: QEMU is
 * gone, nothing is left, fn is not called. < 0 (errp set): not started.
 * mig_mirror_free() drops a step under way without calling fn. */
typedef void (*mig_mirror_reap_fn)(mig_mirror *m, int error, const struct qv_error *errp,
				   void *userdata);
int mig_mirror_reap_async(mig_mirror *m, bool abort, int timeout_ms, mig_mirror_reap_fn fn,
			  void *userdata, struct qv_error *errp);
/* Re-bind the QMP lookup (the mirror outlives its migration). */
void mig_mirror_set_qmp(mig_mirror *m, mig_mirror_qmp_fn get_qmp, void *userdata);
bool mig_mirror_active(const mig_mirror *m); /* jobs or nodes left in QEMU */
bool mig_mirror_completing(const mig_mirror *m); /* complete_async under way */
/* Does not touch QEMU (call abort/complete first). */
mig_mirror *mig_mirror_free(mig_mirror *m);

/* After a daemon restart: a mirror object for the qvmig-mirror<i> jobs and
 * qvmig-nbd<i> nodes a previous daemon left in this QEMU (*ret NULL when
 * there are none), to be passed to mig_mirror_abort(). Returns the count. */
int mig_mirror_adopt_stale(mig_mirror_qmp_fn get_qmp, void *userdata, mig_mirror **ret);
