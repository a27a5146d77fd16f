/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by migrate/mirror.c (blocking start, poll, abort, adoption) and
 * migrate/mirror-async.c (the start's steps and the completion on the
 * loop). */

#include "migrate/mirror.h"

#define QMP_TIMEOUT_MS 5000

struct mirror_disk {
	unsigned index;
	char job[32];
	char node[32];
	bool node_added;
	bool job_started;
	bool ready;
	char status[16];
	uint64_t offset, len;
};

struct mig_mirror {
	mig_mirror_qmp_fn get_qmp;
	void *userdata;
	struct mirror_disk *disks;
	size_t n;
	/* mig_mirror_complete_async() in progress */
	qmp_seq *seq;
	mig_mirror_done_fn done;
	void *done_userdata;
	struct qv_error job_err; /* a job ended with an error */
};

/* One blocking command on the source QEMU (args taken). */
int mirror_qmp(mig_mirror *m, const char *cmd, json_object *args, json_object **ret,
	       struct qv_error *errp);
json_object *mirror_job_arg(const char *job);
json_object *mirror_id_arg(const char *key, const char *id);
json_object *mirror_nbd_node_args(const struct mirror_disk *d, const struct mig_mirror_disk *in,
			   const struct mig_mirror_target *t);
json_object *mirror_job_args(const struct mirror_disk *d, const struct mig_mirror_disk *in);
mig_mirror *mirror_alloc(mig_mirror_qmp_fn get_qmp, void *userdata,
		       const struct mig_mirror_disk *disks, size_t n);
bool mirror_target_ok(const struct mig_mirror_target *target, size_t n);
/* query-block-jobs' answer q (borrowed) into the disks' state. */
int mirror_parse_jobs(mig_mirror *m, json_object *q, bool *ret_all_ready, struct qv_error *errp);
/* A started job that ended or vanished is an error; else *ret_ready = ready. */
int mirror_check_jobs(mig_mirror *m, bool ready, bool *ret_ready, struct qv_error *errp);
