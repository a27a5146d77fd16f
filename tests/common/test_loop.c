#include <criterion/criterion.h>

#include "common/loop.h"
#include "common/macro.h"

static int fired;
static void on_timer(qv_source *s, void *ud)
{
	fired++;
	qv_loop_quit(ud, 7);
}

Test(loop, timer_fires_and_quits)
{
	qv_loop *l = NULL;
	cr_assert_eq(qv_loop_new(&l), 0);
	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qv_loop_add_timer(l, 20, on_timer, l, NULL), 0);
	cr_assert_eq(qv_loop_run(l), 7);
	cr_assert_eq(fired, 1);
	cr_assert_geq(qv_now_ms() - t0, 19);
	qv_loop_free(l);
}

static void on_read(qv_source *s, int fd, uint32_t ev, void *ud)
{
	char buf[8];
	cr_assert_eq(read(fd, buf, sizeof(buf)), 3);
	qv_source_remove(s);
	*(int *)ud = 1;
}

Test(loop, io_and_self_removal)
{
	qv_loop *l = NULL;
	int p[2], got = 0;
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(qv_loop_new(&l), 0);
	cr_assert_eq(qv_loop_add_io(l, p[0], EPOLLIN, on_read, &got, NULL), 0);
	cr_assert_eq(write(p[1], "abc", 3), 3);
	cr_assert_eq(qv_loop_run_once(l, 1000), 1);
	cr_assert_eq(got, 1);
	/* source removed: a second write dispatches nothing */
	cr_assert_eq(write(p[1], "abc", 3), 3);
	cr_assert_eq(qv_loop_run_once(l, 10), 0);
	qv_loop_free(l);
	close(p[0]);
	close(p[1]);
}

/* A chain of 0 ms timers (a work queue) must let I/O in between: a timer
 * added by a callback waits for the next iteration. */
struct chain {
	char order[16];
	int n;
	int wfd;
	qv_loop *loop;
};

static void on_chain_read(qv_source *s, int fd, uint32_t ev, void *ud)
{
	struct chain *c = ud;
	char buf[8];

	cr_assert_eq(read(fd, buf, sizeof(buf)), 1);
	c->order[c->n++] = 'I';
}

static void on_chain_timer(qv_source *s, void *ud)
{
	struct chain *c = ud;

	c->order[c->n++] = 'T';
	if (c->n == 1) {
		/* I/O arrives while this "work item" runs; the next item is queued. */
		cr_assert_eq(write(c->wfd, "x", 1), 1);
		cr_assert_eq(qv_loop_add_timer(c->loop, 0, on_chain_timer, c, NULL), 0);
	}
}

Test(loop, timer_added_by_a_callback_waits_for_pending_io)
{
	qv_loop *l = NULL;
	struct chain c = {};
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(qv_loop_new(&l), 0);
	c.wfd = p[1];
	c.loop = l;
	cr_assert_eq(qv_loop_add_io(l, p[0], EPOLLIN, on_chain_read, &c, NULL), 0);
	cr_assert_eq(qv_loop_add_timer(l, 0, on_chain_timer, &c, NULL), 0);
	for (int i = 0; i < 5 && c.n < 3; i++)
		cr_assert_geq(qv_loop_run_once(l, 100), 0);
	cr_assert_eq(c.n, 3);
	c.order[c.n] = '\0';
	cr_assert_str_eq(c.order, "TIT", "the queued timer ran before the pending I/O");
	qv_loop_free(l);
	close(p[0]);
	close(p[1]);
}
