/* SPDX-License-Identifier: MIT */
/* OVF descriptor: disks (References/File + DiskSection/Disk, in the order
 * of the disk Items), vCPUs, memory, NIC connections. Elements are matched
 * by local name, so OVF 1.x and 2.x namespaces both work. */
#include <ctype.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/macro.h"
#include "storage/ova.h"

#define BAD(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)
#define OVF_MAX_DISKS 16
#define OVF_MAX_NICS 8

static bool named(xmlNodePtr n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name);
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr k = n ? n->children : NULL; k; k = k->next)
		if (named(k, name))
			return k;
	return NULL;
}

/* Attribute by local name, whatever its namespace (ovf:href, href). */
static const char *attr(xmlNodePtr n, const char *name)
{
	for (xmlAttrPtr a = n->properties; a; a = a->next)
		if (xmlStrEqual(a->name, BAD_CAST name) && a->children && !a->children->next)
			return (const char *)a->children->content;
	return NULL;
}

static char *text(xmlNodePtr n)
{
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
	char *s = t ? strdup((char *)t) : NULL;

	xmlFree(t);
	if (s) { /* trim */
		char *b = s;
		while (isspace((unsigned char)*b))
			b++;
		memmove(s, b, strlen(b) + 1);
		for (size_t l = strlen(s); l && isspace((unsigned char)s[l - 1]); l--)
			s[l - 1] = 0;
	}
	return s;
}

static uint64_t text_u64(xmlNodePtr n)
{
	_cleanup_free_ char *s = text(n);

	return s && isdigit((unsigned char)*s) ? strtoull(s, NULL, 10) : 0;
}

/* rasd:AllocationUnits: "byte * 2^20", "MegaBytes", "GigaBytes"; MiB multiplier. */
static uint64_t mem_mib(uint64_t q, const char *units)
{
	const char *p;

	if (!units || strcasestr(units, "mega") || !strcmp(units, "MB"))
		return q;
	if (strcasestr(units, "giga") || !strcmp(units, "GB"))
		return q * 1024;
	if ((p = strstr(units, "2^"))) {
		int e = atoi(p + 2);
		return e >= 20 ? q << (e - 20) : q >> (20 - e);
	}
	return q;
}

/* The file name and format of disk diskId. */
static int disk_file(xmlNodePtr env, const char *disk_id, char **ret_file, char **ret_fmt)
{
	xmlNodePtr ds = child(env, "DiskSection"), refs = child(env, "References");
	const char *file_ref = NULL, *format = NULL;

	for (xmlNodePtr d = ds ? ds->children : NULL; d; d = d->next)
		if (named(d, "Disk") && attr(d, "diskId") && streq(attr(d, "diskId"), disk_id))
			file_ref = attr(d, "fileRef"), format = attr(d, "format");
	for (xmlNodePtr f = refs ? refs->children : NULL; f && file_ref; f = f->next)
		if (named(f, "File") && attr(f, "id") && streq(attr(f, "id"), file_ref) && attr(f, "href")) {
			const char *href = attr(f, "href"), *dot = strrchr(href, '.');
			*ret_file = strdup(href);
			*ret_fmt = strdup(format && strstr(format, "vmdk") ? "vmdk" :
					  dot ? dot + 1 : "vmdk");
			return *ret_file && *ret_fmt ? 0 : -ENOMEM;
		}
	return -ENOENT;
}

static int item(struct qv_ovf *o, xmlNodePtr env, xmlNodePtr it, struct qv_error *errp)
{
	uint64_t type = text_u64(child(it, "ResourceType"));
	_cleanup_free_ char *units = text(child(it, "AllocationUnits"));

	if (type == 3)
		o->vcpus = (unsigned)text_u64(child(it, "VirtualQuantity"));
	else if (type == 4)
		o->memory_mib = mem_mib(text_u64(child(it, "VirtualQuantity")), units);
	else if (type == 10 && o->n_nics < OVF_MAX_NICS) {
		char *net = text(child(it, "Connection"));
		o->networks[o->n_nics++] = net ? net : strdup("");
	} else if (type == 17) {
		_cleanup_free_ char *res = text(child(it, "HostResource"));
		const char *id = res ? strrchr(res, '/') : NULL;
		if (!id)
			return BAD(errp, "OVF disk item without an ovf:/disk/<id> HostResource");
		if (o->n_disks == OVF_MAX_DISKS)
			return BAD(errp, "OVF has more than %d disks", OVF_MAX_DISKS);
		if (disk_file(env, id + 1, &o->disk_files[o->n_disks], &o->disk_formats[o->n_disks]) < 0)
			return BAD(errp, "OVF disk %s has no file in References", id + 1);
		o->n_disks++;
	}
	return 0;
}

static int parse_env(struct qv_ovf *o, xmlNodePtr env, struct qv_error *errp)
{
	xmlNodePtr vs = child(env, "VirtualSystem"), hw;
	int r;

	if (!named(env, "Envelope") || !vs)
		return BAD(errp, "not an OVF descriptor (no Envelope/VirtualSystem)");
	o->name = text(child(vs, "Name"));
	if ((!o->name || !*o->name) && attr(vs, "id")) {
		free(o->name);
		o->name = strdup(attr(vs, "id"));
	}
	if (!(hw = child(vs, "VirtualHardwareSection")))
		return BAD(errp, "OVF VirtualSystem has no VirtualHardwareSection");
	for (xmlNodePtr it = hw->children; it; it = it->next)
		if ((named(it, "Item") || named(it, "EthernetPortItem") || named(it, "StorageItem")) &&
		    (r = item(o, env, it, errp)) < 0)
			return r;
	return 0;
}

int qv_ovf_parse(const char *xml, size_t len, struct qv_ovf **ret, struct qv_error *errp)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)len, "desc.ovf", NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	struct qv_ovf *o;
	int r;

	if (!doc)
		return BAD(errp, "OVF descriptor is not well-formed XML");
	if (doc->intSubset || doc->extSubset) {
		xmlFreeDoc(doc);
		return BAD(errp, "OVF descriptor with a DOCTYPE is not accepted");
	}
	o = calloc(1, sizeof(*o));
	if (o) {
		o->disk_files = calloc(OVF_MAX_DISKS, sizeof(char *));
		o->disk_formats = calloc(OVF_MAX_DISKS, sizeof(char *));
		o->networks = calloc(OVF_MAX_NICS, sizeof(char *));
	}
	if (!o || !o->disk_files || !o->disk_formats || !o->networks)
		r = -ENOMEM;
	else
		r = parse_env(o, xmlDocGetRootElement(doc), errp);
	xmlFreeDoc(doc);
	if (r < 0)
		return qv_ovf_free(o), r;
	*ret = o;
	return 0;
}

struct qv_ovf *qv_ovf_free(struct qv_ovf *o)
{
	if (!o)
		return NULL;
	for (size_t i = 0; i < OVF_MAX_DISKS && o->disk_files; i++) {
		free(o->disk_files[i]);
		if (o->disk_formats)
			free(o->disk_formats[i]);
	}
	for (size_t i = 0; i < OVF_MAX_NICS && o->networks; i++)
		free(o->networks[i]);
	free(o->disk_files);
	free(o->disk_formats);
	free(o->networks);
	free(o->name);
	free(o);
	return NULL;
}
