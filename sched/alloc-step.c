/* SPDX-License-Identifier: MIT */
/* Moving the written knobs toward the allocation without oscillating. */
#include <string.h>

#include "sched/alloc.h"

const char *hl_knob_name(enum hl_knob k)
{
	switch (k) {
	case HL_K_WEIGHT: return "cpu.weight";
	case HL_K_CPU_MAX: return "cpu.max";
	case HL_K_CPUSET: return "cpuset.cpus";
	case HL_K_MEM_LOW: return "memory.low";
	case HL_K_MEM_HIGH: return "memory.high";
	case HL_K_MEM_MAX: return "memory.max";
	case HL_K_BALLOON: return "balloon";
	case HL_K_CPU_IDLE: return "cpu.idle";
	}
	return "?";
}

void hl_step_params_defaults(struct hl_step_params *sp)
{
	if (!sp->weight_tolerance)
		sp->weight_tolerance = 0.10;
	if (!sp->mem_tolerance)
		sp->mem_tolerance = 0.10;
	if (!sp->mem_tolerance_min)
		sp->mem_tolerance_min = 32ull << 20;
	if (!sp->mem_down_step)
		sp->mem_down_step = 0.25;
	if (!sp->hold)
		sp->hold = 10;
}

static bool weight_moves(uint32_t cur, uint32_t want, double tol)
{
	double d = (double)want - (double)cur;
	return (d < 0 ? -d : d) > tol * (double)cur;
}

/* memory.high: 0 is "max". Returns the next value, or cur if it stays. */
static uint64_t step_high(uint64_t cur, uint64_t want, uint64_t low, uint64_t max,
			  const struct hl_step_params *sp, struct hl_step_state *st)
{
	if (want == cur)
		return cur;
	if (!cur || !want) /* to or from "max": an entitlement change, at once */
		return want;
	int dir = want > cur ? 1 : -1;
	uint64_t diff = dir > 0 ? want - cur : cur - want;
	if (diff < sp->mem_tolerance_min || (double)diff < sp->mem_tolerance * (double)cur)
		return cur;
	/* growing is never held back (a guest that needs memory gets it);
	 * shrinking waits `hold` intervals after a change */
	if (dir < 0 && st->last_dir && st->since < sp->hold)
		return cur;
	if (dir < 0) {
		uint64_t floor = (uint64_t)((double)cur * (1 - sp->mem_down_step));
		want = want < floor ? floor : want;
	}
	if (want < low)
		want = low;
	if (max && want > max)
		want = max;
	return want;
}

unsigned hl_step(const struct hl_alloc *cur, bool have_cur, const struct hl_alloc *want,
		 const struct hl_step_params *sp, struct hl_step_state *st,
		 struct hl_alloc *ret_next)
{
	unsigned mask = 0;

	/* the balloon's hysteresis is in hl_balloon_step: its target moves as
	 * computed; cur->balloon is what the caller last set (also before the
	 * first write) */
	unsigned balloon = want->balloon && want->balloon != cur->balloon ? HL_K_BALLOON : 0;

	st->since++;
	if (!have_cur) {
		*ret_next = *want;
		if (!balloon)
			ret_next->balloon = cur->balloon;
		st->last_dir = 0, st->since = 0;
		/* a new group is not idle: cpu.idle is written when it must be 1 */
		return HL_K_WEIGHT | HL_K_CPU_MAX | HL_K_CPUSET | HL_K_MEM_LOW | HL_K_MEM_HIGH |
		       HL_K_MEM_MAX | balloon | (want->cpu_idle ? HL_K_CPU_IDLE : 0);
	}
	struct hl_alloc next = *cur;
	if (cur->cpu_idle != want->cpu_idle) /* a class change: weight with it */
		next.cpu_idle = want->cpu_idle, next.cpu_weight = want->cpu_weight,
		mask |= HL_K_CPU_IDLE | (cur->cpu_weight != want->cpu_weight ? HL_K_WEIGHT : 0);
	else if (weight_moves(cur->cpu_weight, want->cpu_weight, sp->weight_tolerance))
		next.cpu_weight = want->cpu_weight, mask |= HL_K_WEIGHT;
	if (cur->cpu_max_quota_us != want->cpu_max_quota_us ||
	    cur->cpu_max_period_us != want->cpu_max_period_us) {
		next.cpu_max_quota_us = want->cpu_max_quota_us;
		next.cpu_max_period_us = want->cpu_max_period_us;
		mask |= HL_K_CPU_MAX;
	}
	if (cur->cpuset != want->cpuset || cur->exclusive != want->exclusive)
		next.cpuset = want->cpuset, next.exclusive = want->exclusive, mask |= HL_K_CPUSET;
	if (cur->mem_low != want->mem_low)
		next.mem_low = want->mem_low, mask |= HL_K_MEM_LOW;
	if (cur->mem_max != want->mem_max)
		next.mem_max = want->mem_max, mask |= HL_K_MEM_MAX;
	uint64_t h = step_high(cur->mem_high, want->mem_high, want->mem_low, want->mem_max, sp, st);
	if (h != cur->mem_high) {
		st->last_dir = !cur->mem_high || (h && h > cur->mem_high) ? 1 : -1;
		st->since = 0;
		next.mem_high = h, mask |= HL_K_MEM_HIGH;
	}
	if (balloon)
		next.balloon = want->balloon, mask |= balloon;
	*ret_next = next;
	return mask;
}
