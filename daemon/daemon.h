/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>

#include "common/error.h"
#include "common/loop.h"
#include "daemon/rpc.h"
#include "daemon/state.h"
#include "qemu/accel.h"

/* qvisord's shared context: one per process, owned by main. */

struct qv_vm;
struct qv_start_queue;
struct qv_fwd;

struct qv_daemon_config {
	const char *state_dir;   /* default /var/lib/qvisor */
	const char *run_dir;     /* default /run/qvisor */
	const char *socket_path; /* default <run_dir>/qvisord.sock */
	const char *cache_dir;   /* default /var/cache/qvisor (accel probe cache) */
	const char *qemu_binary; /* default qemu-system-x86_64 */
	const char *guest_dir;   /* probe guest: vmlinuz + initrd.img */
	unsigned max_clients;
	unsigned max_starts;     /* QEMUs spawned and not yet on QMP at once; 0: no bound */
	bool no_probe;           /* skip the KVM boot probe: auto -> TCG */
	uint32_t vm_uid_first;   /* --vm-uid-range: one uid per VM (vm-identity.h) */
	uint32_t vm_uid_count;
	uint64_t serial_log_max; /* --serial-log-max: bytes per serial log file */
	const char *loop_mode;   /* resource loop: off|advise|enforce|auto (default auto) */
	unsigned loop_interval_ms; /* default 1000 */
	unsigned exclusive_min_cpus; /* --exclusive-min-cpus; 0 = HL_EXCLUSIVE_MIN_CPUS */
	const char *metrics_listen; /* ADDR:PORT for Prometheus, NULL = off */
	/* daemon/tls-setup.c, docs/security.md */
	const char *pki_dir;     /* default /etc/qvisor/pki */
	bool pki_dir_set;        /* given explicitly: a broken PKI is fatal */
	const char *master_key_file; /* wraps the image keystore (storage/keystore.h) */
	const char *listen;      /* tls://HOST[:PORT] (tcp:// with insecure) */
	bool insecure;           /* allow plain TCP RPC and migration streams */
	/* daemon/cluster*.c, docs/cluster.md: NULL endpoints = no cluster */
	const char *cluster_endpoints;
	const char *cluster_host;
	const char *cluster_address; /* HOST:PORT of our tls:// listener */
	const char *cluster_labels;  /* "k=v,k2=v2" */
	const char *cluster_pki_dir; /* default: pki_dir */
	unsigned cluster_ttl_s;      /* membership lease TTL (default 6) */
	unsigned cluster_capacity_vcpus; /* 0: online CPUs (daemon/cluster-usage.c) */
	unsigned cluster_balance_interval_s; /* 0: default (daemon/cluster-balance.c) */
	double cluster_balance_threshold;    /* 0: default */
	double cluster_balance_cooldown_s;   /* < 0: default */
	char cluster_balance_policy[32];     /* "": THR at the threshold */
	bool cluster_balance_power_saving;   /* empty underloaded hosts */
	const char *cluster_shared_dirs; /* "DIR[,DIR..]": storage every host sees (HA VMs) */
	int cluster_fence_timeout_s; /* self-fence after S s without renewal; 0 off, -1 default (TTL) */
};

struct qv_daemon {
	struct qv_daemon_config cfg;
	qv_loop *loop;
	qv_state *state;
	qv_rpc_server *rpc;
	qv_rpc_server *rpc_ro;   /* read-only socket (daemon/rpc-access.c) */
	gid_t rpc_gid;           /* group qvisor, 0 if missing */
	struct qemu_accel_result accel;
	struct qv_vm *vms;       /* registry, see daemon/vm.h */
	int64_t started_at;      /* unix ms */
	bool shutting_down;
	void *net_state;         /* daemon/netreg.c */
	void *cgroup_state;      /* daemon/vm-cgroup.c */
	void *image_state;       /* daemon/methods-image.c */
	struct qv_hostloop *hostloop; /* daemon/hostloop.c */
	struct qv_start_queue *start_queue; /* daemon/vm-queue.c */
	/* daemon/tls-setup.c: loaded PKI (NULL: none, migrations need --insecure) */
	struct qv_tls_creds *tls_server;
	char tls_client_dn[512]; /* DN of our client-cert.pem (our RPC identity) */
	char tls_migrate_dn[512]; /* DN of migrate-cert.pem (what our QEMU presents); "" none */
	struct qv_fwd *fw_state; /* daemon/fw.c: the nftables firewall */
	struct qv_cluster *cluster; /* daemon/cluster*.c; NULL without --cluster-endpoints */
	/* daemon/vm-load.c: re-attaches still running at start, and whether the
	 * migration records wait for them (migrate.* answer "unavailable"). */
	unsigned n_attaching;
	bool mig_load_deferred;
};

/* --pki-dir / --listen / --insecure (daemon/tls-setup.c): load the PKI and
 * start the TCP listener. Logs and returns < 0 on a fatal problem. */
int qv_daemon_tls_setup(struct qv_daemon *d);
void qv_daemon_tls_free(struct qv_daemon *d);
/* host.info's "tls": {pki_dir, enabled, dn, listen, insecure}. */
json_object *qv_daemon_tls_json(const struct qv_daemon *d);

/* Unix time in ms. */
int64_t qv_unix_ms(void);

/* Persist an event and broadcast it to subscribers as
 * {"method":"event","params":{id,time,type,vm,data}}. data is stolen (may be
 * NULL). Failures are logged, never fatal. */
void qv_daemon_emit(struct qv_daemon *d, const char *vm, const char *type, json_object *data);

/* Method tables (daemon/methods-*.c). */
extern const struct qv_rpc_method qv_vm_methods[];
extern const size_t qv_vm_methods_count;
extern const struct qv_rpc_method qv_host_methods[];
extern const size_t qv_host_methods_count;

/* Reply helpers for handlers. */
int qv_call_fail(qv_rpc_call *call, int error, const char *reason, const char *fmt, ...)
	_printf_(4, 5);
/* Fetch a required string param "key"; on failure answers the call and
 * returns < 0. */
int qv_param_string(qv_rpc_call *call, json_object *params, const char *key, const char **ret);
/* Refuse params keys outside `keys` (NULL-terminated); on failure answers
 * the call and returns < 0. NULL params pass. */
int qv_param_check_keys(qv_rpc_call *call, json_object *params, const char *const *keys);
