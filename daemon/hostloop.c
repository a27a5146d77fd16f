/* SPDX-License-Identifier: MIT */
/* qvisord's host resource loop: timer, VM registration, events, admission. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/hostloop-internal.h"
#include "daemon/metrics-http.h"
#include "qemu/instance.h"
#include "daemon/vm-cgroup-internal.h"

struct qv_hostloop *qv_hostloop_state(struct qv_daemon *d)
{
	return d->hostloop;
}

static void host_caps(struct hl_host_caps *caps)
{
	char buf[4096];
	uint64_t total = 0, avail = 0;
	FILE *f = fopen("/proc/meminfo", "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	(void)col_parse_meminfo(buf, &total, &avail);
	long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	*caps = (struct hl_host_caps){ .ncpus = ncpus > 0 ? (unsigned)ncpus : 1,
				       .mem_total = total };
}

static void remember(struct qv_hostloop *h, const struct hl_change *c)
{
	h->recent[h->head] = (struct hl_recent){ .time_ms = qv_unix_ms(), .c = *c };
	h->head = (h->head + 1) % HOSTLOOP_RECENT;
	if (h->n_recent < HOSTLOOP_RECENT)
		h->n_recent++;
}

/* One "allocation" event per VM and tick, listing that VM's changes. */
static void publish(struct qv_hostloop *h, const struct hl_change *ch, size_t n)
{
	for (size_t i = 0; i < n;) {
		json_object *data = json_object_new_object(), *list = json_object_new_array();
		size_t j = i;
		for (; j < n && streq(ch[j].vm, ch[i].vm); j++) {
			json_object_array_add(list, hl_change_to_json(&ch[j]));
			remember(h, &ch[j]);
			if (ch[j].error)
				log_warning("resource loop: cannot write %s of VM %s: %s",
					    hl_knob_name(ch[j].knob), ch[j].vm, strerror(-ch[j].error));
		}
		json_object_object_add(data, "changes", list);
		qv_daemon_emit(h->d, ch[i].vm, "allocation", data);
		i = j;
	}
}

static void check_overload(struct qv_hostloop *h)
{
	char why[160];
	bool over = hl_loop_overloaded(h->loop, why, sizeof(why));

	if (over == h->overloaded)
		return;
	h->overloaded = over;
	if (over)
		log_warning("resource loop: host overloaded: %s", why);
	else
		log_info("resource loop: host no longer overloaded");
	qv_daemon_emit(h->d, NULL, "host-overload", hl_loop_pressure_json(h->loop));
}

/* Without cgroup groups, running VMs are watched through their QEMU pid
 * (metrics only); a restarted QEMU is picked up at the next tick. */
static void sync_pid_vms(struct qv_hostloop *h)
{
	for (struct qv_vm *vm = h->d->vms; h->by_pid && vm; vm = vm->next) {
		if (!vm->inst || col_vm_index(h->col, vm->name) >= 0)
			continue;
		pid_t pid = qemu_instance_pid(vm->inst);
		if (pid > 0)
			(void)col_add_vm_pid(h->col, vm->name, pid);
	}
}

static void on_tick(qv_source *s, void *ud)
{
	struct qv_hostloop *h = ud;
	struct hl_change ch[HOSTLOOP_MAX_CHANGES];

	h->timer = NULL;
	sync_pid_vms(h);
	uint64_t t0 = qv_now_ms();
	qv_hostloop_balloon_sync(h);
	qv_hostloop_io_sync(h);
	col_poll(h->col, t0 * 1000);
	size_t n = hl_loop_tick(h->loop, ch, HOSTLOOP_MAX_CHANGES);
	qv_hostloop_balloon_apply(h, ch, n);
	publish(h, ch, n);
	check_overload(h);
	h->ticks++;
	uint64_t spent = qv_now_ms() - t0;
	uint64_t next = spent < h->interval_ms ? h->interval_ms - spent : 1;
	if (qv_loop_add_timer(h->d->loop, next, on_tick, h, &h->timer) < 0)
		log_error("resource loop: cannot re-arm its timer; the loop stops");
}

static int parse_mode(const char *s, bool can_enforce, enum vm_loop_mode *ret)
{
	if (!s || streq(s, "auto")) {
		*ret = can_enforce ? VM_LOOP_ENFORCE : VM_LOOP_ADVISE;
		return 0;
	}
	int m = vm_loop_mode_from_string(s);
	if (m < 0 || m == VM_LOOP_HOST)
		return -EINVAL;
	*ret = (enum vm_loop_mode)m;
	return 0;
}

/* Running VMs' groups, in the slice or (latency VMs) the partition slice. */
static void adopt_running(struct qv_hostloop *h, struct cg_daemon *cg)
{
	const char *slice = cg ? cg_manager_slice_path(cg->mgr) : NULL;
	const char *part = cg ? cg_manager_part_slice_path(cg->mgr) : NULL;
	char group[80], dir[1024];

	for (struct qv_vm *vm = h->d->vms; slice && vm; vm = vm->next) {
		if (!qv_vm_is_active(vm))
			continue;
		qv_cgroup_group_name(vm->name, group, sizeof(group));
		snprintf(dir, sizeof(dir), "%s/%s", slice, group);
		if (access(dir, F_OK) < 0 && part)
			snprintf(dir, sizeof(dir), "%s/%s", part, group);
		if (access(dir, F_OK) == 0)
			qv_hostloop_vm_added(vm, dir);
	}
}

int qv_hostloop_load(struct qv_daemon *d)
{
	struct qv_hostloop *h = calloc(1, sizeof(*h));
	struct cg_daemon *cg = qv_cgroup_state(d);
	int r;

	if (!h)
		return -ENOMEM;
	h->d = d;
	h->can_enforce = cg && (cg_manager_controllers(cg->mgr) & (CG_CPU | CG_MEMORY)) ==
				       (CG_CPU | CG_MEMORY);
	if (parse_mode(d->cfg.loop_mode, h->can_enforce, &h->mode) < 0) {
		free(h);
		log_error("--loop-mode must be off, advise, enforce or auto");
		return -EINVAL;
	}
	h->interval_ms = d->cfg.loop_interval_ms ? d->cfg.loop_interval_ms : 1000;
	struct hl_loop_opts o = { .mode = h->mode };
	host_caps(&o.caps);
	o.caps.exclusive_min_cpus = d->cfg.exclusive_min_cpus;
	h->caps = o.caps;
	if ((r = col_new(NULL, &h->col)) < 0 || (r = hl_loop_new(&o, h->col, &h->loop)) < 0) {
		col_free(h->col);
		free(h);
		return r;
	}
	h->by_pid = !cg || !cg_manager_slice_path(cg->mgr);
	d->hostloop = h;
	if (d->cfg.metrics_listen &&
	    (r = qv_metrics_http_start(d, d->cfg.metrics_listen, &h->metrics)) < 0) {
		qv_hostloop_free(d);
		return r;
	}
	adopt_running(h, cg);
	if (qv_loop_add_timer(d->loop, h->interval_ms, on_tick, h, &h->timer) < 0)
		log_warning("resource loop: cannot arm its timer, ignoring");
	log_info("resource loop: mode %s, interval %u ms, %u CPUs%s", vm_loop_mode_to_string(h->mode),
		 h->interval_ms, h->caps.ncpus,
		 h->can_enforce ? "" : " (cpu/memory controllers missing: only balloons are enforced)");
	return 0;
}

void qv_hostloop_rpc_ready(struct qv_daemon *d)
{
	if (d->hostloop)
		qv_metrics_http_observe_rpc(d->hostloop->metrics);
}

void qv_hostloop_free(struct qv_daemon *d)
{
	struct qv_hostloop *h = d->hostloop;

	if (!h)
		return;
	qv_source_remove(h->timer);
	h->metrics = qv_metrics_http_stop(h->metrics);
	hl_loop_free(h->loop);
	col_free(h->col);
	free(h);
	d->hostloop = NULL;
}

static struct hl_vm_in vm_in(const struct qv_vm *vm)
{
	return (struct hl_vm_in){ .name = vm->name, .res = &vm->spec->resources,
				  .vcpus = vm->spec->vcpus,
				  .guest_mem = vm->spec->memory_mib << 20 };
}

int qv_hostloop_admit(struct qv_vm *vm, struct qv_error *errp)
{
	struct qv_hostloop *h = vm->d->hostloop;
	struct hl_vm_in run[256];
	size_t n = 0;

	if (!h || h->mode == VM_LOOP_OFF || !vm->spec->has_resources)
		return 0;
	for (struct qv_vm *o = vm->d->vms; o && n < ARRAY_SIZE(run); o = o->next)
		if (o != vm && qv_vm_is_active(o) && o->spec->has_resources)
			run[n++] = vm_in(o);
	struct hl_vm_in cand = vm_in(vm);
	return hl_admit(&h->caps, run, n, &cand, errp);
}

void qv_hostloop_vm_added(struct qv_vm *vm, const char *dir)
{
	struct qv_hostloop *h = vm->d->hostloop;

	if (!h || !dir || hl_loop_has_vm(h->loop, vm->name))
		return;
	/* Without a resources section the VM is only watched: its static
	 * limits{} stay the operator's. */
	struct vm_resources res = vm->spec->resources;
	if (!vm->spec->has_resources)
		res.mode = VM_LOOP_OFF;
	int r = hl_loop_add_vm(h->loop, vm->name, dir, &res, vm->spec->vcpus,
			       vm->spec->memory_mib << 20);
	if (r < 0) {
		log_warning("resource loop: cannot watch VM %s (%s): %s, ignoring", vm->name, dir,
			    strerror(-r));
		return;
	}
	/* a latency VM's group in the partition slice: the loop fits the slice */
	struct cg_daemon *cg = qv_cgroup_state(vm->d);
	const char *part = cg ? cg_manager_part_slice_path(cg->mgr) : NULL;
	size_t n = part ? strlen(part) : 0;
	if (part && strncmp(dir, part, n) == 0 && dir[n] == '/' &&
	    (r = hl_loop_vm_set_partition_slice(h->loop, vm->name, part)) < 0)
		log_warning("resource loop: VM %s: cannot open %s: %s", vm->name, part,
			    strerror(-r));
}

bool qv_hostloop_wants_partition(const struct qv_vm *vm)
{
	const struct qv_hostloop *h = vm->d->hostloop;
	const struct vm_resources *r = &vm->spec->resources;
	struct cg_daemon *cg = qv_cgroup_state(vm->d);

	if (!h || !h->can_enforce || !cg || !vm->spec->has_resources ||
	    r->klass != VM_CLASS_LATENCY || !(cg_manager_controllers(cg->mgr) & CG_CPUSET))
		return false;
	enum vm_loop_mode host = hl_loop_mode(h->loop);
	return host != VM_LOOP_OFF &&
	       (r->mode == VM_LOOP_HOST ? host : r->mode) == VM_LOOP_ENFORCE;
}

void qv_hostloop_vm_removed(struct qv_vm *vm)
{
	struct qv_hostloop *h = vm->d->hostloop;

	if (h && hl_loop_remove_vm(h->loop, vm->name) < 0)
		(void)col_remove_vm(h->col, vm->name); /* watched by pid */
}

void qv_hostloop_view(struct qv_daemon *d, struct qv_hostloop_view *ret)
{
	struct qv_hostloop *h = d->hostloop;

	ret->col = h ? h->col : NULL;
	ret->loop = h ? h->loop : NULL;
}
