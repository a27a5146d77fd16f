/* SPDX-License-Identifier: MIT */
/* Storage migration of encrypted disks (docs/migration.md "Encrypted
 * disks"): the source sends each copied disk's passphrase in
 * migrate.prepare's disk_keys, only to a destination reached over tls://
 * (or the local unix socket: nothing leaves the host); the destination
 * accepts keys only on such a connection, creates the disk as a LUKS image
 * with that passphrase and stores it in its own keystore. Anything else is
 * refused before the migration starts. Keys are never logged or recorded. */
#include <fcntl.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/image-internal.h"
#include "daemon/migrate-internal.h"

/* The key of vm's disk i, NULL when it is not encrypted. */
static int disk_key(struct qv_daemon *d, struct qv_vm *vm, size_t i, struct qv_secret **ret,
		    struct qv_error *errp)
{
	const char *path = vm->spec->disks[i].path;
	_cleanup_close_ int fd = -1;

	*ret = NULL;
	if (vm->spec->disks[i].format != VM_DISK_QCOW2)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "VM %s: cannot open %s: %m",
				    vm->name, path);
	return qv_image_disk_key(d, path, fd, ret, errp);
}

static bool safe_channel(const char *to)
{
	return strncmp(to, "tls://", 6) == 0 || strncmp(to, "unix://", 7) == 0;
}

int qv_mig_check_encrypted(struct qv_daemon *d, struct qv_vm *vm, const char *to,
			   bool copy_storage, struct qv_error *errp)
{
	for (size_t i = 0; i < vm->spec->n_disks; i++) {
		_cleanup_secret_ struct qv_secret *key = NULL;
		int r = disk_key(d, vm, i, &key, errp);

		if (r < 0)
			return r;
		if (!key)
			continue;
		if (!copy_storage)
			return qv_error_set(errp, EPERM, QV_REASON_UNSUPPORTED,
					    "VM %s: disk %s is encrypted and its key stays in this "
					    "host's keystore: migrate it with copy_storage "
					    "(--copy-storage) over tls://", vm->name,
					    vm->spec->disks[i].path);
		if (vm->spec->disks[i].readonly)
			return qv_error_set(errp, EPERM, QV_REASON_UNSUPPORTED,
					    "VM %s: read-only disk %s is encrypted: read-only disks "
					    "are not copied and the destination has no key for it",
					    vm->name, vm->spec->disks[i].path);
		if (!safe_channel(to))
			return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
					    "VM %s: disk %s is encrypted: its key is sent to the "
					    "destination only over a TLS-protected daemon connection "
					    "(--to tls://HOST), not over %.40s", vm->name,
					    vm->spec->disks[i].path, to);
	}
	return 0;
}

int qv_mig_add_disk_keys(struct qv_daemon *d, const char *name, const char *to,
			 json_object *params, struct qv_error *errp)
{
	struct qv_vm *vm = qv_vm_find(d, name);
	json_object *keys, *v;
	bool any = false;

	if (!json_object_object_get_ex(params, "copy_storage", &v) || !json_object_get_boolean(v))
		return 0;
	if (!vm || !vm->spec)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "VM %s is gone", name);
	keys = json_object_new_array();
	for (size_t i = 0; i < vm->spec->n_disks; i++) {
		_cleanup_secret_ struct qv_secret *key = NULL;
		int r = disk_key(d, vm, i, &key, errp);
		if (r >= 0 && key && !safe_channel(to))
			r = qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
					 "VM %s: not sending disk keys over %.40s", name, to);
		if (r < 0) {
			json_object_put(keys);
			return r;
		}
		json_object_array_add(keys, key ? json_object_new_string_len((const char *)key->data,
									     (int)key->len)
						: NULL);
		any |= key != NULL;
	}
	if (any)
		json_object_object_add(params, "disk_keys", keys);
	else
		json_object_put(keys);
	return 0;
}

