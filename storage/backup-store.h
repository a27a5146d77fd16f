/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* A backup store (docs/backup.md): a directory, local or a network mount.
 *
 *   <store>/<id>/backup.json    metadata (struct qv_backup_meta)
 *   <store>/<id>/disk<N>.raw    full backup of disk N (sparse raw)
 *   <store>/<id>/disk<N>.qcow2  incremental: only the clusters that changed
 *   <store>/.<id>.partial/      a backup being written (ignored by listing)
 *
 * A backup is written into its ".partial" directory, every file fsync'd,
 * the metadata written under a temporary name and renamed, and only then the
 * directory renamed to <id> (RENAME_NOREPLACE) and the store fsync'd: no
 * file ever exists under its final name half-written. Ids follow
 * [A-Za-z0-9][A-Za-z0-9_.-]{0,127}, so they are plain names inside the
 * store. */

#define QV_BACKUP_META_FILE "backup.json"
#define QV_BACKUP_ID_MAX 128
#define QV_BACKUP_MAX_DISKS 16

struct qv_backup_disk {
	unsigned index;         /* position in the VM spec's disks */
	char *source;           /* the VM's image path */
	char *source_format;    /* raw | qcow2 */
	uint64_t virtual_size;  /* bytes */
	char *file;             /* "disk0.raw" / "disk0.qcow2" inside the backup */
	char *format;           /* raw (full) | qcow2 (incremental) */
	uint64_t bytes;         /* bytes the file occupies (st_blocks * 512) */
	uint64_t checksum;      /* qv_copy_checksum_file() of the file */
};

struct qv_backup_meta {
	char *id;
	char *vm;
	bool incremental;       /* kind: false = full */
	char *parent;           /* incremental: the backup it applies on */
	char *chain;            /* id of the chain's full backup */
	char *bitmap;           /* dirty bitmap started at this backup (NULL: raw) */
	char *forced_full;      /* why a full was taken when incremental was asked */
	bool quiesced;
	char *quiesce_note;     /* why not quiesced, or NULL */
	int64_t created_ms;     /* the point in time the backup captures */
	int64_t completed_ms;
	uint64_t size;          /* sum of the disks' bytes */
	json_object *spec;      /* the VM spec at backup time (owned) */
	struct qv_backup_disk *disks;
	size_t n_disks;
};

bool qv_backup_id_valid(const char *id);
struct qv_backup_meta *qv_backup_meta_free(struct qv_backup_meta *m);
void qv_backup_meta_freep(struct qv_backup_meta **m);
#define _cleanup_backup_meta_ _cleanup_(qv_backup_meta_freep)
void qv_backup_meta_array_free(struct qv_backup_meta **a, size_t n);

/* JSON form (docs/backup.md); new reference. */
json_object *qv_backup_meta_to_json(const struct qv_backup_meta *m);
/* Strict parse of a metadata document (the store may be shared: it is
 * validated like any input). */
int qv_backup_meta_from_json(json_object *o, struct qv_backup_meta **ret, struct qv_error *errp);

/* Write m as dirfd/backup.json: temporary name, fsync, rename, fsync dir. */
int qv_backup_meta_write(int dirfd, const struct qv_backup_meta *m, struct qv_error *errp);
/* Load <store>/<id>/backup.json. -ENOENT (not-found) when there is no such
 * backup. */
int qv_backup_meta_load(const char *store, const char *id, struct qv_backup_meta **ret,
			struct qv_error *errp);
/* Every complete backup in the store (vm NULL: all VMs), oldest first
 * (created_ms, then id). Unreadable entries are skipped. */
int qv_backup_store_list(const char *store, const char *vm, struct qv_backup_meta ***ret,
			 size_t *ret_n, struct qv_error *errp);

/* The chain that ends at list[idx], full backup first: indices into list in
 * *ret (malloc'd), *ret_n entries. -ENOENT when a parent is missing (a
 * broken chain, errp names it). */
int qv_backup_chain(struct qv_backup_meta *const *list, size_t n, size_t idx, size_t **ret,
		    size_t *ret_n, struct qv_error *errp);

/* Retention (per VM): keep the newest keep_last backups and the newest
 * backup of each of the keep_daily most recent UTC days that have one, plus
 * every backup a kept one needs to restore (its chain). keep[i] says
 * whether list[i] is kept; list is oldest first as from
 * qv_backup_store_list(). Pure. */
void qv_backup_prune_plan(struct qv_backup_meta *const *list, size_t n, unsigned keep_last,
			  unsigned keep_daily, bool *keep);

/* Remove <store>/<id> (its files, then the directory, then fsync the
 * store). Refused (-EBUSY, conflict) while another backup names it as its
 * parent. */
int qv_backup_delete(const char *store, const char *id, struct qv_error *errp);

/* A fresh id for vm at time ms ("<vm>-YYYYmmdd-HHMMSS[-N]"), unused in the
 * store (neither complete nor partial). */
int qv_backup_new_id(const char *store, const char *vm, int64_t ms, char **ret);

/* Make <store>/.<id>.partial (0700) and return its fd. */
int qv_backup_partial_create(const char *store, const char *id, int *ret_dirfd,
			     struct qv_error *errp);
/* Rename the partial directory to <id> (never replacing), fsync the store.
 * The directory's content must be on disk already (its files fsync'd; the
 * metadata written last by qv_backup_meta_write, which fsyncs the
 * directory). */
int qv_backup_partial_publish(const char *store, const char *id, struct qv_error *errp);
/* Remove <store>/.<id>.partial and what is in it; errors are ignored. */
void qv_backup_partial_discard(const char *store, const char *id);
