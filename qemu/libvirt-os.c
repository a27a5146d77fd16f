/* SPDX-License-Identifier: MIT */
/* libvirt import: <os>, <cpu>, and qvisor's own <metadata>. */
#include "common/json.h"
#include "qemu/libvirt-internal.h"
#include "qemu/spec-internal.h"

static void import_os_type(struct lv_ctx *c, xmlNodePtr t)
{
	char buf[32];
	const char *s = lv_text(t, buf, sizeof(buf));
	const char *arch = lv_attr(t, "arch"), *machine = lv_attr(t, "machine");

	if (!s || !streq(s, "hvm"))
		lv_fatal(c, t, "os type '%s': only hvm guests can be imported", s ? s : "?");
	/* A 32-bit guest runs under qemu-system-x86_64, but sees a 64-bit CPU. */
	if (arch && streq(arch, "i686"))
		lv_refuse(c, (xmlNodePtr)lv_attr_node(t, "arch"),
			  "architecture i686: qvisor runs it on qemu-system-x86_64 with a 64-bit "
			  "CPU model");
	else if (arch && !streq(arch, "x86_64"))
		lv_fatal(c, (xmlNodePtr)lv_attr_node(t, "arch"),
			 "architecture %s: qvisor runs x86_64 guests only", arch);
	/* Without a machine libvirt picks "pc" (i440fx) on x86_64; qvisor's own
	 * default is q35, so say it. */
	if (!machine)
		machine = "pc";
	if (spec_machine_valid(machine))
		json_object_object_add(c->spec, "machine", json_object_new_string(machine));
	else
		lv_refuse(c, (xmlNodePtr)lv_attr_node(t, "machine"),
			  "machine '%s': qvisor supports q35, pc, pc-q35-X.Y, pc-i440fx-X.Y", machine);
}

static void import_os_path(struct lv_ctx *c, xmlNodePtr os, const char *key)
{
	xmlNodePtr n = lv_child(os, key);
	char buf[VM_PATH_MAX + 1];
	const char *s, *why;

	if (!n)
		return;
	s = lv_text(n, buf, sizeof(buf));
	if (!s || !spec_path_valid(s, &why))
		return lv_fatal(c, n, "<%s> must be an absolute path: %s", key, s ? why : "too long");
	json_object_object_add(c->spec, key, json_object_new_string(s));
}

static void import_boot_devs(struct lv_ctx *c, xmlNodePtr os)
{
	xmlNodePtr b;

	while ((b = lv_child(os, "boot"))) {
		const char *dev = lv_attr(b, "dev");
		if (dev && streq(dev, "hd") && !c->os_boot_hd)
			c->os_boot_hd = true; /* the first disk, qvisor's default */
		else
			lv_refuse(c, b, "booting from '%s' is not supported: qvisor boots a disk "
				  "or a kernel", dev ? dev : "?");
	}
	if ((b = lv_child(os, "bootmenu"))) {
		const char *en = lv_attr(b, "enable");
		if (!en || !streq(en, "no") || b->properties->next)
			lv_refuse(c, b, "a boot menu is not supported");
	}
}

void lv_import_os(struct lv_ctx *c, xmlNodePtr os)
{
	xmlNodePtr t = lv_child(os, "type");
	char buf[VM_CMDLINE_MAX + 2];
	xmlNodePtr n;

	if (t)
		import_os_type(c, t);
	else
		lv_fatal(c, os, "<os><type> is required");
	import_os_path(c, os, "kernel");
	import_os_path(c, os, "initrd");
	if ((n = lv_child(os, "cmdline"))) {
		const char *s = lv_text(n, buf, sizeof(buf));
		if (!s)
			lv_fatal(c, n, "<cmdline> is longer than %d characters", VM_CMDLINE_MAX);
		else if (*s)
			json_object_object_add(c->spec, "cmdline", json_object_new_string(s));
	}
	import_boot_devs(c, os);
}

/* qvisor runs -cpu host under KVM and -cpu max under TCG, which is
 * libvirt's host-passthrough / maximum. QEMU 7.2's -smp N is one socket of
 * N cores. */
static void import_topology(struct lv_ctx *c, xmlNodePtr top)
{
	json_object *v;
	uint64_t n = 1, s = 1, d = 1, co = 1, th = 1, cl = 1;

	if (json_object_object_get_ex(c->spec, "vcpus", &v))
		n = json_object_get_int64(v);
	lv_attr_u64(c, top, "sockets", &s);
	lv_attr_u64(c, top, "dies", &d);
	lv_attr_u64(c, top, "clusters", &cl);
	lv_attr_u64(c, top, "cores", &co);
	lv_attr_u64(c, top, "threads", &th);
	if (s != 1 || d != 1 || cl != 1 || th != 1 || co != n)
		lv_refuse(c, top, "CPU topology %llu sockets x %llu cores x %llu threads: qvisor "
			  "gives the guest one socket of %llu cores", (unsigned long long)s,
			  (unsigned long long)co, (unsigned long long)th, (unsigned long long)n);
}

void lv_import_cpu(struct lv_ctx *c, xmlNodePtr cpu)
{
	static const char *const checks[] = { "none", "partial", "full", NULL };
	static const char *const onoff[] = { "on", NULL };
	const char *mode = lv_attr(cpu, "mode");
	xmlNodePtr top = lv_child(cpu, "topology");

	lv_attr_oneof(c, cpu, "check", checks);
	lv_attr_oneof(c, cpu, "migratable", onoff);
	if (top)
		import_topology(c, top);
	if (!mode || streq(mode, "custom")) {
		xmlNodePtr m = lv_child(cpu, "model");
		if (m)
			lv_refuse(c, m, "named CPU models are not supported: qvisor uses -cpu host "
				  "(KVM) or -cpu max (TCG)");
		lv_attr_oneof(c, cpu, "match", (const char *const[]){ "exact", "minimum", NULL });
		return;
	}
	if (!streq(mode, "host-passthrough") && !streq(mode, "maximum"))
		lv_refuse(c, (xmlNodePtr)lv_attr_node(cpu, "mode"),
			  "CPU mode '%s': qvisor uses -cpu host (KVM) or -cpu max (TCG), i.e. "
			  "host-passthrough / maximum", mode);
}

static bool is_qvisor(xmlNodePtr n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       xmlStrEqual(n->ns->href, BAD_CAST LV_NS_QVISOR) && xmlStrEqual(n->name, BAD_CAST name);
}

/* <qvisor:cloud-init> with user-data, meta-data, network-config as text
 * (kept verbatim: no trimming). */
static void import_cloud_init(struct lv_ctx *c, xmlNodePtr ci)
{
	static const char *const docs[][2] = { { "user-data", "user_data" },
					       { "meta-data", "meta_data" },
					       { "network-config", "network_config" } };
	json_object *o = lv_spec_obj(c, "cloud_init");

	for (xmlNodePtr k = ci->children; k; k = k->next)
		for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
			if (!is_qvisor(k, docs[i][0]) || lv_used(k))
				continue;
			xmlChar *t = xmlNodeGetContent(k);
			lv_use_tree(k);
			json_object_object_add(o, docs[i][1],
					       json_object_new_string(t ? (char *)t : ""));
			xmlFree(t);
		}
}

/* <metadata><qvisor:vm .../></metadata>: what export could not say in
 * libvirt's own terms. */
static void import_qvisor_vm(struct lv_ctx *c, xmlNodePtr vm)
{
	const char *s;
	uint64_t v;

	if ((s = lv_attr(vm, "accel")))
		json_object_object_add(c->spec, "accel", json_object_new_string(s));
	if ((s = lv_attr(vm, "serial-log")))
		json_object_object_add(lv_spec_obj(c, "serial"), "log",
				       json_object_new_boolean(streq(s, "yes")));
	if (lv_attr_u64(c, vm, "pids-max", &v) == 0)
		json_object_object_add(lv_spec_obj(c, "limits"), "pids_max", json_object_new_int64(v));
	if (lv_attr_u64(c, vm, "swap-max", &v) == 0)
		json_object_object_add(lv_spec_obj(c, "limits"), "memory_swap_max",
				       json_object_new_int64(v));
	static const char *const restart[] = { "restart-max", "max_restarts", "restart-window",
					       "window_s", "restart-backoff", "backoff_ms" };
	for (size_t i = 0; i < ARRAY_SIZE(restart); i += 2)
		if (lv_attr_u64(c, vm, restart[i], &v) == 0)
			json_object_object_add(lv_spec_obj(c, "restart"), restart[i + 1],
					       json_object_new_int64(v));
	for (xmlNodePtr d = vm->children; d; d = d->next) {
		json_object *disks, *disk;
		uint64_t idx, w;
		if (is_qvisor(d, "cloud-init") && !lv_used(d)) {
			lv_use(d);
			import_cloud_init(c, d);
			continue;
		}
		if (!is_qvisor(d, "disk"))
			continue;
		lv_use(d);
		if (lv_attr_u64(c, d, "index", &idx) < 0 || lv_attr_u64(c, d, "weight", &w) < 0)
			continue;
		if (!json_object_object_get_ex(c->spec, "disks", &disks) ||
		    idx >= json_object_array_length(disks)) {
			lv_fatal(c, d, "no disk %llu", (unsigned long long)idx);
			continue;
		}
		disk = json_object_array_get_idx(disks, idx);
		json_object *lim;
		if (!json_object_object_get_ex(disk, "limits", &lim)) {
			lim = json_object_new_object();
			json_object_object_add(disk, "limits", lim);
		}
		json_object_object_add(lim, "weight", json_object_new_int64(w));
	}
}

void lv_import_metadata(struct lv_ctx *c, xmlNodePtr md)
{
	for (xmlNodePtr k = md->children; k; k = k->next) {
		if (k->type != XML_ELEMENT_NODE)
			continue;
		if (k->ns && k->ns->href && xmlStrEqual(k->ns->href, BAD_CAST LV_NS_QVISOR) &&
		    xmlStrEqual(k->name, BAD_CAST "vm")) {
			lv_use(k);
			import_qvisor_vm(c, k);
		} else {
			lv_refuse(c, k, "application metadata <%s> would be lost", k->name);
		}
	}
}
