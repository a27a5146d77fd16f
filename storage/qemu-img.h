/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"

/* Run qemu-img (or $QV_QEMU_IMG) with argv (argv[0] is ignored and replaced)
 * via fork+exec, no shell. Captures stdout into *ret_out when non-NULL
 * (NUL-terminated, at most 1 MiB). A non-zero exit fills errp with reason
 * qemu-error and qemu-img's last stderr line. */
int qv_qemu_img_run(char *const argv[], char **ret_out, struct qv_error *errp);
