/* SPDX-License-Identifier: MIT */
/* Asynchronous QMP handshake: greeting, then qmp_capabilities, on the loop,
 * bounded by one deadline. */
#include "common/log.h"
#include "qemu/qmp-internal.h"

struct qmp_handshake {
	qmp_handshake_fn fn;
	void *userdata;
	qv_source *timer;
	int timeout_ms;
	uint64_t deadline_ms;
};

static void handshake_free(qmp_client *c)
{
	struct qmp_handshake *hs = c->handshake;

	c->handshake = NULL;
	if (hs) {
		qv_source_remove(hs->timer);
		free(hs);
	}
}

/* Detach the handshake first: fn may free the client. */
static void handshake_complete(qmp_client *c, int error, const struct qv_error *errp)
{
	struct qmp_handshake *hs = c->handshake;
	qmp_handshake_fn fn = hs->fn;
	void *ud = hs->userdata;

	handshake_free(c);
	log_debug("QMP handshake %s", error ? "failed" : "done");
	fn(c, error, errp, ud);
}

void qmp_handshake_cancel(qmp_client *c)
{
	handshake_free(c);
}

static void on_caps_reply(qmp_client *c, int error, json_object *ret,
			  const struct qv_error *errp, void *userdata)
{
	if (c->handshake)
		handshake_complete(c, error, errp);
}

void qmp_handshake_greeted(qmp_client *c)
{
	uint64_t now = qv_now_ms(), d = c->handshake->deadline_ms;
	struct qv_error err = {};
	int r;

	r = qmp_execute_internal(c, "qmp_capabilities", NULL, NULL, 0,
				 d > now ? (int)(d - now) : 1, on_caps_reply, NULL, NULL);
	if (r < 0 && c->handshake) {
		qv_error_set(&err, -r, QV_REASON_UNAVAILABLE,
			     "qmp_capabilities: cannot send QMP command: %s", strerror(-r));
		handshake_complete(c, r, &err);
	}
}

void qmp_handshake_failed(qmp_client *c)
{
	struct qv_error err = {};
	int e = c->close_error ? -c->close_error : ECONNRESET;

	qv_error_set(&err, e, QV_REASON_UNAVAILABLE, "QMP handshake failed: %s", c->close_msg);
	handshake_complete(c, -e, &err);
}

static void on_timeout(qv_source *s, void *userdata)
{
	qmp_client *c = userdata;
	struct qv_error err = {};

	c->handshake->timer = NULL;
	if (c->greeted)
		qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT,
			     "qmp_capabilities: QEMU did not reply within %d ms",
			     c->handshake->timeout_ms);
	else
		qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT,
			     "QEMU sent no QMP greeting within %d ms", c->handshake->timeout_ms);
	qmp_client_ref(c);
	handshake_complete(c, -ETIMEDOUT, &err);
	qmp_client_unref(c);
}

int qmp_client_handshake_async(qv_loop *loop, int fd, int timeout_ms, qmp_handshake_fn fn,
			       void *userdata, qmp_client **ret_client)
{
	qmp_client *c = NULL;
	int r;

	if (fd < 0 || !loop || !fn) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	if (timeout_ms <= 0)
		timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
	r = qmp_client_new(fd, &c);
	if (r < 0) {
		close(fd);
		return r;
	}
	c->handshake = calloc(1, sizeof(*c->handshake));
	if (!c->handshake) {
		qmp_client_free(c);
		return -ENOMEM;
	}
	*c->handshake = (struct qmp_handshake){
		.fn = fn, .userdata = userdata, .timeout_ms = timeout_ms,
		.deadline_ms = qv_now_ms() + (uint64_t)timeout_ms,
	};
	r = qmp_client_attach(c, loop);
	if (r >= 0)
		r = qv_loop_add_timer(loop, (uint64_t)timeout_ms, on_timeout, c,
				      &c->handshake->timer);
	if (r < 0) {
		qmp_client_free(c);
		return r;
	}
	*ret_client = c;
	return 0;
}
