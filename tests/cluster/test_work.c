/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "cluster/work.h"

struct item {
	int n;
	pthread_t worker;
	int *order;
	int *n_done;
	bool cancelled;
};

static void work(void *ud)
{
	struct item *it = ud;
	it->worker = pthread_self();
	usleep(1000);
}

static void done(void *ud, bool cancelled)
{
	struct item *it = ud;
	it->cancelled = cancelled;
	it->order[(*it->n_done)++] = it->n;
}

/* One thread: jobs run off the loop thread, complete on it, in order. */
Test(workq, fifo_off_the_loop)
{
	qv_loop *loop = NULL;
	qv_workq *q = NULL;
	struct item items[20];
	int order[20], n_done = 0;

	cr_assert_eq(qv_loop_new(&loop), 0);
	cr_assert_eq(qv_workq_new(loop, 1, &q), 0);
	for (int i = 0; i < 20; i++) {
		items[i] = (struct item){ .n = i, .order = order, .n_done = &n_done };
		cr_assert_eq(qv_workq_push(q, work, done, &items[i]), 0);
	}
	cr_assert_eq(qv_workq_pending(q), 20);
	for (int t = 0; t < 500 && n_done < 20; t++)
		qv_loop_run_once(loop, 100);
	cr_assert_eq(n_done, 20);
	cr_assert_eq(qv_workq_pending(q), 0);
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(order[i], i);
		cr_assert(!pthread_equal(items[i].worker, pthread_self()));
		cr_assert(!items[i].cancelled);
	}
	qv_workq_free(q);
	qv_loop_free(loop);
}

static void slow(void *ud)
{
	usleep(200 * 1000);
}

/* Freeing waits for the running job and cancels the queued ones. */
Test(workq, free_cancels_the_rest)
{
	qv_loop *loop = NULL;
	qv_workq *q = NULL;
	struct item items[3];
	int order[3], n_done = 0;

	cr_assert_eq(qv_loop_new(&loop), 0);
	cr_assert_eq(qv_workq_new(loop, 1, &q), 0);
	for (int i = 0; i < 3; i++) {
		items[i] = (struct item){ .n = i, .order = order, .n_done = &n_done };
		cr_assert_eq(qv_workq_push(q, slow, done, &items[i]), 0);
	}
	usleep(50 * 1000); /* the first is running */
	qv_workq_free(q);
	cr_assert_eq(n_done, 3);
	cr_assert(!items[0].cancelled);
	cr_assert(items[1].cancelled && items[2].cancelled);
	qv_loop_free(loop);
}
