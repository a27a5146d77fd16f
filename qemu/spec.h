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

/* spec.nics[].firewall (qemu/spec-firewall.c, docs/firewall.md): rules the
 * daemon turns into nftables (net/fw.h). Also the rule grammar of security
 * groups (fw.group.define). */
#define VM_FW_RULES_MAX 64     /* per NIC */
#define VM_FW_GROUP_RULES_MAX 256
#define VM_FW_GROUPS_MAX 8     /* groups per NIC */
#define VM_FW_ADDRS_MAX 8
#define VM_FW_PORTS_MAX 8
#define VM_FW_GROUP_NAME_MAX 32
#define VM_FW_CIDR_MAX 44      /* "ffff:...:ffff/128" */

enum vm_fw_dir { VM_FW_IN, VM_FW_OUT };
enum vm_fw_action { VM_FW_ACCEPT, VM_FW_DROP, VM_FW_REJECT };
enum vm_fw_proto { VM_FW_ANY, VM_FW_TCP, VM_FW_UDP, VM_FW_ICMP, VM_FW_ICMPV6 };
enum vm_fw_rate_unit { VM_FW_PER_SECOND, VM_FW_PER_MINUTE, VM_FW_PER_HOUR };

struct vm_fw_rule {
	enum vm_fw_dir dir;
	enum vm_fw_proto proto;
	uint16_t ports[VM_FW_PORTS_MAX][2]; /* destination port ranges lo..hi */
	unsigned n_ports;
	char cidr[VM_FW_CIDR_MAX + 1]; /* remote address, canonical; "" = any */
	int family;            /* 4, 6, or 0 when neither cidr nor proto fixes it */
	char icmp_type[32];    /* nft name or decimal; "" = any */
	enum vm_fw_action action;
	uint32_t rate;         /* 0 = no limit */
	enum vm_fw_rate_unit rate_unit;
};

struct vm_fw {
	bool anti_spoof;       /* default true */
	enum vm_fw_action policy_in, policy_out; /* default accept */
	char addrs[VM_FW_ADDRS_MAX][VM_FW_CIDR_MAX + 1]; /* allowed sources, canonical */
	size_t n_addrs;
	char groups[VM_FW_GROUPS_MAX][VM_FW_GROUP_NAME_MAX + 1];
	size_t n_groups;
	struct vm_fw_rule rules[VM_FW_RULES_MAX];
	size_t n_rules;
};

struct vm_nic {
	char *network;         /* exactly one of network / bridge is set */
	char *bridge;
	char mac[18];          /* "52:54:00:xx:xx:xx"; generated from uuid if absent */
	char *model;           /* "virtio" (only model today) */
	struct vm_fw *fw;      /* NULL: defaults (anti-spoofing, accept both ways) */
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
	bool cpu_exclusive;        /* latency: exclusive cores even on a small host */
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
	bool ha;                 /* cluster HA restart (docs/cluster.md "HA restart"); default false */
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

/* qemu/spec-firewall.c. The defaults of a NIC without "firewall". */
void vm_fw_defaults(struct vm_fw *fw);
int vm_fw_parse(json_object *o, const char *path, struct vm_fw **ret, struct qv_error *errp);
json_object *vm_fw_to_json(const struct vm_fw *fw);
/* One rule of the grammar shared by NICs and security groups. */
int vm_fw_rule_parse(json_object *o, const char *path, struct vm_fw_rule *ret,
		     struct qv_error *errp);
json_object *vm_fw_rule_to_json(const struct vm_fw_rule *r);
/* Group names: 1-32 of [a-zA-Z0-9_], starting with a letter. */
bool vm_fw_group_name_valid(const char *s);
const char *vm_fw_action_to_string(enum vm_fw_action a);
int vm_restart_policy_from_string(const char *s);
