/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "common/error.h"

/* Run qemu-img (or $QV_QEMU_IMG) with argv (argv[0] is ignored and replaced)
 * via fork+exec, no shell. Captures stdout into *ret_out when non-NULL
 * (NUL-terminated, at most 1 MiB). A non-zero exit fills errp with reason
 * qemu-error and qemu-img's last stderr line. */
int qv_qemu_img_run(char *const argv[], char **ret_out, struct qv_error *errp);
/* The same, with keep_fds left open in qemu-img (O_CLOEXEC cleared in the
 * child only): secrets are passed as --object secret,file=/proc/self/fd/N. */
int qv_qemu_img_run_fds(char *const argv[], const int *keep_fds, size_t n_keep, char **ret_out,
			struct qv_error *errp);
/* `json:{"driver":"qcow2","file":{"driver":"file","filename":PATH},
 * "backing":null[,"encrypt.key-secret":SECRET_ID]}` (malloc'd, NULL on
 * ENOMEM): qemu-img opens the image without following the backing file its
 * header names. */
char *qv_qemu_img_json_name(const char *path, const char *secret_id);
