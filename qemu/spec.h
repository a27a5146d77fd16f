/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"

/* The VM spec: a JSON document, strictly validated (unknown fields are an
 * error). docs/vm-spec.md documents every field. This is a plain data
 * struct: the daemon, argv builder, cgroup and migration code all read it. */

#define VM_NAME_MAX 63
#define VM_VCPUS_MAX 64
#define VM_MEMORY_MIN_MIB 16ULL
#define VM_MEMORY_MAX_MIB (1024ULL * 1024) /* 1 TiB */
#define VM_DISKS_MAX 16
#define VM_NICS_MAX 8
#define VM_DISK_SERIAL_MAX 20 /* virtio-blk's limit */

enum vm_accel { VM_ACCEL_AUTO, VM_ACCEL_KVM, VM_ACCEL_TCG };
enum vm_restart_policy { VM_RESTART_NO, VM_RESTART_ON_FAILURE };
enum vm_disk_format { VM_DISK_RAW, VM_DISK_QCOW2 };

struct vm_disk {
	char *path;            /* absolute image path */
	enum vm_disk_format format;
	bool readonly;
	/* io limits for this disk (0 = unset) */
	uint64_t io_rbps, io_wbps, io_riops, io_wiops;
	uint32_t io_weight;    /* 0 = unset, else 1..10000 */
	char serial[VM_DISK_SERIAL_MAX + 1]; /* "" = none; virtio-blk serial */
};

struct vm_nic {
	char *network;         /* exactly one of network / bridge is set */
	char *bridge;
	char mac[18];          /* "52:54:00:xx:xx:xx"; generated from uuid if absent */
	char *model;           /* "virtio" (only model today) */
};

struct vm_limits {
	/* 0 / NULL means "not set". */
	uint64_t cpu_max_quota_us;  /* cpu.max quota; period below */
	uint64_t cpu_max_period_us; /* default 100000 */
	uint32_t cpu_weight;        /* 1..10000 */
	char *cpuset_cpus;
	char *cpuset_mems;
	uint64_t memory_max;        /* bytes */
	uint64_t memory_high;
	int64_t memory_swap_max;    /* -1 = unset, 0 = no swap */
	uint64_t pids_max;
};

/* Entitlements for the host resource loop (sched/alloc.h, docs/vm-spec.md). */
enum vm_class { VM_CLASS_THROUGHPUT, VM_CLASS_LATENCY, VM_CLASS_BEST_EFFORT };
enum vm_loop_mode { VM_LOOP_HOST, VM_LOOP_OFF, VM_LOOP_ADVISE, VM_LOOP_ENFORCE };
#define VM_SHARES_DEFAULT 1000u
#define VM_SHARES_MAX 100000u

struct vm_resources {
	uint32_t cpu_shares;       /* 1..VM_SHARES_MAX, default 1000 */
	uint32_t cpu_reservation;  /* millicores guaranteed; 0 = none */
	uint32_t cpu_limit;        /* millicores never exceeded; 0 = none */
	uint64_t mem_reservation;  /* bytes (memory.low); 0 = none */
	uint64_t mem_limit;        /* bytes (memory.max); 0 = none */
	enum vm_class klass;       /* default throughput */
	enum vm_loop_mode mode;    /* default: the host's mode */
};

struct vm_restart {
	enum vm_restart_policy policy;
	uint32_t max_restarts;   /* within window_s; default 5 */
	uint32_t window_s;       /* default 300 */
	uint32_t backoff_ms;     /* first delay, doubled each time; default 1000 */
};

/* cloud-init NoCloud seed (qemu/spec-cloudinit.c): the daemon writes a
 * "cidata" ISO with these files and attaches it read-only. */
#define VM_CLOUD_INIT_MAX (64 * 1024) /* bytes per document */
struct vm_cloud_init {
	char *user_data;       /* user-data ("" if absent) */
	char *meta_data;       /* extra meta-data; instance-id/local-hostname are generated */
	char *network_config;  /* network-config, NULL = no such file */
};

/* spec.balloon (qemu/spec-balloon.c): a virtio-balloon device. The target
 * is set at start (libvirt's <currentMemory>); vm.balloon changes it live. */
#define VM_BALLOON_STATS_DEFAULT_S 5u
#define VM_BALLOON_STATS_MAX_S 3600u
struct vm_balloon {
	bool enabled;
	uint64_t target;           /* bytes at start; 0 = the full memory */
	uint32_t stats_interval_s; /* guest statistics polling; 0 = off */
};

/* spec.backup (qemu/spec-backup.c): scheduled backups run by the daemon
 * (docs/backup.md "Scheduled backups"). interval_s 0: none. */
struct vm_backup {
	uint32_t interval_s;     /* "hourly" 3600, "daily" 86400, "weekly" 604800 */
	uint32_t keep_last, keep_daily; /* prune after each backup; 0 = keep all */
	char store[256];         /* absolute; "" = the daemon's default store */
};

struct vm_spec {
	char *name;              /* [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62} */
	char uuid[37];           /* generated if absent */
	uint32_t vcpus;          /* default 1 */
	uint64_t memory_mib;     /* default 256 */
	char *machine;           /* default "q35" */
	enum vm_accel accel;     /* default auto */
	char *kernel, *initrd, *cmdline; /* direct kernel boot, or ... */
	int boot_disk;           /* ... index into disks[], -1 = none */
	struct vm_disk *disks;
	size_t n_disks;
	struct vm_nic *nics;
	size_t n_nics;
	bool serial_log;         /* also tee serial output to serial.log; default true */
	struct vm_limits limits;
	bool has_limits;         /* any limit field present */
	struct vm_restart restart;
	struct vm_resources resources; /* defaults when absent */
	bool has_resources;
	struct vm_cloud_init *cloud_init; /* NULL = no seed */
	bool guest_agent;        /* virtio-serial channel for qemu-ga; default false */
	struct vm_balloon balloon; /* default: no balloon */
	struct vm_backup backup;   /* default: no schedule */
};

bool vm_name_valid(const char *name);

/* Parse and validate. On failure errp says which field and why. */
int vm_spec_from_json(json_object *obj, struct vm_spec **ret_spec, struct qv_error *errp);
int vm_spec_from_string(const char *text, struct vm_spec **ret_spec, struct qv_error *errp);
/* Canonical JSON with every default filled in (round-trips through _from_json). */
json_object *vm_spec_to_json(const struct vm_spec *spec);
struct vm_spec *vm_spec_dup(const struct vm_spec *spec);
struct vm_spec *vm_spec_free(struct vm_spec *spec);
void vm_spec_freep(struct vm_spec **spec);

/* Stable locally administered MAC from uuid and NIC index: 52:54:00:xx:xx:xx. */
void vm_mac_from_uuid(const char *uuid, unsigned index, char ret_mac[18]);

const char *vm_accel_to_string(enum vm_accel a);
/* The enum value, or -EINVAL. */
int vm_accel_from_string(const char *s);
const char *vm_disk_format_to_string(enum vm_disk_format f);
int vm_disk_format_from_string(const char *s);
/* Adds class, mode, cpu{}, memory{} to out (the spec.resources form). */
void vm_resources_to_json(const struct vm_resources *res, json_object *out);
const char *vm_class_to_string(enum vm_class c);
int vm_class_from_string(const char *s);
const char *vm_loop_mode_to_string(enum vm_loop_mode m);
int vm_loop_mode_from_string(const char *s);
/* The "balloon" member of the canonical form; NULL when disabled. */
json_object *vm_balloon_to_json(const struct vm_balloon *b);
/* The "backup" member of the canonical form; NULL when unscheduled. */
json_object *vm_backup_to_json(const struct vm_backup *b);
const char *vm_restart_policy_to_string(enum vm_restart_policy p);
int vm_restart_policy_from_string(const char *s);
