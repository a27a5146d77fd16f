/* SPDX-License-Identifier: MIT */
/* Cold migration, the destination's side (move.prepare/write/commit/
 * finish/abort): the disks arrive into <state_dir>/move-in/<token>/, are
 * verified against the source's checksums, and only move.finish (after the
 * source switched the inventory owner) renames them into the pool and
 * defines the VM. Anything before that is removed by move.abort, by an
 * idle timeout, or by the next start (docs/cluster.md "Cold migration"). */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/json.h"
#include "common/log.h"
#include "common/secret.h"
#include "daemon/image-internal.h"
#include "daemon/migrate-internal.h"
#include "daemon/vm-move-dest.h"
#include "daemon/vm.h"
#include "storage/copy.h"
#include "storage/keystore.h"
#include "storage/pool.h"

struct mv_in *mv_incoming;
static qv_source *idle_timer;

static struct mv_in *find_token(const char *token)
{
	for (struct mv_in *m = mv_incoming; m; m = m->next)
		if (streq(m->token, token))
			return m;
	return NULL;
}

static struct image_state *images(struct qv_daemon *d)
{
	return d->image_state;
}

/* Drop an incoming move and everything it created. */
static void drop(struct mv_in *m, const char *why)
{
	struct image_state *ist = images(m->d);

	for (struct mv_in **p = &mv_incoming; *p; p = &(*p)->next)
		if (*p == m) {
			*p = m->next;
			break;
		}
	for (size_t i = 0; i < m->n; i++) {
		if (m->disks[i].fd >= 0)
			close(m->disks[i].fd);
		if (m->keys_stored && m->disks[i].copy && ist && ist->keys &&
		    qv_keystore_has(ist->keys, m->disks[i].image))
			(void)qv_keystore_remove(ist->keys, m->disks[i].image, NULL);
		qv_secret_free(m->keys[i]);
	}
	mv_rm_dir(m->dir);
	log_info("VM %s: incoming move %s dropped (%s)", m->vm, m->token, why);
	json_object_put(m->spec);
	free(m);
}

static void idle_check(qv_source *s, void *ud)
{
	struct qv_daemon *d = ud;
	uint64_t now = qv_now_ms();

	(void)s;
	idle_timer = NULL;
	for (struct mv_in *m = mv_incoming, *next; m; m = next) {
		next = m->next;
		if (m->phase == MV_RECEIVING && now - m->last_ms > MV_IDLE_MS)
			drop(m, "the source stopped sending");
	}
	if (mv_incoming)
		(void)qv_loop_add_timer(d->loop, 10000, idle_check, d, &idle_timer);
}

static struct mv_in *lookup(qv_rpc_call *call, json_object *params)
{
	const char *token;

	if (qv_param_string(call, params, "token", &token) < 0)
		return NULL;
	struct mv_in *m = find_token(token);
	if (!m)
		qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "no incoming move %.40s here", token);
	return m;
}

/* --- move.prepare ---------------------------------------------------------- */

static int prepare_disks(struct mv_in *m, struct vm_spec *spec, json_object *disks,
			 json_object *keys, struct qv_error *errp)
{
	struct image_state *ist = images(m->d);
	uint64_t need = 0;
	struct statvfs st;

	if (!ist || !ist->pool)
		return qv_error_set(errp, ENODEV, QV_REASON_UNAVAILABLE, "no image pool here");
	if (!json_object_is_type(disks, json_type_array) ||
	    json_object_array_length(disks) != spec->n_disks || spec->n_disks > MV_MAX_DISKS)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disks must list each spec disk (at most %d)",
				    MV_MAX_DISKS);
	m->n = spec->n_disks;
	for (size_t i = 0; i < m->n; i++) {
		struct mv_disk *dk = &m->disks[i];
		json_object *o = json_object_array_get_idx(disks, i);
		int64_t size = 0, alloc = 0;
		bool copy = false;
		int r;

		dk->fd = -1;
		if ((r = json_get_bool(o, "copy", "disks[].copy", &copy, errp)) < 0 && r != -ENOENT)
			return r;
		dk->copy = copy && !spec->disks[i].readonly;
		if (!dk->copy) {
			if (access(spec->disks[i].path, R_OK) < 0)
				return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
						    "read-only disk %s is not on this host (it is "
						    "not copied: it must be shared)",
						    spec->disks[i].path);
			continue;
		}
		if (json_get_int64(o, "size", "disks[].size", &size, errp) < 0 ||
		    json_get_int64(o, "allocated", "disks[].allocated", &alloc, errp) < 0)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "disks[%zu] needs size and allocated", i);
		if (size <= 0 || alloc < 0)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "disks[%zu]: bad size", i);
		dk->size = (uint64_t)size;
		need += (uint64_t)alloc;
		if (qv_mig_dest_image_name(m->vm, i, &spec->disks[i], dk->image,
					   sizeof(dk->image)) < 0)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "no valid image name for disk %zu", i);
		for (size_t k = 0; k < i; k++)
			if (m->disks[k].copy && streq(m->disks[k].image, dk->image))
				snprintf(dk->image, sizeof(dk->image), "%.40s-disk%zu", m->vm, i);
		if (qv_pool_lookup(ist->pool, dk->image, NULL, NULL, NULL) == 0)
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "image %s already exists in this host's pool %s",
					    dk->image, qv_pool_dir(ist->pool));
		snprintf(dk->final, sizeof(dk->final), "%s/%s.%s", qv_pool_dir(ist->pool),
			 dk->image, spec->disks[i].format == VM_DISK_QCOW2 ? "qcow2" : "raw");
		json_object *k = keys ? json_object_array_get_idx(keys, i) : NULL;
		if (k && json_object_is_type(k, json_type_string) &&
		    (r = qv_secret_new(json_object_get_string(k),
				       (size_t)json_object_get_string_len(k), &m->keys[i], errp)) < 0)
			return r;
	}
	if (statvfs(qv_pool_dir(ist->pool), &st) == 0 &&
	    (uint64_t)st.f_bavail * st.f_frsize < need + (64u << 20))
		return qv_error_set(errp, ENOSPC, QV_REASON_NO_SPACE,
				    "not enough space on this host: its pool %s has %llu MiB free, "
				    "the VM's disks need %llu MiB (+64 MiB margin)",
				    qv_pool_dir(ist->pool),
				    (unsigned long long)((uint64_t)st.f_bavail * st.f_frsize >> 20),
				    (unsigned long long)(need >> 20));
	return 0;
}

static int create_files(struct mv_in *m, struct qv_error *errp)
{
	if (mkdir(m->dir, 0700) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", m->dir);
	for (size_t i = 0; i < m->n; i++) {
		char path[PATH_MAX + 16];
		if (!m->disks[i].copy)
			continue;
		snprintf(path, sizeof(path), "%s/disk%zu", m->dir, i);
		m->disks[i].fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (m->disks[i].fd < 0 || ftruncate(m->disks[i].fd, (off_t)m->disks[i].size) < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", path);
	}
	return mv_in_save_meta(m) < 0 ? qv_error_set(errp, EIO, QV_REASON_IO_ERROR,
					       "cannot write %s/meta.json", m->dir) : 0;
}

int mv_m_prepare(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "spec", "token", "disks", "disk_keys", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;
	json_object *j, *disks = NULL, *dkeys = NULL;
	const char *token;
	struct mv_in *m;

	if (qv_param_check_keys(call, params, keys) < 0 ||
	    qv_param_string(call, params, "token", &token) < 0)
		return 0;
	if (!mv_token_valid(token))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.token must be 32 lowercase hex digits");
	if (!json_object_object_get_ex(params, "spec", &j) || vm_spec_from_json(j, &spec, &err) < 0)
		return err.message[0] ? (qv_rpc_call_error(call, &err), 0)
				      : qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
						     "params.spec is required");
	json_object_object_get_ex(params, "disks", &disks);
	if (json_object_object_get_ex(params, "disk_keys", &dkeys) &&
	    !qv_rpc_client_tls_dn(qv_rpc_call_client(call)) &&
	    qv_rpc_client_local_addr(qv_rpc_call_client(call), (char[64]){ 0 }, 64) == 0)
		return qv_call_fail(call, EPERM, QV_REASON_PERMISSION,
				    "disk keys are accepted only over TLS or the local socket");
	if (qv_vm_find(d, spec->name))
		return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT,
				    "VM %s is already defined on this host", spec->name);
	/* What qv_vm_define would refuse at move.finish, refused now. */
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		if (streq(vm->spec->uuid, spec->uuid))
			return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT,
					    "VM %s on this host has the same UUID %s", vm->name,
					    spec->uuid);
	for (m = mv_incoming; m; m = m->next)
		if (streq(m->vm, spec->name) || streq(m->token, token))
			return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
					    "VM %s is already moving to this host", spec->name);
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->d = d;
	snprintf(m->token, sizeof(m->token), "%s", token);
	snprintf(m->vm, sizeof(m->vm), "%s", spec->name);
	snprintf(m->dir, sizeof(m->dir), "%s/" MV_IN_DIR "/%s", d->cfg.state_dir, token);
	m->spec = json_object_get(j);
	m->last_ms = qv_now_ms();
	for (size_t i = 0; i < MV_MAX_DISKS; i++)
		m->disks[i].fd = -1;
	m->next = mv_incoming;
	mv_incoming = m;
	{
		char top[PATH_MAX];
		snprintf(top, sizeof(top), "%s/" MV_IN_DIR, d->cfg.state_dir);
		(void)mkdir(top, 0700);
	}
	if (prepare_disks(m, spec, disks, dkeys, &err) < 0 || create_files(m, &err) < 0) {
		qv_rpc_call_error(call, &err);
		drop(m, "prepare refused");
		return 0;
	}
	if (!idle_timer)
		(void)qv_loop_add_timer(d->loop, 10000, idle_check, d, &idle_timer);
	log_info("VM %s: incoming move %s prepared (%zu disks)", m->vm, m->token, m->n);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "token", json_object_new_string(m->token));
	json_object_object_add(res, "host", d->cfg.cluster_host
						    ? json_object_new_string(d->cfg.cluster_host)
						    : NULL);
	return qv_rpc_call_reply(call, res), 0;
}

/* --- move.write ------------------------------------------------------------ */

int mv_m_write(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "token", "disk", "offset", "data", NULL };
	struct qv_error err = {};
	struct mv_in *m;
	int64_t disk = -1, off = -1;
	const char *data;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	(void)ud;
	if (qv_param_check_keys(call, params, keys) < 0 || !(m = lookup(call, params)))
		return 0;
	if (json_get_int64(params, "disk", "params.disk", &disk, &err) < 0 ||
	    json_get_int64(params, "offset", "params.offset", &off, &err) < 0 ||
	    json_get_string(params, "data", "params.data", &data, &err) < 0)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk, offset and data are required");
	if (m->phase != MV_RECEIVING)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT, "move %s is being verified",
				    m->token);
	if (disk < 0 || (size_t)disk >= m->n || !m->disks[disk].copy || off < 0 || off % 4096)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "bad disk index or offset");
	buf = qv_base64_decode(data, &len);
	if (!buf || (uint64_t)off + len > m->disks[disk].size)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "data is not base64 or runs past the disk's end");
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(m->disks[disk].fd, buf + done, len - done, off + (off_t)done);
		if (n < 0)
			return qv_call_fail(call, errno,
					    errno == ENOSPC ? QV_REASON_NO_SPACE : QV_REASON_IO_ERROR,
					    "writing disk %lld: %m", (long long)disk);
		done += (size_t)n;
	}
	m->last_ms = qv_now_ms();
	return qv_rpc_call_reply(call, json_object_new_object()), 0;
}

/* --- move.commit: fsync and verify on a copy thread ----------------------- */

static void verify_run(void *ud)
{
	struct mv_in *m = ud;

	for (size_t i = 0; i < m->n && m->r >= 0; i++) {
		char path[PATH_MAX + 16];
		if (!m->disks[i].copy)
			continue;
		snprintf(path, sizeof(path), "%s/disk%zu", m->dir, i);
		if (fsync(m->disks[i].fd) < 0) {
			m->r = qv_error_set(&m->err, errno, QV_REASON_IO_ERROR, "fsync %s: %m", path);
			break;
		}
		m->r = qv_copy_checksum_file(path, &m->disks[i].got, &m->err);
		if (m->r >= 0 && m->disks[i].got != m->disks[i].want) {
			char a[17], b[17];
			mv_hex64(m->disks[i].want, a);
			mv_hex64(m->disks[i].got, b);
			m->r = qv_error_set(&m->err, EILSEQ, QV_REASON_IO_ERROR,
					    "disk %zu: checksum mismatch (source %s, destination %s)",
					    i, a, b);
		}
	}
}

static int store_keys(struct mv_in *m, struct qv_error *errp)
{
	struct image_state *ist = images(m->d);

	for (size_t i = 0; i < m->n; i++) {
		if (!m->keys[i])
			continue;
		if (!ist->keys)
			return qv_error_set(errp, ENODEV, QV_REASON_UNAVAILABLE,
					    "this host has no keystore for encrypted disks");
		int r = qv_keystore_put(ist->keys, m->disks[i].image, m->keys[i], errp);
		if (r < 0)
			return r;
		m->keys_stored = true;
	}
	return 0;
}

static void verify_done(void *ud, bool cancelled)
{
	struct mv_in *m = ud;
	qv_rpc_call *call = TAKE_PTR(m->call);

	if (cancelled && m->r >= 0)
		m->r = qv_error_set(&m->err, ECANCELED, QV_REASON_CANCELLED,
				    "qvisord is shutting down");
	if (m->r >= 0)
		m->r = store_keys(m, &m->err);
	if (m->r >= 0) {
		m->phase = MV_VERIFIED;
		if (mv_in_save_meta(m) < 0)
			m->r = qv_error_set(&m->err, EIO, QV_REASON_IO_ERROR,
					    "cannot write %s/meta.json", m->dir);
	}
	if (m->r < 0) {
		log_warning("VM %s: incoming move %s failed verification: %s", m->vm, m->token,
			    m->err.message);
		qv_rpc_call_error(call, &m->err);
		drop(m, "verification failed");
		return;
	}
	log_info("VM %s: incoming move %s verified", m->vm, m->token);
	json_object *res = json_object_new_object(), *sums = json_object_new_array();
	for (size_t i = 0; i < m->n; i++) {
		char h[17];
		mv_hex64(m->disks[i].got, h);
		json_object_array_add(sums, m->disks[i].copy ? json_object_new_string(h) : NULL);
	}
	json_object_object_add(res, "checksums", sums);
	qv_rpc_call_reply(call, res);
}

int mv_m_commit(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "token", "checksums", NULL };
	struct qv_daemon *d = ud;
	json_object *sums;
	qv_workq *q;
	struct mv_in *m;

	if (qv_param_check_keys(call, params, keys) < 0 || !(m = lookup(call, params)))
		return 0;
	if (m->phase != MV_RECEIVING)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT, "move %s is already %s",
				    m->token, m->phase == MV_VERIFIED ? "verified" : "verifying");
	if (!json_object_object_get_ex(params, "checksums", &sums) ||
	    !json_object_is_type(sums, json_type_array) || json_object_array_length(sums) != m->n)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.checksums must list one checksum per disk");
	for (size_t i = 0; i < m->n; i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(sums, i));
		if (m->disks[i].copy && (!s || strlen(s) != 16))
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "params.checksums[%zu] must be 16 hex digits", i);
		m->disks[i].want = m->disks[i].copy ? strtoull(s, NULL, 16) : 0;
	}
	if (mv_workq(d, &q) < 0)
		return -ENOMEM;
	m->phase = MV_VERIFYING;
	m->call = call;
	m->r = 0;
	if (qv_workq_push(q, verify_run, verify_done, m) < 0) {
		m->phase = MV_RECEIVING;
		m->call = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* --- move.finish / move.abort ---------------------------------------------- */

static int finish_local(struct mv_in *m, json_object **ret, struct qv_error *errp)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;
	struct qv_vm *vm;
	json_object *paths = json_object_new_array();
	int r;

	if ((r = vm_spec_from_json(m->spec, &spec, errp)) < 0)
		goto fail;
	for (size_t i = 0; i < m->n; i++) {
		char path[PATH_MAX + 16];
		if (!m->disks[i].copy)
			continue;
		snprintf(path, sizeof(path), "%s/disk%zu", m->dir, i);
		if (renameat2(AT_FDCWD, path, AT_FDCWD, m->disks[i].final, RENAME_NOREPLACE) < 0 &&
		    !(errno == ENOENT && access(m->disks[i].final, F_OK) == 0)) {
			r = qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s -> %s: %m", path,
					 m->disks[i].final);
			goto fail;
		}
		free(spec->disks[i].path);
		spec->disks[i].path = strdup(m->disks[i].final);
		json_object_array_add(paths, json_object_new_string(m->disks[i].final));
	}
	if ((r = qv_vm_define(m->d, TAKE_PTR(spec), &vm, errp)) < 0)
		goto fail;
	*ret = paths;
	return 0;
fail:
	json_object_put(paths);
	return r;
}

static int finish(struct mv_in *m, json_object **ret, struct qv_error *errp)
{
	int r = finish_local(m, ret, errp);

	if (r < 0)
		return r;
	m->keys_stored = false; /* they belong to the defined VM's images now */
	log_info("VM %s: moved in (move %s)", m->vm, m->token);
	qv_daemon_emit(m->d, m->vm, "moved-in", NULL);
	mv_cluster_adopted(m->d);
	drop(m, "finished");
	return 0;
}

int mv_m_finish(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "token", "name", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	json_object *paths = NULL;
	const char *token, *name;
	struct mv_in *m;

	if (qv_param_check_keys(call, params, keys) < 0 ||
	    qv_param_string(call, params, "token", &token) < 0 ||
	    qv_param_string(call, params, "name", &name) < 0)
		return 0;
	m = find_token(token);
	if (!m) { /* finished before (the answer was lost)? */
		if (!qv_vm_find(d, name))
			return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
					    "no incoming move %.40s here", token);
		json_object *res = json_object_new_object();
		json_object_object_add(res, "already_finished", json_object_new_boolean(true));
		return qv_rpc_call_reply(call, res), 0;
	}
	if (m->phase != MV_VERIFIED)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT, "move %s is not verified",
				    m->token);
	if (finish(m, &paths, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	json_object *res = json_object_new_object();
	json_object_object_add(res, "disks", paths);
	return qv_rpc_call_reply(call, res), 0;
}

int mv_m_abort(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "token", NULL };
	const char *token;
	struct mv_in *m;

	(void)ud;
	if (qv_param_check_keys(call, params, keys) < 0 ||
	    qv_param_string(call, params, "token", &token) < 0)
		return 0;
	m = find_token(token);
	if (m && m->phase == MV_VERIFYING)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "move %s is being verified; retry", token);
	if (m)
		drop(m, "aborted by the source");
	return qv_rpc_call_reply(call, json_object_new_object()), 0;
}

