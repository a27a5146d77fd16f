/* SPDX-License-Identifier: MIT */
/* Canonical JSON for a parsed spec: every default filled in, sizes as
 * integers (memory in MiB, limits in bytes), fixed key order. */
#include "common/macro.h"
#include "qemu/spec-internal.h"

static void add_str(json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

static void add_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static json_object *disk_to_json(const struct vm_disk *d)
{
	json_object *o = json_object_new_object();

	add_str(o, "path", d->path);
	add_str(o, "format", vm_disk_format_to_string(d->format));
	json_object_object_add(o, "readonly", json_object_new_boolean(d->readonly));
	if (d->serial[0])
		add_str(o, "serial", d->serial);
	if (d->io_rbps || d->io_wbps || d->io_riops || d->io_wiops || d->io_weight) {
		json_object *l = json_object_new_object();
		if (d->io_rbps)
			add_int(l, "rbps", (int64_t)d->io_rbps);
		if (d->io_wbps)
			add_int(l, "wbps", (int64_t)d->io_wbps);
		if (d->io_riops)
			add_int(l, "riops", (int64_t)d->io_riops);
		if (d->io_wiops)
			add_int(l, "wiops", (int64_t)d->io_wiops);
		if (d->io_weight)
			add_int(l, "weight", d->io_weight);
		json_object_object_add(o, "limits", l);
	}
	return o;
}

static json_object *nic_to_json(const struct vm_nic *n)
{
	json_object *o = json_object_new_object();

	add_str(o, "network", n->network);
	add_str(o, "bridge", n->bridge);
	add_str(o, "mac", n->mac);
	add_str(o, "model", n->model ? n->model : "virtio");
	if (n->fw) /* only when given: older canonical forms stay fixed points */
		json_object_object_add(o, "firewall", vm_fw_to_json(n->fw));
	return o;
}

json_object *vm_spec_to_json(const struct vm_spec *spec)
{
	json_object *o, *a, *x;

	if (!spec)
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	add_str(o, "name", spec->name);
	add_str(o, "uuid", spec->uuid);
	add_int(o, "vcpus", spec->vcpus);
	add_int(o, "memory", (int64_t)spec->memory_mib);
	add_str(o, "machine", spec->machine ? spec->machine : "q35");
	add_str(o, "accel", vm_accel_to_string(spec->accel));
	add_str(o, "kernel", spec->kernel);
	add_str(o, "initrd", spec->initrd);
	add_str(o, "cmdline", spec->cmdline);
	if (!spec->kernel && spec->boot_disk >= 0) {
		x = json_object_new_object();
		add_int(x, "disk", spec->boot_disk);
		json_object_object_add(o, "boot", x);
	}
	a = json_object_new_array();
	for (size_t i = 0; i < spec->n_disks; i++)
		json_object_array_add(a, disk_to_json(&spec->disks[i]));
	json_object_object_add(o, "disks", a);
	a = json_object_new_array();
	for (size_t i = 0; i < spec->n_nics; i++)
		json_object_array_add(a, nic_to_json(&spec->nics[i]));
	json_object_object_add(o, "nics", a);
	x = json_object_new_object();
	json_object_object_add(x, "log", json_object_new_boolean(spec->serial_log));
	json_object_object_add(o, "serial", x);
	x = json_object_new_object();
	spec_limits_to_json(&spec->limits, x);
	json_object_object_add(o, "limits", x);
	x = json_object_new_object();
	add_str(x, "policy", vm_restart_policy_to_string(spec->restart.policy));
	add_int(x, "max_restarts", spec->restart.max_restarts);
	add_int(x, "window_s", spec->restart.window_s);
	add_int(x, "backoff_ms", spec->restart.backoff_ms);
	json_object_object_add(o, "restart", x);
	if (spec->has_resources) {
		x = json_object_new_object();
		vm_resources_to_json(&spec->resources, x);
		json_object_object_add(o, "resources", x);
	}
	if (spec->cloud_init)
		json_object_object_add(o, "cloud_init", spec_cloud_init_to_json(spec->cloud_init));
	if (spec->guest_agent) /* only when set: older canonical forms stay fixed points */
		json_object_object_add(o, "guest_agent", json_object_new_boolean(true));
	if (spec->balloon.enabled)
		json_object_object_add(o, "balloon", vm_balloon_to_json(&spec->balloon));
	if (spec->backup.interval_s)
		json_object_object_add(o, "backup", vm_backup_to_json(&spec->backup));
	if (spec->ha) /* only when set, like guest_agent */
		json_object_object_add(o, "ha", json_object_new_boolean(true));
	return o;
}
