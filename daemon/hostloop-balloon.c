/* SPDX-License-Identifier: MIT */
/* The resource loop's balloon (docs/resource-loop.md, "Balloon"): guest
 * statistics polled through QMP into the collector, targets applied through
 * QMP. Both asynchronous: a slow or hostile QEMU delays only its own VM. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "daemon/hostloop-internal.h"
#include "qemu/argv.h"
#include "qemu/instance.h"

/* Statistics older than this are not believed (driver gone, guest hung). */
#define STATS_STALE_MIN_S 10

struct balloon_req {
	struct qv_daemon *d;
	char *name;
	uint64_t target, before; /* set: what was sent, what it replaced */
};

static struct balloon_req *req_new(struct qv_hostloop *h, const struct qv_vm *vm)
{
	struct balloon_req *q = calloc(1, sizeof(*q));

	if (q && !(q->name = strdup(vm->name))) {
		free(q);
		return NULL;
	}
	if (q)
		q->d = h->d;
	return q;
}

static void req_free(struct balloon_req *q)
{
	free(q->name);
	free(q);
}

/* Only non-negative integers (QEMU says -1 for "not reported"). */
static bool stat_get(json_object *stats, const char *key, uint64_t *ret)
{
	json_object *v;

	if (!json_object_object_get_ex(stats, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return false;
	*ret = (uint64_t)json_object_get_int64(v);
	return true;
}

/* qom-get guest-stats: {"stats": {"stat-…": N}, "last-update": T}. */
static bool parse_stats(const struct qv_vm *vm, json_object *ret, struct col_guest *g)
{
	json_object *stats, *v;
	uint64_t mem = vm->spec->memory_mib << 20;

	memset(g, 0, sizeof(*g));
	if (!ret || !json_object_object_get_ex(ret, "stats", &stats) ||
	    !json_object_is_type(stats, json_type_object))
		return false;
	if (json_object_object_get_ex(ret, "last-update", &v) && json_object_is_type(v, json_type_int))
		g->last_update = json_object_get_int64(v);
	/* never reported, or not for a long while */
	unsigned stale = vm->spec->balloon.stats_interval_s * 3;
	stale = stale > STATS_STALE_MIN_S ? stale : STATS_STALE_MIN_S;
	if (g->last_update <= 0 || g->last_update + (int64_t)stale < (int64_t)time(NULL))
		return false;
	bool have_avail = stat_get(stats, "stat-available-memory", &g->available);
	bool have_free = stat_get(stats, "stat-free-memory", &g->free);
	if (!have_avail && !have_free)
		return false;
	if (!have_avail)
		g->available = g->free;
	(void)stat_get(stats, "stat-total-memory", &g->total);
	(void)stat_get(stats, "stat-swap-in", &g->swap_in);
	(void)stat_get(stats, "stat-swap-out", &g->swap_out);
	(void)stat_get(stats, "stat-major-faults", &g->major_faults);
	(void)stat_get(stats, "stat-minor-faults", &g->minor_faults);
	/* a guest cannot have more available than its memory */
	g->available = g->available > mem ? mem : g->available;
	g->valid = true;
	return true;
}

static void on_stats(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *ud)
{
	struct balloon_req *q = ud;
	struct qv_vm *vm = qv_vm_find(q->d, q->name);
	struct qv_hostloop *h = q->d->hostloop;
	struct col_guest g;

	if (vm)
		vm->balloon_stats_busy = false;
	if (vm && h && vm->inst) {
		if (error < 0 || !parse_stats(vm, ret, &g))
			memset(&g, 0, sizeof(g)); /* unknown: the loop neither shrinks nor grows */
		(void)col_vm_set_guest(h->col, vm->name, &g, qv_now_ms() * 1000);
	}
	req_free(q);
}

static void query_stats(struct qv_hostloop *h, struct qv_vm *vm)
{
	struct balloon_req *q;

	if (vm->balloon_stats_busy || !vm->spec->balloon.stats_interval_s || !(q = req_new(h, vm)))
		return;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(QEMU_BALLOON_QOM));
	json_object_object_add(args, "property", json_object_new_string("guest-stats"));
	if (qemu_instance_execute_async(vm->inst, "qom-get", args, QV_VM_QMP_TIMEOUT_MS, on_stats, q,
					NULL) == 0)
		vm->balloon_stats_busy = true;
	else
		req_free(q);
	json_object_put(args);
}

/* A balloon the loop may steer: the VM runs, has a balloon and resources. */
static bool steerable(const struct qv_vm *vm)
{
	return vm->spec->balloon.enabled && vm->spec->has_resources && vm->inst &&
	       vm->state == QV_VM_RUNNING;
}

void qv_hostloop_balloon_sync(struct qv_hostloop *h)
{
	for (struct qv_vm *vm = h->d->vms; vm; vm = vm->next) {
		if (!vm->spec->balloon.enabled || !vm->spec->has_resources || !vm->inst)
			continue;
		/* without cgroups the loop manages only the balloon (the
		 * collector watches the QEMU process: sync_pid_vms) */
		if (h->by_pid && !hl_loop_has_vm(h->loop, vm->name) &&
		    col_vm_index(h->col, vm->name) >= 0)
			(void)hl_loop_add_vm(h->loop, vm->name, NULL, &vm->spec->resources,
					     vm->spec->vcpus, vm->spec->memory_mib << 20);
		if (!hl_loop_has_vm(h->loop, vm->name))
			continue;
		bool on = steerable(vm);
		(void)hl_loop_vm_set_balloon(h->loop, vm->name, on, vm->balloon_target,
					     vm->balloon_actual);
		if (on)
			query_stats(h, vm);
	}
}

static void on_set(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		   void *ud)
{
	struct balloon_req *q = ud;
	struct qv_vm *vm = qv_vm_find(q->d, q->name);

	if (error < 0) {
		log_warning("resource loop: cannot set the balloon of VM %s to %" PRIu64 " MiB: %s",
			    q->name, q->target >> 20,
			    errp && errp->set ? errp->message : strerror(-error));
		/* the loop sees the old target again and decides anew */
		if (vm && vm->balloon_target == q->target)
			vm->balloon_target = q->before;
	}
	req_free(q);
}

void qv_hostloop_balloon_apply(struct qv_hostloop *h, struct hl_change *ch, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct hl_change *c = &ch[i];
		struct qv_vm *vm;
		struct balloon_req *q;

		if (c->knob != HL_K_BALLOON || !c->caller_applies)
			continue;
		if (!(vm = qv_vm_find(h->d, c->vm)) || !steerable(vm) || !(q = req_new(h, vm))) {
			c->error = -ESRCH;
			continue;
		}
		q->target = c->value, q->before = vm->balloon_target;
		json_object *args = json_object_new_object();
		json_object_object_add(args, "value", json_object_new_int64((int64_t)c->value));
		struct qv_error err = {};
		int r = qemu_instance_execute_async(vm->inst, "balloon", args, QV_VM_QMP_TIMEOUT_MS,
						    on_set, q, &err);
		json_object_put(args);
		if (r < 0) {
			c->error = r;
			req_free(q);
			continue;
		}
		/* at once, so the next tick steers from it; undone if QEMU refuses */
		vm->balloon_target = c->value;
		c->applied = true;
	}
}
