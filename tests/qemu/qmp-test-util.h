/* SPDX-License-Identifier: MIT */
#pragma once
/* Shared by tests/qemu/test_qmp*.c: an event/close recorder and fake-server
 * setup. Header-only (static inline) so each test binary stays standalone. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/json.h"
#include "common/loop.h"
#include "helpers/fake_qmp.h"
#include "qemu/qmp.h"

/* ---- shared helpers ------------------------------------------------------ */

struct rec {
	char log[64][48];
	int n;
	int closed_calls;
	int closed_error;
	qv_loop *loop;
};

static inline void rec_add(struct rec *r, const char *s)
{
	if (r->n < 64)
		snprintf(r->log[r->n++], sizeof(r->log[0]), "%s", s);
}

static inline void rec_event(qmp_client *c, const char *name, json_object *ev, void *ud)
{
	rec_add(ud, name);
}

static inline void rec_closed(qmp_client *c, int error, void *ud)
{
	struct rec *r = ud;

	r->closed_calls++;
	r->closed_error = error;
	rec_add(r, "closed");
	if (r->loop)
		qv_loop_quit(r->loop, 0);
}

static inline void assert_log(struct rec *r, const char *const *want, int n)
{
	cr_assert_eq(r->n, n, "log has %d entries, want %d (first: %s)", r->n, n,
		     r->n ? r->log[0] : "-");
	for (int i = 0; i < n; i++)
		cr_assert_str_eq(r->log[i], want[i], "log[%d]", i);
}

static inline qmp_client *start(fake_qmp_script_fn fn, void *ud, fake_qmp **ret_f)
{
	struct qv_error err = {};
	qmp_client *c = NULL;
	int fd = -1;

	cr_assert_eq(fake_qmp_start(fn, ud, ret_f, &fd), 0);
	int r = qmp_client_connect_fd(fd, 5000, &c, &err);
	cr_assert_eq(r, 0, "connect: %s (%s)", err.message, fake_qmp_error(*ret_f));
	return c;
}

static inline void finish(fake_qmp *f, qmp_client *c)
{
	qmp_client_free(c);
	int r = fake_qmp_join(f);
	cr_expect_eq(r, 0, "fake server: %s", fake_qmp_error(f));
	fake_qmp_free(f);
}

static inline const char *ret_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

static inline void on_safety(qv_source *s, void *ud)
{
	qv_loop_quit(ud, -ETIMEDOUT);
}
