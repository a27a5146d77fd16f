/* SPDX-License-Identifier: MIT */
/* libFuzzer target: libvirt domain XML import (strict and lossy). Whatever
 * the input: no crash, no leak; an imported spec validates and its export
 * imports back to the same spec. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/libvirt.h"

static void check_round_trip(json_object *spec_json)
{
	struct vm_spec *spec = NULL;
	struct lv_import *again = NULL;
	struct qv_error err = {};
	char *xml = NULL;

	if (vm_spec_from_json(spec_json, &spec, &err) < 0)
		abort(); /* import promised a valid spec */
	if (lv_export_xml(spec, &xml, &err) < 0)
		abort();
	if (lv_import_xml(xml, strlen(xml), false, &again, &err) < 0 || !again->spec)
		abort();
	if (strcmp(json_object_to_json_string(again->spec), json_object_to_json_string(spec_json)))
		abort();
	lv_import_free(again);
	free(xml);
	vm_spec_free(spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int lossy = 0; lossy <= 1; lossy++) {
		struct lv_import *imp = NULL;
		struct qv_error err = {};
		if (lv_import_xml((const char *)data, size, lossy, &imp, &err) < 0)
			continue;
		if (imp->spec)
			check_round_trip(imp->spec);
		lv_import_free(imp);
	}
	return 0;
}
