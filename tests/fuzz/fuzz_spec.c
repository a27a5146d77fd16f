/* SPDX-License-Identifier: MIT */
/* libFuzzer entry: arbitrary bytes -> vm_spec_from_string. Whatever parses
 * must also survive to_json -> from_json -> to_json unchanged, dup, and the
 * argv builder. */
#include <stddef.h>
#include <stdint.h>

#include "common/json.h"
#include "qemu/argv.h"
#include "qemu/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_spec *spec = NULL, *again = NULL, *dup;
	struct qv_error err = {};
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (vm_spec_from_string(text, &spec, &err) == 0) {
		json_object *j = vm_spec_to_json(spec), *j2;
		struct qv_error err2 = {};
		if (vm_spec_from_json(j, &again, &err2) != 0)
			__builtin_trap(); /* canonical output must re-parse */
		j2 = vm_spec_to_json(again);
		if (!streq(json_object_to_json_string(j), json_object_to_json_string(j2)))
			__builtin_trap(); /* and be a fixed point */
		dup = vm_spec_dup(spec);
		if (!dup)
			__builtin_trap();
		static const int fds[VM_NICS_MAX] = { 3, 4, 5, 6, 7, 8, 9, 10 };
		struct qemu_argv_opts opts = { .run_dir = "/run/qvisor/fuzz",
					       .accel = VM_ACCEL_TCG, .nic_fds = fds,
					       .n_nic_fds = VM_NICS_MAX, .sandbox = true };
		char **argv = NULL;
		struct qv_error err3 = {};
		if (qemu_argv_build(dup, &opts, &argv, &err3) != 0)
			__builtin_trap(); /* a valid spec always builds */
		strv_free(argv);
		json_object_put(j);
		json_object_put(j2);
		vm_spec_free(dup);
		vm_spec_free(again);
		vm_spec_free(spec);
	} else if (!err.set || !err.message[0]) {
		__builtin_trap(); /* every rejection explains itself */
	}
	free(text);
	return 0;
}
