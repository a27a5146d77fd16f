/* SPDX-License-Identifier: MIT */
#pragma once

#include "cluster/etcd.h"
#include "cluster/work.h"
#include "common/rpc-client.h"
#include "daemon/cluster.h"
#include "qemu/spec.h"
#include "sched/balance.h"
#include "sched/placement.h"

/* Keys (docs/cluster.md "Data model"). */
#define CL_PREFIX "/qvisor/"
#define CL_HOSTS CL_PREFIX "hosts/"
#define CL_VMS CL_PREFIX "vms/"
#define CL_HOSTCFG CL_PREFIX "hostcfg/"   /* operator settings: no lease */
#define CL_EVACS CL_PREFIX "evacuations/" /* under the driver's lease */
#define CL_DEFAULT_TTL_S 6
#define CL_PEER_TIMEOUT_MS 120000

/* What we last wrote for one of our VMs. */
struct cl_vmstate {
	struct cl_vmstate *next;
	char name[64];
	char state[16];
};

struct qv_cluster {
	struct qv_daemon *d;
	qv_etcd *etcd;       /* used by the eq worker thread only */
	qv_workq *eq;        /* etcd requests, one thread, in order */
	qv_source *tick;
	unsigned ttl_s;
	int64_t lease;       /* 0: none yet (loop thread only) */
	bool heartbeat_busy;
	bool reachable;
	bool ever_registered;
	bool reconciled;     /* the start-up reconciliation succeeded */
	bool reconcile_busy;
	struct cl_vmstate *written;
	struct cl_leader *leader; /* cluster-leader.c */
	struct cl_bal *bal;       /* cluster-balance.c */
	struct cl_cpu *cpu;       /* cluster-usage.c */
	struct cl_fence *fence; /* cluster-fence.c */
	struct cl_ha *ha;       /* cluster-ha.c: shared storage */
	struct cl_ha_leader *ha_leader; /* cluster-ha-leader.c */
};

/* A job on the etcd queue: run() on the worker (may use c->etcd),
 * finish() on the loop; the job is freed after finish(). */
struct cl_job;
typedef void (*cl_run_fn)(struct cl_job *j);
typedef void (*cl_finish_fn)(struct cl_job *j, bool cancelled);
struct cl_job {
	struct qv_cluster *c;
	cl_run_fn run;
	cl_finish_fn finish;
	qv_rpc_call *call;    /* answered by finish(), if any */
	int r;
	struct qv_error err;
	void *data;           /* the operation's own state, freed by finish() */
};
int cl_job_push(struct qv_cluster *c, qv_workq *q, cl_run_fn run, cl_finish_fn finish,
		qv_rpc_call *call, void *data);

/* cluster-member.c */
json_object *cl_host_record(struct qv_cluster *c);
/* cluster-inventory.c: the record for a VM of ours. */
json_object *cl_vm_record(struct qv_cluster *c, const struct vm_spec *spec, const char *state,
			  json_object *placement);
void cl_inventory_reconcile(struct qv_cluster *c);
/* States that changed since written: a job updating their records. */
void cl_inventory_sync_states(struct qv_cluster *c);
/* cluster-place.c */
#define PL_MAX_STRS 16
/* The cluster as sched/placement.h sees it, read from etcd (on the
 * worker): live hosts and every VM record; the strings point into the
 * records, alive until cl_snap_free(). Besides what placement filters
 * on, it carries the balancer's inputs: each host's and VM's measured
 * CPU (the owner's host record), VMs migrating, and the last live
 * migration of each VM (record field "moved": {from, at_ms}). */
struct cl_snap {
	struct qv_etcd_kv *hkv, *vkv;
	size_t nh, nv;
	json_object **hrec, **vrec;
	struct qv_pl_host *hosts;
	struct qv_pl_vm *vms;
	const char **strs;   /* labels and groups, pointing into the records */
	size_t nstrs;
	char (*labels)[128];
};
int cl_snap_load(qv_etcd *e, struct cl_snap *s, struct qv_error *errp);
void cl_snap_free(struct cl_snap *s);
int cl_place_and_define(struct qv_cluster *c, qv_rpc_call *call, json_object *spec,
			json_object *placement);
/* Define locally with the inventory claim first (placement may be NULL). */
int cl_claim_and_define(struct qv_cluster *c, qv_rpc_call *call, json_object *spec,
			json_object *placement);
/* Forward method(params) to host's daemon (tls://address) and answer call
 * with its answer; extra (stolen, may be NULL) is merged into a result. */
int cl_forward(struct qv_cluster *c, qv_rpc_call *call, const char *host, const char *address,
	       const char *method, json_object *params, json_object *extra);
/* qvisord stops: forwarded calls in flight fail ("cancelled"). */
void cl_forward_shutdown(struct qv_cluster *c);
/* cluster-leader.c: one leader elected on etcd (docs/cluster.md "Leader"):
 * the key CL_LEADER on the leader's membership lease, created only when
 * absent. Checked after each successful refresh of our membership. */
#define CL_LEADER CL_PREFIX "leader"
#define CL_LEADER_HOOKS 8
int cl_leader_init(struct qv_cluster *c);
void cl_leader_free(struct qv_cluster *c);
/* After a refresh renewed our lease: look at (or take) the leader key. */
void cl_leader_refresh(struct qv_cluster *c);
/* A refresh failed: we may have lost our lease, stop leading now. */
void cl_leader_lost_contact(struct qv_cluster *c);
/* We lead: the key is on our lease, confirmed less than a TTL ago. */
bool cl_is_leader(struct qv_cluster *c);
/* The leader's host as last seen ("" when none or unknown). */
const char *cl_leader_name(struct qv_cluster *c);
/* Leader-only work: fn runs on the loop after every refresh that finds
 * us leading (gained: the first since we became leader). -ENOSPC past
 * CL_LEADER_HOOKS. */
typedef void (*cl_leader_hook)(struct qv_cluster *c, bool gained);
int cl_leader_hook_add(struct qv_cluster *c, cl_leader_hook fn);
/* On the etcd worker: the leader's host into buf (and the key's lease);
 * -ENOENT when nobody leads. */
int cl_leader_read(qv_etcd *e, char *buf, size_t size, int64_t *ret_lease, struct qv_error *errp);

/* cluster-inventory.c: we wrote this state for one of our VMs. */
void cl_inventory_note_written(struct qv_cluster *c, const char *name, const char *state);

/* cluster-usage.c: our VMs' CPU since the last refresh into the host
 * record's usage ("cpu_used_milli", "cpu_util", "vm_cpu_milli"). */
unsigned cl_capacity_vcpus(struct qv_cluster *c);
void cl_usage_cpu(struct qv_cluster *c, json_object *use);
void cl_usage_free(struct qv_cluster *c);

/* cluster-balance.c, cluster-plan.c: the leader's balancer
 * (docs/cluster.md "Balancer"). The mode lives in CL_BALANCER. */
#define CL_BALANCER CL_PREFIX "balancer"
#define CL_BAL_DEFAULT_INTERVAL_S 10
#define CL_BAL_MIGRATION_S 300   /* vm.migrate deadline_s of an ordered move */
int cl_balance_init(struct qv_cluster *c);
void cl_balance_free(struct qv_cluster *c);
unsigned cl_bal_interval_s(struct qv_cluster *c);
/* --cluster-balance-policy NAME (thr, mad, iqr, lr, lrr, qvisor or a full
 * "iqr-mmt") into the detector's configuration; thr > 0 is THR's
 * threshold. -EINVAL when unknown or not a detector policy. */
int cl_bal_policy_cfg(const char *name, double thr, struct qv_pol_cfg *ret, char *full, size_t size);
/* The daemon's balancer settings (threshold > 0 overrides its own). */
void cl_bal_cfg(struct qv_cluster *c, struct qv_bal_cfg *cfg, double threshold);
/* Turn a loaded snapshot into the balancer's view (hosts measured by
 * their VMs, non-running VMs stay); on the leader its CPU history is
 * attached, and record adds this snapshot to it. */
void cl_bal_view(struct qv_cluster *c, struct cl_snap *s, bool record);
/* On the worker: the mode stored in etcd (advise when none). */
int cl_bal_mode_read(qv_etcd *e, enum qv_bal_mode *ret, struct qv_error *errp);
int cl_m_plan(qv_rpc_call *call, json_object *params, void *ud);
int cl_m_mode(qv_rpc_call *call, json_object *params, void *ud);

/* Apply hostcfg/ (cordons) to the hosts of s. */
int cl_snap_apply_hostcfg(qv_etcd *e, struct cl_snap *s, struct qv_error *errp);
/* Write hostcfg/host {schedulable: false, reason, by, since}. */
int cl_hostcfg_cordon(qv_etcd *e, const char *host, const char *reason, const char *by,
		      struct qv_error *errp);
/* cluster.hosts: records of cordoned hosts get schedulable false and
 * "cordon" {reason, by, since} (methods-host-maint.c; best effort). */
void cl_hosts_apply_hostcfg(qv_etcd *e, json_object *hosts);

/* cluster-peer-call.c: one RPC to a peer daemon (tls://address) from the
 * loop, never blocking it. done runs on the loop once (not after
 * cl_peer_call_cancel): r 0 with result (borrowed), or < 0 with err. */
struct cl_peer_call;
typedef void (*cl_peer_done_fn)(int r, json_object *result, const struct qv_error *err, void *ud);
int cl_peer_call(struct qv_cluster *c, const char *host, const char *address,
		 const char *method, json_object *params, unsigned timeout_ms,
		 cl_peer_done_fn done, void *ud, struct cl_peer_call **ret);
/* Every call to a peer: the daemon that answered at `uri` must hold a
 * certificate naming `host`, the host the cluster store gave that address
 * for (another host's certificate, or an address in the store pointing at
 * the wrong daemon, gets a permission error). 0 or -EACCES. */
int cl_peer_check(qv_rpc_conn *conn, const char *host, const char *uri, struct qv_error *errp);
struct cl_peer_call *cl_peer_call_cancel(struct cl_peer_call *p);

/* cluster-evacuate.c (docs/cluster.md "Maintenance") */
int cl_evacuate_start(struct qv_cluster *c, qv_rpc_call *call, const char *host, bool wait);
bool cl_evacuating(const char *host);
/* qvisord stops: running evacuations are abandoned (their lock goes with
 * our lease, the cordon stays; a rerun resumes). */
void cl_evacuate_shutdown(struct qv_cluster *c);
/* methods-host-maint.c */
int cl_m_host_cordon(qv_rpc_call *call, json_object *params, void *ud);
int cl_m_host_resume(qv_rpc_call *call, json_object *params, void *ud);
int cl_m_host_evacuate(qv_rpc_call *call, json_object *params, void *ud);
/* --- HA restart and self-fencing (docs/cluster.md "HA restart") --------- */
#define CL_FENCED_STATE "fenced"
/* cluster-place.c, on the etcd worker: a live host for the VM record
 * vm_rec (its name, size, placement labels and groups), never
 * exclude_host, only among hosts host_ok() accepts (NULL: all). */
typedef bool (*cl_host_ok_fn)(json_object *host_rec, json_object *vm_rec);
int cl_place_record(qv_etcd *e, json_object *vm_rec, const char *exclude_host,
		    cl_host_ok_fn host_ok, char *ret_host, size_t host_size, char *ret_address,
		    size_t address_size, char *ret_reason, size_t reason_size,
		    struct qv_error *errp);
/* cluster-fence.c */
int cl_fence_start(struct qv_cluster *c);
void cl_fence_free(struct qv_cluster *c);
/* The self-fence timeout in s (0: this host never fences). */
unsigned cl_fence_timeout_s(const struct qv_cluster *c);
/* A heartbeat that began at sent_ms (qv_now_ms) renewed our lease. */
void cl_fence_renewed(struct qv_cluster *c, uint64_t sent_ms);
/* name was stopped by a fence and not restarted since: its records say
 * "fenced". */
bool cl_fence_is_fenced(const struct qv_cluster *c, const char *name);
/* name runs again under our ownership (the leader gave it back to us). */
void cl_fence_clear(struct qv_cluster *c, const char *name);
/* cluster-ha.c. init: --cluster-shared-dir checked (fatal when wrong). */
int cl_ha_init(struct qv_cluster *c);
/* vm.define of an ha spec here: its disks on shared storage, fencing on. */
int cl_ha_check_spec(struct qv_cluster *c, const struct vm_spec *spec, struct qv_error *errp);
/* Fields of our host record: shared_dirs[], fence_timeout_s. */
void cl_ha_host_fields(struct qv_cluster *c, json_object *host_rec);
/* Fields of an ha VM's record: ha, spec, fence_timeout_s. */
void cl_ha_vm_fields(struct qv_cluster *c, const struct vm_spec *spec, json_object *vm_rec);
void cl_ha_free(struct qv_cluster *c);
/* cluster.adopt {name}: the leader gave us an ha VM; define it from its
 * record's spec and start it. */
int cl_ha_m_adopt(qv_rpc_call *call, json_object *params, void *ud);
/* Adopt name here (the leader's own host is the target). */
void cl_ha_adopt_local(struct qv_cluster *c, const char *name);
/* For placing a new ha VM: {shared_dirs} to test hosts with
 * cl_ha_host_sees(); NULL for a VM that is not ha. */
json_object *cl_ha_place_filter(struct qv_cluster *c, const struct vm_spec *spec);
/* The host record host_rec sees every shared dir vm_rec's disks are on. */
bool cl_ha_host_sees(json_object *host_rec, json_object *vm_rec);
/* cluster-ha-leader.c: the leader's scan for ha VMs to restart. */
int cl_ha_leader_init(struct qv_cluster *c);
void cl_ha_leader_free(struct qv_cluster *c);
