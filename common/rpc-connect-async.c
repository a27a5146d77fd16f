/* SPDX-License-Identifier: MIT */
/* qv_rpc_connect_async(): the blocking connect on a detached worker thread,
 * its result handed to the loop through an eventfd (rpc-connect-async.h).
 *
 * The attempt is shared by two owners, the loop and the worker, and freed
 * by whichever lets go last: the worker after it posted its result, the
 * loop after the callback ran or on cancel. A connection made after the
 * loop gave up is closed with the attempt. The loop's own timer is a
 * backstop a little after the worker's deadline, for a resolver that
 * ignores it (getaddrinfo has no timeout of ours). */
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "common/rpc-connect-async.h"

#define BACKSTOP_GRACE_MS 2000

struct qv_rpc_connecting {
	pthread_mutex_t mu; /* guards refs, result, conn, err */
	int refs;
	int result;
	qv_rpc_conn *conn;
	struct qv_error err;

	/* set before the worker starts, read-only after */
	char *uri;
	unsigned timeout_ms;
	int efd;

	/* loop thread only */
	qv_source *io, *timer;
	qv_rpc_connected_fn fn;
	void *userdata;
};

static void unref(qv_rpc_connecting *c)
{
	bool last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (!last)
		return;
	qv_rpc_conn_free(c->conn);
	if (c->efd >= 0)
		close(c->efd);
	pthread_mutex_destroy(&c->mu);
	free(c->uri);
	free(c);
}

static void *worker(void *ud)
{
	qv_rpc_connecting *c = ud;
	struct qv_error err = {};
	qv_rpc_conn *conn = NULL;
	int r = qv_rpc_connect_timeout(c->uri, c->timeout_ms, &conn, &err);

	pthread_mutex_lock(&c->mu);
	c->result = r < 0 ? r : 0;
	c->conn = r < 0 ? NULL : conn;
	c->err = err;
	pthread_mutex_unlock(&c->mu);
	(void)!eventfd_write(c->efd, 1);
	unref(c);
	return NULL;
}

/* Detach the loop's sources, run the callback once, drop the loop's ref. */
static void finish(qv_rpc_connecting *c, int r, qv_rpc_conn *conn, const struct qv_error *err)
{
	c->io = qv_source_remove(c->io);
	c->timer = qv_source_remove(c->timer);
	c->fn(r, conn, err, c->userdata);
	unref(c);
}

static void on_posted(qv_source *s, int fd, uint32_t revents, void *ud)
{
	qv_rpc_connecting *c = ud;
	struct qv_error err;
	qv_rpc_conn *conn;
	eventfd_t v;
	int r;

	if (eventfd_read(fd, &v) < 0)
		return; /* spurious */
	pthread_mutex_lock(&c->mu);
	r = c->result;
	conn = TAKE_PTR(c->conn);
	err = c->err;
	pthread_mutex_unlock(&c->mu);
	finish(c, r, conn, &err);
}

static void on_backstop(qv_source *s, void *ud)
{
	qv_rpc_connecting *c = ud;
	struct qv_error err = {};

	c->timer = NULL;
	qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT, "%s did not answer within %u ms",
		     c->uri, c->timeout_ms);
	finish(c, -ETIMEDOUT, NULL, &err);
}

/* A detached thread with every signal blocked: they belong to the loop. */
static int start_worker(qv_rpc_connecting *c)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t th;
	int r;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&th, &attr, worker, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return r;
}

int qv_rpc_connect_async(qv_loop *loop, const char *uri, unsigned timeout_ms,
			 qv_rpc_connected_fn fn, void *userdata,
			 qv_rpc_connecting **ret_connecting, struct qv_error *errp)
{
	qv_rpc_connecting *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	c->refs = 1;
	c->fn = fn;
	c->userdata = userdata;
	c->timeout_ms = timeout_ms;
	c->uri = strdup(uri ? uri : "");
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = !c->uri ? -ENOMEM : c->efd < 0 ? negative_errno() : 0;
	if (r >= 0)
		r = qv_loop_add_io(loop, c->efd, EPOLLIN, on_posted, c, &c->io);
	if (r >= 0)
		r = qv_loop_add_timer(loop, (uint64_t)timeout_ms + BACKSTOP_GRACE_MS, on_backstop,
				      c, &c->timer);
	if (r >= 0) {
		c->refs = 2; /* the worker's */
		r = start_worker(c);
		if (r < 0)
			c->refs = 1;
	}
	if (r < 0) {
		qv_rpc_connect_cancel(c);
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot start connecting to %s: %s",
				    uri, strerror(-r));
	}
	*ret_connecting = c;
	return 0;
}

qv_rpc_connecting *qv_rpc_connect_cancel(qv_rpc_connecting *c)
{
	if (!c)
		return NULL;
	c->io = qv_source_remove(c->io);
	c->timer = qv_source_remove(c->timer);
	unref(c);
	return NULL;
}
