/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by daemon/hostloop.c and daemon/methods-hostloop.c. */
#include "daemon/hostloop.h"
#include "daemon/vm.h"

#define HOSTLOOP_RECENT 128
#define HOSTLOOP_MAX_CHANGES 256

struct hl_recent {
	int64_t time_ms; /* unix ms */
	struct hl_change c;
};

struct qv_hostloop {
	struct qv_daemon *d;
	qv_collector *col;
	hl_loop *loop;
	qv_source *timer;
	unsigned interval_ms;
	enum vm_loop_mode mode;
	bool can_enforce;  /* cpu and memory controllers present */
	bool overloaded;
	uint64_t ticks;
	struct hl_host_caps caps;
	struct hl_recent recent[HOSTLOOP_RECENT]; /* ring of the last changes */
	size_t head, n_recent;
	bool by_pid;       /* no cgroup groups: watch QEMU processes */
	struct qv_metrics_http *metrics;
};

struct qv_hostloop *qv_hostloop_state(struct qv_daemon *d);

/* daemon/hostloop-balloon.c. Before a tick: the loop learns each running
 * balloon VM's target and size and a guest-stats query goes out (its reply
 * feeds the collector for the next tick). After a tick: the loop's balloon
 * targets go to QEMU (asynchronous QMP `balloon`); applied is set on the
 * changes that were sent. */
void qv_hostloop_balloon_sync(struct qv_hostloop *h);
void qv_hostloop_balloon_apply(struct qv_hostloop *h, struct hl_change *ch, size_t n);

/* daemon/hostloop-io.c, before each collector pass: every watched VM's TAP
 * counters from one netlink dump, and a query-blockstats per running VM
 * (asynchronous; its reply is stored when it comes). */
void qv_hostloop_io_sync(struct qv_hostloop *h);
