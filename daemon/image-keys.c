/* SPDX-License-Identifier: MIT */
/* Encrypted pool images: the keystore (<state-dir>/keys), image.create with
 * encrypt, the key checks after an import or a clone, image.rekey, and the
 * key of a disk at VM start. No function here logs or returns key bytes:
 * messages name images, never secrets (docs/security.md "Encrypted disks"). */
#include <fcntl.h>
#include <limits.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/image-internal.h"
#include "storage/image-crypt.h"
#include "storage/qcow2-refs.h"

int image_keys_open(struct image_state *st, struct qv_error *errp)
{
	_cleanup_free_ char *dir = NULL;

	if (asprintf(&dir, "%s/keys", st->d->cfg.state_dir) < 0)
		return -ENOMEM;
	return qv_keystore_open(dir, st->d->cfg.master_key_file, &st->keys, errp);
}

static int encryption_of_fd(int fd, const char *what, bool *ret, struct qv_error *errp)
{
	struct qv_qcow2_refs refs;
	int r = qv_qcow2_read_refs(fd, &refs, errp);

	if (r < 0)
		return qv_error_prefix(errp, "%s", what), r;
	if (refs.raw_luks)
		r = qv_error_set(errp, EINVAL, QV_REASON_UNSUPPORTED,
				 "%s is a raw LUKS volume: qvisor keeps encrypted images as qcow2 "
				 "(qemu-img convert --object secret,... -O qcow2 -o "
				 "encrypt.format=luks,...)", what);
	else if (refs.is_qcow2 && refs.crypt_method == QV_QCOW2_CRYPT_AES)
		r = qv_error_set(errp, EINVAL, QV_REASON_UNSUPPORTED,
				 "%s uses the legacy qcow2 AES encryption, which is broken: "
				 "convert it to encrypt.format=luks", what);
	else if (refs.is_qcow2 && refs.crypt_method > QV_QCOW2_CRYPT_LUKS)
		r = qv_error_set(errp, EINVAL, QV_REASON_UNSUPPORTED,
				 "%s: unknown qcow2 encryption method %u", what, refs.crypt_method);
	else
		*ret = refs.is_qcow2 && refs.crypt_method == QV_QCOW2_CRYPT_LUKS;
	qv_qcow2_refs_clear(&refs);
	return r;
}

const char *qv_image_vm_encrypted_disk(const struct qv_vm *vm)
{
	for (size_t i = 0; i < vm->spec->n_disks; i++) {
		const char *path = vm->spec->disks[i].path;
		_cleanup_close_ int fd = -1;
		struct qv_error err = {};
		bool enc = false;

		if (vm->spec->disks[i].format != VM_DISK_QCOW2)
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
		/* Unreadable or not understood: treat as encrypted (refuse). */
		if (fd < 0 || encryption_of_fd(fd, path, &enc, &err) < 0 || enc)
			return path;
	}
	return NULL;
}

int image_file_encrypted(const char *path, bool *ret, struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "open %s: %m", path);
	return encryption_of_fd(fd, path, ret, errp);
}

int image_keys_after_copy(struct image_state *st, const char *name,
			  const struct qv_secret *key, struct qv_error *errp)
{
	_cleanup_free_ char *path = NULL;
	bool enc = false;
	int r = qv_pool_lookup(st->pool, name, &path, NULL, errp);

	if (r < 0)
		return r;
	r = image_file_encrypted(path, &enc, errp);
	if (r >= 0 && enc && !key)
		r = qv_error_set(errp, ENOKEY, QV_REASON_INVALID_ARGUMENT,
				 "image %s is encrypted (LUKS): give its passphrase "
				 "(qvisor image import --passphrase-file F)", name);
	else if (r >= 0 && !enc && key)
		r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				 "image %s is not encrypted, but a passphrase was given", name);
	if (r >= 0 && key && (r = qv_image_check_key(path, key, errp)) < 0)
		qv_error_prefix(errp, "the passphrase does not open image %s", name);
	if (r >= 0 && key)
		r = qv_keystore_put(st->keys, name, key, errp);
	if (r < 0 && unlink(path) < 0)
		log_warning_errno(errno, "image %s: cannot remove the refused copy %s: %m", name,
				  path);
	return r;
}

int image_param_passphrase(qv_rpc_call *call, json_object *params, struct qv_secret **ret)
{
	struct qv_error err = {};
	json_object *v;

	*ret = NULL;
	if (!params || !json_object_object_get_ex(params, "passphrase", &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.passphrase must be a string"), -EINVAL;
	if (qv_secret_new(json_object_get_string(v), (size_t)json_object_get_string_len(v), ret,
			  &err) < 0) {
		qv_error_prefix(&err, "params.passphrase");
		qv_rpc_call_error(call, &err);
		return -EINVAL;
	}
	return 0;
}

int image_create_encrypted(struct image_state *st, qv_rpc_call *call, const char *name,
			   uint64_t size, json_object *params)
{
	_cleanup_secret_ struct qv_secret *key = NULL;
	struct qv_error err = {};
	bool generated = false;
	int r;

	if (image_param_passphrase(call, params, &key) < 0)
		return 0;
	if (!key) {
		r = qv_secret_generate(&key);
		if (r < 0)
			return qv_call_fail(call, -r, QV_REASON_INTERNAL, "cannot generate a key");
		generated = true;
	}
	if (qv_pool_lookup(st->pool, name, NULL, NULL, NULL) == 0)
		return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT, "image %s already exists",
				    name);
	/* Key first: a crash leaves an unused key, never an image without one. */
	if (qv_keystore_put(st->keys, name, key, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_pool_create_luks(st->pool, name, size, key,
				generated ? IMAGE_GENERATED_KEY_ITER_MS : 0, &err) < 0) {
		(void)qv_keystore_remove(st->keys, name, NULL);
		return qv_rpc_call_error(call, &err), 0;
	}
	log_info("image %s: created (qcow2, LUKS, %" PRIu64 " bytes, %s key)", name, size,
		 generated ? "generated" : "given");
	json_object *o = image_info_json(st, name, &err);
	if (!o)
		return qv_rpc_call_error(call, &err), 0;
	return qv_rpc_call_reply(call, o), 0;
}

void image_keys_info_json(struct image_state *st, const char *name,
			  const struct qv_image_info *info, json_object *o)
{
	json_object_object_add(o, "encrypted", json_object_new_boolean(info->encrypted));
	if (!info->encrypted)
		return;
	json_object_object_add(o, "encryption", json_object_new_string("luks"));
	json_object_object_add(o, "key_slots", json_object_new_int((int)info->key_slots));
	json_object_object_add(o, "key", json_object_new_string(
		qv_keystore_has(st->keys, name) ? "stored" : "missing"));
}

/* --- image.rekey ---------------------------------------------------------------- */

/* A VM that is not stopped and has path as a disk. */
static struct qv_vm *active_user(struct qv_daemon *d, const char *path)
{
	char real[PATH_MAX];

	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		for (size_t i = 0; vm->spec && i < vm->spec->n_disks; i++)
			if (qv_vm_is_active(vm) && realpath(vm->spec->disks[i].path, real) &&
			    streq(real, path))
				return vm;
	return NULL;
}

struct rekey_commit {
	struct image_state *st;
	const char *name;
	const struct qv_secret *key;
};

static int rekey_commit(void *userdata, struct qv_error *errp)
{
	struct rekey_commit *c = userdata;

	return qv_keystore_put(c->st->keys, c->name, c->key, errp);
}

int image_m_rekey(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "passphrase", NULL };
	struct qv_daemon *d = ud;
	struct image_state *st = d->image_state;
	_cleanup_secret_ struct qv_secret *old_key = NULL, *new_key = NULL;
	_cleanup_free_ char *path = NULL;
	struct qv_error err = {};
	const char *name;
	bool is_dest;
	struct qv_vm *vm;

	if (params && json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_param_string(call, params, "name", &name) < 0 ||
	    image_param_passphrase(call, params, &new_key) < 0)
		return 0;
	if (!qv_image_name_valid(name))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.name: invalid image name \"%.80s\"", name);
	if (qv_pool_lookup(st->pool, name, &path, NULL, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (image_job_find(st, name, &is_dest))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "image %s is being copied; rekey it afterwards", name);
	if ((vm = active_user(d, path)))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "image %s is a disk of VM %s, which is %s: stop it first", name,
				    vm->name, qv_vm_state_to_string(vm->state));
	if (qv_keystore_get(st->keys, name, &old_key, &err) < 0) {
		if (err.error == ENOENT)
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "image %s is not encrypted (no key in the keystore)",
					    name);
		return qv_rpc_call_error(call, &err), 0;
	}
	bool generated = !new_key;
	if (generated && qv_secret_generate(&new_key) < 0)
		return qv_call_fail(call, ENOMEM, QV_REASON_INTERNAL, "cannot generate a key");
	if (qv_secret_equal(old_key, new_key))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "the new passphrase of image %s is its current one", name);
	struct rekey_commit c = { st, name, new_key };
	if (qv_pool_rekey(st->pool, name, old_key, new_key,
			  generated ? IMAGE_GENERATED_KEY_ITER_MS : 0, rekey_commit, &c, &err) < 0) {
		log_warning("image %s: rekey failed: %s", name, err.message);
		return qv_rpc_call_error(call, &err), 0;
	}
	log_info("image %s: rekeyed (%s key; the old keyslot is erased)", name,
		 generated ? "generated" : "given");
	json_object *o = image_info_json(st, name, &err);
	if (!o)
		return qv_rpc_call_error(call, &err), 0;
	json_object_object_add(o, "rekeyed", json_object_new_boolean(true));
	return qv_rpc_call_reply(call, o), 0;
}

/* --- VM start ----------------------------------------------------------------------- */

int qv_image_disk_key(struct qv_daemon *d, const char *path, int fd,
		      struct qv_secret **ret, struct qv_error *errp)
{
	struct image_state *st = d->image_state;
	char real[PATH_MAX], name[QV_IMAGE_NAME_MAX + 1];
	bool enc = false;
	int r = encryption_of_fd(fd, path, &enc, errp);

	*ret = NULL;
	if (r < 0 || !enc)
		return r;
	const char *pool = st ? qv_pool_dir(st->pool) : NULL;
	size_t n = pool ? strlen(pool) : 0;
	const char *base = NULL, *dot = NULL;
	/* <pool>/<name>.qcow2, after resolving links */
	if (pool && realpath(path, real) && strncmp(real, pool, n) == 0 && real[n] == '/') {
		base = real + n + 1;
		dot = strrchr(base, '.');
	}
	if (!base || !dot || strchr(base, '/') || !streq(dot, ".qcow2") ||
	    (size_t)(dot - base) > QV_IMAGE_NAME_MAX)
		return qv_error_set(errp, ENOKEY, QV_REASON_INVALID_ARGUMENT,
				    "disk %s is encrypted (LUKS) but is not an image of the pool: "
				    "import it with its passphrase (qvisor image import "
				    "--passphrase-file F)", path);
	memcpy(name, base, (size_t)(dot - base));
	name[dot - base] = '\0';
	r = qv_keystore_get(st->keys, name, ret, errp);
	if (r == -ENOENT)
		qv_error_set(errp, ENOKEY, QV_REASON_INVALID_ARGUMENT,
			     "disk %s is encrypted (LUKS) but the keystore has no key for image "
			     "%s", path, name);
	return r;
}
