/* SPDX-License-Identifier: MIT */
#include <time.h>

#include "common/loop.h"
#include "common/macro.h"

enum source_kind { SOURCE_IO, SOURCE_TIMER };

struct qv_source {
	qv_loop *loop;
	enum source_kind kind;
	bool dead;
	int fd;
	qv_io_fn io_fn;
	qv_timer_fn timer_fn;
	void *userdata;
	uint64_t deadline_ms;
	uint64_t born;   /* loop iteration the source was added in */
	qv_source *next; /* all sources */
};

struct qv_loop {
	int epfd;
	qv_source *sources;
	bool quit;
	int quit_code;
	int dispatching;
	uint64_t iteration;
};

uint64_t qv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int qv_loop_new(qv_loop **ret_loop)
{
	qv_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int r = negative_errno();
		free(l);
		return r;
	}
	*ret_loop = l;
	return 0;
}

static void sweep_dead(qv_loop *l)
{
	qv_source **pp = &l->sources;

	while (*pp) {
		qv_source *s = *pp;
		if (s->dead) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

qv_loop *qv_loop_free(qv_loop *l)
{
	if (!l)
		return NULL;
	for (qv_source *s = l->sources; s; s = s->next)
		s->dead = true;
	sweep_dead(l);
	if (l->epfd >= 0)
		close(l->epfd);
	free(l);
	return NULL;
}

void qv_loop_freep(qv_loop **loop)
{
	*loop = qv_loop_free(*loop);
}

static qv_source *source_new(qv_loop *l, enum source_kind kind)
{
	qv_source *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = l;
	s->kind = kind;
	s->fd = -1;
	s->born = l->iteration;
	s->next = l->sources;
	l->sources = s;
	return s;
}

int qv_loop_add_io(qv_loop *l, int fd, uint32_t events, qv_io_fn fn, void *userdata,
		   qv_source **ret_source)
{
	struct epoll_event ev = { .events = events };
	qv_source *s;

	if (fd < 0 || !fn)
		return -EINVAL;
	s = source_new(l, SOURCE_IO);
	if (!s)
		return -ENOMEM;
	s->fd = fd;
	s->io_fn = fn;
	s->userdata = userdata;
	ev.data.ptr = s;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = negative_errno();
		s->dead = true;
		sweep_dead(l);
		return r;
	}
	if (ret_source)
		*ret_source = s;
	return 0;
}

int qv_source_set_events(qv_source *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	if (!s || s->kind != SOURCE_IO || s->dead)
		return -EINVAL;
	if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		return negative_errno();
	return 0;
}

int qv_loop_add_timer(qv_loop *l, uint64_t after_ms, qv_timer_fn fn, void *userdata,
		      qv_source **ret_source)
{
	qv_source *s;

	if (!fn)
		return -EINVAL;
	s = source_new(l, SOURCE_TIMER);
	if (!s)
		return -ENOMEM;
	s->timer_fn = fn;
	s->userdata = userdata;
	s->deadline_ms = qv_now_ms() + after_ms;
	if (ret_source)
		*ret_source = s;
	return 0;
}

qv_source *qv_source_remove(qv_source *s)
{
	if (!s || s->dead)
		return NULL;
	s->dead = true;
	if (s->kind == SOURCE_IO)
		(void)epoll_ctl(s->loop->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	if (!s->loop->dispatching)
		sweep_dead(s->loop);
	return NULL;
}

static int next_timeout(qv_loop *l, int timeout_ms)
{
	uint64_t now = qv_now_ms();

	for (qv_source *s = l->sources; s; s = s->next) {
		if (s->dead || s->kind != SOURCE_TIMER)
			continue;
		int64_t left = s->deadline_ms > now ? (int64_t)(s->deadline_ms - now) : 0;
		if (timeout_ms < 0 || left < timeout_ms)
			timeout_ms = (int)left;
	}
	return timeout_ms;
}

static int dispatch_timers(qv_loop *l)
{
	uint64_t now = qv_now_ms();
	int n = 0;
	bool again = true;

	/* Timer callbacks may add timers; restart the walk after each call. */
	while (again) {
		again = false;
		for (qv_source *s = l->sources; s; s = s->next) {
			/* A timer added by this iteration's callbacks waits for the
			 * next one: I/O that arrived meanwhile goes first, so a
			 * chain of 0 ms timers cannot starve clients. */
			if (s->dead || s->kind != SOURCE_TIMER || s->deadline_ms > now ||
			    s->born == l->iteration)
				continue;
			s->dead = true;
			s->timer_fn(s, s->userdata);
			n++;
			again = true;
			break;
		}
	}
	return n;
}

int qv_loop_run_once(qv_loop *l, int timeout_ms)
{
	struct epoll_event evs[32];
	int n, dispatched = 0;

	l->iteration++;
	n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), next_timeout(l, timeout_ms));
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return negative_errno();
	}
	l->dispatching++;
	for (int i = 0; i < n; i++) {
		qv_source *s = evs[i].data.ptr;
		if (s->dead)
			continue;
		s->io_fn(s, s->fd, evs[i].events, s->userdata);
		dispatched++;
	}
	dispatched += dispatch_timers(l);
	l->dispatching--;
	if (!l->dispatching)
		sweep_dead(l);
	return dispatched;
}

int qv_loop_run(qv_loop *l)
{
	l->quit = false;
	while (!l->quit) {
		int r = qv_loop_run_once(l, -1);
		if (r < 0)
			return r;
	}
	return l->quit_code;
}

void qv_loop_quit(qv_loop *l, int code)
{
	l->quit = true;
	l->quit_code = code;
}
