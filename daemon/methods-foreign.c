/* SPDX-License-Identifier: MIT */
/* image.import-foreign (VMDK/VHDX/VDI/QED through qemu-img convert) and
 * image.import-ova (OVA: extract, verify the manifest, convert its disks,
 * draft a spec from the OVF). The work runs on a worker thread; the loop
 * sends "progress" notifications (bytes written so far of the image's
 * virtual size) and the answer. Nothing is left in the pool on failure. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/foreign.h"
#include "daemon/image-internal.h"
#include "qemu/spec.h"
#include "storage/foreign.h"

#define PROGRESS_MS 250

static unsigned next_op;

static void fjob_free(struct fjob *j)
{
	qv_source_remove(j->efd_src);
	qv_source_remove(j->timer);
	if (j->efd >= 0)
		close(j->efd);
	qv_rpc_client_unref(j->client);
	json_object_put(j->result);
	pthread_mutex_destroy(&j->mu);
	free(j->src);
	free(j->name);
	free(j->pool_dir);
	free(j);
}

static void send_progress(struct fjob *j, bool final)
{
	struct stat st;
	uint64_t done, total;

	pthread_mutex_lock(&j->mu);
	done = j->done_before;
	total = j->total;
	if (j->cur_tmp[0] && stat(j->cur_tmp, &st) == 0)
		done += (uint64_t)st.st_blocks * 512;
	pthread_mutex_unlock(&j->mu);
	if (!total)
		return;
	if (final || done > total)
		done = final ? total : total - 1;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "op_id", json_object_new_string(j->op_id));
	json_object_object_add(p, "done", json_object_new_int64((int64_t)done));
	json_object_object_add(p, "total", json_object_new_int64((int64_t)total));
	json_object_object_add(p, "rate", json_object_new_int64(0));
	(void)qv_rpc_client_notify(j->client, "progress", p);
	json_object_put(p);
}

static void on_tick(qv_source *s, void *ud)
{
	struct fjob *j = ud;

	j->timer = NULL;
	send_progress(j, false);
	(void)qv_loop_add_timer(j->d->loop, PROGRESS_MS, on_tick, j, &j->timer);
}

static void on_done(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct fjob *j = ud;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return;
	pthread_join(j->th, NULL);
	if (j->r < 0) {
		log_warning("image %s: foreign import failed: %s", j->name, j->err.message);
		qv_rpc_call_error(j->call, &j->err);
	} else {
		send_progress(j, true);
		log_info("image %s: imported from %s", j->name, j->src);
		json_object_object_add(j->result, "op_id", json_object_new_string(j->op_id));
		qv_rpc_call_reply(j->call, json_object_get(j->result));
	}
	fjob_free(j);
}

static void set_cur(struct fjob *j, const char *tmp, uint64_t total)
{
	pthread_mutex_lock(&j->mu);
	snprintf(j->cur_tmp, sizeof(j->cur_tmp), "%s", tmp ? tmp : "");
	if (total)
		j->total = total;
	pthread_mutex_unlock(&j->mu);
}

/* Convert src into the pool as <name>.<fmt>; *ret_path on success. */
int qv_foreign_to_pool(struct fjob *j, const char *src, enum qv_foreign_format fmt,
		       const char *name, char **ret_path, uint64_t *ret_size, struct qv_error *errp)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	uint64_t vsize;
	int r;

	if ((r = qv_foreign_inspect(src, fmt, &vsize, errp)) < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s/.import-%s-%s.%s", j->pool_dir, j->op_id, name,
		 qv_image_format_to_string(j->dst_fmt));
	snprintf(dst, sizeof(dst), "%s/%s.%s", j->pool_dir, name, qv_image_format_to_string(j->dst_fmt));
	(void)unlink(tmp);
	pthread_mutex_lock(&j->mu);
	j->total += vsize;
	pthread_mutex_unlock(&j->mu);
	set_cur(j, tmp, 0);
	r = qv_foreign_convert(src, fmt, tmp, j->dst_fmt, errp);
	set_cur(j, NULL, 0);
	if (r >= 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) < 0)
		r = qv_error_set(errp, errno, errno == EEXIST ? QV_REASON_CONFLICT : QV_REASON_IO_ERROR,
				 "cannot put %s into the pool: %m", dst);
	if (r < 0) {
		(void)unlink(tmp);
		return r;
	}
	pthread_mutex_lock(&j->mu);
	j->done_before += vsize;
	pthread_mutex_unlock(&j->mu);
	*ret_path = strdup(dst);
	*ret_size = vsize;
	return *ret_path ? 0 : -ENOMEM;
}

static json_object *image_json(const char *name, const char *path, enum qv_image_format f,
			       uint64_t vsize)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "format", json_object_new_string(qv_image_format_to_string(f)));
	json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)vsize));
	return o;
}

static void *run_foreign(void *ud)
{
	struct fjob *j = ud;
	_cleanup_free_ char *path = NULL;
	uint64_t vsize = 0;

	j->r = qv_foreign_to_pool(j, j->src, j->fmt, j->name, &path, &vsize, &j->err);
	if (j->r >= 0)
		j->result = image_json(j->name, path, j->dst_fmt, vsize);
	return NULL;
}

static void *run_thread(void *ud)
{
	struct fjob *j = ud;
	uint64_t one = 1;

	if (j->ova)
		qv_foreign_run_ova(j);
	else
		run_foreign(j);
	if (j->r < 0 && !j->err.set)
		qv_error_set(&j->err, -j->r, NULL, "import failed: %s", strerror(-j->r));
	(void)!write(j->efd, &one, sizeof(one));
	return NULL;
}

/* Common checks and the job; answers the call itself on failure. */
static int start(qv_rpc_call *call, struct qv_daemon *d, const char *src, const char *name,
		 bool ova, enum qv_foreign_format fmt, enum qv_image_format dst_fmt)
{
	struct image_state *st = d->image_state;
	struct stat sb;

	if (!st)
		return qv_call_fail(call, ENODEV, QV_REASON_UNAVAILABLE, "no image pool");
	if (src[0] != '/' || strlen(src) >= PATH_MAX)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.path must be an absolute path");
	if (stat(src, &sb) < 0 || !S_ISREG(sb.st_mode))
		return qv_call_fail(call, errno ? errno : EINVAL,
				    errno == ENOENT ? QV_REASON_NOT_FOUND : QV_REASON_INVALID_ARGUMENT,
				    "cannot import %s: %s", src, errno ? strerror(errno) : "not a regular file");
	if (!qv_image_name_valid(name))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.name: not a valid image name");
	if (qv_pool_lookup(st->pool, name, NULL, NULL, NULL) == 0 || image_job_find(st, name, &(bool){ false }))
		return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT, "image %s already exists", name);
	struct fjob *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct fjob){ .d = d, .call = call, .ova = ova, .fmt = fmt, .dst_fmt = dst_fmt,
			    .efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	pthread_mutex_init(&j->mu, NULL);
	snprintf(j->op_id, sizeof(j->op_id), "fimp-%u", ++next_op);
	j->client = qv_rpc_client_ref(qv_rpc_call_client(call));
	j->src = strdup(src);
	j->name = strdup(name);
	j->pool_dir = strdup(qv_pool_dir(st->pool));
	if (j->efd < 0 || !j->src || !j->name || !j->pool_dir ||
	    qv_loop_add_io(d->loop, j->efd, EPOLLIN, on_done, j, &j->efd_src) < 0 ||
	    pthread_create(&j->th, NULL, run_thread, j) != 0) {
		fjob_free(j);
		return qv_call_fail(call, ENOMEM, QV_REASON_INTERNAL, "cannot start the import");
	}
	(void)qv_loop_add_timer(d->loop, PROGRESS_MS, on_tick, j, &j->timer);
	log_info("image %s: importing %s (%s)", name, src, j->op_id);
	return 0;
}

/* params {path, name, format: vmdk|vhdx|vdi|qed, target?: raw|qcow2} */
static int m_import_foreign(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "path", "name", "format", "target", NULL };
	enum qv_image_format dst = QV_IMAGE_QCOW2;
	enum qv_foreign_format fmt;
	struct qv_error err = {};
	const char *path, *name, *f, *t = NULL;

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_param_string(call, params, "path", &path) < 0 ||
	    qv_param_string(call, params, "name", &name) < 0 ||
	    qv_param_string(call, params, "format", &f) < 0)
		return 0;
	if (qv_foreign_format_from_string(f, &fmt) < 0)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.format: vmdk, vhdx, vdi or qed (raw and qcow2 go through "
				    "image.import)");
	if (json_get_string(params, "target", "params.target", &t, &err) == -EINVAL)
		return qv_rpc_call_error(call, &err), 0;
	if (t && qv_image_format_from_string(t, &dst) < 0)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT, "params.target: raw or qcow2");
	return start(call, ud, path, name, false, fmt, dst);
}

/* params {path, name} */
static int m_import_ova(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "path", "name", NULL };
	struct qv_error err = {};
	const char *path, *name;

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_param_string(call, params, "path", &path) < 0 ||
	    qv_param_string(call, params, "name", &name) < 0)
		return 0;
	if (!vm_name_valid(name))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.name: not a valid VM name");
	return start(call, ud, path, name, true, QV_FOREIGN_VMDK, QV_IMAGE_QCOW2);
}

const struct qv_rpc_method qv_foreign_methods[] = {
	{ "image.import-foreign", m_import_foreign },
	{ "image.import-ova", m_import_ova },
};
const size_t qv_foreign_methods_count = ARRAY_SIZE(qv_foreign_methods);
