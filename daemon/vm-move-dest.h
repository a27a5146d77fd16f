/* SPDX-License-Identifier: MIT */
#pragma once

#include <limits.h>

#include "common/secret.h"
#include "daemon/vm-move-internal.h"
#include "storage/image.h"

/* The destination's incoming moves (daemon/vm-move-dest.c; their
 * meta.json and the restart in daemon/vm-move-dest-load.c). */
enum mv_phase { MV_RECEIVING, MV_VERIFYING, MV_VERIFIED };

struct mv_disk {
	bool copy;
	uint64_t size;
	int fd;
	char image[QV_IMAGE_NAME_MAX + 1];
	char final[PATH_MAX];
	uint64_t want, got; /* checksums: the source's, ours */
};

struct mv_in {
	struct mv_in *next;
	struct qv_daemon *d;
	char token[33];
	char vm[64];
	char dir[PATH_MAX];
	json_object *spec;
	size_t n;
	struct mv_disk disks[MV_MAX_DISKS];
	struct qv_secret *keys[MV_MAX_DISKS];
	bool keys_stored;
	enum mv_phase phase;
	uint64_t last_ms;
	qv_rpc_call *call; /* move.commit in flight */
	int r;
	struct qv_error err;
};


extern struct mv_in *mv_incoming;

/* <dir>/meta.json: what a restart needs (never the keys). */
int mv_in_save_meta(struct mv_in *m);
