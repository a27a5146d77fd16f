/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/* Per-VM QMP event rate limiter state (daemon/event-limit.h). */
struct qv_event_limit {
	double tokens;
	int64_t refilled_ms;
	uint64_t dropped;        /* since the VM was defined in this daemon */
	uint64_t unreported;     /* dropped since the last summary */
	int64_t reported_ms;
};
