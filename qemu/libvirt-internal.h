/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between qemu/libvirt-*.c only. Every node the importer reads is
 * marked used (node->_private); at the end lv_account() refuses whatever is
 * left unmarked, so a node can only be mapped, accepted, or refused. */

#include <libxml/tree.h>

#include "qemu/libvirt.h"

struct lv_ctx {
	bool lossy;
	bool refused;        /* a refusal that blocks the import */
	json_object *problems;
	json_object *spec;   /* being built */
	json_object *draft;  /* spec before validation */
	xmlNodePtr devices;  /* /domain/devices or NULL */
	int boot_disk;       /* from <boot order>, -1 = none */
	unsigned boot_order; /* lowest order seen */
	bool os_boot_hd;     /* <os><boot dev='hd'/> */
	bool has_serial;
	uint32_t blkio_weight; /* <blkiotune><weight>, 0 = none */
	xmlNodePtr vserial_ctl; /* <controller type='virtio-serial'>: only with an agent */
	int balloon;         /* <memballoon>: -1 absent, 0 model none, 1 virtio */
	xmlNodePtr cur_mem;  /* <currentMemory> below <memory>, or NULL */
	uint64_t cur_bytes;  /* its size: the balloon target */
};

/* --- accounting (libvirt-walk.c) ----------------------------------------- */
void lv_use(xmlNodePtr n);
/* Mark n and everything under it (attributes, children, text). */
void lv_use_tree(xmlNodePtr n);
bool lv_used(xmlNodePtr n);
/* Record a problem at n (an element or attribute) and mark its subtree.
 * fatal: refused even with lossy. */
void lv_problem(struct lv_ctx *c, xmlNodePtr n, bool fatal, const char *fmt, ...)
	_printf_(4, 5);
#define lv_refuse(c, n, ...) lv_problem(c, n, false, __VA_ARGS__)
#define lv_fatal(c, n, ...) lv_problem(c, n, true, __VA_ARGS__)
/* Refuse every node under root that nobody marked. */
void lv_account(struct lv_ctx *c, xmlNodePtr root);

/* --- readers: each marks what it returns --------------------------------- */
bool lv_is(xmlNodePtr n, const char *name);
/* The attribute node (marked), or NULL. */
xmlAttrPtr lv_attr_node(xmlNodePtr el, const char *name);
/* The attribute value (marked), or NULL. Owned by the document. */
const char *lv_attr(xmlNodePtr el, const char *name);
/* First child element `name` (marked), or NULL. */
xmlNodePtr lv_child(xmlNodePtr el, const char *name);
/* Text content of el, whitespace-trimmed into buf (marks the text nodes);
 * NULL if el has element children or the text does not fit. */
const char *lv_text(xmlNodePtr el, char *buf, size_t size);
/* An unsigned integer text/attribute; refuses (fatal) and returns -EINVAL
 * on anything else. */
int lv_text_u64(struct lv_ctx *c, xmlNodePtr el, uint64_t *ret);
int lv_attr_u64(struct lv_ctx *c, xmlNodePtr el, const char *name, uint64_t *ret);
/* <x unit='...'>N</x> in bytes; default unit `def_unit` (libvirt: KiB). */
int lv_size(struct lv_ctx *c, xmlNodePtr el, uint64_t def_unit, uint64_t *ret_bytes);
/* Attribute must be absent or one of the NULL-terminated values; refuses
 * the attribute otherwise. Returns the value or NULL. */
const char *lv_attr_oneof(struct lv_ctx *c, xmlNodePtr el, const char *name,
			  const char *const *values);
/* Element children named `name`, in order; accept each that is exactly
 * `<name/>` with no attributes. */
bool lv_empty(xmlNodePtr el);

/* --- spec building ---------------------------------------------------------- */
json_object *lv_spec_obj(struct lv_ctx *c, const char *key); /* get/create object member */
json_object *lv_spec_arr(struct lv_ctx *c, const char *key); /* get/create array member */

/* --- the parts (libvirt-import.c, libvirt-devices.c, libvirt-tune.c) --------- */
void lv_import_os(struct lv_ctx *c, xmlNodePtr os);
void lv_import_cpu(struct lv_ctx *c, xmlNodePtr cpu);
void lv_import_tunes(struct lv_ctx *c, xmlNodePtr domain);
void lv_import_metadata(struct lv_ctx *c, xmlNodePtr md);
void lv_import_devices(struct lv_ctx *c, xmlNodePtr devices);
