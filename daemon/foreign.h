/* SPDX-License-Identifier: MIT */
#pragma once

/* Foreign image and OVA import (daemon/methods-foreign.c, daemon/foreign-ova.c). */

#include <limits.h>
#include <pthread.h>

#include "daemon/daemon.h"
#include "storage/foreign.h"

/* One import; the worker thread fills r/err/result, then signals efd. */
struct fjob {
	struct qv_daemon *d;
	qv_rpc_call *call;
	qv_rpc_client *client;
	char op_id[32];
	char *src, *name, *pool_dir;
	bool ova;
	enum qv_foreign_format fmt;
	enum qv_image_format dst_fmt;
	pthread_t th;
	int efd;
	qv_source *efd_src, *timer;
	pthread_mutex_t mu;        /* guards cur_tmp, done_before, total */
	char cur_tmp[PATH_MAX];    /* file being written now ("" = none) */
	uint64_t done_before, total;
	/* set by the thread before it signals efd */
	int r;
	struct qv_error err;
	json_object *result;
};


/* Worker thread: convert src into the pool as <name>.<dst_fmt>. */
int qv_foreign_to_pool(struct fjob *j, const char *src, enum qv_foreign_format fmt,
		       const char *name, char **ret_path, uint64_t *ret_size, struct qv_error *errp);
/* Worker thread: the OVA import; sets j->r, j->err, j->result. */
void qv_foreign_run_ova(struct fjob *j);

extern const struct qv_rpc_method qv_foreign_methods[];
extern const size_t qv_foreign_methods_count;
