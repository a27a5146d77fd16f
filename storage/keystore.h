/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "common/error.h"
#include "common/secret.h"

/* One secret (a LUKS passphrase) per pool image, in a directory of the
 * state dir (default <state-dir>/keys): the directory is 0700, each key is
 * the file "<image name>.key", 0600, replaced atomically (a temporary
 * ".<name>.key.XXXXXX", fsync, rename, fsync of the directory), so a crash
 * leaves the old key or the new one, never a mix.
 *
 * With a host master key (a file of 32 raw bytes or 64 hex digits, readable
 * by its owner only), each key is wrapped with AES-256-GCM; the image name
 * is authenticated with it, so a key file copied under another name does
 * not unwrap. File layout: "QVK1", kind (0 plain, 1 wrapped), 3 zero bytes;
 * plain: the secret; wrapped: 12-byte nonce, ciphertext, 16-byte tag.
 *
 * Errors name the image and the file, never the secret. */

typedef struct qv_keystore qv_keystore;

/* Open (creating with 0700, or narrowing to 0700) dir. master_key_file may
 * be NULL: keys are then stored unwrapped, and wrapped ones cannot be read. */
int qv_keystore_open(const char *dir, const char *master_key_file, qv_keystore **ret,
		     struct qv_error *errp);
qv_keystore *qv_keystore_free(qv_keystore *ks);
bool qv_keystore_wrapped(const qv_keystore *ks);
const char *qv_keystore_dir(const qv_keystore *ks);

/* Store (replacing atomically) the secret of image `name`. */
int qv_keystore_put(qv_keystore *ks, const char *name, const struct qv_secret *s,
		    struct qv_error *errp);
/* -ENOENT (not-found) when there is none, -EKEYREJECTED (permission-denied)
 * when it does not unwrap with this master key, -ENOKEY (unavailable) when
 * it is wrapped and no master key was given, -EINVAL for a damaged file. */
int qv_keystore_get(qv_keystore *ks, const char *name, struct qv_secret **ret,
		    struct qv_error *errp);
bool qv_keystore_has(qv_keystore *ks, const char *name);
/* Remove the key of `name`; a missing key is not an error. */
int qv_keystore_remove(qv_keystore *ks, const char *name, struct qv_error *errp);
