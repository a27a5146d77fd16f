/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "cluster/work.h"
#include "daemon/vm-move.h"

#define MV_MAX_DISKS 16
#define MV_CHUNK ((size_t)512 << 10)   /* one move.write: 512 KiB, ~700 KB of base64 */
#define MV_STEP_TIMEOUT_MS 60000
#define MV_VERIFY_TIMEOUT_MS (30 * 60 * 1000)
#define MV_IN_DIR "move-in"              /* <state_dir>/move-in/<token>/ (destination) */
#define MV_OUT_DIR "move-out"            /* <state_dir>/move-out/<vm>.json (source) */
#define MV_MAX_BANDWIDTH_MIB (1 << 20)   /* 1 TiB/s: params.bandwidth_mib's ceiling */
#define MV_IDLE_MS 120000                /* an incoming move without a write for this long is dropped */

/* vm-move-util.c */
/* The copy threads (created on first use). */
int mv_workq(struct qv_daemon *d, qv_workq **ret);
void mv_workq_free(void);
/* Write obj to path atomically (tmp + rename), 0600. */
int mv_write_json(const char *path, json_object *obj);
json_object *mv_read_json(const char *path);
/* Remove dir and everything below it (symlinks are not followed). */
void mv_rm_dir(const char *dir);
bool mv_token_valid(const char *t);
/* fn for each entry of <state_dir>/sub (not hidden ones); path is the
 * entry's full path, name its name. */
typedef void (*mv_scan_fn)(struct qv_daemon *d, const char *path, const char *name);
void mv_scan_dir(struct qv_daemon *d, const char *sub, mv_scan_fn fn);
void mv_hex64(uint64_t v, char buf[17]);

/* vm-move-cluster.c: inventory steps, answered on the loop. value: the
 * host's address (resolve), the owner (owner). */
typedef void (*mv_cl_fn)(struct qv_daemon *d, int r, const struct qv_error *err,
			 const char *value, void *userdata);
int mv_cluster_resolve(struct qv_daemon *d, const char *host, mv_cl_fn fn, void *userdata);
int mv_cluster_owner(struct qv_daemon *d, const char *vm, mv_cl_fn fn, void *userdata);
/* The ONE transaction: owner (us) -> host, compared on the record's revision. */
int mv_cluster_switch(struct qv_daemon *d, const char *vm, const char *host, mv_cl_fn fn,
		      void *userdata);
/* A VM moved in: let the inventory sync track its state from now on. */
void mv_cluster_adopted(struct qv_daemon *d);

/* vm-move-dest.c */
void mv_dest_load(struct qv_daemon *d);
int mv_m_prepare(qv_rpc_call *call, json_object *params, void *ud);
int mv_m_write(qv_rpc_call *call, json_object *params, void *ud);
int mv_m_commit(qv_rpc_call *call, json_object *params, void *ud);
int mv_m_finish(qv_rpc_call *call, json_object *params, void *ud);
int mv_m_abort(qv_rpc_call *call, json_object *params, void *ud);

/* vm-move-source.c */
void mv_source_load(struct qv_daemon *d);
