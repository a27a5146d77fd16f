/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

/* A small epoll event loop: fd sources and one-shot monotonic timers.
 * Single-threaded. Callbacks may add or remove any source, including their
 * own, from inside a callback. */

typedef struct qv_loop qv_loop;
typedef struct qv_source qv_source;

/* revents is the epoll event mask (EPOLLIN, EPOLLHUP, ...). */
typedef void (*qv_io_fn)(qv_source *s, int fd, uint32_t revents, void *userdata);
typedef void (*qv_timer_fn)(qv_source *s, void *userdata);

int qv_loop_new(qv_loop **ret_loop);
qv_loop *qv_loop_free(qv_loop *loop);
void qv_loop_freep(qv_loop **loop);

/* Watch fd for events; the loop does not own fd. */
int qv_loop_add_io(qv_loop *loop, int fd, uint32_t events, qv_io_fn fn, void *userdata,
		   qv_source **ret_source);
int qv_source_set_events(qv_source *s, uint32_t events);
/* Fire once, after_ms from now, and never in the loop iteration whose
 * callbacks added it (pending I/O is dispatched first). */
int qv_loop_add_timer(qv_loop *loop, uint64_t after_ms, qv_timer_fn fn, void *userdata,
		      qv_source **ret_source);
/* Detach and free a source; NULL is fine. Returns NULL. */
qv_source *qv_source_remove(qv_source *s);

/* Run one iteration: wait at most timeout_ms (-1 = until something happens,
 * bounded by the nearest timer). Returns number of dispatched callbacks or -errno. */
int qv_loop_run_once(qv_loop *loop, int timeout_ms);
/* Run until qv_loop_quit(). */
int qv_loop_run(qv_loop *loop);
void qv_loop_quit(qv_loop *loop, int code);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t qv_now_ms(void);
