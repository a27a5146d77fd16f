/* SPDX-License-Identifier: MIT */
#pragma once

/* The start queue: vm.start requests wait here in "starting" and are spawned
 * one per loop iteration (RPC requests that arrived meanwhile are answered
 * between two spawns), with at most cfg.max_starts QEMUs spawned and not yet
 * answering QMP at once (0: no bound). */

#include "daemon/vm.h"

/* Default bound per online CPU: measured with scripts/bench/batch.sh (30
 * and 60 VMs on 2 CPUs, docs/benchmarks.md), a QEMU takes ~0.5 s to answer
 * QMP whatever the load, so a small bound serializes starts into waves
 * (16 on 2 CPUs: 1.26x bare; >= 30: 0.77x) while 32 for 60 VMs matched no
 * bound (0.89x). */
#define QV_MAX_STARTS_PER_CPU 16

/* Queue vm (its start context is set). 0 or -ENOMEM. */
int qv_start_queue_push(struct qv_daemon *d, struct qv_vm *vm);
/* Drop vm if it is still waiting (it is being freed). */
void qv_start_queue_remove(struct qv_daemon *d, struct qv_vm *vm);
/* A spawned start completed (either way): room for the next one. */
void qv_start_queue_done(struct qv_daemon *d);
void qv_start_queue_free(struct qv_daemon *d);

/* daemon/vm.c: spawn a queued VM; always ends with qv_start_queue_done(),
 * now or when its QMP is ready or its start failed. */
void qv_vm_start_queued(struct qv_vm *vm);
/* daemon/vm-start.c: drop vm's start context (it is being freed). */
void qv_vm_starting_free(struct qv_vm *vm);
/* daemon/vm-start.c: vm.stop of a starting VM. A queued VM is taken out
 * of the queue (its start fails "cancelled") and fn reports it stopped; a
 * spawned one is stopped as asked once its start completes (fn at once if
 * the start fails). */
int qv_vm_stop_starting(struct qv_vm *vm, bool force, int timeout_ms, qv_vm_stop_fn fn,
			void *userdata, struct qv_error *errp);
/* daemon/vm-start.c: is vm's start still waiting in the queue? */
bool qv_vm_start_is_queued(const struct qv_vm *vm);
/* daemon/vm-start.c: drop a start at once, without stopping anything
 * afterwards: a queued one leaves the queue and its start callback runs
 * now with -ECANCELED (reason "cancelled"; vm may be gone on return); a
 * spawned one has its QEMU SIGKILLed, so its start fails as soon as the
 * pidfd reports the exit. -ENOENT when vm is not starting. */
int qv_vm_start_drop(struct qv_vm *vm, const char *why);
