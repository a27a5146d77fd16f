/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/loop.h"

/* Blocking work off the event loop: a small pool of threads runs jobs in
 * the order they were pushed, and each job's completion runs back on the
 * loop (an eventfd source). The daemon runs every etcd request (one
 * thread: requests keep their order) and every call to a peer daemon (a
 * few threads: a forwarded vm.start may wait for a slow boot) this way;
 * see docs/design.md "The cluster store".
 *
 * work() runs on a worker thread and must touch only what its userdata
 * owns; done() runs on the loop thread, once per job, with cancelled set
 * when the queue was freed before the job ran (work() then never ran). */

typedef struct qv_workq qv_workq;
typedef void (*qv_work_fn)(void *userdata);
typedef void (*qv_done_fn)(void *userdata, bool cancelled);

int qv_workq_new(qv_loop *loop, unsigned threads, qv_workq **ret_q);
/* Queue a job; never blocks. 0 or -ENOMEM / -ESHUTDOWN. */
int qv_workq_push(qv_workq *q, qv_work_fn work, qv_done_fn done, void *userdata);
/* Jobs queued or running (not yet completed on the loop). */
size_t qv_workq_pending(const qv_workq *q);
/* Waits for running jobs (bounded by their own timeouts), then calls done
 * for everything left: completed ones normally, unrun ones cancelled. */
qv_workq *qv_workq_free(qv_workq *q);
