/* SPDX-License-Identifier: MIT */
/* libvirt import: <devices>. */
#include "common/json.h"
#include "qemu/libvirt-internal.h"
#include "qemu/spec-internal.h"

static void set_str(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

/* Device-level children every device may carry. <alias> is libvirt's name
 * for the device (qvisor names its own); a fixed <address> is refused. */
static void device_common(struct lv_ctx *c, xmlNodePtr dev)
{
	xmlNodePtr n;

	if ((n = lv_child(dev, "alias")))
		lv_use_tree(n);
	if ((n = lv_child(dev, "address")))
		lv_refuse(c, n, "a fixed guest address is not kept: qvisor places devices itself");
}

static void import_iotune(struct lv_ctx *c, xmlNodePtr io, json_object *disk)
{
	static const char *const map[][2] = {
		{ "read_bytes_sec", "rbps" },  { "write_bytes_sec", "wbps" },
		{ "read_iops_sec", "riops" },  { "write_iops_sec", "wiops" },
	};
	json_object *lim = json_object_new_object();
	uint64_t v;

	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		xmlNodePtr n = lv_child(io, map[i][0]);
		if (n && lv_text_u64(c, n, &v) == 0 && v) /* 0 = unlimited in libvirt */
			json_object_object_add(lim, map[i][1], json_object_new_int64((int64_t)v));
	}
	if (json_object_object_length(lim))
		json_object_object_add(disk, "limits", lim);
	else
		json_object_put(lim);
}

static void import_disk_driver(struct lv_ctx *c, xmlNodePtr drv, json_object *disk)
{
	static const char *const names[] = { "qemu", NULL };
	static const char *const types[] = { "raw", "qcow2", NULL };

	lv_attr_oneof(c, drv, "name", names);
	const char *t = lv_attr_oneof(c, drv, "type", types);
	if (t)
		set_str(disk, "format", t);
}

static void import_disk_target(struct lv_ctx *c, xmlNodePtr tgt)
{
	const char *dev = lv_attr(tgt, "dev"), *bus = lv_attr(tgt, "bus");

	if (!dev)
		lv_fatal(c, tgt, "<target dev> is required");
	/* Without bus, libvirt derives it from the name: vdX is virtio. */
	if (!bus && dev && !strncmp(dev, "vd", 2))
		bus = "virtio";
	if (!bus || !streq(bus, "virtio"))
		lv_refuse(c, bus ? (xmlNodePtr)lv_attr_node(tgt, "bus") : tgt,
			  "disk bus '%s': qvisor disks are virtio-blk", bus ? bus : "?");
}

static void import_disk(struct lv_ctx *c, xmlNodePtr d)
{
	const char *type = lv_attr(d, "type"), *device = lv_attr(d, "device");
	xmlNodePtr n;

	if (!type || !streq(type, "file"))
		return lv_refuse(c, d, "disk type '%s': qvisor disks are image files (type='file')",
				 type ? type : "?");
	if (device && !streq(device, "disk"))
		return lv_refuse(c, d, "disk device '%s': qvisor has disks only", device);
	json_object *disk = json_object_new_object();
	if ((n = lv_child(d, "driver")))
		import_disk_driver(c, n, disk);
	const char *file = NULL, *why = "missing";
	if ((n = lv_child(d, "source")))
		file = lv_attr(n, "file");
	if (!file || !spec_path_valid(file, &why)) {
		json_object_put(disk);
		return lv_refuse(c, n ? n : d, "disk source file %s", file ? why : "is missing");
	}
	set_str(disk, "path", file);
	if ((n = lv_child(d, "target")))
		import_disk_target(c, n);
	else
		lv_fatal(c, d, "<target> is required");
	if ((n = lv_child(d, "readonly")))
		json_object_object_add(disk, "readonly", json_object_new_boolean(true));
	if ((n = lv_child(d, "serial"))) {
		char buf[64];
		const char *ser = lv_text(n, buf, sizeof(buf));
		if (ser && spec_disk_serial_valid(ser))
			set_str(disk, "serial", ser);
		else
			lv_refuse(c, n, "disk serial must be 1-%d of [A-Za-z0-9_.-]", VM_DISK_SERIAL_MAX);
	}
	if ((n = lv_child(d, "iotune")))
		import_iotune(c, n, disk);
	json_object *disks = lv_spec_arr(c, "disks");
	uint64_t order;
	if ((n = lv_child(d, "boot")) && lv_attr_u64(c, n, "order", &order) == 0 &&
	    (c->boot_disk < 0 || order < c->boot_order)) {
		c->boot_disk = (int)json_object_array_length(disks);
		c->boot_order = (unsigned)order;
	}
	device_common(c, d);
	json_object_array_add(disks, disk);
}

static void import_nic(struct lv_ctx *c, xmlNodePtr i)
{
	const char *type = lv_attr(i, "type"), *v;
	xmlNodePtr n;

	if (!type || (!streq(type, "bridge") && !streq(type, "network")))
		return lv_refuse(c, i, "interface type '%s': qvisor NICs attach to a bridge or a "
				 "qvisor network", type ? type : "?");
	json_object *nic = json_object_new_object();
	n = lv_child(i, "source");
	v = n ? lv_attr(n, type) : NULL;
	if (!v || !spec_ifname_valid(v)) {
		json_object_put(nic);
		return lv_fatal(c, n ? n : i, "<source %s> must name a %s (1-15 of [a-zA-Z0-9_.-])",
				type, type);
	}
	set_str(nic, type, v);
	char mac[18];
	if ((n = lv_child(i, "mac")) && (v = lv_attr(n, "address"))) {
		if (!spec_mac_normalize(v, mac)) {
			json_object_put(nic);
			return lv_fatal(c, n, "MAC address '%s' is not a unicast MAC", v);
		}
		set_str(nic, "mac", mac);
	}
	const char *model = (n = lv_child(i, "model")) ? lv_attr(n, "type") : NULL;
	if (!model || !streq(model, "virtio"))
		lv_refuse(c, n ? n : i, "NIC model '%s': qvisor NICs are virtio-net",
			  model ? model : "(libvirt default)");
	set_str(nic, "model", "virtio");
	if ((n = lv_child(i, "target")))
		lv_attr(n, "dev"); /* the host TAP's name: qvisor names its own */
	device_common(c, i);
	json_object_array_add(lv_spec_arr(c, "nics"), nic);
}

/* qvisor gives every VM one serial port (a unix socket plus serial.log):
 * libvirt's serial port 0 and a serial console on it are that port, whatever
 * host backend (pty, unix, file) libvirt used for it. */
static void import_char(struct lv_ctx *c, xmlNodePtr ch, bool console)
{
	const char *type = lv_attr(ch, "type"), *ttype, *port;
	xmlNodePtr t;

	if (!type || (!streq(type, "pty") && !streq(type, "unix") && !streq(type, "file")))
		return lv_refuse(c, ch, "<%s type='%s'>: only a pty/unix/file serial port maps",
				 ch->name, type ? type : "?");
	t = lv_child(ch, "target");
	ttype = t ? lv_attr(t, "type") : NULL;
	port = t ? lv_attr(t, "port") : NULL;
	if ((ttype && !streq(ttype, console ? "serial" : "isa-serial")) || (port && !streq(port, "0")))
		return lv_refuse(c, ch, "only serial port 0 maps: qvisor VMs have one serial port");
	if (!console && c->has_serial)
		return lv_refuse(c, ch, "only one serial port: qvisor VMs have one");
	if (t && !console) {
		xmlNodePtr m = lv_child(t, "model");
		if (m)
			lv_attr_oneof(c, m, "name", (const char *const[]){ "isa-serial", NULL });
	}
	xmlNodePtr n;
	while ((n = lv_child(ch, "source")) || (n = lv_child(ch, "log")) ||
	       (n = lv_child(ch, "protocol")))
		lv_use_tree(n); /* host side: qvisor uses its own socket and log */
	if (!console)
		c->has_serial = true;
	device_common(c, ch);
}

/* The QEMU guest agent channel maps to spec.guest_agent. */
static void import_channel(struct lv_ctx *c, xmlNodePtr ch)
{
	const char *type = lv_attr(ch, "type");
	xmlNodePtr t = lv_child(ch, "target"), n;
	const char *ttype = t ? lv_attr(t, "type") : NULL, *name = t ? lv_attr(t, "name") : NULL;

	if (!type || !(streq(type, "unix") || streq(type, "pty")) || !ttype ||
	    !streq(ttype, "virtio") || !name || !streq(name, "org.qemu.guest_agent.0"))
		return lv_refuse(c, ch, "<channel> is not supported: only the QEMU guest agent "
				 "channel (virtio, org.qemu.guest_agent.0) maps");
	if (json_object_object_get_ex(c->spec, "guest_agent", NULL))
		return lv_refuse(c, ch, "only one guest agent channel");
	json_object_object_add(c->spec, "guest_agent", json_object_new_boolean(true));
	if (t)
		lv_attr(t, "state"); /* runtime: connected or not */
	if ((n = lv_child(ch, "source")))
		lv_use_tree(n); /* host side: qvisor uses its own socket */
	if ((n = lv_child(ch, "address")) && lv_attr(n, "type") &&
	    streq(lv_attr(n, "type"), "virtio-serial"))
		lv_use_tree(n); /* a port on the agent's own virtio-serial controller */
	device_common(c, ch);
}

static bool machine_is_q35(struct lv_ctx *c)
{
	json_object *m;
	const char *s;

	if (!json_object_object_get_ex(c->spec, "machine", &m))
		return false;
	s = json_object_get_string(m);
	return streq(s, "q35") || !strncmp(s, "pc-q35-", 7);
}

/* Controllers the machine has anyway are accepted; qvisor makes its own
 * PCIe root ports. Everything else has no qvisor equivalent. */
static void import_controller(struct lv_ctx *c, xmlNodePtr ctl)
{
	const char *type = lv_attr(ctl, "type"), *model = lv_attr(ctl, "model");
	const char *index = lv_attr(ctl, "index");
	bool q35 = machine_is_q35(c), first = !index || streq(index, "0");

	if (type && streq(type, "pci") && model &&
	    (streq(model, q35 ? "pcie-root" : "pci-root") || (q35 && streq(model, "pcie-root-port"))))
		return lv_use_tree(ctl);
	if (type && streq(type, "usb") && model && streq(model, "none"))
		return lv_use_tree(ctl);
	if (type && streq(type, "virtio-serial") && first && !c->vserial_ctl) {
		c->vserial_ctl = ctl; /* the guest agent's; checked once devices are read */
		return lv_use_tree(ctl);
	}
	if (type && first && !model && streq(type, q35 ? "sata" : "ide"))
		return lv_use_tree(ctl); /* the chipset's own IDE/AHCI */
	lv_refuse(c, ctl, "controller type='%s'%s%s%s is not supported", type ? type : "?",
		  model ? " model='" : "", model ? model : "", model ? "'" : "");
}

static void import_input(struct lv_ctx *c, xmlNodePtr in)
{
	const char *type = lv_attr(in, "type"), *bus = lv_attr(in, "bus");

	if (type && (streq(type, "mouse") || streq(type, "keyboard")) && (!bus || streq(bus, "ps2")))
		return lv_use_tree(in); /* the i8042 of pc/q35 */
	lv_refuse(c, in, "input type='%s' bus='%s': qvisor VMs have only the PS/2 mouse and "
		  "keyboard", type ? type : "?", bus ? bus : "?");
}

/* model virtio -> spec.balloon; <stats period> is its stats_interval
 * (libvirt polls nothing without one). Other attributes (autodeflate,
 * freePageReporting) stay unmarked and are refused. */
static void import_balloon(struct lv_ctx *c, xmlNodePtr k)
{
	const char *model = lv_attr(k, "model");
	json_object *b;
	xmlNodePtr st;
	uint64_t period = 0;

	if (model && streq(model, "none")) {
		c->balloon = 0;
		return device_common(c, k);
	}
	if (!model || !streq(model, "virtio"))
		return lv_refuse(c, k, "memballoon model '%s': qvisor's balloon is virtio",
				 model ? model : "?");
	if ((st = lv_child(k, "stats")) && lv_attr_u64(c, st, "period", &period) < 0)
		return;
	if (period > VM_BALLOON_STATS_MAX_S)
		return lv_refuse(c, st, "stats period %llu s is above qvisor's %u s",
				 (unsigned long long)period, VM_BALLOON_STATS_MAX_S);
	c->balloon = 1;
	b = lv_spec_obj(c, "balloon");
	json_object_object_add(b, "stats_interval", json_object_new_int64((int64_t)period));
	device_common(c, k);
}

static void import_video(struct lv_ctx *c, xmlNodePtr k)
{
	xmlNodePtr m = NULL;

	for (xmlNodePtr x = k->children; x; x = x->next)
		if (lv_is(x, "model"))
			m = x;
	xmlChar *type = m ? xmlGetProp(m, BAD_CAST "type") : NULL;
	if (type && xmlStrEqual(type, BAD_CAST "none") && !k->properties)
		lv_use_tree(k); /* headless, like every qvisor VM */
	else
		lv_refuse(c, k, "<video> is not supported: qvisor VMs are headless (serial "
			  "console only)");
	xmlFree(type);
}

void lv_import_devices(struct lv_ctx *c, xmlNodePtr devs)
{
	for (xmlNodePtr k = devs->children; k; k = k->next) {
		if (k->type != XML_ELEMENT_NODE || k->ns)
			continue;
		lv_use(k);
		if (lv_is(k, "disk"))
			import_disk(c, k);
		else if (lv_is(k, "interface"))
			import_nic(c, k);
		else if (lv_is(k, "serial"))
			import_char(c, k, false);
		else if (lv_is(k, "console"))
			import_char(c, k, true);
		else if (lv_is(k, "controller"))
			import_controller(c, k);
		else if (lv_is(k, "input"))
			import_input(c, k);
		else if (lv_is(k, "memballoon"))
			import_balloon(c, k);
		else if (lv_is(k, "channel"))
			import_channel(c, k);
		else if (lv_is(k, "video"))
			import_video(c, k);
		else if (lv_is(k, "emulator"))
			lv_use_tree(k); /* the host's QEMU binary: qvisord uses its own */
		else
			k->_private = NULL; /* left for lv_account() to refuse by name */
	}
	if (c->vserial_ctl && !json_object_object_get_ex(c->spec, "guest_agent", NULL))
		lv_refuse(c, c->vserial_ctl, "a virtio-serial controller without the guest agent "
			  "channel is not supported");
}
