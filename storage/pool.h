/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/secret.h"
#include "storage/copy.h"
#include "storage/image.h"

/* A directory pool (default <state-dir>/images). Image <name> of format
 * <fmt> is the regular file <dir>/<name>.<fmt>; the format is known from the
 * file name and never guessed from content. Names follow the VM name
 * grammar, so they contain no '/' and never start with '.', and files that
 * are not regular (symlinks included) are refused: every path stays inside
 * the pool directory. Mutations take an flock on the directory.
 *
 * Refusing to delete or resize an image a VM uses is the daemon's call:
 * install an in-use hook; delete/resize then fail with -EBUSY (conflict).
 * Deleting an image that other pool images use as backing file fails the
 * same way. */

typedef struct qv_pool qv_pool;
typedef bool (*qv_pool_in_use_fn)(const char *name, const char *path, void *userdata);

enum qv_clone_mode {
	QV_CLONE_FULL,   /* an independent copy through the copy engine */
	QV_CLONE_LINKED, /* a qcow2 overlay whose backing file is the source */
};

/* Open (creating the directory, mode 0700, if missing) the pool at dir. */
int qv_pool_open(const char *dir, qv_pool **ret, struct qv_error *errp);
qv_pool *qv_pool_free(qv_pool *p);
/* Canonical absolute path of the pool directory. */
const char *qv_pool_dir(const qv_pool *p);
void qv_pool_set_in_use_hook(qv_pool *p, qv_pool_in_use_fn fn, void *userdata);

/* Absolute path and format of an existing image. */
int qv_pool_lookup(qv_pool *p, const char *name, char **ret_path,
		   enum qv_image_format *ret_fmt, struct qv_error *errp);
int qv_pool_create(qv_pool *p, const char *name, enum qv_image_format fmt, uint64_t size,
		   struct qv_error *errp);
/* Copy an external file in; fmt may be QV_IMAGE_AUTO (qcow2 magic sniff,
 * acceptable because the operator names the file). qcow2 files with a
 * backing file are refused. copy_opts may be NULL; no_replace is forced. */
int qv_pool_import(qv_pool *p, const char *src_path, const char *name,
		   enum qv_image_format fmt, const struct qv_copy_opts *copy_opts,
		   struct qv_copy_stats *ret_stats, struct qv_error *errp);
/* Full clone keeps the source format; linked clone is always qcow2.
 * ret_stats is only filled for full clones. */
int qv_pool_clone(qv_pool *p, const char *src_name, const char *dst_name,
		  enum qv_clone_mode mode, const struct qv_copy_opts *copy_opts,
		  struct qv_copy_stats *ret_stats, struct qv_error *errp);
int qv_pool_info(qv_pool *p, const char *name, struct qv_image_info *ret,
		 struct qv_error *errp);
/* All images, sorted by name; free with qv_image_info_array_free(). */
int qv_pool_list(qv_pool *p, struct qv_image_info **ret, size_t *ret_n,
		 struct qv_error *errp);
void qv_image_info_array_free(struct qv_image_info *a, size_t n);
int qv_pool_delete(qv_pool *p, const char *name, struct qv_error *errp);
int qv_pool_resize(qv_pool *p, const char *name, uint64_t size, bool shrink,
		   struct qv_error *errp);

/* Encrypted images: qcow2 with encrypt.format=luks (storage/image-crypt.h).
 * The pool never stores keys (storage/keystore.h does); callers pass them. */
int qv_pool_create_luks(qv_pool *p, const char *name, uint64_t size,
			const struct qv_secret *key, unsigned iter_time_ms, struct qv_error *errp);
/* qv_pool_resize for an encrypted image (key NULL: not encrypted). */
int qv_pool_resize_luks(qv_pool *p, const char *name, uint64_t size, bool shrink,
			const struct qv_secret *key, struct qv_error *errp);
/* Key rotation without copying data, under the pool lock: add a keyslot for
 * new_key, run commit (store new_key; a failure stops here, both keys then
 * open the image), then erase the keyslots old_key opens. */
int qv_pool_rekey(qv_pool *p, const char *name, const struct qv_secret *old_key,
		  const struct qv_secret *new_key, unsigned iter_time_ms,
		  int (*commit)(void *userdata, struct qv_error *errp), void *userdata,
		  struct qv_error *errp);
