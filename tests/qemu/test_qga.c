/* SPDX-License-Identifier: MIT */
/* Guest agent client against a fake agent (protocol edge cases: stale
 * bytes, garbage, floods, wrong sync ids, silence). The real qemu-ga is
 * exercised by tests/integration/test_agent.c. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/json.h"
#include "qemu/qga.h"

static char dir[64];
static char path[128];

struct fake {
	int lfd;
	const char *script; /* %ld = the sync id */
	size_t flood;       /* extra bytes of 'a' before the script */
	size_t big_reply;   /* reply with a string this long */
};

static void *serve(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	char req[4096];
	size_t n = 0;
	long id = 0;

	if (fd < 0)
		return NULL;
	while (n < sizeof(req) - 1) { /* two request lines */
		ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		req[n] = 0;
		char *nl = strchr(req, '\n');
		if (nl && strchr(nl + 1, '\n'))
			break;
	}
	char *p = strstr(req, "\"id\":");
	if (p)
		id = strtol(p + 5, NULL, 10);
	char *flood = f->flood ? malloc(f->flood) : NULL;
	if (flood) {
		memset(flood, 'a', f->flood);
		(void)!write(fd, flood, f->flood);
		free(flood);
	}
	if (f->script) {
		char out[1024];
		int l = snprintf(out, sizeof(out), f->script, id);
		(void)!write(fd, out, (size_t)l);
	}
	if (f->big_reply) {
		char *big = malloc(f->big_reply + 64);
		int l = sprintf(big, "{\"return\":\"");
		memset(big + l, 'b', f->big_reply);
		strcpy(big + l + f->big_reply, "\"}\n");
		(void)!write(fd, big, strlen(big));
		free(big);
	}
	sleep(1); /* keep the channel open (a silent agent) */
	close(fd);
	return NULL;
}

struct result {
	bool done, misbehaved;
	char reason[32], message[512];
	char json[256];
};

static void on_done(json_object *res, const struct qv_error *err, bool misbehaved, void *ud)
{
	struct result *r = ud;

	r->done = true;
	r->misbehaved = misbehaved;
	if (err) {
		snprintf(r->reason, sizeof(r->reason), "%s", err->reason);
		snprintf(r->message, sizeof(r->message), "%s", err->message);
	}
	if (res)
		snprintf(r->json, sizeof(r->json), "%s",
			 json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN));
}

static struct result run(struct fake *f, bool no_reply, uint64_t timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct result res = {};
	qv_loop *loop = NULL;
	pthread_t th;
	qga_call *call = NULL;

	snprintf(dir, sizeof(dir), "/tmp/qvt-qga-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qga.sock", dir);
	unlink(path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, path);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 1), 0);
	pthread_create(&th, NULL, serve, f);
	cr_assert_eq(qv_loop_new(&loop), 0);
	cr_assert_eq(qga_call_start(loop, path, "guest-info", NULL, no_reply, timeout_ms, on_done,
				    &res, &call), 0);
	while (!res.done)
		qv_loop_run_once(loop, 100);
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(th, NULL);
	close(f->lfd);
	unlink(path);
	rmdir(dir);
	qv_loop_free(loop);
	return res;
}

Test(qga, reply_after_stale_bytes)
{
	struct fake f = { .script = "{\"return\": 7}\nstale\xff {\"return\": %ld}\n"
				    "{\"return\": {\"version\": \"7.2\"}}\n" };
	struct result r = run(&f, false, 2000);

	cr_assert_str_eq(r.json, "{\"version\":\"7.2\"}", "%s %s", r.reason, r.message);
	cr_assert(!r.misbehaved);
}

Test(qga, agent_error_is_not_misbehaviour)
{
	struct fake f = { .script = "\xff{\"return\": %ld}\n{\"error\": {\"class\": "
				    "\"GenericError\", \"desc\": \"frozen\"}}\n" };
	struct result r = run(&f, false, 2000);

	cr_assert_str_eq(r.reason, "qemu-error");
	cr_assert(strstr(r.message, "frozen"), "%s", r.message);
	cr_assert(!r.misbehaved);
}

Test(qga, garbage_wrong_sync_floods_are_misbehaviour)
{
	struct fake cases[] = {
		{ .script = "\xff{\"return\": %ld}\nnot json at all\n" },
		{ .script = "\xff{\"return\": 1%ld}\n{\"return\": {}}\n" },
		{ .script = "\xff[%ld]\n" },
		{ .script = "\xff{\"return\": %ld}\n{\"return\": 1, \"extra\": 2}\n" },
		{ .flood = 200000 },
		{ .script = "\xff{\"return\": %ld}\n", .big_reply = 100000 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct result r = run(&cases[i], false, 3000);
		cr_assert(r.misbehaved, "case %zu: %s %s", i, r.reason, r.message);
		cr_assert_str_eq(r.reason, "invalid-argument", "case %zu", i);
	}
}

Test(qga, silence_times_out_and_no_reply_commands_succeed)
{
	struct fake silent = { .script = "" };
	struct result r = run(&silent, false, 300);

	cr_assert_str_eq(r.reason, "timeout");
	cr_assert(!r.misbehaved);
	struct fake synced = { .script = "\xff{\"return\": %ld}\n" };
	r = run(&synced, true, 2000);
	cr_assert(r.done && !r.reason[0], "%s", r.message);
}

Test(qga, no_agent_socket)
{
	qv_loop *loop = NULL;
	qga_call *c = NULL;

	cr_assert_eq(qv_loop_new(&loop), 0);
	cr_assert_lt(qga_call_start(loop, "/nonexistent/qga.sock", "guest-ping", NULL, false, 100,
				    on_done, NULL, &c), 0);
	qv_loop_free(loop);
}
