/* SPDX-License-Identifier: MIT */
#pragma once

#include <limits.h>

#include "daemon/vm-move-internal.h"

/* One outgoing move (daemon/vm-move-source.c drives it on the loop;
 * daemon/vm-move-copy.c runs its blocking steps on a copy thread). */
struct mv_src_disk {
	char path[PATH_MAX];
	bool copy;
	uint64_t size, alloc, csum;
};

enum mv_out_phase { MV_OUT_RESOLVING, MV_OUT_COPYING, MV_OUT_SWITCHING, MV_OUT_FINISHING,
		    MV_OUT_ABORTING };

struct mv_out {
	struct mv_out *next;
	struct qv_daemon *d;
	qv_rpc_call *call;          /* NULL when resumed after a restart */
	char vm[64];
	char token[33];
	char to[192];               /* the destination daemon's URI */
	char dest_host[64];         /* its cluster host name ("" without a cluster) */
	enum mv_out_phase phase;
	json_object *spec;          /* given to the copy thread */
	json_object *keys;          /* disk_keys, given to the copy thread */
	size_t n;
	struct mv_src_disk disks[MV_MAX_DISKS];
	uint64_t bandwidth;         /* bytes/s, 0: unlimited */
	_Atomic uint64_t done;
	uint64_t total;
	atomic_bool cancel;
	bool prepared;              /* the destination has the move: abort it on failure */
	bool step_finish;           /* mv_step_run: finish (else abort) */
	unsigned finish_tries;
	qv_source *tick;
	uint64_t started_ms;
	json_object *dest_paths;    /* move.finish's answer */
	int r;
	struct qv_error err;
	struct qv_error fail;       /* why the move failed (answered after the abort) */
};

/* vm-move-copy.c, on a copy thread */
void mv_copy_run(void *ud);
void mv_step_run(void *ud);

/* vm-move-source.c: o filled by vm.move (vm, token, to or host, disks,
 * spec, keys, bandwidth, total); takes o (on failure: < 0, errp set, the
 * call not answered, o freed). host: a cluster host name to resolve, or NULL
 * when o->to is a URI. */
int mv_source_begin(struct mv_out *o, const char *host, struct qv_error *errp);
bool mv_source_busy(const char *vm);
void mv_source_cancel_all(void);
