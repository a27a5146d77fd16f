/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "common/error.h"
#include "qemu/spec.h"

/* `accel: auto` resolution. KVM is chosen only if a probe guest actually
 * reaches its ready marker under -accel kvm within a deadline: /dev/kvm may
 * open fine while nested KVM hangs real guests. The probe never hangs: the
 * probe QEMU is killed at the deadline.
 *
 * The result is cached as JSON (cache_dir/accel-probe.json) keyed by host
 * kernel release, QEMU version and probe kernel/initrd; a later call with the
 * same key returns it without booting. The caller logs `reason` once. */

#define QEMU_ACCEL_PROBE_TIMEOUT_MS 10000
#define QEMU_ACCEL_READY_MARKER "QVISOR-GUEST-READY"

struct qemu_accel_probe_opts {
	const char *qemu_binary; /* NULL -> qemu-system-x86_64 from $PATH */
	const char *kernel;      /* probe guest; NULL -> no boot probe (TCG) */
	const char *initrd;
	const char *cache_dir;   /* NULL -> no cache */
	int timeout_ms;          /* 0 -> QEMU_ACCEL_PROBE_TIMEOUT_MS */
	const char *kvm_device;  /* NULL -> /dev/kvm */
	const char *marker;      /* NULL -> QEMU_ACCEL_READY_MARKER */
};

struct qemu_accel_result {
	bool kvm_present;     /* the device opens and KVM_GET_API_VERSION == 12 */
	bool kvm_usable;      /* a probe guest booted under KVM */
	enum vm_accel chosen; /* VM_ACCEL_KVM or VM_ACCEL_TCG */
	bool from_cache;
	char reason[384];     /* e.g. "KVM present but unusable: ..." */
};

/* Fails only on bad arguments; any KVM trouble is a result, not an error. */
int qemu_accel_probe(const struct qemu_accel_probe_opts *opts, struct qemu_accel_result *ret,
		     struct qv_error *errp);

/* Requested accel + probe result -> what to pass to QEMU. AUTO follows the
 * probe; KVM and TCG are kept as asked (QEMU reports KVM failures itself). */
enum vm_accel qemu_accel_resolve(enum vm_accel requested, const struct qemu_accel_result *probe);
