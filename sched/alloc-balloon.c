/* SPDX-License-Identifier: MIT */
/* The balloon target: reclaim from idle guests, give back under pressure. */
#include "sched/alloc.h"

#define MIB (1ull << 20)

void hl_balloon_params_defaults(struct hl_balloon_params *bp)
{
	if (!bp->headroom)
		bp->headroom = 0.25;
	if (!bp->headroom_min)
		bp->headroom_min = 64 * MIB;
	if (!bp->floor_min)
		bp->floor_min = 64 * MIB;
	if (!bp->down_step || bp->down_step >= 1)
		bp->down_step = 0.25;
	if (!bp->tolerance_min)
		bp->tolerance_min = 16 * MIB;
	if (!bp->tolerance)
		bp->tolerance = 0.05;
	if (!bp->hold)
		bp->hold = 10;
	if (!bp->every)
		bp->every = 3;
	if (!bp->major_faults_ps)
		bp->major_faults_ps = 50;
	if (!bp->swap_in_bps)
		bp->swap_in_bps = 1.0 * MIB;
}

static uint64_t round_mib(uint64_t v)
{
	return (v + MIB - 1) & ~(MIB - 1);
}

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Why the guest needs its memory back now, or HL_BW_NONE. */
static enum hl_balloon_why pressure(const struct hl_balloon_in *in,
				    const struct hl_balloon_params *bp, uint64_t headroom)
{
	if (!in->stats)
		return HL_BW_NONE;
	if (in->available < headroom / 2)
		return HL_BW_LOW;
	if (in->major_faults_ps > bp->major_faults_ps)
		return HL_BW_FAULTS;
	if (in->swap_in_bps > bp->swap_in_bps)
		return HL_BW_SWAP;
	return HL_BW_NONE;
}

uint64_t hl_balloon_step(const struct hl_balloon_in *in, const struct hl_balloon_params *bp,
			 struct hl_balloon_state *st, enum hl_balloon_why *ret_why)
{
	uint64_t ceil = in->memory;
	if (in->limit && in->limit < ceil)
		ceil = in->limit;
	uint64_t floor = in->reservation > bp->floor_min ? in->reservation : bp->floor_min;
	floor = floor > ceil ? ceil : round_mib(floor);
	uint64_t cur = in->target ? in->target : in->memory;
	uint64_t size = in->actual ? in->actual : cur;
	uint64_t used = in->stats && in->available < size ? size - in->available : 0;
	uint64_t headroom = (uint64_t)((double)used * bp->headroom);
	headroom = headroom > bp->headroom_min ? headroom : bp->headroom_min;

	st->floor = floor, st->ceil = ceil;
	st->want = in->stats ? clamp(round_mib(used + headroom), floor, ceil) : cur;
	st->since++;
	*ret_why = HL_BW_NONE;
	if (cur < floor || cur > ceil) {
		*ret_why = HL_BW_BOUNDS;
		st->since = 0;
		return clamp(cur, floor, ceil);
	}
	enum hl_balloon_why why = pressure(in, bp, headroom);
	if (why != HL_BW_NONE) {
		st->calm = 0;
		if (cur >= ceil)
			return cur;
		*ret_why = why;
		st->since = 0;
		return ceil;
	}
	st->calm++;
	if (!in->stats || st->calm < bp->hold || st->since < bp->every)
		return cur;
	/* the guest is still inflating toward the last target: wait for it */
	if (in->actual && in->actual > cur + bp->tolerance_min)
		return cur;
	uint64_t tol = (uint64_t)((double)cur * bp->tolerance);
	tol = tol > bp->tolerance_min ? tol : bp->tolerance_min;
	if (st->want + tol > cur)
		return cur;
	uint64_t step_floor = round_mib((uint64_t)((double)cur * (1 - bp->down_step)));
	uint64_t next = st->want > step_floor ? st->want : step_floor;
	next = clamp(next, floor, ceil);
	if (next >= cur)
		return cur;
	*ret_why = HL_BW_IDLE;
	st->since = 0;
	return next;
}
