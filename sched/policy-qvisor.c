/* SPDX-License-Identifier: MIT */
#include "sched/policy-internal.h"

int qv_pol_round_qvisor(struct qv_pol_dc *dc, const struct qv_pol_cfg *cfg, struct qv_pol_plan *plan)
{
	return 0;
}
