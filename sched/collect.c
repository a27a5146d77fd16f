/* SPDX-License-Identifier: MIT */
/* The collector: per-VM cgroup files and host /proc files, read once per
 * pass through descriptors opened when the VM was added. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/collect-internal.h"

static const char *const vm_files[F_N] = {
	"cpu.stat", "memory.current", "memory.stat", "memory.events", "io.stat",
	"cpu.pressure", "memory.pressure", "io.pressure",
};
static const char *const host_files[H_N] = {
	"stat", "meminfo", "pressure/cpu", "pressure/memory", "pressure/io",
};

void col_vm_free(struct col_vm *v)
{
	if (!v)
		return;
	for (int i = 0; i < F_N; i++)
		if (v->fd[i] >= 0)
			close(v->fd[i]);
	col_ring_release(&v->ring);
	free(v->name);
	free(v);
}

int col_new(const struct col_opts *o, qv_collector **ret)
{
	qv_collector *c = calloc(1, sizeof(*c));
	char path[512];

	if (!c)
		return -ENOMEM;
	if (o)
		c->o = *o;
	c->o.fine_points = c->o.fine_points ?: 3600;
	c->o.coarse_points = c->o.coarse_points ?: 1440;
	c->o.coarse_every = c->o.coarse_every ?: 60;
	for (int i = 0; i < H_N; i++) {
		snprintf(path, sizeof(path), "%s/%s", c->o.proc_root ?: "/proc", host_files[i]);
		c->hfd[i] = open(path, O_RDONLY | O_CLOEXEC);
	}
	c->host.ncpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	*ret = c;
	return 0;
}

qv_collector *col_free(qv_collector *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_vms; i++)
		col_vm_free(c->vms[i]);
	free(c->vms);
	for (int i = 0; i < H_N; i++)
		if (c->hfd[i] >= 0)
			close(c->hfd[i]);
	free(c);
	return NULL;
}

void col_freep(qv_collector **c)
{
	if (c)
		*c = col_free(*c);
}

int col_vm_index(const qv_collector *c, const char *name)
{
	for (size_t i = 0; i < c->n_vms; i++)
		if (streq(c->vms[i]->name, name))
			return (int)i;
	return -ENOENT;
}

struct col_vm *col_vm_alloc(const qv_collector *c, const char *name)
{
	struct col_vm *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	for (int i = 0; i < F_N; i++)
		v->fd[i] = -1;
	if (!(v->name = strdup(name)) ||
	    col_ring_init(&v->ring, c->o.fine_points, c->o.coarse_points, c->o.coarse_every) < 0) {
		col_vm_free(v);
		return NULL;
	}
	return v;
}

int col_insert(qv_collector *c, struct col_vm *v)
{
	if (c->n_vms == c->cap_vms) {
		size_t cap = c->cap_vms ? c->cap_vms * 2 : 16;
		struct col_vm **n = realloc(c->vms, cap * sizeof(*n));
		if (!n) {
			col_vm_free(v);
			return -ENOMEM;
		}
		c->vms = n, c->cap_vms = cap;
	}
	c->vms[c->n_vms++] = v;
	return 0;
}

int col_add_vm(qv_collector *c, const char *name, const char *dir)
{
	if (col_vm_index(c, name) >= 0)
		return -EEXIST;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	struct col_vm *v = col_vm_alloc(c, name);
	if (!v)
		return -ENOMEM;
	/* A file that is missing (controller not enabled) stays -1. */
	for (int i = 0; i < F_N; i++)
		v->fd[i] = openat(dfd, vm_files[i], O_RDONLY | O_CLOEXEC);
	return col_insert(c, v);
}

bool col_vm_by_pid(const qv_collector *c, size_t i)
{
	return i < c->n_vms && c->vms[i]->by_pid;
}

int col_remove_vm(qv_collector *c, const char *name)
{
	int i = col_vm_index(c, name);

	if (i < 0)
		return i;
	col_vm_free(c->vms[i]);
	memmove(&c->vms[i], &c->vms[i + 1], (c->n_vms - (size_t)i - 1) * sizeof(*c->vms));
	c->n_vms--;
	return 0;
}

/* pread from 0: cgroup and proc files regenerate their text on each read. */
const char *col_read_fd(qv_collector *c, int fd)
{
	ssize_t n;

	if (fd < 0)
		return NULL;
	do
		n = pread(fd, c->buf, sizeof(c->buf) - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return NULL;
	c->buf[n] = '\0';
	return c->buf;
}

size_t col_vm_count(const qv_collector *c)
{
	return c->n_vms;
}

const char *col_vm_name(const qv_collector *c, size_t i)
{
	return i < c->n_vms ? c->vms[i]->name : NULL;
}

const struct col_vm_raw *col_vm_raw(const qv_collector *c, size_t i)
{
	return i < c->n_vms && c->vms[i]->have_raw ? &c->vms[i]->raw : NULL;
}

const struct col_point *col_vm_last(const qv_collector *c, size_t i)
{
	if (i >= c->n_vms)
		return NULL;
	const struct col_vm *v = c->vms[i];
	return v->have_prev && !v->stale ? &v->last : NULL;
}

size_t col_vm_history(const qv_collector *c, size_t i, bool coarse, struct col_point *ret,
		      size_t max)
{
	return i < c->n_vms ? col_ring_copy(&c->vms[i]->ring, coarse, ret, max) : 0;
}

const struct col_host *col_host(const qv_collector *c)
{
	return &c->host;
}
