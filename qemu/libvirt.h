/* SPDX-License-Identifier: MIT */
#pragma once

/* libvirt domain XML <-> qvisor VM spec (pure conversion, libxml2).
 *
 * Import walks every element, attribute and text node of the document and
 * accounts for each one: it is either mapped to a spec field, accepted as
 * equal to what qvisor does anyway (docs/interop.md lists them), or refused
 * with the XPath of the node and why. Nothing is silently dropped. With
 * `lossy`, refusals that only lose a feature become warnings; fatal problems
 * (malformed values, another architecture, a spec the validator refuses)
 * refuse the import in both modes.
 *
 * Export writes the libvirt XML for a spec; what libvirt cannot say
 * (accel auto, restart tuning, pids.max, ...) goes into a
 * <metadata><qvisor:vm xmlns:qvisor="urn:qvisor:libvirt:1"/> element that
 * import reads back, so export -> import gives the same spec. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "qemu/spec.h"

#define LV_XML_MAX_BYTES (1024 * 1024)
#define LV_NS_QVISOR "urn:qvisor:libvirt:1"

struct lv_import {
	/* The spec (validated by vm_spec_from_json), or NULL if refused. */
	json_object *spec;
	/* The converted spec before validation, as far as the conversion got
	 * (also when refused; for diagnostics and tests, never to define). */
	json_object *draft;
	/* [{"xpath": "/domain/devices/graphics", "why": "...", "fatal": bool}]:
	 * the refusals, or with lossy the warnings. Never NULL. */
	json_object *problems;
};

/* Parse and convert. Returns 0 with *ret_import filled whether the document
 * was imported or refused (import->spec NULL); -EINVAL with errp when the
 * text is not a well-formed XML document (DTDs and entities are refused),
 * -E2BIG when over LV_XML_MAX_BYTES, -ENOMEM. */
int lv_import_xml(const char *xml, size_t len, bool lossy, struct lv_import **ret_import,
		  struct qv_error *errp);
/* For a refused import: errp gets reason "unsupported" and a message naming
 * the first problems; returns -EOPNOTSUPP. */
int lv_import_refusal(const struct lv_import *import, struct qv_error *errp);
struct lv_import *lv_import_free(struct lv_import *import);
void lv_import_freep(struct lv_import **import);

/* The libvirt domain XML for spec (NUL-terminated, malloc'ed). */
int lv_export_xml(const struct vm_spec *spec, char **ret_xml, struct qv_error *errp);
