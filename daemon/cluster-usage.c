/* SPDX-License-Identifier: MIT */
/* The CPU a host's VMs use, for the host record and the balancer
 * (docs/cluster.md "Balancer"): each running VM's QEMU process CPU time
 * (/proc/PID/stat utime + stime) since the previous refresh. A host's
 * utilisation is the sum over its capacity in vCPUs: its own VMs, not the
 * machine's load, so hosts that share a machine (tests) or run other work
 * are told apart by what qvisor runs there. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm.h"
#include "qemu/instance.h"

struct cl_cpu {
	struct cl_cpu *next;
	char name[64];
	pid_t pid;
	uint64_t cpu_us;   /* process CPU time at the last sample */
	uint64_t at_ms;    /* monotonic */
	double milli;      /* last rate: millicores */
	bool seen;
};

/* utime + stime of pid in microseconds; 0 if unreadable. */
static uint64_t proc_cpu_us(pid_t pid)
{
	static long hz;
	char path[64], buf[1024];
	unsigned long long ut, st;
	const char *t;
	ssize_t n;

	if (!hz)
		hz = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return 0;
	buf[n] = '\0';
	/* "pid (comm) state ppid ... utime(14) stime(15)"; comm may hold spaces */
	if (!(t = strrchr(buf, ')')) ||
	    sscanf(t + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (ut + st) * 1000000ull / (unsigned long long)hz;
}

static struct cl_cpu *cpu_entry(struct qv_cluster *c, const char *name)
{
	struct cl_cpu *e;

	for (e = c->cpu; e; e = e->next)
		if (streq(e->name, name))
			return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->next = c->cpu;
	c->cpu = e;
	return e;
}

unsigned cl_capacity_vcpus(struct qv_cluster *c)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (c->d->cfg.cluster_capacity_vcpus)
		return c->d->cfg.cluster_capacity_vcpus;
	return cpus > 0 ? (unsigned)cpus : 1;
}

void cl_usage_cpu(struct qv_cluster *c, json_object *use)
{
	json_object *per = json_object_new_object();
	uint64_t now = qv_now_ms();
	double sum = 0;

	for (struct cl_cpu *e = c->cpu; e; e = e->next)
		e->seen = false;
	for (struct qv_vm *vm = c->d->vms; vm; vm = vm->next) {
		pid_t pid = vm->inst ? qemu_instance_pid(vm->inst) : 0;
		struct cl_cpu *e;
		if (pid <= 0 || !(e = cpu_entry(c, vm->name)))
			continue;
		uint64_t us = proc_cpu_us(pid);
		if (e->pid == pid && now > e->at_ms && us >= e->cpu_us)
			e->milli = (double)(us - e->cpu_us) / (double)(now - e->at_ms);
		else
			e->milli = 0; /* first sample of this process */
		e->pid = pid;
		e->cpu_us = us;
		e->at_ms = now;
		e->seen = true;
		sum += e->milli;
		json_object_object_add(per, vm->name, json_object_new_int64((int64_t)e->milli));
	}
	for (struct cl_cpu **p = &c->cpu; *p;) {
		struct cl_cpu *e = *p;
		if (e->seen) {
			p = &e->next;
			continue;
		}
		*p = e->next;
		free(e);
	}
	json_object_object_add(use, "cpu_used_milli", json_object_new_int64((int64_t)sum));
	json_object_object_add(use, "cpu_util", json_object_new_double(
				       sum / (1000.0 * cl_capacity_vcpus(c))));
	json_object_object_add(use, "vm_cpu_milli", per);
}

void cl_usage_free(struct qv_cluster *c)
{
	while (c->cpu) {
		struct cl_cpu *e = c->cpu;
		c->cpu = e->next;
		free(e);
	}
}
