/* SPDX-License-Identifier: MIT */
/* QMP commands in flight: ids, reply matching, QEMU errors, timeouts. */
#include "common/json.h"
#include "common/log.h"
#include "qemu/qmp-internal.h"

static struct qmp_pending *pending_unlink(qmp_client *c, struct qmp_pending *p)
{
	for (struct qmp_pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
		if (*pp != p)
			continue;
		*pp = p->next;
		if (c->pending_tail == &p->next)
			c->pending_tail = pp;
		p->next = NULL;
		return p;
	}
	return NULL;
}

static struct qmp_pending *pending_find(qmp_client *c, uint64_t id)
{
	for (struct qmp_pending *p = c->pending; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* p must be unlinked. Runs the callback once and frees p. */
static void pending_complete(qmp_client *c, struct qmp_pending *p, int error, json_object *ret,
			     const struct qv_error *errp)
{
	p->timer = qv_source_remove(p->timer);
	if (p->fn)
		p->fn(c, error, ret, errp, p->userdata);
	free(p->command);
	free(p);
}

static void pending_timeout(qmp_client *c, struct qmp_pending *p)
{
	struct qv_error err = {};

	qv_error_set(&err, ETIMEDOUT, QV_REASON_TIMEOUT, "%s: QEMU did not reply within %d ms",
		     p->command, p->timeout_ms);
	log_debug("QMP: %s (id %" PRIu64 ") timed out", p->command, p->id);
	pending_complete(c, p, -ETIMEDOUT, NULL, &err);
}

static void on_timer(qv_source *s, void *userdata)
{
	struct qmp_pending *p = userdata;
	qmp_client *c = p->client;

	p->timer = NULL; /* the loop frees one-shot timers after they fire */
	qmp_client_ref(c);
	if (pending_unlink(c, p))
		pending_timeout(c, p);
	qmp_client_unref(c);
}

int qmp_arm_timer(qmp_client *c, struct qmp_pending *p)
{
	uint64_t now = qv_now_ms();

	if (!c->loop || p->timer)
		return 0;
	return qv_loop_add_timer(c->loop, p->deadline_ms > now ? p->deadline_ms - now : 0,
				 on_timer, p, &p->timer);
}

uint64_t qmp_next_deadline(qmp_client *c)
{
	uint64_t d = UINT64_MAX;

	for (struct qmp_pending *p = c->pending; p; p = p->next)
		if (p->deadline_ms < d)
			d = p->deadline_ms;
	return d;
}

void qmp_client_check_timeouts(qmp_client *c)
{
	if (!c)
		return;
	qmp_client_ref(c);
	for (bool again = true; again && !qmp_client_gone(c);) {
		uint64_t now = qv_now_ms();
		again = false;
		for (struct qmp_pending *p = c->pending; p; p = p->next) {
			if (p->deadline_ms > now)
				continue;
			/* The callback may change the list: restart the walk. */
			pending_timeout(c, pending_unlink(c, p));
			again = true;
			break;
		}
	}
	qmp_client_unref(c);
}

static int qemu_error_errno(const char *class)
{
	if (streq(class, "CommandNotFound"))
		return EOPNOTSUPP;
	if (streq(class, "DeviceNotFound"))
		return ENODEV;
	return EIO;
}

void qmp_dispatch_reply(qmp_client *c, json_object *msg)
{
	json_object *id, *ret, *error, *v;
	struct qmp_pending *p;

	if (!json_object_object_get_ex(msg, "id", &id) || !json_object_is_type(id, json_type_int)) {
		log_debug("QMP: reply without a known id, ignoring");
		return;
	}
	p = pending_find(c, (uint64_t)json_object_get_int64(id));
	if (!p) {
		log_debug("QMP: late or unknown reply id %" PRId64 ", dropping",
			  json_object_get_int64(id));
		return;
	}
	pending_unlink(c, p);
	if (json_object_object_get_ex(msg, "return", &ret)) {
		pending_complete(c, p, 0, ret, NULL);
		return;
	}

	const char *class = "GenericError", *desc = "unknown error";
	struct qv_error err = {};
	json_object_object_get_ex(msg, "error", &error);
	if (json_object_object_get_ex(error, "class", &v) && json_object_is_type(v, json_type_string))
		class = json_object_get_string(v);
	if (json_object_object_get_ex(error, "desc", &v) && json_object_is_type(v, json_type_string))
		desc = json_object_get_string(v);
	int r = qv_error_set(&err, qemu_error_errno(class), QV_REASON_QEMU_ERROR, "%s: %s (%s)",
			     p->command, desc, class);
	pending_complete(c, p, r, NULL, &err);
}

void qmp_fail_pending(qmp_client *c, int error, const char *reason, const char *why)
{
	while (c->pending) {
		struct qmp_pending *p = pending_unlink(c, c->pending);
		struct qv_error err = {};

		qv_error_set(&err, error, reason, "%s during %s", why, p->command);
		pending_complete(c, p, -err.error, NULL, &err);
	}
}

void qmp_cancel_pending(qmp_client *c, uint64_t id)
{
	struct qmp_pending *p = pending_find(c, id);

	if (!p)
		return;
	pending_unlink(c, p);
	p->fn = NULL;
	pending_complete(c, p, 0, NULL, NULL);
}

static int serialize(const char *command, json_object *args, uint64_t id, char **ret_buf,
		     size_t *ret_len)
{
	_cleanup_json_ json_object *msg = json_object_new_object();
	const char *s;
	size_t len;
	char *buf;

	if (!msg)
		return -ENOMEM;
	json_object_object_add(msg, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(msg, "arguments", json_object_get(args));
	json_object_object_add(msg, "id", json_object_new_int64((int64_t)id));
	s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
	if (!s)
		return -ENOMEM;
	buf = malloc(len + 2);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, s, len);
	memcpy(buf + len, "\r\n", 2);
	*ret_buf = buf;
	*ret_len = len + 2;
	return 0;
}

int qmp_execute_internal(qmp_client *c, const char *command, json_object *args, const int *fds,
			 size_t n_fds, int timeout_ms, qmp_reply_fn fn, void *userdata,
			 uint64_t *ret_id)
{
	_cleanup_free_ char *buf = NULL;
	struct qmp_pending *p;
	size_t len;
	int r;

	if (!c || !command || !*command || (n_fds > 0 && !fds))
		return -EINVAL;
	if (args && !json_object_is_type(args, json_type_object))
		return -EINVAL;
	if (qmp_client_gone(c))
		return -ENOTCONN;
	if (timeout_ms <= 0)
		timeout_ms = QMP_DEFAULT_TIMEOUT_MS;

	uint64_t id = c->next_id++;
	r = serialize(command, args, id, &buf, &len);
	if (r < 0)
		return r;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->command = strdup(command);
	if (!p->command) {
		free(p);
		return -ENOMEM;
	}
	p->id = id;
	p->timeout_ms = timeout_ms;
	p->deadline_ms = qv_now_ms() + (uint64_t)timeout_ms;
	p->fn = fn;
	p->userdata = userdata;
	p->client = c;
	r = qmp_queue_output(c, buf, len, fds, n_fds);
	if (r < 0) {
		free(p->command);
		free(p);
		return r;
	}
	TAKE_PTR(buf);
	r = qmp_arm_timer(c, p);
	if (r < 0)
		log_debug("QMP: cannot arm timer for %s, relying on polling: %s", command,
			  strerror(-r));
	*c->pending_tail = p;
	c->pending_tail = &p->next;
	if (ret_id)
		*ret_id = id;
	log_debug("QMP: -> %s (id %" PRIu64 ")", command, id);

	/* Send now; a failure completes the command through fn (link failure). */
	qmp_client_ref(c);
	(void)qmp_flush(c);
	qmp_client_unref(c);
	return 0;
}

int qmp_client_execute_async(qmp_client *c, const char *command, json_object *args,
			     const int *fds, size_t n_fds, int timeout_ms, qmp_reply_fn fn,
			     void *userdata)
{
	return qmp_execute_internal(c, command, args, fds, n_fds, timeout_ms, fn, userdata, NULL);
}
