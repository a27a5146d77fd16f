/* SPDX-License-Identifier: MIT */
/* libvirt import: node accounting, problems, typed readers. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>

#include "common/json.h"
#include "qemu/libvirt-internal.h"

#define LV_USED ((void *)1)

void lv_use(xmlNodePtr n)
{
	if (n)
		n->_private = LV_USED;
}

bool lv_used(xmlNodePtr n)
{
	return n->_private == LV_USED;
}

void lv_use_tree(xmlNodePtr n)
{
	if (!n)
		return;
	lv_use(n);
	if (n->type != XML_ELEMENT_NODE)
		return;
	for (xmlAttrPtr a = n->properties; a; a = a->next)
		a->_private = LV_USED;
	for (xmlNodePtr k = n->children; k; k = k->next)
		lv_use_tree(k);
}

void lv_problem(struct lv_ctx *c, xmlNodePtr n, bool fatal, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	xmlChar *path = xmlGetNodePath(n);
	json_object *p = json_object_new_object();
	json_object_object_add(p, "xpath", json_object_new_string(path ? (char *)path : "?"));
	json_object_object_add(p, "why", json_object_new_string(why));
	json_object_object_add(p, "fatal", json_object_new_boolean(fatal));
	json_object_array_add(c->problems, p);
	xmlFree(path);
	if (fatal || !c->lossy)
		c->refused = true;
	if (n->type == XML_ATTRIBUTE_NODE)
		n->_private = LV_USED;
	else
		lv_use_tree(n);
}

/* Why common libvirt elements have no qvisor equivalent (operators ask). */
static const struct {
	const char *name, *why;
} known_why[] = {
	{ "graphics", "qvisor VMs are headless (serial console only)" },
	{ "video", "qvisor VMs are headless (serial console only)" },
	{ "sound", "qvisor VMs have no sound devices" },
	{ "audio", "qvisor VMs have no audio backends" },
	{ "hostdev", "host device passthrough is not supported" },
	{ "redirdev", "USB redirection is not supported" },
	{ "smartcard", "smartcards are not supported" },
	{ "channel", "virtio-serial channels are not supported" },
	{ "rng", "no virtio-rng device" },
	{ "tpm", "no TPM device" },
	{ "watchdog", "no watchdog device" },
	{ "filesystem", "no shared filesystems (virtiofs/9p)" },
	{ "hub", "qvisor VMs have no USB" },
	{ "parallel", "no parallel ports" },
	{ "shmem", "no shared memory devices" },
	{ "memory", "no memory hotplug devices" },
	{ "iommu", "no virtual IOMMU" },
	{ "vsock", "no vsock device" },
	{ "lease", "no lock manager leases" },
	{ "commandline", "raw QEMU arguments are never passed through" },
	{ "memoryBacking", "hugepages and memory backends are not supported" },
	{ "numatune", "NUMA memory policy other than a strict nodeset is not supported" },
	{ "iothreads", "no IOThreads" },
	{ "sysinfo", "no SMBIOS tables" },
	{ "title", "descriptive text would be lost" },
	{ "description", "descriptive text would be lost" },
	{ "metadata", "application metadata would be lost" },
	{ "resource", "qvisor places every VM in its own cgroup" },
	{ "pm", "guest power-management (S3/S4) settings are not supported" },
	{ "idmap", "no user-namespace id maps" },
	{ "genid", "no VM generation id" },
	{ "keywrap", "no s390 key wrapping" },
	{ "launchSecurity", "no confidential-computing launch security" },
	{ "perf", "no perf events" },
	{ "blkiotune", "per-device blkio tuning is not supported" },
};

static void refuse_unknown_element(struct lv_ctx *c, xmlNodePtr n)
{
	for (size_t i = 0; i < ARRAY_SIZE(known_why); i++)
		if (xmlStrEqual(n->name, BAD_CAST known_why[i].name))
			return lv_refuse(c, n, "<%s> is not supported: %s", n->name, known_why[i].why);
	lv_refuse(c, n, "<%s> is not supported: qvisor has no equivalent", n->name);
}

static bool blank(const xmlChar *s)
{
	for (; s && *s; s++)
		if (!isspace(*s))
			return false;
	return true;
}

void lv_account(struct lv_ctx *c, xmlNodePtr el)
{
	if (!lv_used(el))
		return refuse_unknown_element(c, el);
	for (xmlAttrPtr a = el->properties; a; a = a->next)
		if (a->_private != LV_USED)
			lv_refuse(c, (xmlNodePtr)a, "attribute '%s' of <%s> is not supported",
				  a->name, el->name);
	for (xmlNodePtr k = el->children; k; k = k->next) {
		switch (k->type) {
		case XML_ELEMENT_NODE:
			lv_account(c, k);
			break;
		case XML_TEXT_NODE:
		case XML_CDATA_SECTION_NODE:
			if (!lv_used(k) && !blank(k->content))
				lv_refuse(c, el, "unexpected text in <%s>", el->name);
			break;
		default: /* comments, processing instructions: no meaning */
			break;
		}
	}
}

bool lv_is(xmlNodePtr n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && !n->ns && xmlStrEqual(n->name, BAD_CAST name);
}

xmlAttrPtr lv_attr_node(xmlNodePtr el, const char *name)
{
	for (xmlAttrPtr a = el->properties; a; a = a->next)
		if (!a->ns && xmlStrEqual(a->name, BAD_CAST name)) {
			a->_private = LV_USED;
			return a;
		}
	return NULL;
}

const char *lv_attr(xmlNodePtr el, const char *name)
{
	xmlAttrPtr a = lv_attr_node(el, name);

	if (!a)
		return NULL;
	/* Attribute values are a single text child once entities are refused. */
	if (!a->children)
		return "";
	if (a->children->next || a->children->type != XML_TEXT_NODE)
		return NULL;
	return (const char *)a->children->content;
}

xmlNodePtr lv_child(xmlNodePtr el, const char *name)
{
	for (xmlNodePtr k = el->children; k; k = k->next)
		if (lv_is(k, name) && !lv_used(k)) {
			lv_use(k);
			return k;
		}
	return NULL;
}

const char *lv_text(xmlNodePtr el, char *buf, size_t size)
{
	size_t n = 0;

	for (xmlNodePtr k = el->children; k; k = k->next) {
		if (k->type == XML_ELEMENT_NODE)
			return NULL;
		if (k->type != XML_TEXT_NODE && k->type != XML_CDATA_SECTION_NODE)
			continue;
		lv_use(k);
		size_t l = strlen((const char *)k->content);
		if (n + l >= size)
			return NULL;
		memcpy(buf + n, k->content, l);
		n += l;
	}
	buf[n] = 0;
	char *s = buf;
	while (isspace((unsigned char)*s))
		s++;
	for (char *e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
		e[-1] = 0;
	return s;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int lv_text_u64(struct lv_ctx *c, xmlNodePtr el, uint64_t *ret)
{
	char buf[64];
	const char *t = lv_text(el, buf, sizeof(buf));

	if (parse_u64(t, ret) < 0) {
		lv_fatal(c, el, "<%s> must be an unsigned integer", el->name);
		return -EINVAL;
	}
	return 0;
}

int lv_attr_u64(struct lv_ctx *c, xmlNodePtr el, const char *name, uint64_t *ret)
{
	xmlAttrPtr a = lv_attr_node(el, name);

	if (!a)
		return -ENOENT;
	if (parse_u64(lv_attr(el, name), ret) < 0) {
		lv_fatal(c, (xmlNodePtr)a, "attribute '%s' must be an unsigned integer", name);
		return -EINVAL;
	}
	return 0;
}

/* libvirt's unit grammar (virScaleInteger): b/byte/bytes; k, m, g, t, p, e
 * alone or with "iB" are powers of 1024, with "B" powers of 1000; any case. */
static int unit_mult(const char *u, uint64_t *ret)
{
	static const char letters[] = "kmgtpe";
	const char *l;

	if (!strcasecmp(u, "b") || !strcasecmp(u, "byte") || !strcasecmp(u, "bytes"))
		return *ret = 1, 0;
	if (!*u || !(l = strchr(letters, tolower((unsigned char)*u))))
		return -EINVAL;
	uint64_t base;
	if (!u[1] || !strcasecmp(u + 1, "ib"))
		base = 1024;
	else if (!strcasecmp(u + 1, "b"))
		base = 1000;
	else
		return -EINVAL;
	uint64_t m = 1;
	for (const char *p = letters; p <= l; p++)
		m *= base;
	return *ret = m, 0;
}

int lv_size(struct lv_ctx *c, xmlNodePtr el, uint64_t def_unit, uint64_t *ret_bytes)
{
	const char *u = lv_attr(el, "unit");
	uint64_t mult = def_unit, v;

	if (u && unit_mult(u, &mult) < 0) {
		lv_fatal(c, (xmlNodePtr)lv_attr_node(el, "unit"), "unknown unit '%s'", u);
		return -EINVAL;
	}
	if (lv_text_u64(c, el, &v) < 0)
		return -EINVAL;
	if (v && mult > UINT64_MAX / v) {
		lv_fatal(c, el, "<%s> is too large", el->name);
		return -ERANGE;
	}
	*ret_bytes = v * mult;
	return 0;
}

const char *lv_attr_oneof(struct lv_ctx *c, xmlNodePtr el, const char *name,
			  const char *const *values)
{
	const char *v = lv_attr(el, name);

	if (!v)
		return NULL;
	for (const char *const *p = values; *p; p++)
		if (streq(v, *p))
			return v;
	lv_refuse(c, (xmlNodePtr)lv_attr_node(el, name), "%s='%s' of <%s> is not supported", name,
		  v, el->name);
	return NULL;
}

bool lv_empty(xmlNodePtr el)
{
	for (xmlNodePtr k = el->children; k; k = k->next)
		if (k->type == XML_ELEMENT_NODE || (k->type == XML_TEXT_NODE && !blank(k->content)))
			return false;
	return true;
}

json_object *lv_spec_obj(struct lv_ctx *c, const char *key)
{
	json_object *o;

	if (json_object_object_get_ex(c->spec, key, &o))
		return o;
	o = json_object_new_object();
	json_object_object_add(c->spec, key, o);
	return o;
}

json_object *lv_spec_arr(struct lv_ctx *c, const char *key)
{
	json_object *o;

	if (json_object_object_get_ex(c->spec, key, &o))
		return o;
	o = json_object_new_array();
	json_object_object_add(c->spec, key, o);
	return o;
}
