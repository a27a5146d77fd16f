/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

#include "daemon/vm.h"

/* One identity per VM: a uid (and the gid of the same number) from the
 * daemon's --vm-uid-range, recorded in the state store (table vm_ids) when
 * first needed and freed when the VM is undefined, so no two VMs ever share
 * it. A recorded uid that a foreign process uses (another daemon's VM, a
 * user) is given up for a free one. */

#define QV_VM_UID_FIRST_DEFAULT 2000000000u
#define QV_VM_UID_COUNT_DEFAULT 65536u

/* "FIRST-LAST" -> first, count. -EINVAL if malformed, uid 0 included, or
 * more than 2^20 ids. */
int qv_vm_uid_range_parse(const char *s, uint32_t *ret_first, uint32_t *ret_count);

/* The VM's uid (gid == uid). 0, or -errno with errp (range exhausted). */
int qv_vm_identity_acquire(struct qv_vm *vm, uid_t *ret_uid, struct qv_error *errp);
