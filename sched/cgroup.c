/* SPDX-License-Identifier: MIT */
/* The cgroup manager: backend choice and the backend-neutral front. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "sched/cgroup-internal.h"

#define DEFAULT_SLICE "qvisor.slice"

unsigned cg_limits_required(const struct cg_limits *lim)
{
	const struct vm_limits *l = &lim->l;
	unsigned need = 0;

	if (l->cpu_max_quota_us || l->cpu_weight)
		need |= CG_CPU;
	if (l->cpuset_cpus || l->cpuset_mems)
		need |= CG_CPUSET;
	if (l->memory_max || l->memory_high || l->memory_swap_max >= 0)
		need |= CG_MEMORY;
	if (l->pids_max)
		need |= CG_PIDS;
	for (size_t i = 0; i < lim->n_io; i++) {
		const struct cg_io_limit *io = &lim->io[i];
		if (io->rbps || io->wbps || io->riops || io->wiops || io->weight)
			need |= CG_IO;
	}
	return need;
}

static bool slice_name_valid(const char *s)
{
	if (!s[0] || strlen(s) > 128 || s[0] == '.' || strchr(s, '/'))
		return false;
	return true;
}

int cg_manager_new(const struct cg_manager_opts *o, cg_manager **ret, struct qv_error *errp)
{
	static const struct cg_manager_opts none = {};
	cg_manager *m;
	int r;

	if (!o)
		o = &none;
	if (o->slice && !slice_name_valid(o->slice))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid cgroup slice name \"%s\"", o->slice);
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->slice_fd = -1;
	m->part_fd = -1;
	cg_host_detect(o->mountinfo, o->root, &m->host);
	if (o->self)
		snprintf(m->host.self, sizeof(m->host.self), "%s", o->self);
	m->slice_name = strdup(o->slice ? o->slice : DEFAULT_SLICE);
	if (!m->slice_name) {
		cg_manager_free(m);
		return -ENOMEM;
	}
	if (o->force_backend)
		m->be = streq(o->force_backend, "unified") ? &cg_backend_unified : &cg_backend_none;
	else
		/* v2 is worth using when it offers at least one of our controllers. */
		m->be = m->host.mount[0] && m->host.v2_controllers ? &cg_backend_unified
								   : &cg_backend_none;
	r = m->be->setup(m, o, errp);
	if (r < 0) {
		cg_manager_free(m);
		return r;
	}
	log_debug("cgroup backend %s, slice %s", m->be->id, m->slice_path ? m->slice_path : "-");
	*ret = m;
	return 0;
}

cg_manager *cg_manager_free(cg_manager *m)
{
	if (!m)
		return NULL;
	if (m->be && m->be->teardown)
		m->be->teardown(m);
	if (m->slice_fd >= 0)
		close(m->slice_fd);
	if (m->part_fd >= 0)
		close(m->part_fd);
	free(m->part_path);
	free(m->slice_name);
	free(m->slice_path);
	free(m->parent_path);
	free(m->base_path);
	free(m);
	return NULL;
}

void cg_manager_freep(cg_manager **m)
{
	*m = cg_manager_free(*m);
}

const struct cg_host *cg_manager_host(const cg_manager *m)
{
	return &m->host;
}

const char *cg_manager_backend_id(const cg_manager *m)
{
	return m->be->id;
}

unsigned cg_manager_controllers(const cg_manager *m)
{
	return m->controllers;
}

const char *cg_manager_slice_path(const cg_manager *m)
{
	return m->slice_path;
}

int cg_manager_check(const cg_manager *m, const struct cg_limits *lim, struct qv_error *errp)
{
	unsigned need = cg_limits_required(lim), missing = need & ~m->controllers;
	char names[96], layout[512];

	if (!missing)
		return 0;
	return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
			    "cannot enforce the requested limits: controller%s %s not available "
			    "to qvisor (backend %s; %s)",
			    (missing & (missing - 1)) ? "s" : "",
			    cg_controllers_format(missing, names, sizeof(names)), m->be->id,
			    cg_host_describe(&m->host, layout, sizeof(layout)));
}

int cg_manager_reconcile(cg_manager *m, bool (*keep)(const char *, void *), void *ud)
{
	return m->be->reconcile ? m->be->reconcile(m, keep, ud) : 0;
}

int cg_manager_destroy(cg_manager *m)
{
	return m->be->destroy ? m->be->destroy(m) : 0;
}

static int group_new(cg_manager *m, const char *name, bool create, bool excl, cg_group **ret,
		     struct qv_error *errp)
{
	cg_group *g;
	int r;

	if (!slice_name_valid(name))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid cgroup name \"%s\"", name);
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->m = m;
	g->fd = -1;
	g->excl = excl;
	g->name = strdup(name);
	if (!g->name) {
		cg_group_free(g);
		return -ENOMEM;
	}
	r = m->be->group_open(m, g, create, errp);
	if (r < 0) {
		cg_group_free(g);
		return r;
	}
	*ret = g;
	return 0;
}

int cg_group_create(cg_manager *m, const char *name, cg_group **ret, struct qv_error *errp)
{
	return group_new(m, name, true, false, ret, errp);
}

int cg_group_create_exclusive(cg_manager *m, const char *name, cg_group **ret,
			      struct qv_error *errp)
{
	return group_new(m, name, true, m->be == &cg_backend_unified, ret, errp);
}

/* In the slice, else in the partition slice (a latency VM's). */
int cg_group_open(cg_manager *m, const char *name, cg_group **ret, struct qv_error *errp)
{
	struct qv_error e = { 0 };
	int r = group_new(m, name, false, false, ret, &e);

	if (r == -ENOENT && m->part_fd >= 0 && group_new(m, name, false, true, ret, NULL) == 0)
		r = 0;
	else if (r < 0 && errp && !errp->set)
		*errp = e;
	return r;
}

int cg_group_fd(const cg_group *g)
{
	return g->fd;
}

const char *cg_group_path(const cg_group *g)
{
	return g->path;
}

int cg_group_apply(cg_group *g, const struct cg_limits *lim, const struct cg_limits *old,
		   struct qv_error *errp)
{
	int r = cg_manager_check(g->m, lim, errp);
	return r < 0 ? r : g->m->be->apply(g, lim, old, errp);
}

int cg_group_read_stats(cg_group *g, struct cg_stats *ret, struct qv_error *errp)
{
	return g->m->be->read_stats(g, ret, errp);
}

int cg_group_attach(cg_group *g, pid_t pid, struct qv_error *errp)
{
	return g->m->be->attach(g, pid, errp);
}

int cg_group_kill(cg_group *g)
{
	return g->m->be->kill(g);
}

int cg_group_remove(cg_group *g, int timeout_ms)
{
	int r = g->m->be->remove(g, timeout_ms);
	cg_group_free(g);
	return r;
}

cg_group *cg_group_free(cg_group *g)
{
	if (!g)
		return NULL;
	if (g->fd >= 0)
		close(g->fd);
	free(g->name);
	free(g->path);
	free(g);
	return NULL;
}

void cg_group_freep(cg_group **g)
{
	*g = cg_group_free(*g);
}
