/* SPDX-License-Identifier: MIT */
/* VM spec -> libvirt domain XML (the reverse of libvirt-import.c for what
 * maps; the rest rides in <metadata><qvisor:vm/>). */
#include <inttypes.h>
#include <libxml/tree.h>

#include "qemu/libvirt.h"

struct ex {
	xmlNodePtr md;  /* <qvisor:vm>, created on demand */
	xmlNodePtr dom;
	xmlNsPtr ns;
};

static xmlNodePtr el(xmlNodePtr parent, const char *name, const char *text)
{
	return xmlNewTextChild(parent, NULL, BAD_CAST name, BAD_CAST text);
}

static xmlNodePtr el_u64(xmlNodePtr parent, const char *name, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return el(parent, name, buf);
}

static void attr(xmlNodePtr n, const char *name, const char *v)
{
	xmlNewProp(n, BAD_CAST name, BAD_CAST v);
}

static void attr_u64(xmlNodePtr n, const char *name, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	attr(n, name, buf);
}

static xmlNodePtr qvisor_md(struct ex *x)
{
	if (!x->md) {
		xmlNodePtr md = xmlNewChild(x->dom, NULL, BAD_CAST "metadata", NULL);
		x->md = xmlNewChild(md, NULL, BAD_CAST "vm", NULL);
		x->ns = xmlNewNs(x->md, BAD_CAST LV_NS_QVISOR, BAD_CAST "qvisor");
		xmlSetNs(x->md, x->ns);
	}
	return x->md;
}

static void export_os(const struct vm_spec *s, xmlNodePtr dom)
{
	xmlNodePtr os = el(dom, "os", NULL), t = el(os, "type", "hvm");

	attr(t, "arch", "x86_64");
	attr(t, "machine", s->machine ? s->machine : "q35");
	if (s->kernel)
		el(os, "kernel", s->kernel);
	if (s->initrd)
		el(os, "initrd", s->initrd);
	if (s->cmdline)
		el(os, "cmdline", s->cmdline);
	xmlNodePtr f = el(dom, "features", NULL);
	el(f, "acpi", NULL);
	el(f, "apic", NULL);
	attr(el(dom, "clock", NULL), "offset", "utc");
	el(dom, "on_poweroff", "destroy");
	el(dom, "on_reboot", "restart");
	el(dom, "on_crash", s->restart.policy == VM_RESTART_ON_FAILURE ? "restart" : "destroy");
}

static void export_tunes(const struct vm_spec *s, struct ex *x)
{
	const struct vm_limits *l = &s->limits;

	if (l->cpu_weight || l->cpu_max_quota_us) {
		xmlNodePtr ct = el(x->dom, "cputune", NULL);
		if (l->cpu_weight)
			el_u64(ct, "shares", l->cpu_weight);
		if (l->cpu_max_quota_us) {
			el_u64(ct, "global_period", l->cpu_max_period_us ? l->cpu_max_period_us : 100000);
			el_u64(ct, "global_quota", l->cpu_max_quota_us);
		}
	}
	if (l->memory_max || l->memory_high) {
		xmlNodePtr mt = el(x->dom, "memtune", NULL);
		if (l->memory_max)
			attr(el_u64(mt, "hard_limit", l->memory_max), "unit", "bytes");
		if (l->memory_high)
			attr(el_u64(mt, "soft_limit", l->memory_high), "unit", "bytes");
		if (l->memory_max && l->memory_swap_max >= 0)
			attr(el_u64(mt, "swap_hard_limit", l->memory_max + (uint64_t)l->memory_swap_max),
			     "unit", "bytes");
	}
	if (!l->memory_max && l->memory_swap_max >= 0)
		attr_u64(qvisor_md(x), "swap-max", (uint64_t)l->memory_swap_max);
	if (l->pids_max)
		attr_u64(qvisor_md(x), "pids-max", l->pids_max);
	if (l->cpuset_mems) {
		xmlNodePtr m = el(el(x->dom, "numatune", NULL), "memory", NULL);
		attr(m, "mode", "strict");
		attr(m, "nodeset", l->cpuset_mems);
	}
}

static void export_iotune(const struct vm_disk *d, xmlNodePtr disk)
{
	if (!d->io_rbps && !d->io_wbps && !d->io_riops && !d->io_wiops)
		return;
	xmlNodePtr io = el(disk, "iotune", NULL);
	if (d->io_rbps)
		el_u64(io, "read_bytes_sec", d->io_rbps);
	if (d->io_wbps)
		el_u64(io, "write_bytes_sec", d->io_wbps);
	if (d->io_riops)
		el_u64(io, "read_iops_sec", d->io_riops);
	if (d->io_wiops)
		el_u64(io, "write_iops_sec", d->io_wiops);
}

static void export_disk(const struct vm_spec *s, size_t i, struct ex *x, xmlNodePtr devs)
{
	const struct vm_disk *d = &s->disks[i];
	xmlNodePtr disk = el(devs, "disk", NULL), n;
	char dev[8];

	attr(disk, "type", "file");
	attr(disk, "device", "disk");
	n = el(disk, "driver", NULL);
	attr(n, "name", "qemu");
	attr(n, "type", vm_disk_format_to_string(d->format));
	attr(el(disk, "source", NULL), "file", d->path);
	/* vda..vdz then vdaa..: disks are at most VM_DISKS_MAX */
	snprintf(dev, sizeof(dev), "vd%c", (char)('a' + i));
	n = el(disk, "target", NULL);
	attr(n, "dev", dev);
	attr(n, "bus", "virtio");
	if (d->readonly)
		el(disk, "readonly", NULL);
	if (d->serial[0])
		el(disk, "serial", d->serial);
	export_iotune(d, disk);
	if (!s->kernel && s->boot_disk == (int)i)
		attr(el(disk, "boot", NULL), "order", "1");
	if (d->io_weight) {
		xmlNodePtr w = xmlNewChild(qvisor_md(x), x->ns, BAD_CAST "disk", NULL);
		attr_u64(w, "index", i);
		attr_u64(w, "weight", d->io_weight);
	}
}

static void export_nic(const struct vm_nic *nic, xmlNodePtr devs)
{
	const char *type = nic->bridge ? "bridge" : "network";
	xmlNodePtr i = el(devs, "interface", NULL);

	attr(i, "type", type);
	attr(el(i, "mac", NULL), "address", nic->mac);
	attr(el(i, "source", NULL), type, nic->bridge ? nic->bridge : nic->network);
	attr(el(i, "model", NULL), "type", "virtio");
}

static void export_devices(const struct vm_spec *s, struct ex *x)
{
	xmlNodePtr devs = el(x->dom, "devices", NULL), n;

	for (size_t i = 0; i < s->n_disks; i++)
		export_disk(s, i, x, devs);
	for (size_t i = 0; i < s->n_nics; i++)
		export_nic(&s->nics[i], devs);
	n = el(devs, "serial", NULL);
	attr(n, "type", "pty");
	attr(el(n, "target", NULL), "port", "0");
	n = el(devs, "console", NULL);
	attr(n, "type", "pty");
	n = el(n, "target", NULL);
	attr(n, "type", "serial");
	attr(n, "port", "0");
	if (s->guest_agent) {
		n = el(devs, "channel", NULL);
		attr(n, "type", "unix");
		n = el(n, "target", NULL);
		attr(n, "type", "virtio");
		attr(n, "name", "org.qemu.guest_agent.0");
	}
	n = el(devs, "memballoon", NULL);
	attr(n, "model", s->balloon.enabled ? "virtio" : "none");
	if (s->balloon.enabled && s->balloon.stats_interval_s)
		attr_u64(el(n, "stats", NULL), "period", s->balloon.stats_interval_s);
}

/* spec.cloud_init has no libvirt form: qvisor elements, text content. */
static void export_cloud_init(const struct vm_cloud_init *ci, struct ex *x)
{
	xmlNodePtr c = xmlNewChild(qvisor_md(x), x->ns, BAD_CAST "cloud-init", NULL);

	xmlNewTextChild(c, x->ns, BAD_CAST "user-data", BAD_CAST ci->user_data);
	xmlNewTextChild(c, x->ns, BAD_CAST "meta-data", BAD_CAST ci->meta_data);
	if (ci->network_config)
		xmlNewTextChild(c, x->ns, BAD_CAST "network-config", BAD_CAST ci->network_config);
}

static void export_qvisor_extras(const struct vm_spec *s, struct ex *x)
{
	const struct vm_restart *r = &s->restart;

	if (s->cloud_init)
		export_cloud_init(s->cloud_init, x);
	if (s->accel == VM_ACCEL_AUTO)
		attr(qvisor_md(x), "accel", "auto");
	if (!s->serial_log)
		attr(qvisor_md(x), "serial-log", "no");
	if (r->max_restarts != 5 || r->window_s != 300 || r->backoff_ms != 1000) {
		attr_u64(qvisor_md(x), "restart-max", r->max_restarts);
		attr_u64(qvisor_md(x), "restart-window", r->window_s);
		attr_u64(qvisor_md(x), "restart-backoff", r->backoff_ms);
	}
}

static void export_domain(const struct vm_spec *s, struct ex *x)
{
	xmlNodePtr dom = x->dom, n;

	attr(dom, "type", s->accel == VM_ACCEL_TCG ? "qemu" : "kvm");
	el(dom, "name", s->name);
	el(dom, "uuid", s->uuid);
	attr(el_u64(dom, "memory", s->memory_mib), "unit", "MiB");
	if (s->balloon.enabled && s->balloon.target) /* the balloon target at start */
		attr(el_u64(dom, "currentMemory", s->balloon.target >> 20), "unit", "MiB");
	else
		attr(el_u64(dom, "currentMemory", s->memory_mib), "unit", "MiB");
	n = el_u64(dom, "vcpu", s->vcpus);
	attr(n, "placement", "static");
	if (s->limits.cpuset_cpus)
		attr(n, "cpuset", s->limits.cpuset_cpus);
	export_os(s, dom);
	export_tunes(s, x);
	export_devices(s, x);
	export_qvisor_extras(s, x);
}

int lv_export_xml(const struct vm_spec *spec, char **ret_xml, struct qv_error *errp)
{
	xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
	xmlChar *buf = NULL;
	int len = 0;

	if (!doc)
		return -ENOMEM;
	struct ex x = { .dom = xmlNewNode(NULL, BAD_CAST "domain") };
	xmlDocSetRootElement(doc, x.dom);
	export_domain(spec, &x);
	/* <metadata> belongs near the top where libvirt writes it */
	if (x.md) {
		xmlNodePtr md = x.md->parent, after = xmlFirstElementChild(x.dom);
		xmlUnlinkNode(md);
		xmlAddNextSibling(xmlNextElementSibling(after), md);
	}
	xmlDocDumpFormatMemoryEnc(doc, &buf, &len, "UTF-8", 1);
	xmlFreeDoc(doc);
	if (!buf)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory writing XML");
	/* Drop the XML declaration: libvirt's own dumps start at <domain>. */
	char *start = strstr((char *)buf, "<domain");
	char *out = strdup(start ? start : (char *)buf);
	xmlFree(buf);
	if (!out)
		return -ENOMEM;
	*ret_xml = out;
	return 0;
}
