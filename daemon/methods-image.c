/* SPDX-License-Identifier: MIT */
/* image.* RPC methods over the daemon's directory pool <state-dir>/images
 * (docs/storage.md "API"). Quick operations run on the loop thread; import
 * and full clone run on worker threads (daemon/image-job.c). */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/image-internal.h"

/* --- who uses an image ----------------------------------------------------- */

static bool disk_is(const struct vm_disk *disk, const char *path)
{
	char real[PATH_MAX];

	if (!disk->path)
		return false;
	if (streq(disk->path, path))
		return true;
	return realpath(disk->path, real) && streq(real, path);
}

/* The first VM (after `after`, or from the start) with a disk at path. */
static struct qv_vm *next_user(struct qv_daemon *d, struct qv_vm *after, const char *path,
			       const struct vm_disk **ret_disk)
{
	for (struct qv_vm *vm = after ? after->next : d->vms; vm; vm = vm->next) {
		if (!vm->spec)
			continue;
		for (size_t i = 0; i < vm->spec->n_disks; i++)
			if (disk_is(&vm->spec->disks[i], path)) {
				if (ret_disk)
					*ret_disk = &vm->spec->disks[i];
				return vm;
			}
	}
	return NULL;
}

static bool pool_in_use(const char *name, const char *path, void *userdata)
{
	struct image_state *st = userdata;
	bool is_dest;

	return next_user(st->d, NULL, path, NULL) || image_job_find(st, name, &is_dest);
}

json_object *image_info_json(struct image_state *st, const char *name, struct qv_error *errp)
{
	struct qv_image_info info;
	_cleanup_free_ char *path = NULL;
	int r = qv_pool_lookup(st->pool, name, &path, NULL, errp);

	if (r >= 0)
		r = qv_pool_info(st->pool, name, &info, errp);
	if (r < 0)
		return NULL;
	json_object *o = json_object_new_object(), *users = json_object_new_array();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "format",
			       json_object_new_string(qv_image_format_to_string(info.format)));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)info.virtual_size));
	json_object_object_add(o, "allocated_size",
			       json_object_new_int64((int64_t)info.allocated_size));
	if (info.backing) {
		json_object_object_add(o, "backing", json_object_new_string(info.backing));
		const char *bf = qv_image_format_to_string(info.backing_format);
		if (bf)
			json_object_object_add(o, "backing_format", json_object_new_string(bf));
	}
	image_keys_info_json(st, name, &info, o);
	for (struct qv_vm *vm = next_user(st->d, NULL, path, NULL); vm;
	     vm = next_user(st->d, vm, path, NULL))
		json_object_array_add(users, json_object_new_string(vm->name));
	json_object_object_add(o, "used_by", users);
	qv_image_info_clear(&info);
	return o;
}

/* --- parameters ------------------------------------------------------------- */

static int fail_err(qv_rpc_call *call, const struct qv_error *err)
{
	qv_rpc_call_error(call, err);
	return -EINVAL;
}

/* params must be an object with only `keys`; answers the call on failure. */
static int check_params(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	struct qv_error err = {};

	if (!params)
		return 0;
	if (json_check_keys(params, keys, "params", &err) < 0)
		return fail_err(call, &err);
	return 0;
}

/* params[key] as an image name (required). */
static int param_name(qv_rpc_call *call, json_object *params, const char *key,
		      const char **ret)
{
	const char *s;
	int r = qv_param_string(call, params, key, &s);

	if (r < 0)
		return r;
	if (!qv_image_name_valid(s)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "params.%s: invalid image name \"%.80s\": use 1-63 of "
			     "[a-zA-Z0-9_.-], starting with a letter or digit", key, s);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}

/* "123", "512M", "10G", "1TiB" (binary units). */
static int parse_size(const char *s, uint64_t *ret)
{
	uint64_t x = 0, mult = 1;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (x > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		switch (toupper((unsigned char)*p)) {
		case 'K': mult = 1ULL << 10; break;
		case 'M': mult = 1ULL << 20; break;
		case 'G': mult = 1ULL << 30; break;
		case 'T': mult = 1ULL << 40; break;
		default: return -EINVAL;
		}
		p++;
		if (strcasecmp(p, "iB") == 0)
			p += 2;
		else if (strcasecmp(p, "B") == 0)
			p++;
		if (*p)
			return -EINVAL;
	}
	if (x > UINT64_MAX / mult)
		return -ERANGE;
	*ret = x * mult;
	return 0;
}

/* params[key] as a size: bytes (integer) or a string like "10G". */
static int param_size(qv_rpc_call *call, json_object *params, const char *key, bool required,
		      uint64_t *ret)
{
	json_object *v;
	uint64_t x;

	if (!params || !json_object_object_get_ex(params, key, &v)) {
		if (!required)
			return 0;
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT, "params.%s is required",
			     key);
		return -EINVAL;
	}
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);
		if (i <= 0) {
			qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				     "params.%s must be positive", key);
			return -EINVAL;
		}
		x = (uint64_t)i;
	} else if (json_object_is_type(v, json_type_string)) {
		if (parse_size(json_object_get_string(v), &x) < 0 || x == 0) {
			qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				     "params.%s: \"%.40s\" is not a size (bytes, or like \"512M\", "
				     "\"10G\")", key, json_object_get_string(v));
			return -EINVAL;
		}
	} else {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "params.%s must be an integer (bytes) or a string like \"10G\"", key);
		return -EINVAL;
	}
	if (x > INT64_MAX) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT, "params.%s is too large",
			     key);
		return -EINVAL;
	}
	*ret = x;
	return 0;
}

static int param_bool(qv_rpc_call *call, json_object *params, const char *key, bool *ret)
{
	struct qv_error err = {};
	char what[64];

	snprintf(what, sizeof(what), "params.%s", key);
	if (params && json_get_bool(params, key, what, ret, &err) == -EINVAL)
		return fail_err(call, &err);
	return 0;
}

/* Optional params.format; *ret untouched when absent. */
static int param_format(qv_rpc_call *call, json_object *params, enum qv_image_format *ret)
{
	struct qv_error err = {};
	const char *s;
	int r = params ? json_get_string(params, "format", "params.format", &s, &err) : -ENOENT;

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return fail_err(call, &err);
	if (qv_image_format_from_string(s, ret) < 0) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
			     "params.format must be \"raw\" or \"qcow2\", not \"%.40s\"", s);
		return -EINVAL;
	}
	return 0;
}

/* Optional params.bandwidth (bytes/s or "100M"). */
static int param_bandwidth(qv_rpc_call *call, json_object *params, uint64_t *ret)
{
	return param_size(call, params, "bandwidth", false, ret);
}

/* --- refusals ----------------------------------------------------------------- */

static struct image_state *state_of(struct qv_daemon *d)
{
	return d->image_state;
}

/* Refuse a name an operation in flight is creating or reading. */
static int check_no_job(qv_rpc_call *call, struct image_state *st, const char *name)
{
	bool is_dest;
	struct image_job *job = image_job_find(st, name, &is_dest);

	if (!job)
		return 0;
	if (is_dest)
		qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
			     "image %s is being created by operation %s", name,
			     image_job_op_id(job));
	else
		qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
			     "image %s is being cloned to %s by operation %s", name,
			     image_job_dest(job), image_job_op_id(job));
	return -EBUSY;
}

/* Refuse changing an image any defined VM has as a disk. */
static int check_not_used(qv_rpc_call *call, struct image_state *st, const char *name,
			  const char *what)
{
	_cleanup_free_ char *path = NULL;
	struct qv_error err = {};
	struct qv_vm *vm;

	if (qv_pool_lookup(st->pool, name, &path, NULL, &err) < 0)
		return fail_err(call, &err);
	vm = next_user(st->d, NULL, path, NULL);
	if (!vm)
		return 0;
	qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
		     "image %s is used by VM %s (%s); cannot %s it", name, vm->name,
		     qv_vm_state_to_string(vm->state), what);
	return -EBUSY;
}

/* A full clone (or an import) reads the source while VMs may write it:
 * refuse while one runs (paused is fine). A linked clone makes the source a
 * backing file for good: refuse while any VM may write it. */
static int check_readable_source(qv_rpc_call *call, struct image_state *st, const char *what,
				 const char *path, bool linked)
{
	const struct vm_disk *disk = NULL;

	for (struct qv_vm *vm = next_user(st->d, NULL, path, &disk); vm;
	     vm = next_user(st->d, vm, path, &disk)) {
		if (linked && !disk->readonly) {
			qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				     "image %s is a writable disk of VM %s: a linked clone needs "
				     "a template no VM writes to; make a full clone instead",
				     what, vm->name);
			return -EBUSY;
		}
		if (qv_vm_is_active(vm) && vm->state != QV_VM_PAUSED && !disk->readonly) {
			qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				     "%s is a disk of VM %s, which is %s: pause it first "
				     "(qvisor pause %s) or stop it, then try again",
				     what, vm->name, qv_vm_state_to_string(vm->state), vm->name);
			return -EBUSY;
		}
	}
	return 0;
}

static int check_clone_source(qv_rpc_call *call, struct image_state *st, const char *name,
			      bool linked)
{
	_cleanup_free_ char *path = NULL;
	struct qv_error err = {};
	char what[QV_IMAGE_NAME_MAX + 16];

	if (qv_pool_lookup(st->pool, name, &path, NULL, &err) < 0)
		return fail_err(call, &err);
	snprintf(what, sizeof(what), "image %s", name);
	return check_readable_source(call, st, what, path, linked);
}

static int reply_info(qv_rpc_call *call, struct image_state *st, const char *name)
{
	struct qv_error err = {};
	json_object *o = image_info_json(st, name, &err);

	if (!o)
		return qv_rpc_call_error(call, &err), 0;
	return qv_rpc_call_reply(call, o), 0;
}

/* --- methods --------------------------------------------------------------------- */

static int m_create(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "size", "format", "encrypt", "passphrase",
					    NULL };
	struct image_state *st = state_of(ud);
	enum qv_image_format fmt = QV_IMAGE_RAW;
	struct qv_error err = {};
	const char *name;
	uint64_t size;
	bool encrypt = false;

	if (check_params(call, params, keys) < 0 || param_name(call, params, "name", &name) < 0 ||
	    param_size(call, params, "size", true, &size) < 0 ||
	    param_bool(call, params, "encrypt", &encrypt) < 0)
		return 0;
	if (encrypt)
		fmt = QV_IMAGE_QCOW2; /* the default (and only) format of an encrypted image */
	if (param_format(call, params, &fmt) < 0 || check_no_job(call, st, name) < 0)
		return 0;
	if (size % 512)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.size must be a multiple of 512 bytes");
	if (encrypt && fmt != QV_IMAGE_QCOW2)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "encrypted images are qcow2 (LUKS inside qcow2), not raw");
	if (!encrypt && params && json_object_object_get_ex(params, "passphrase", NULL))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.passphrase needs params.encrypt");
	if (encrypt)
		return image_create_encrypted(st, call, name, size, params);
	if (qv_pool_create(st->pool, name, fmt, size, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	log_info("image %s: created (%s, %" PRIu64 " bytes)", name, qv_image_format_to_string(fmt),
		 size);
	return reply_info(call, st, name);
}

static int m_import(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "path", "name", "format", "bandwidth", "verify",
					    "passphrase", NULL };
	struct image_state *st = state_of(ud);
	struct image_job_params p = { .kind = IMAGE_JOB_IMPORT, .fmt = QV_IMAGE_AUTO };
	_cleanup_secret_ struct qv_secret *key = NULL;
	struct qv_error err = {};
	struct stat sb;
	bool enc = false;

	if (check_params(call, params, keys) < 0 || image_param_passphrase(call, params, &key) < 0 ||
	    qv_param_string(call, params, "path", &p.src) < 0 ||
	    param_name(call, params, "name", &p.name) < 0 ||
	    param_format(call, params, &p.fmt) < 0 || param_bandwidth(call, params, &p.bandwidth) < 0 ||
	    param_bool(call, params, "verify", &p.verify) < 0 || check_no_job(call, st, p.name) < 0)
		return 0;
	if (p.src[0] != '/' || strlen(p.src) >= PATH_MAX)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.path must be an absolute path");
	if (stat(p.src, &sb) < 0)
		return qv_call_fail(call, errno, errno == ENOENT ? QV_REASON_NOT_FOUND : NULL,
				    "cannot import %s: %m", p.src);
	if (!S_ISREG(sb.st_mode))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "cannot import %s: not a regular file", p.src);
	char real[PATH_MAX];
	if (realpath(p.src, real) && check_readable_source(call, st, p.src, real, false) < 0)
		return 0;
	if (qv_pool_lookup(st->pool, p.name, NULL, NULL, NULL) == 0)
		return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT, "image %s already exists",
				    p.name);
	/* Checked again on the published copy (image_keys_after_copy). */
	if (image_file_encrypted(p.src, &enc, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (enc && !key)
		return qv_call_fail(call, ENOKEY, QV_REASON_INVALID_ARGUMENT,
				    "%s is encrypted (LUKS): give its passphrase "
				    "(qvisor image import --passphrase-file F)", p.src);
	if (!enc && key)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s is not encrypted, but a passphrase was given", p.src);
	p.key = key;
	return image_job_start(st, call, &p), 0;
}

static int m_clone(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "source", "name", "linked", "bandwidth", "verify",
					    NULL };
	struct image_state *st = state_of(ud);
	struct image_job_params p = { .kind = IMAGE_JOB_CLONE };
	struct qv_error err = {};
	bool linked = false;

	if (check_params(call, params, keys) < 0 ||
	    param_name(call, params, "source", &p.src) < 0 ||
	    param_name(call, params, "name", &p.name) < 0 ||
	    param_bool(call, params, "linked", &linked) < 0 ||
	    param_bandwidth(call, params, &p.bandwidth) < 0 ||
	    param_bool(call, params, "verify", &p.verify) < 0)
		return 0;
	if (linked && p.verify)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.verify applies to full clones (a linked clone copies "
				    "no data)");
	if (streq(p.src, p.name))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "source and name are the same image");
	if (check_no_job(call, st, p.name) < 0 || check_clone_source(call, st, p.src, linked) < 0)
		return 0;
	/* The source may be read by several clones at once, but not while it is
	 * itself still being created. */
	bool is_dest;
	if (image_job_find(st, p.src, &is_dest) && is_dest)
		return check_no_job(call, st, p.src), 0;
	if (qv_pool_lookup(st->pool, p.name, NULL, NULL, NULL) == 0)
		return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT, "image %s already exists",
				    p.name);
	/* A full clone is a byte copy: it keeps the source's LUKS volume key
	 * and gets a copy of its passphrase (docs/storage.md). */
	_cleanup_secret_ struct qv_secret *key = NULL;
	if (qv_keystore_has(st->keys, p.src)) {
		if (linked)
			return qv_call_fail(call, EINVAL, QV_REASON_UNSUPPORTED,
					    "image %s is encrypted: linked clones of encrypted "
					    "images are not supported; make a full clone", p.src);
		if (qv_keystore_get(st->keys, p.src, &key, &err) < 0)
			return qv_rpc_call_error(call, &err), 0;
		p.key = key;
	}
	if (!linked)
		return image_job_start(st, call, &p), 0;
	if (qv_pool_clone(st->pool, p.src, p.name, QV_CLONE_LINKED, NULL, NULL, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	log_info("image %s: linked clone of %s created", p.name, p.src);
	return reply_info(call, st, p.name);
}

static int m_list(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { NULL };
	struct image_state *st = state_of(ud);
	struct qv_image_info *a = NULL;
	struct qv_error err = {};
	size_t n = 0;

	if (check_params(call, params, keys) < 0)
		return 0;
	if (qv_pool_list(st->pool, &a, &n, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	json_object *res = json_object_new_object(), *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct qv_error e = {};
		json_object *o = image_info_json(st, a[i].name, &e);
		if (o) /* else deleted meanwhile */
			json_object_array_add(arr, o);
	}
	qv_image_info_array_free(a, n);
	json_object_object_add(res, "pool", json_object_new_string(qv_pool_dir(st->pool)));
	json_object_object_add(res, "images", arr);
	json_object_object_add(res, "operations", image_jobs_json(st));
	return qv_rpc_call_reply(call, res), 0;
}

static int m_info(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct image_state *st = state_of(ud);
	const char *name;

	if (check_params(call, params, keys) < 0 || param_name(call, params, "name", &name) < 0)
		return 0;
	return reply_info(call, st, name);
}

static int m_delete(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct image_state *st = state_of(ud);
	struct qv_error err = {};
	const char *name;

	if (check_params(call, params, keys) < 0 || param_name(call, params, "name", &name) < 0 ||
	    check_no_job(call, st, name) < 0 || check_not_used(call, st, name, "delete") < 0)
		return 0;
	if (qv_pool_delete(st->pool, name, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_keystore_remove(st->keys, name, &err) < 0)
		log_warning("image %s: deleted, but its key stays: %s", name, err.message);
	log_info("image %s: deleted", name);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "deleted", json_object_new_boolean(true));
	return qv_rpc_call_reply(call, res), 0;
}

static int m_resize(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "size", "shrink", NULL };
	struct image_state *st = state_of(ud);
	struct qv_error err = {};
	const char *name;
	uint64_t size;
	bool shrink = false;

	if (check_params(call, params, keys) < 0 || param_name(call, params, "name", &name) < 0 ||
	    param_size(call, params, "size", true, &size) < 0 ||
	    param_bool(call, params, "shrink", &shrink) < 0 || check_no_job(call, st, name) < 0 ||
	    check_not_used(call, st, name, "resize") < 0)
		return 0;
	if (size % 512)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.size must be a multiple of 512 bytes");
	_cleanup_secret_ struct qv_secret *key = NULL;
	if (qv_keystore_has(st->keys, name) && qv_keystore_get(st->keys, name, &key, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (qv_pool_resize_luks(st->pool, name, size, shrink, key, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	log_info("image %s: resized to %" PRIu64 " bytes", name, size);
	return reply_info(call, st, name);
}

/* --- registry ------------------------------------------------------------------------ */

/* Pool images are private (0600, root): QEMU gets them as fds
 * (daemon/vm-disks.c), so neither they nor the directories above them are
 * opened up. Fixes the modes an older version left. */
static void make_pool_private(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct stat sb;

	if (!d)
		return;
	fd = -1;
	(void)fchmod(dirfd(d), 0700);
	for (struct dirent *de; (de = readdir(d));)
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && (sb.st_mode & 077))
			(void)fchmodat(dirfd(d), de->d_name, sb.st_mode & 0700, 0);
	closedir(d);
}

int qv_image_registry_load(struct qv_daemon *d)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ struct image_state *st = calloc(1, sizeof(*st));
	struct qv_error err = {};
	int r;

	if (!st || asprintf(&dir, "%s/images", d->cfg.state_dir) < 0)
		return -ENOMEM;
	r = qv_pool_open(dir, &st->pool, &err);
	if (r < 0) {
		log_error("Failed to open the image pool %s: %s", dir, err.message);
		return r;
	}
	st->d = d;
	r = image_keys_open(st, &err);
	if (r < 0) {
		log_error("Failed to open the image keystore: %s", err.message);
		qv_pool_free(st->pool);
		return r;
	}
	make_pool_private(qv_pool_dir(st->pool));
	qv_pool_set_in_use_hook(st->pool, pool_in_use, st);
	d->image_state = TAKE_PTR(st);
	log_debug("image pool at %s", dir);
	return 0;
}

void qv_image_registry_free(struct qv_daemon *d)
{
	struct image_state *st = d->image_state;

	if (!st)
		return;
	image_jobs_free(st);
	qv_pool_free(st->pool);
	qv_keystore_free(st->keys);
	free(st);
	d->image_state = NULL;
}

const struct qv_rpc_method qv_image_methods[] = {
	{ "image.create", m_create }, { "image.import", m_import }, { "image.clone", m_clone },
	{ "image.list", m_list },     { "image.info", m_info },     { "image.delete", m_delete },
	{ "image.resize", m_resize },
	{ "image.rekey", image_m_rekey },
};
const size_t qv_image_methods_count = ARRAY_SIZE(qv_image_methods);

/* A copy in flight reads one of vm's disks (resuming it would tear the copy). */
const char *qv_image_vm_disk_busy(struct qv_daemon *d, const struct qv_vm *vm)
{
	struct image_state *st = d->image_state;

	if (!st)
		return NULL;
	for (struct image_job *j = image_job_next(st, NULL); j; j = image_job_next(st, j)) {
		enum image_job_kind kind;
		const char *src = image_job_src(j, &kind);
		_cleanup_free_ char *path = NULL, *real_src = NULL;

		if (kind == IMAGE_JOB_CLONE) {
			if (qv_pool_lookup(st->pool, src, &path, NULL, NULL) < 0)
				continue;
			src = path;
		}
		real_src = realpath(src, NULL);
		if (!real_src)
			continue;
		for (size_t i = 0; i < vm->spec->n_disks; i++) {
			_cleanup_free_ char *real_disk = realpath(vm->spec->disks[i].path, NULL);
			if (real_disk && streq(real_disk, real_src))
				return image_job_op_id(j);
		}
	}
	return NULL;
}
