/* SPDX-License-Identifier: MIT */
#pragma once

#include "cluster/etcd.h"
#include "cluster/work.h"
#include "daemon/cluster.h"
#include "qemu/spec.h"
#include "sched/placement.h"

/* Keys (docs/cluster.md "Data model"). */
#define CL_PREFIX "/qvisor/"
#define CL_HOSTS CL_PREFIX "hosts/"
#define CL_VMS CL_PREFIX "vms/"
#define CL_HOSTCFG CL_PREFIX "hostcfg/"   /* operator settings: no lease */
#define CL_EVACS CL_PREFIX "evacuations/" /* under the driver's lease */
#define CL_DEFAULT_TTL_S 6
#define CL_PEER_TIMEOUT_MS 120000
#define CL_PEER_THREADS 4

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
	qv_workq *pq;        /* calls to peer daemons */
	qv_source *tick;
	unsigned ttl_s;
	int64_t lease;       /* 0: none yet (loop thread only) */
	bool heartbeat_busy;
	bool reachable;
	bool ever_registered;
	bool reconciled;     /* the start-up reconciliation succeeded */
	bool reconcile_busy;
	struct cl_vmstate *written;
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
int cl_place_and_define(struct qv_cluster *c, qv_rpc_call *call, json_object *spec,
			json_object *placement);
/* Define locally with the inventory claim first (placement may be NULL). */
int cl_claim_and_define(struct qv_cluster *c, qv_rpc_call *call, json_object *spec,
			json_object *placement);
/* Forward method(params) to host's daemon (tls://address) and answer call
 * with its answer; extra (stolen, may be NULL) is merged into a result. */
int cl_forward(struct qv_cluster *c, qv_rpc_call *call, const char *host, const char *address,
	       const char *method, json_object *params, json_object *extra);

/* cluster-place.c: a placement snapshot of live data: hosts with a lease
 * (an operator's cordon in hostcfg/ makes one unschedulable), every VM
 * record (state "migrating": never chosen). Alive until cl_snap_free(). */
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
/* Apply hostcfg/ (cordons) to the hosts of s. */
int cl_snap_apply_hostcfg(qv_etcd *e, struct cl_snap *s, struct qv_error *errp);
/* Write hostcfg/host {schedulable: false, reason, by, since}. */
int cl_hostcfg_cordon(qv_etcd *e, const char *host, const char *reason, const char *by,
		      struct qv_error *errp);
/* cluster.hosts: records of cordoned hosts get schedulable false and
 * "cordon" {reason, by, since} (methods-host-maint.c; best effort). */
void cl_hosts_apply_hostcfg(qv_etcd *e, json_object *hosts);
/* cl_vm_record's state-only update was written (cluster-inventory.c). */
void cl_inventory_note_written(struct qv_cluster *c, const char *name, const char *state);

/* cluster-peer-call.c: one RPC to a peer daemon (tls://address) from the
 * loop, never blocking it. done runs on the loop once (not after
 * cl_peer_call_cancel): r 0 with result (borrowed), or < 0 with err. */
struct cl_peer_call;
typedef void (*cl_peer_done_fn)(int r, json_object *result, const struct qv_error *err, void *ud);
int cl_peer_call(struct qv_cluster *c, const char *address, const char *method,
		 json_object *params, unsigned timeout_ms, cl_peer_done_fn done, void *ud,
		 struct cl_peer_call **ret);
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
