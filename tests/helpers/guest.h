/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "qemu/spec.h"

/* Helpers for tests that boot the real test guest (scripts/mkguest.sh):
 * build/guest/{vmlinuz,initrd.img}; its /init prints QVISOR-GUEST-READY on
 * ttyS0 and powers off on ACPI power button. */

#define QVT_GUEST_READY "QVISOR-GUEST-READY"

/* Absolute guest dir ($QV_GUEST_DIR, default build/guest relative to the
 * cwd), or NULL if vmlinuz/initrd.img are missing. Static storage. */
const char *qvt_guest_dir(void);
/* "<guest dir>/<name>" (malloc'd), NULL if no guest. */
char *qvt_guest_file(const char *name);

#define QVT_REQUIRE_GUEST()                                                              \
	do {                                                                             \
		if (!qvt_guest_dir())                                                    \
			cr_skip_test("test guest not built (run make guest or set "      \
				     "QV_GUEST_DIR)");                                   \
	} while (0)

/* nanosleep for ms milliseconds. */
void qvt_sleep_ms(int ms);

/* Wait until a complete line (ended by '\n') containing needle appears in
 * the file (which may not exist yet): a caller may parse the line then.
 * 0 when found, -ETIMEDOUT. */
int qvt_wait_for_line_in_file(const char *path, const char *needle, int timeout_ms);

/* Default test spec: given name, 1 vcpu, 256 MiB, q35, accel tcg, the test
 * guest kernel/initrd, cmdline "console=ttyS0 panic=-1", serial log on.
 * NULL if no guest. Free with vm_spec_free(). */
struct vm_spec *qvt_guest_spec(const char *name);

/* Fresh private run dir under /tmp (short: QMP socket paths must fit
 * sun_path), malloc'd. qvt_rm_rf() removes it (one level of files). */
char *qvt_make_run_dir(const char *tag);
void qvt_rm_rf(const char *dir);
