/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "daemon/daemon.h"

/* qvisord in a cluster (docs/cluster.md): membership under an etcd lease,
 * the cluster-wide VM inventory, placement and forwarding to the chosen
 * host. Without --cluster-endpoints none of it exists (d->cluster NULL)
 * and every hook below is a no-op that says "not clustered". */

struct qv_cluster;

/* --cluster-labels "k=v,k2=v2": 0 or -EINVAL (syntax). */
int qv_cluster_labels_check(const char *labels);

/* After the VM registry is loaded and before the RPC server serves:
 * connect the etcd client, start the workers, queue the reconciliation
 * and the first registration. A missing or broken option is fatal
 * (logged, < 0); an unreachable etcd is not (the daemon runs its VMs and
 * keeps trying). */
int qv_cluster_load(struct qv_daemon *d);
void qv_cluster_free(struct qv_daemon *d);
bool qv_cluster_enabled(const struct qv_daemon *d);

/* vm.define in a cluster (or with a placement): takes the call, answers it
 * later. params: {spec, placement?}. */
int qv_cluster_define(struct qv_daemon *d, qv_rpc_call *call, json_object *params);
/* The VM was undefined here: drop its inventory record (best effort; the
 * next reconciliation catches a miss). */
void qv_cluster_vm_undefined(struct qv_daemon *d, const char *name);
/* vm.* on a name that is not defined here: when the inventory says
 * another host owns it, forward the call there and return true (the call
 * is taken); false: answer not-found as usual. */
bool qv_cluster_forward_vm_call(struct qv_daemon *d, qv_rpc_call *call, const char *method,
				json_object *params, const char *name);

/* The VM arrived here by live migration and runs: its inventory record
 * follows it (owner: us, "moved" from the previous owner). */
void qv_cluster_vm_arrived(struct qv_daemon *d, const char *name);
/* vm.start (and every other start) of an ha VM: refused (-EBUSY,
 * conflict) while this host is self-fenced, or when the VM was stopped by
 * a fence and the leader has not restarted it (docs/cluster.md). 0 else. */
int qv_cluster_start_check(struct qv_daemon *d, const struct qv_vm *vm, struct qv_error *errp);
/* --cluster-capacity-vcpus, --cluster-balance-{interval,threshold,cooldown}
 * (name without "--"): 0 or -EINVAL (printed). */
int qv_cluster_option(struct qv_daemon_config *cfg, const char *name, const char *value);

extern const struct qv_rpc_method qv_cluster_methods[];
extern const size_t qv_cluster_methods_count;
