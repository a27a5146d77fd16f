/* SPDX-License-Identifier: MIT */
/* A job queue served by worker threads, completions on the loop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cluster/work.h"
#include "common/macro.h"

#define WORKQ_MAX_THREADS 8

struct job {
	struct job *next;
	qv_work_fn work;
	qv_done_fn done;
	void *ud;
};

struct qv_workq {
	qv_loop *loop;
	qv_source *src;
	int efd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo, **todo_tail; /* FIFO */
	struct job *finished, **fin_tail;
	size_t pending;
	bool stop;
	pthread_t threads[WORKQ_MAX_THREADS];
	unsigned n_threads;
};

static void append(struct job ***tail, struct job *j)
{
	j->next = NULL;
	**tail = j;
	*tail = &j->next;
}

static void *worker(void *arg)
{
	qv_workq *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->todo && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stop)
			break;
		struct job *j = q->todo;
		q->todo = j->next;
		if (!q->todo)
			q->todo_tail = &q->todo;
		pthread_mutex_unlock(&q->lock);
		j->work(j->ud);
		pthread_mutex_lock(&q->lock);
		append(&q->fin_tail, j);
		(void)eventfd_write(q->efd, 1);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* Take the finished list (under the lock) and complete it on the loop. */
static void run_finished(qv_workq *q)
{
	struct job *list;

	pthread_mutex_lock(&q->lock);
	list = q->finished;
	q->finished = NULL;
	q->fin_tail = &q->finished;
	pthread_mutex_unlock(&q->lock);
	while (list) {
		struct job *j = list;
		list = j->next;
		q->pending--;
		j->done(j->ud, false);
		free(j);
	}
}

static void on_event(qv_source *s, int fd, uint32_t revents, void *ud)
{
	eventfd_t v;

	(void)eventfd_read(fd, &v);
	run_finished(ud);
}

int qv_workq_new(qv_loop *loop, unsigned threads, qv_workq **ret_q)
{
	qv_workq *q = calloc(1, sizeof(*q));
	sigset_t all, old;
	int r;

	if (!q)
		return -ENOMEM;
	q->loop = loop;
	q->efd = -1;
	q->todo_tail = &q->todo;
	q->fin_tail = &q->finished;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0) {
		r = negative_errno();
		goto fail;
	}
	r = qv_loop_add_io(loop, q->efd, EPOLLIN, on_event, q, &q->src);
	if (r < 0)
		goto fail;
	/* Signals stay with the loop thread (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (threads < 1)
		threads = 1;
	if (threads > WORKQ_MAX_THREADS)
		threads = WORKQ_MAX_THREADS;
	for (unsigned i = 0; i < threads; i++) {
		if ((r = -pthread_create(&q->threads[i], NULL, worker, q)) < 0)
			break;
		q->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (q->n_threads == 0)
		goto fail;
	*ret_q = q;
	return 0;
fail:
	qv_workq_free(q);
	return r < 0 ? r : -EAGAIN;
}

int qv_workq_push(qv_workq *q, qv_work_fn work, qv_done_fn done, void *userdata)
{
	struct job *j;

	if (q->stop)
		return -ESHUTDOWN;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->work = work;
	j->done = done;
	j->ud = userdata;
	pthread_mutex_lock(&q->lock);
	append(&q->todo_tail, j);
	q->pending++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

size_t qv_workq_pending(const qv_workq *q)
{
	return q->pending;
}

qv_workq *qv_workq_free(qv_workq *q)
{
	if (!q)
		return NULL;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	run_finished(q);
	while (q->todo) {
		struct job *j = q->todo;
		q->todo = j->next;
		j->done(j->ud, true);
		free(j);
	}
	qv_source_remove(q->src);
	if (q->efd >= 0)
		close(q->efd);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
	return NULL;
}
