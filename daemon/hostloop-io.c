/* SPDX-License-Identifier: MIT */
/* The collector's NIC and disk counters: TAPs through netlink (one dump per
 * interval for all VMs), disks through QMP query-blockstats (asynchronous,
 * one in flight per VM). QEMU is hostile: only non-negative integers are
 * taken, names are bounded. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hostloop-internal.h"
#include "daemon/netreg.h"
#include "daemon/vm-nics-internal.h"
#include "net/link.h"
#include "qemu/instance.h"

static const struct qv_link_stats *find_link(const struct qv_link_stats *v, size_t n,
					     const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(v[i].name, name))
			return &v[i];
	return NULL;
}

static void add_nic(struct col_nic *out, size_t *n, const struct qv_link_stats *l)
{
	if (!l || *n >= COL_NICS_MAX)
		return;
	struct col_nic *c = &out[(*n)++];
	snprintf(c->name, sizeof(c->name), "%s", l->name);
	/* the guest's view: what the TAP transmits, the guest receives */
	c->rx_bytes = l->tx_bytes, c->tx_bytes = l->rx_bytes;
	c->rx_packets = l->tx_packets, c->tx_packets = l->rx_packets;
	c->rx_drops = l->tx_dropped, c->tx_drops = l->rx_dropped;
}

static void sync_nics(struct qv_hostloop *h, uint64_t now_us)
{
	struct qv_netreg *reg = h->d->net_state; /* no TAP without it */
	struct qv_link_stats *links = NULL;
	struct qv_error err = {};
	size_t n = 0;

	if (!reg)
		return;
	if (qv_link_stats_dump(reg->nl, &links, &n, &err) < 0) {
		log_debug("resource loop: no link counters: %s", err.message);
		return;
	}
	for (struct qv_vm *vm = h->d->vms; vm; vm = vm->next) {
		struct vm_nics *s = vm->nic_state;
		struct col_nic nics[COL_NICS_MAX];
		char tap[IFNAMSIZ];
		size_t k = 0;
		if (!vm->inst || col_vm_index(h->col, vm->name) < 0)
			continue;
		for (size_t i = 0; i < vm->spec->n_nics && i < VM_NICS_MAX; i++)
			if (qv_vm_tap_name(vm, (unsigned)i, tap) == 0)
				add_nic(nics, &k, find_link(links, n, tap));
		for (size_t i = 0; s && i < HP_SLOTS; i++)
			if (s->hp[i].used)
				add_nic(nics, &k, find_link(links, n, s->hp[i].tap));
		(void)col_vm_set_nics(h->col, vm->name, nics, k, now_us);
	}
	free(links);
}

struct bs_req {
	struct qv_daemon *d;
	char *name;
};

static uint64_t stat_u64(json_object *stats, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(stats, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return 0;
	return (uint64_t)json_object_get_int64(v);
}

/* [{device, qdev?, node-name?, stats{rd_bytes, ...}}] */
static size_t parse_blockstats(json_object *ret, struct col_disk *out)
{
	size_t n = 0;

	if (!ret || !json_object_is_type(ret, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(ret) && n < COL_DISKS_MAX; i++) {
		json_object *e = json_object_array_get_idx(ret, i), *st, *v;
		const char *name = NULL;
		static const char *const keys[] = { "node-name", "device", "qdev" };
		if (!json_object_object_get_ex(e, "stats", &st))
			continue;
		for (size_t k = 0; k < ARRAY_SIZE(keys) && (!name || !name[0]); k++)
			if (json_object_object_get_ex(e, keys[k], &v) &&
			    json_object_is_type(v, json_type_string))
				name = json_object_get_string(v);
		if (!name || !name[0])
			continue;
		struct col_disk *d = &out[n++];
		snprintf(d->name, sizeof(d->name), "%s", name);
		d->rd_bytes = stat_u64(st, "rd_bytes");
		d->wr_bytes = stat_u64(st, "wr_bytes");
		d->rd_ops = stat_u64(st, "rd_operations");
		d->wr_ops = stat_u64(st, "wr_operations");
		d->flush_ops = stat_u64(st, "flush_operations");
		d->rd_time_ns = stat_u64(st, "rd_total_time_ns");
		d->wr_time_ns = stat_u64(st, "wr_total_time_ns");
	}
	return n;
}

static void on_blockstats(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			  void *ud)
{
	struct bs_req *q = ud;
	struct qv_vm *vm = qv_vm_find(q->d, q->name);
	struct qv_hostloop *h = q->d->hostloop;
	struct col_disk disks[COL_DISKS_MAX];

	if (vm)
		vm->blockstats_busy = false;
	if (vm && h && error >= 0) {
		size_t n = parse_blockstats(ret, disks);
		(void)col_vm_set_disks(h->col, vm->name, disks, n, qv_now_ms() * 1000);
	}
	free(q->name);
	free(q);
}

static void query_blockstats(struct qv_hostloop *h, struct qv_vm *vm)
{
	struct bs_req *q;

	if (vm->blockstats_busy || !vm->spec->n_disks ||
	    (vm->state != QV_VM_RUNNING && vm->state != QV_VM_PAUSED) ||
	    col_vm_index(h->col, vm->name) < 0 || !(q = calloc(1, sizeof(*q))))
		return;
	q->d = h->d;
	if (!(q->name = strdup(vm->name)) ||
	    qemu_instance_execute_async(vm->inst, "query-blockstats", NULL, QV_VM_QMP_TIMEOUT_MS,
					on_blockstats, q, NULL) < 0) {
		free(q->name);
		free(q);
		return;
	}
	vm->blockstats_busy = true;
}

void qv_hostloop_io_sync(struct qv_hostloop *h)
{
	uint64_t now_us = qv_now_ms() * 1000;

	sync_nics(h, now_us);
	for (struct qv_vm *vm = h->d->vms; vm; vm = vm->next)
		if (vm->inst)
			query_blockstats(h, vm);
}
