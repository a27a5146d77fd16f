/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between daemon/methods-image.c (the image.* handlers) and
 * daemon/image-job.c (long copies on worker threads). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "common/secret.h"
#include "storage/keystore.h"
#include "storage/pool.h"

struct image_job;

/* d->image_state. */
struct image_state {
	struct qv_daemon *d;
	qv_pool *pool;
	qv_keystore *keys;      /* <state-dir>/keys: LUKS passphrases (image-keys.c) */
	struct image_job *jobs; /* in flight, newest first */
	unsigned next_op;
};

enum image_job_kind {
	IMAGE_JOB_IMPORT, /* src: absolute path of a host file */
	IMAGE_JOB_CLONE,  /* src: pool image name (full clone) */
};

struct image_job_params {
	enum image_job_kind kind;
	const char *src;
	const char *name;
	enum qv_image_format fmt; /* import only; QV_IMAGE_AUTO sniffs */
	uint64_t bandwidth;       /* bytes/s, 0 = unlimited */
	bool verify;              /* re-read the copy and compare checksums */
	/* import: the passphrase of an encrypted image; clone: the source's
	 * key, stored for the clone. The job keeps a copy. */
	const struct qv_secret *key;
};

/* Start a copy on a worker thread; the job owns `call` from here on and
 * finishes it from the loop thread (result: image_info_json() of the new
 * image plus op_id and stats). Answers the call itself on failure. */
int image_job_start(struct image_state *st, qv_rpc_call *call,
		    const struct image_job_params *p);
/* Cancel every job, wait for the threads, finish their calls. */
void image_jobs_free(struct image_state *st);
/* The job that is creating or reading image `name`, or NULL. */
struct image_job *image_job_find(struct image_state *st, const char *name, bool *ret_is_dest);
const char *image_job_op_id(const struct image_job *job);
const char *image_job_dest(const struct image_job *job);
/* Iterate jobs: NULL starts, NULL ends. */
struct image_job *image_job_next(struct image_state *st, struct image_job *job);
/* Source: a host path (import) or a pool image name (clone). */
const char *image_job_src(const struct image_job *job, enum image_job_kind *ret_kind);
/* [{op_id, kind, source, name, done, total}] */
json_object *image_jobs_json(struct image_state *st);

/* One pool image as a JSON object (methods-image.c), NULL + errp on error. */
json_object *image_info_json(struct image_state *st, const char *name, struct qv_error *errp);

/* --- encrypted images (daemon/image-keys.c) --- */
/* LUKS PBKDF time for keys qvisor generates (256 random bits: a slow PBKDF
 * adds nothing); operator passphrases get QEMU's default (2000 ms). */
#define IMAGE_GENERATED_KEY_ITER_MS 100
int image_keys_open(struct image_state *st, struct qv_error *errp);
/* Is the image file encrypted (qcow2 LUKS)? -errno with errp for a legacy
 * AES qcow2 or a raw LUKS file (not supported). */
int image_file_encrypted(const char *path, bool *ret, struct qv_error *errp);
/* Worker thread, after an import or a full clone published `name`: check
 * that the copy's encryption matches key (and that key opens it), store
 * key. On failure the copy is removed. */
int image_keys_after_copy(struct image_state *st, const char *name,
			  const struct qv_secret *key, struct qv_error *errp);
/* params.passphrase as a secret; *ret NULL when absent. Answers the call
 * on failure. */
int image_param_passphrase(qv_rpc_call *call, json_object *params, struct qv_secret **ret);
/* image.create with encrypt: true (methods-image.c validated the rest). */
int image_create_encrypted(struct image_state *st, qv_rpc_call *call, const char *name,
			   uint64_t size, json_object *params);
/* Extra image.info members: encrypted, and for encrypted images key_slots
 * and key ("stored" | "missing"). Never key material. */
void image_keys_info_json(struct image_state *st, const char *name,
			  const struct qv_image_info *info, json_object *o);
/* image.rekey {name, passphrase?} */
int image_m_rekey(qv_rpc_call *call, json_object *params, void *ud);
