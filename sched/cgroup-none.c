/* SPDX-License-Identifier: MIT */
/* The "none" backend: hybrid, legacy or no cgroup2. Groups are no-ops (QEMU
 * stays in the daemon's cgroup); any limit is refused by cg_manager_check(),
 * which names the missing controllers and the layout. */
#include <errno.h>

#include "sched/cgroup-internal.h"

static int none_setup(cg_manager *m, const struct cg_manager_opts *o, struct qv_error *errp)
{
	m->controllers = 0;
	return 0;
}

static int none_group_open(cg_manager *m, cg_group *g, bool create, struct qv_error *errp)
{
	g->fd = -1;
	return 0;
}

static int none_apply(cg_group *g, const struct cg_limits *lim, const struct cg_limits *old,
		      struct qv_error *errp)
{
	/* cg_manager_check() already refused anything that needs a controller. */
	return 0;
}

static int none_read_stats(cg_group *g, struct cg_stats *ret, struct qv_error *errp)
{
	char layout[512];
	return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
			    "no per-VM statistics: qvisor has no cgroup v2 controllers here (%s)",
			    cg_host_describe(&g->m->host, layout, sizeof(layout)));
}

static int none_attach(cg_group *g, pid_t pid, struct qv_error *errp)
{
	return 0;
}

static int none_kill(cg_group *g)
{
	return -EOPNOTSUPP;
}

static int none_remove(cg_group *g, int timeout_ms)
{
	return 0;
}

const struct cgroup_backend cg_backend_none = {
	.id = "none",
	.setup = none_setup,
	.group_open = none_group_open,
	.apply = none_apply,
	.read_stats = none_read_stats,
	.attach = none_attach,
	.kill = none_kill,
	.remove = none_remove,
};
