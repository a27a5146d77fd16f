/* SPDX-License-Identifier: MIT */
/* Cold migration, the source's copy thread: move.prepare, the disks
 * streamed as move.write chunks (a few in flight) over the destination
 * daemon's mutual-TLS RPC channel, each disk's content checksum computed
 * while reading, then move.commit (the destination verifies). Runs off the
 * loop; touches only its struct mv_out. */
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/json.h"
#include "common/log.h"
#include "common/rpc-client.h"
#include "daemon/vm-move-source.h"
#include "storage/csum.h"

#define WINDOW 4

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void throttle(struct mv_out *o, uint64_t t0_ms)
{
	uint64_t done = atomic_load(&o->done);

	if (!o->bandwidth)
		return;
	uint64_t due_ms = done * 1000 / o->bandwidth, el = qv_now_ms() - t0_ms;
	if (due_ms > el) {
		struct timespec ts = { .tv_sec = (time_t)((due_ms - el) / 1000),
				       .tv_nsec = (long)((due_ms - el) % 1000) * 1000000 };
		nanosleep(&ts, NULL);
	}
}

static int send_chunk(struct mv_out *o, qv_rpc_conn *c, size_t i, uint64_t off,
		      const void *buf, size_t n, unsigned *inflight, struct qv_error *errp)
{
	_cleanup_free_ char *b64 = qv_base64_encode(buf, n);
	json_object *p;
	uint64_t id;
	int r;

	if (!b64)
		return -ENOMEM;
	while (*inflight >= WINDOW) {
		r = qv_rpc_recv_any(c, MV_STEP_TIMEOUT_MS, &id, NULL, errp);
		if (r < 0)
			return r;
		(*inflight)--;
	}
	p = json_object_new_object();
	json_object_object_add(p, "token", json_object_new_string(o->token));
	json_object_object_add(p, "disk", json_object_new_int64((int64_t)i));
	json_object_object_add(p, "offset", json_object_new_int64((int64_t)off));
	json_object_object_add(p, "data", json_object_new_string(b64));
	r = qv_rpc_send(c, "move.write", p, &id, errp);
	if (r >= 0)
		(*inflight)++;
	return r;
}

static int send_disk(struct mv_out *o, qv_rpc_conn *c, size_t i, uint64_t t0_ms,
		     struct qv_error *errp)
{
	struct mv_src_disk *dk = &o->disks[i];
	_cleanup_close_ int fd = open(dk->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ unsigned char *buf = malloc(MV_CHUNK);
	unsigned inflight = 0;
	uint64_t sum = 0, id;
	int r = 0;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", dk->path);
	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < dk->size && r >= 0;) {
		size_t want = dk->size - off < MV_CHUNK ? (size_t)(dk->size - off) : MV_CHUNK, n = 0;
		if (atomic_load(&o->cancel))
			return qv_error_set(errp, ECANCELED, QV_REASON_CANCELLED, "cancelled");
		while (n < want) {
			ssize_t k = pread(fd, buf + n, want - n, (off_t)(off + n));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return qv_error_set(errp, k < 0 ? errno : EIO, QV_REASON_IO_ERROR,
						    "reading %s: %s", dk->path,
						    k < 0 ? strerror(errno) : "short file");
			n += (size_t)k;
		}
		sum += qv_csum_data(off, buf, n);
		/* Zero chunks are holes on the destination (its file is sparse). */
		if (!all_zero(buf, n))
			r = send_chunk(o, c, i, off, buf, n, &inflight, errp);
		off += n;
		atomic_fetch_add(&o->done, n);
		throttle(o, t0_ms);
	}
	while (r >= 0 && inflight > 0 && (r = qv_rpc_recv_any(c, MV_STEP_TIMEOUT_MS, &id, NULL,
							       errp)) >= 0)
		inflight--;
	dk->csum = sum;
	return r;
}

static int prepare(struct mv_out *o, qv_rpc_conn *c, struct qv_error *errp)
{
	json_object *p = json_object_new_object(), *disks = json_object_new_array(), *res = NULL,
		    *v;
	int r;

	for (size_t i = 0; i < o->n; i++) {
		json_object *dk = json_object_new_object();
		json_object_object_add(dk, "copy", json_object_new_boolean(o->disks[i].copy));
		json_object_object_add(dk, "size", json_object_new_int64((int64_t)o->disks[i].size));
		json_object_object_add(dk, "allocated",
				       json_object_new_int64((int64_t)o->disks[i].alloc));
		json_object_array_add(disks, dk);
	}
	json_object_object_add(p, "spec", TAKE_PTR(o->spec));
	json_object_object_add(p, "token", json_object_new_string(o->token));
	json_object_object_add(p, "disks", disks);
	if (o->keys)
		json_object_object_add(p, "disk_keys", TAKE_PTR(o->keys));
	r = qv_rpc_invoke(c, "move.prepare", p, MV_STEP_TIMEOUT_MS, &res, errp);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(res, "host", &v) && json_object_is_type(v, json_type_string))
		snprintf(o->dest_host, sizeof(o->dest_host), "%s", json_object_get_string(v));
	json_object_put(res);
	return 0;
}

static int commit(struct mv_out *o, qv_rpc_conn *c, struct qv_error *errp)
{
	json_object *p = json_object_new_object(), *sums = json_object_new_array();

	for (size_t i = 0; i < o->n; i++) {
		char h[17];
		mv_hex64(o->disks[i].csum, h);
		json_object_array_add(sums, o->disks[i].copy ? json_object_new_string(h) : NULL);
	}
	json_object_object_add(p, "token", json_object_new_string(o->token));
	json_object_object_add(p, "checksums", sums);
	return qv_rpc_invoke(c, "move.commit", p, MV_VERIFY_TIMEOUT_MS, NULL, errp);
}

void mv_copy_run(void *ud)
{
	struct mv_out *o = ud;
	qv_rpc_conn *c = NULL;
	uint64_t t0 = qv_now_ms();

	o->r = qv_rpc_connect(o->to, &c, &o->err);
	if (o->r < 0)
		return;
	o->r = prepare(o, c, &o->err);
	if (o->r < 0) {
		qv_error_prefix(&o->err, "move.prepare on the destination");
		goto out;
	}
	o->prepared = true;
	for (size_t i = 0; i < o->n && o->r >= 0; i++)
		if (o->disks[i].copy && (o->r = send_disk(o, c, i, t0, &o->err)) < 0)
			qv_error_prefix(&o->err, "copying disk %zu (%s)", i, o->disks[i].path);
	if (o->r >= 0 && (o->r = commit(o, c, &o->err)) < 0)
		qv_error_prefix(&o->err, "verification on the destination");
out:
	qv_rpc_conn_free(c);
}

/* One step call (move.finish, move.abort) on a fresh connection. */
void mv_step_run(void *ud)
{
	struct mv_out *o = ud;
	qv_rpc_conn *c = NULL;
	json_object *p = json_object_new_object(), *res = NULL, *v;

	qv_error_clear(&o->err);
	json_object_object_add(p, "token", json_object_new_string(o->token));
	if (o->step_finish)
		json_object_object_add(p, "name", json_object_new_string(o->vm));
	o->r = qv_rpc_connect(o->to, &c, &o->err);
	if (o->r < 0) {
		json_object_put(p);
		return;
	}
	o->r = qv_rpc_invoke(c, o->step_finish ? "move.finish" : "move.abort", p,
			     MV_STEP_TIMEOUT_MS, &res, &o->err);
	if (o->r >= 0 && json_object_object_get_ex(res, "disks", &v)) {
		json_object_put(o->dest_paths);
		json_object_deep_copy(v, &o->dest_paths, NULL);
	}
	json_object_put(res);
	qv_rpc_conn_free(c);
}
