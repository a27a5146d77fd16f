/* SPDX-License-Identifier: MIT */
#include <unistd.h>

#include "common/log.h"
#include "daemon/vm-queue.h"
#include "daemon/vm.h"

struct qnode {
	struct qv_vm *vm;
	struct qnode *next;
};

struct qv_start_queue {
	struct qnode *head, **tail;
	unsigned active; /* spawned, QMP not ready yet */
	qv_source *pump;
};

static struct qv_start_queue *queue_get(struct qv_daemon *d)
{
	struct qv_start_queue *q = d->start_queue;

	if (!q && (q = calloc(1, sizeof(*q)))) {
		q->tail = &q->head;
		d->start_queue = q;
	}
	return q;
}

static void pump(qv_source *s, void *ud);

static void arm(struct qv_daemon *d, struct qv_start_queue *q)
{
	unsigned max = d->cfg.max_starts;

	if (q->pump || !q->head || (max && q->active >= max))
		return;
	/* A timer runs in the next loop iteration at the earliest: requests
	 * that arrived meanwhile are served between two spawns. */
	if (qv_loop_add_timer(d->loop, 0, pump, d, &q->pump) < 0)
		log_error("Cannot arm the start queue timer; %s waits for the next start",
			  q->head->vm->name);
}

/* Test hook: QVISORD_TEST_STALL_AT=start-queue holds every queued start
 * while $QVISORD_TEST_STALL_FILE exists (a start that must be seen queued,
 * whatever the host's speed); off for good once the file is gone. */
static bool test_hold(void)
{
	static int state; /* 0 unknown, 1 holding, 2 off */
	const char *at = getenv("QVISORD_TEST_STALL_AT"), *file = getenv("QVISORD_TEST_STALL_FILE");

	if (state == 0) {
		state = at && file && streq(at, "start-queue") ? 1 : 2;
		if (state == 1)
			log_warning("QVISORD_TEST_STALL_AT=start-queue: starts wait while %s exists",
				    file);
	}
	if (state == 1 && access(file, F_OK) < 0)
		state = 2;
	return state == 1;
}

static void pump(qv_source *s, void *ud)
{
	struct qv_daemon *d = ud;
	struct qv_start_queue *q = d->start_queue;
	struct qnode *n = q->head;

	q->pump = NULL;
	if (!n)
		return;
	if (test_hold()) {
		(void)qv_loop_add_timer(d->loop, 50, pump, d, &q->pump);
		return;
	}
	q->head = n->next;
	if (!q->head)
		q->tail = &q->head;
	q->active++;
	qv_vm_start_queued(n->vm);
	free(n);
	arm(d, q);
}

int qv_start_queue_push(struct qv_daemon *d, struct qv_vm *vm)
{
	struct qv_start_queue *q = queue_get(d);
	struct qnode *n = q ? calloc(1, sizeof(*n)) : NULL;

	if (!n)
		return -ENOMEM;
	n->vm = vm;
	*q->tail = n;
	q->tail = &n->next;
	arm(d, q);
	return 0;
}

void qv_start_queue_remove(struct qv_daemon *d, struct qv_vm *vm)
{
	struct qv_start_queue *q = d->start_queue;

	for (struct qnode **pp = q ? &q->head : NULL; pp && *pp; pp = &(*pp)->next) {
		if ((*pp)->vm != vm)
			continue;
		struct qnode *n = *pp;
		*pp = n->next;
		if (q->tail == &n->next)
			q->tail = pp;
		free(n);
		return;
	}
}

void qv_start_queue_done(struct qv_daemon *d)
{
	struct qv_start_queue *q = d->start_queue;

	if (!q)
		return;
	if (q->active > 0)
		q->active--;
	arm(d, q);
}

void qv_start_queue_free(struct qv_daemon *d)
{
	struct qv_start_queue *q = d->start_queue;

	if (!q)
		return;
	while (q->head) {
		struct qnode *n = q->head;
		q->head = n->next;
		free(n);
	}
	qv_source_remove(q->pump);
	free(q);
	d->start_queue = NULL;
}
