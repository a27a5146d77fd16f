/* SPDX-License-Identifier: MIT */
/* QMP client: lifecycle, connection setup, loop attachment and the blocking
 * wrappers. Socket I/O lives in qmp-io.c, commands in qmp-command.c. */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "common/log.h"
#include "qemu/qmp-internal.h"

qmp_client *qmp_client_ref(qmp_client *c)
{
	c->n_ref++;
	return c;
}

static void client_destroy(qmp_client *c)
{
	qmp_handshake_cancel(c);
	c->io = qv_source_remove(c->io);
	c->resume = qv_source_remove(c->resume);
	if (c->fd >= 0)
		close(c->fd);
	qmp_out_free_all(c);
	if (c->tok)
		json_tokener_free(c->tok);
	free(c->inbuf);
	free(c->version);
	free(c);
}

void qmp_client_unref(qmp_client *c)
{
	if (c && --c->n_ref == 0)
		client_destroy(c);
}

qmp_client *qmp_client_free(qmp_client *c)
{
	if (!c || c->freed)
		return NULL;
	c->freed = true;
	qmp_handshake_cancel(c);
	c->io = qv_source_remove(c->io);
	c->resume = qv_source_remove(c->resume);
	qmp_fail_pending(c, ECANCELED, QV_REASON_CANCELLED, "QMP client freed");
	qmp_client_unref(c);
	return NULL;
}

void qmp_client_freep(qmp_client **c)
{
	*c = qmp_client_free(*c);
}

int qmp_client_fd(qmp_client *c)
{
	return c && !qmp_client_gone(c) ? c->fd : -1;
}

const char *qmp_client_version(qmp_client *c)
{
	return c ? c->version : NULL;
}

bool qmp_client_is_open(qmp_client *c)
{
	return c && !qmp_client_gone(c);
}

void qmp_client_set_event_filter(qmp_client *c, qmp_event_filter_fn fn, void *userdata)
{
	c->event_filter = fn;
	c->event_filter_userdata = userdata;
}

void qmp_client_set_event_handler(qmp_client *c, qmp_event_fn fn, void *userdata)
{
	c->event_fn = fn;
	c->event_userdata = userdata;
}

void qmp_client_set_closed_handler(qmp_client *c, qmp_closed_fn fn, void *userdata)
{
	c->closed_fn = fn;
	c->closed_userdata = userdata;
}

/* ---- loop attachment ---------------------------------------------------- */

static void on_io(qv_source *s, int fd, uint32_t revents, void *userdata)
{
	qmp_client *c = userdata;

	qmp_client_ref(c);
	if (revents & EPOLLOUT)
		(void)qmp_flush(c);
	if (!qmp_client_gone(c) && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		(void)qmp_read_and_parse(c, NULL);
	qmp_client_unref(c);
}

static void on_resume(qv_source *s, void *userdata)
{
	qmp_client *c = userdata;

	c->resume = NULL;
	(void)qmp_parse_buffered(c, NULL);
}

/* A blocking wait may stop right after its reply and leave later messages
 * buffered; the loop will not see them as readiness, so schedule a pass. */
static void schedule_resume(qmp_client *c)
{
	if (c->loop && !qmp_client_gone(c) && c->in_start < c->in_end && !c->resume)
		(void)qv_loop_add_timer(c->loop, 0, on_resume, c, &c->resume);
}

int qmp_client_attach(qmp_client *c, qv_loop *loop)
{
	int r;

	if (!c || !loop)
		return -EINVAL;
	if (qmp_client_gone(c))
		return -ENOTCONN;
	if (c->loop)
		return -EBUSY;
	c->io_events = EPOLLIN | (c->out ? EPOLLOUT : 0);
	r = qv_loop_add_io(loop, c->fd, c->io_events, on_io, c, &c->io);
	if (r < 0)
		return r;
	c->loop = loop;
	for (struct qmp_pending *p = c->pending; p; p = p->next) {
		r = qmp_arm_timer(c, p);
		if (r < 0)
			return r;
	}
	schedule_resume(c);
	return 0;
}

int qmp_client_process(qmp_client *c)
{
	int r;

	if (!c)
		return -EINVAL;
	if (qmp_client_gone(c))
		return -ENOTCONN;
	qmp_client_ref(c);
	r = qmp_flush(c);
	if (r >= 0)
		r = qmp_read_and_parse(c, NULL);
	if (!qmp_client_gone(c))
		qmp_client_check_timeouts(c);
	qmp_client_unref(c);
	return r;
}

/* ---- blocking waits ----------------------------------------------------- */

/* Run the client until *done, the deadline, or the link closes. Returns 0 once
 * *done, -ETIMEDOUT, -ENOTCONN when closed or freed, or a poll() error. */
static int wait_until(qmp_client *c, const bool *done, uint64_t deadline)
{
	for (;;) {
		(void)qmp_parse_buffered(c, done);
		if (*done)
			return 0;
		if (qmp_client_gone(c))
			return -ENOTCONN;
		qmp_client_check_timeouts(c);
		if (*done)
			return 0;
		if (qmp_client_gone(c))
			return -ENOTCONN;

		uint64_t now = qv_now_ms(), until = deadline, next = qmp_next_deadline(c);
		if (now >= deadline)
			return -ETIMEDOUT;
		if (next < until)
			until = next;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN | (c->out ? POLLOUT : 0) };
		int n = poll(&pfd, 1, until > now ? (int)(until - now) : 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		if (pfd.revents & POLLOUT)
			(void)qmp_flush(c);
		if (!qmp_client_gone(c) && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			(void)qmp_read_and_parse(c, done);
	}
}

static uint64_t deadline_from(int timeout_ms)
{
	return qv_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
}

static int closed_error(qmp_client *c, struct qv_error *errp, const char *what)
{
	if (c->freed)
		return qv_error_set(errp, ECANCELED, QV_REASON_CANCELLED,
				    "%s: QMP client freed", what);
	if (c->closed)
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE,
				    "%s: QMP connection to QEMU is closed (%s)", what, c->close_msg);
	return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE,
			    "%s: QMP connection to QEMU is closed", what);
}

struct sync_result {
	bool done;
	int error;
	json_object *ret;
	struct qv_error err;
};

static void sync_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		       void *userdata)
{
	struct sync_result *res = userdata;

	res->done = true;
	res->error = error;
	if (error >= 0)
		res->ret = json_object_get(ret);
	else if (errp)
		res->err = *errp;
}

int qmp_client_execute_fds(qmp_client *c, const char *command, json_object *args,
			   const int *fds, size_t n_fds, int timeout_ms,
			   json_object **ret_return, struct qv_error *errp)
{
	struct sync_result res = {};
	uint64_t id = 0;
	int r;

	if (!c || !command)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "Invalid QMP command");
	if (timeout_ms <= 0)
		timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
	if (qmp_client_gone(c))
		return closed_error(c, errp, command);
	r = qmp_execute_internal(c, command, args, fds, n_fds, timeout_ms, sync_reply, &res, &id);
	if (r < 0)
		return qv_error_set(errp, r, NULL, "%s: cannot send QMP command: %s", command,
				    strerror(-r));

	qmp_client_ref(c);
	r = wait_until(c, &res.done, deadline_from(timeout_ms));
	if (!res.done) {
		/* Never leave a callback pointing at this stack frame. */
		qmp_cancel_pending(c, id);
		if (r == -ETIMEDOUT)
			r = qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
					 "%s: QEMU did not reply within %d ms", command, timeout_ms);
		else if (qmp_client_gone(c))
			r = closed_error(c, errp, command);
		else
			r = qv_error_set(errp, r, NULL, "%s: waiting for QEMU failed: %s", command,
					 strerror(-r));
	} else if (res.error < 0) {
		r = res.error;
		if (errp && !errp->set)
			*errp = res.err;
	} else {
		r = 0;
		if (ret_return)
			*ret_return = TAKE_PTR(res.ret);
	}
	json_object_put(res.ret);
	schedule_resume(c);
	qmp_client_unref(c);
	return r;
}

int qmp_client_execute(qmp_client *c, const char *command, json_object *args, int timeout_ms,
		       json_object **ret_return, struct qv_error *errp)
{
	return qmp_client_execute_fds(c, command, args, NULL, 0, timeout_ms, ret_return, errp);
}

int qmp_client_wait_event(qmp_client *c, const char *name, int timeout_ms,
			  json_object **ret_event, struct qv_error *errp)
{
	struct qmp_event_waiter w = { .name = name };
	int r;

	if (!c || !name)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "Invalid QMP event");
	if (qmp_client_gone(c))
		return closed_error(c, errp, name);
	qmp_client_ref(c);
	w.next = c->waiters;
	c->waiters = &w;
	r = wait_until(c, &w.done, deadline_from(timeout_ms));
	for (struct qmp_event_waiter **pp = &c->waiters; *pp; pp = &(*pp)->next)
		if (*pp == &w) {
			*pp = w.next;
			break;
		}
	if (w.done) {
		r = 0;
		if (ret_event)
			*ret_event = TAKE_PTR(w.event);
	} else if (r == -ETIMEDOUT) {
		r = qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
				 "No %s event from QEMU within %d ms", name,
				 timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
	} else if (qmp_client_gone(c)) {
		r = closed_error(c, errp, name);
	} else {
		r = qv_error_set(errp, r, NULL, "Waiting for QMP event %s failed: %s", name,
				 strerror(-r));
	}
	json_object_put(w.event);
	schedule_resume(c);
	qmp_client_unref(c);
	return r;
}

int qmp_client_wait_closed(qmp_client *c, int timeout_ms, struct qv_error *errp)
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->closed)
		return 0;
	if (c->freed)
		return closed_error(c, errp, "wait-closed");
	qmp_client_ref(c);
	r = wait_until(c, &c->closed, deadline_from(timeout_ms));
	if (c->closed)
		r = 0;
	else if (r == -ETIMEDOUT)
		r = qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
				 "QEMU did not close the QMP connection within %d ms",
				 timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
	else
		r = closed_error(c, errp, "wait-closed");
	schedule_resume(c);
	qmp_client_unref(c);
	return r;
}

/* ---- connection setup --------------------------------------------------- */

/* On failure fd is left open (the caller closes it). */
int qmp_client_new(int fd, qmp_client **ret)
{
	qmp_client *c = calloc(1, sizeof(*c));
	int fl;

	if (!c)
		return -ENOMEM;
	c->n_ref = 1;
	c->fd = fd;
	c->next_id = 1;
	c->pending_tail = &c->pending;
	c->out_tail = &c->out;
	c->tok = json_tokener_new_ex(QMP_MAX_DEPTH);
	c->inbuf = malloc(QMP_READ_CHUNK);
	if (!c->tok || !c->inbuf) {
		c->fd = -1;
		client_destroy(c);
		return -ENOMEM;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int r = -errno;
		c->fd = -1;
		client_destroy(c);
		return r;
	}
	*ret = c;
	return 0;
}

int qmp_client_connect_fd(int fd, int timeout_ms, qmp_client **ret_client,
			  struct qv_error *errp)
{
	_cleanup_(qmp_client_freep) qmp_client *c = NULL;
	uint64_t deadline = deadline_from(timeout_ms);
	int r;

	if (fd < 0)
		return qv_error_set(errp, EBADF, QV_REASON_INVALID_ARGUMENT, "Invalid QMP fd");
	r = qmp_client_new(fd, &c);
	if (r < 0) {
		close(fd);
		return qv_error_set(errp, r, QV_REASON_INTERNAL, "Cannot set up QMP client: %s",
				    strerror(-r));
	}
	r = wait_until(c, &c->greeted, deadline);
	if (r == -ETIMEDOUT)
		return qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
				    "QEMU sent no QMP greeting within %d ms",
				    timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS);
	if (r < 0)
		return qv_error_set(errp, c->closed ? -c->close_error : -r, QV_REASON_UNAVAILABLE,
				    "QMP handshake failed: %s",
				    c->closed ? c->close_msg : strerror(-r));

	uint64_t now = qv_now_ms();
	int left = deadline > now ? (int)(deadline - now) : 1;
	r = qmp_client_execute(c, "qmp_capabilities", NULL, left, NULL, errp);
	if (r < 0)
		return r;
	*ret_client = TAKE_PTR(c);
	return 0;
}

int qmp_client_connect(const char *path, int timeout_ms, qmp_client **ret_client,
		       struct qv_error *errp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = deadline_from(timeout_ms);

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "Invalid QMP socket path '%s'", path ? path : "");
	memcpy(sa.sun_path, path, strlen(path));

	for (;;) {
		_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return qv_error_set(errp, errno, QV_REASON_INTERNAL,
					    "Cannot create QMP socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			uint64_t now = qv_now_ms();
			int left = deadline > now ? (int)(deadline - now) : 1;
			return qmp_client_connect_fd(TAKE_FD(fd), left, ret_client, errp);
		}
		int e = errno;
		uint64_t now = qv_now_ms();
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR) ||
		    now >= deadline)
			return qv_error_set(errp, e, e == ENOENT || e == ECONNREFUSED ?
						     QV_REASON_UNAVAILABLE : NULL,
					    "Cannot connect to QMP socket %s: %s", path,
					    strerror(e));
		uint64_t nap = deadline - now < 20 ? deadline - now : 20;
		struct timespec ts = { .tv_nsec = (long)nap * 1000000L };
		nanosleep(&ts, NULL);
	}
}
