/* SPDX-License-Identifier: MIT */
/* The collector's fallback for hosts without a usable cgroup v2: a VM's
 * QEMU process read through /proc/PID. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/collect-internal.h"

int col_add_vm_pid(qv_collector *c, const char *name, pid_t pid)
{
	static const char *const files[] = { [P_STAT] = "stat", [P_STATUS] = "status",
					     [P_IO] = "io" };
	char path[64];

	if (col_vm_index(c, name) >= 0)
		return -EEXIST;
	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	struct col_vm *v = col_vm_alloc(c, name);
	if (!v)
		return -ENOMEM;
	v->by_pid = true;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (files[i])
			v->fd[i] = openat(dfd, files[i], O_RDONLY | O_CLOEXEC);
	if (v->fd[P_STAT] < 0) {
		int r = -errno;
		col_vm_free(v);
		return r;
	}
	return col_insert(c, v);
}

static uint64_t kv(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	unsigned long long v = 0;

	if (p)
		sscanf(p + strlen(key), " %llu", &v);
	return v;
}

void col_read_pid(qv_collector *c, struct col_vm *v, struct col_vm_raw *r)
{
	static long hz;
	const char *t;

	if (!hz)
		hz = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
	/* "pid (comm) state ppid ... utime(14) stime(15)"; comm may hold spaces */
	if ((t = col_read_fd(c, v->fd[P_STAT])) && (t = strrchr(t, ')'))) {
		unsigned long long ut, st;
		if (sscanf(t + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			   &st) == 2) {
			r->cpu_usage_usec = (ut + st) * 1000000ull / (unsigned long long)hz;
			r->present |= CG_CPU;
		}
	}
	if ((t = col_read_fd(c, v->fd[P_STATUS]))) {
		r->mem_current = kv(t, "VmRSS:") * 1024;
		r->present |= CG_MEMORY;
	}
	if ((t = col_read_fd(c, v->fd[P_IO]))) {
		r->io_rbytes = kv(t, "read_bytes:");
		r->io_wbytes = kv(t, "write_bytes:");
		r->io_rios = kv(t, "syscr:");
		r->io_wios = kv(t, "syscw:");
		r->present |= CG_IO;
	}
}
