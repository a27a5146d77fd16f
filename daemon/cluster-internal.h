/* SPDX-License-Identifier: MIT */
#pragma once

#include "cluster/etcd.h"
#include "cluster/work.h"
#include "daemon/cluster.h"
#include "qemu/spec.h"

/* Keys (docs/cluster.md "Data model"). */
#define CL_PREFIX "/qvisor/"
#define CL_HOSTS CL_PREFIX "hosts/"
#define CL_VMS CL_PREFIX "vms/"
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
