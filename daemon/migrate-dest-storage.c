/* SPDX-License-Identifier: MIT */
/* Destination side of copy_storage: the images created in this daemon's
 * pool for the mirrored disks, and the NBD exports (TLS when the
 * migration is) the source's mirror writes into. */
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/image-internal.h"
#include "daemon/migrate-internal.h"
#include "qemu/tls-creds.h"
#include "storage/pool.h"

/* Destination images go into this daemon's pool: <pool>/<name>.<fmt>, the
 * name being the source file's base name without its format suffix (else
 * "<vm>-disk<i>"). An existing image is never reused or overwritten. */
int qv_mig_dest_image_name(const char *vm, size_t i, const struct vm_disk *dk, char *buf,
			    size_t size)
{
	const char *base = strrchr(dk->path, '/');
	const char *ext = dk->format == VM_DISK_QCOW2 ? ".qcow2" : ".raw";
	size_t n;

	base = base ? base + 1 : dk->path;
	n = strlen(base);
	if (n > strlen(ext) && streq(base + n - strlen(ext), ext))
		n -= strlen(ext);
	snprintf(buf, size, "%.*s", (int)n, base);
	if (!qv_image_name_valid(buf))
		snprintf(buf, size, "%s-disk%zu", vm, i);
	return qv_image_name_valid(buf) ? 0 : -EINVAL;
}

/* disk_keys[i] as a secret, *ret NULL for null/absent. */
static int dest_disk_key(json_object *keys, size_t i, struct qv_secret **ret,
			 struct qv_error *errp)
{
	json_object *v = keys ? json_object_array_get_idx(keys, i) : NULL;

	*ret = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk_keys[%zu] must be a string or null", i);
	return qv_secret_new(json_object_get_string(v), (size_t)json_object_get_string_len(v),
			     ret, errp);
}

int qv_mig_dest_images(struct qv_daemon *d, struct qv_mig *m, struct vm_spec *spec,
		       json_object *sizes, json_object *keys, struct qv_error *errp)
{
	struct image_state *ist = d->image_state;
	int r;

	if (!ist || !ist->pool)
		return qv_error_set(errp, ENODEV, QV_REASON_UNAVAILABLE,
				    "the destination has no image pool");
	if (!sizes || !json_object_is_type(sizes, json_type_array) ||
	    json_object_array_length(sizes) != spec->n_disks)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk_sizes must list one size per spec disk");
	m->images = calloc(spec->n_disks + 1, sizeof(*m->images));
	if (!m->images)
		return -ENOMEM;
	for (size_t i = 0; i < spec->n_disks; i++) {
		struct vm_disk *dk = &spec->disks[i];
		json_object *v = json_object_array_get_idx(sizes, i);
		int64_t size = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
		enum qv_image_format fmt = dk->format == VM_DISK_QCOW2 ? QV_IMAGE_QCOW2 : QV_IMAGE_RAW;
		char name[QV_IMAGE_NAME_MAX + 1];
		char *path = NULL;

		if (dk->readonly)
			continue; /* read-only disks must be shared (same path) */
		if (size <= 0 || size % 512)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "params.disk_sizes[%zu] must be a positive multiple of 512",
					    i);
		if (qv_mig_dest_image_name(spec->name, i, dk, name, sizeof(name)) < 0)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "no valid image name for disk %zu", i);
		if (qv_pool_lookup(ist->pool, name, NULL, NULL, NULL) == 0)
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "image %s already exists in the destination pool %s",
					    name, qv_pool_dir(ist->pool));
		_cleanup_secret_ struct qv_secret *key = NULL;
		r = dest_disk_key(keys, i, &key, errp);
		if (r >= 0 && key && fmt != QV_IMAGE_QCOW2)
			r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					 "params.disk_keys[%zu]: disk %zu is not qcow2", i, i);
		/* The destination's copy: a new LUKS header (its own volume key)
		 * opened by the same passphrase; the mirror writes plaintext
		 * through it. */
		if (r >= 0 && key && (r = qv_keystore_put(ist->keys, name, key, errp)) >= 0 &&
		    (r = qv_pool_create_luks(ist->pool, name, (uint64_t)size, key, 0, errp)) < 0)
			(void)qv_keystore_remove(ist->keys, name, NULL);
		if (r >= 0 && !key)
			r = qv_pool_create(ist->pool, name, fmt, (uint64_t)size, errp);
		m->luks |= key != NULL;
		if (r < 0)
			return r;
		r = qv_pool_lookup(ist->pool, name, &path, NULL, errp);
		if (r < 0)
			return r;
		m->images[m->n_images++] = path;
		free(dk->path);
		dk->path = strdup(path);
		if (!dk->path)
			return -ENOMEM;
		log_info("VM %s: disk %zu created as %s (%" PRId64 " bytes%s) for storage migration",
			 spec->name, i, path, size, key ? ", LUKS" : "");
	}
	return 0;
}

void qv_mig_dest_delete_images(struct qv_mig *m)
{
	struct image_state *ist = m->d ? m->d->image_state : NULL;

	for (size_t i = 0; i < m->n_images; i++) {
		const char *base = strrchr(m->images[i], '/');
		char name[QV_IMAGE_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s", base ? base + 1 : m->images[i]);
		char *dot = strrchr(name, '.');
		if (dot)
			*dot = '\0';
		if (ist && qv_keystore_has(ist->keys, name))
			(void)qv_keystore_remove(ist->keys, name, NULL);
		if (unlink(m->images[i]) < 0 && errno != ENOENT)
			log_warning_errno(errno, "Cannot remove %s, ignoring: %m", m->images[i]);
		else
			log_info("VM %s: removed %s (storage migration not finished)", m->vm,
				 m->images[i]);
	}
	m->n_images = 0;
}

static int nbd_started(qmp_seq *s, int error, json_object *ret, struct qv_error *err, void *ud)
{
	struct qv_mig *m = ud; /* the sequence is cancelled before m goes */

	m->nbd = true;
	return 0;
}

int qv_mig_dest_nbd_steps(struct qv_mig *m, struct qv_vm *vm, const char *listen,
			  const char *advert, qmp_seq *s, char *ret_uri, size_t uri_size,
			  struct qv_error *errp)
{
	json_object *a, *addr, *data;
	char port_s[16];
	int port, r;

	r = qv_mig_pick_port(listen, &port, errp);
	if (r < 0)
		return r;
	snprintf(port_s, sizeof(port_s), "%d", port);
	data = json_object_new_object();
	json_object_object_add(data, "host", json_object_new_string(listen));
	json_object_object_add(data, "port", json_object_new_string(port_s));
	addr = json_object_new_object();
	json_object_object_add(addr, "type", json_object_new_string("inet"));
	json_object_object_add(addr, "data", data);
	a = json_object_new_object();
	json_object_object_add(a, "addr", addr);
	if (m->tls) { /* the objects qv_mig_tls_dest_steps() created */
		size_t n = 0;
		for (size_t i = 0; i < vm->spec->n_disks; i++)
			n += !vm->spec->disks[i].readonly;
		json_object_object_add(a, "tls-creds", json_object_new_string(QEMU_TLS_CREDS_ID));
		json_object_object_add(a, "tls-authz", json_object_new_string(QEMU_TLS_AUTHZ_ID));
		/* one NBD client per mirrored disk */
		json_object_object_add(a, "max-connections", json_object_new_int((int)n));
	}
	r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "nbd-server-start", .args = a,
						   .fn = nbd_started, .userdata = m });
	for (size_t i = 0; r >= 0 && i < vm->spec->n_disks; i++) {
		char id[32], node[32];
		if (vm->spec->disks[i].readonly)
			continue;
		snprintf(id, sizeof(id), "qvmig-exp%zu", i);
		snprintf(node, sizeof(node), "disk%zu", i);
		a = json_object_new_object();
		json_object_object_add(a, "type", json_object_new_string("nbd"));
		json_object_object_add(a, "id", json_object_new_string(id));
		json_object_object_add(a, "node-name", json_object_new_string(node));
		json_object_object_add(a, "name", json_object_new_string(node));
		json_object_object_add(a, "writable", json_object_new_boolean(true));
		/* A writable export activates the node: for LUKS QEMU reopens the
		 * image and runs the keyslot's PBKDF again (seconds). */
		r = qmp_seq_add(s, &(struct qmp_seq_step){ .command = "block-export-add", .args = a,
							   .timeout_ms = m->luks ? 60000 : 5000 });
	}
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue the NBD exports");
	snprintf(ret_uri, uri_size, "tcp:%s:%d", advert, port);
	return 0;
}

static void on_nbd_stopped(qmp_client *c, int error, json_object *ret,
			   const struct qv_error *errp, void *userdata)
{
	char *vm = userdata;

	if (error < 0)
		log_warning("VM %s: nbd-server-stop failed: %s, ignoring", vm,
			    errp && errp->set ? errp->message : strerror(-error));
	free(vm);
}

/* Not waited for: QEMU runs the commands of one monitor in order, so a
 * `cont` sent after this one finds the exports gone. */
void qv_mig_dest_nbd_stop(struct qv_mig *m, struct qv_vm *vm)
{
	char *name;

	if (!m->nbd || !vm || !vm->inst)
		return;
	name = strdup(m->vm);
	if (!name || qmp_client_execute_async(qemu_instance_qmp(vm->inst), "nbd-server-stop", NULL,
					      NULL, 0, 5000, on_nbd_stopped, name) < 0) {
		log_warning("VM %s: cannot send nbd-server-stop, ignoring", m->vm);
		free(name);
	}
	m->nbd = false;
}
