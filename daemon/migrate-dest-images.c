/* SPDX-License-Identifier: MIT */
/* Destination side of copy_storage: the images prepare creates in this
 * daemon's pool, off the loop. qv_pool_create() may run qemu-img, and
 * qv_pool_create_luks() runs a LUKS keyslot's PBKDF (1-2 s of CPU), so the
 * checks run on the loop and the creation on a worker thread
 * (bk_work_start(): the result comes back through an eventfd). The worker
 * touches only the pool and the job's own fields; the passphrases travel
 * as qv_secret copies (to qemu-img through memfds, storage/image-crypt.c)
 * and reach the keystore only once the images exist. A job abandoned by a
 * teardown stops before its next image and removes what it created when
 * its thread ended (joined on the loop). */
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/backup-internal.h"
#include "daemon/image-internal.h"
#include "daemon/migrate-internal.h"
#include "storage/pool.h"

#define STALL_MAX_MS 120000

struct create_item {
	size_t disk;                    /* index in the spec */
	char name[QV_IMAGE_NAME_MAX + 1];
	enum qv_image_format fmt;
	uint64_t size;
	struct qv_secret *key;          /* LUKS passphrase, or NULL */
	bool created;                   /* set by the worker */
};

struct qv_mig_create {
	struct qv_daemon *d;
	qv_pool *pool;
	char vm[VM_NAME_MAX + 1];
	struct create_item *items;
	size_t n;
	atomic_bool cancel;
	/* test hook (QVISORD_TEST_STALL_AT=dest-create-images) */
	bool stall;
	int stall_ms;
	char *stall_file;
	/* loop thread: the owner, NULL once abandoned */
	struct qv_mig *m;
	struct vm_spec *spec;
	qv_mig_create_fn fn;
	void *ud;
};

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

static void create_free(struct qv_mig_create *c)
{
	for (size_t i = 0; i < c->n; i++)
		qv_secret_free(c->items[i].key);
	free(c->items);
	free(c->stall_file);
	free(c);
}

/* Test hook: hold the worker (not the loop) before it creates anything,
 * while $QVISORD_TEST_STALL_FILE exists (else QVISORD_TEST_STALL_MS,
 * 3000), at most 120 s; a cancel ends it. Once per daemon. */
static void test_stall_arm(struct qv_mig_create *c)
{
	const char *at = getenv("QVISORD_TEST_STALL_AT"), *ms = getenv("QVISORD_TEST_STALL_MS");
	const char *file = getenv("QVISORD_TEST_STALL_FILE");
	static bool done;

	if (done || !at || !streq(at, "dest-create-images"))
		return;
	done = true;
	c->stall = true;
	c->stall_ms = ms && atoi(ms) > 0 ? atoi(ms) : 3000;
	c->stall_file = file ? strdup(file) : NULL;
	log_warning("QVISORD_TEST_STALL_AT=dest-create-images: the image worker of %s waits%s%s",
		    c->vm, file ? " while this file exists: " : "", file ? file : "");
}

static void test_stall(struct qv_mig_create *c)
{
	struct timespec ts = { 0, 20 * 1000000L };

	for (int t = 0; t < STALL_MAX_MS && !atomic_load(&c->cancel); t += 20) {
		if (c->stall_file ? access(c->stall_file, F_OK) < 0 : t >= c->stall_ms)
			break;
		nanosleep(&ts, NULL);
	}
}

/* Worker thread: the pool only, no json-c, no logging. */
static int create_work(void *ud, struct qv_error *err)
{
	struct qv_mig_create *c = ud;
	int r;

	if (c->stall)
		test_stall(c);
	for (size_t i = 0; i < c->n; i++) {
		struct create_item *it = &c->items[i];
		if (atomic_load(&c->cancel))
			return qv_error_set(err, ECANCELED, QV_REASON_CANCELLED,
					    "image creation cancelled");
		r = it->key ? qv_pool_create_luks(c->pool, it->name, it->size, it->key, 0, err)
			    : qv_pool_create(c->pool, it->name, it->fmt, it->size, err);
		if (r < 0)
			return r;
		it->created = true;
	}
	return 0;
}

/* Remove what the worker created (failed or abandoned job). */
static void delete_created(struct qv_mig_create *c)
{
	for (size_t i = 0; i < c->n; i++) {
		_cleanup_free_ char *path = NULL;
		if (!c->items[i].created ||
		    qv_pool_lookup(c->pool, c->items[i].name, &path, NULL, NULL) < 0)
			continue;
		if (unlink(path) < 0 && errno != ENOENT)
			log_warning_errno(errno, "Cannot remove %s, ignoring: %m", path);
		else
			log_info("VM %s: removed %s (storage migration not prepared)", c->vm, path);
	}
}

/* The images exist: m owns them (deleted on teardown), the keys go to
 * the keystore, the spec's disks point at them. */
static int adopt(struct qv_mig_create *c, struct qv_error *errp)
{
	struct image_state *ist = c->d->image_state;
	struct qv_mig *m = c->m;
	int r;

	for (size_t i = 0; i < c->n; i++) {
		struct create_item *it = &c->items[i];
		struct vm_disk *dk = &c->spec->disks[it->disk];
		char *path = NULL;
		r = qv_pool_lookup(c->pool, it->name, &path, NULL, errp);
		if (r < 0)
			return r;
		m->images[m->n_images++] = path;
		it->created = false; /* m's now */
		free(dk->path);
		dk->path = strdup(path);
		if (!dk->path)
			return -ENOMEM;
		/* The destination's copy: a new LUKS header (its own volume
		 * key) opened by the same passphrase; the mirror writes
		 * plaintext through it. */
		if (it->key && (r = qv_keystore_put(ist->keys, it->name, it->key, errp)) < 0)
			return r;
		log_info("VM %s: disk %zu created as %s (%" PRIu64 " bytes%s) for storage migration",
			 c->vm, it->disk, path, it->size, it->key ? ", LUKS" : "");
	}
	return 0;
}

static void create_done(int r, const struct qv_error *err, void *ud)
{
	struct qv_mig_create *c = ud;
	struct qv_error e = {};

	if (!c->fn) { /* abandoned by a teardown */
		delete_created(c);
		return create_free(c);
	}
	if (r >= 0 && (r = adopt(c, &e)) < 0 && !e.set)
		qv_error_set(&e, -r, QV_REASON_INTERNAL, "cannot adopt the created images");
	if (r < 0 && !e.set && err)
		e = *err;
	if (r < 0)
		delete_created(c); /* those m does not own yet */
	c->fn(r, r < 0 ? &e : NULL, c->ud);
	qv_error_clear(&e);
	create_free(c);
}

int qv_mig_dest_images(struct qv_daemon *d, struct qv_mig *m, struct vm_spec *spec,
		       json_object *sizes, json_object *keys, qv_mig_create_fn fn, void *ud,
		       struct qv_mig_create **ret, struct qv_error *errp)
{
	struct image_state *ist = d->image_state;
	struct qv_mig_create *c;
	int r;

	if (!ist || !ist->pool)
		return qv_error_set(errp, ENODEV, QV_REASON_UNAVAILABLE,
				    "the destination has no image pool");
	if (!sizes || !json_object_is_type(sizes, json_type_array) ||
	    json_object_array_length(sizes) != spec->n_disks)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk_sizes must list one size per spec disk");
	m->images = calloc(spec->n_disks + 1, sizeof(*m->images));
	c = calloc(1, sizeof(*c));
	if (c)
		c->items = calloc(spec->n_disks + 1, sizeof(*c->items));
	if (!m->images || !c || !c->items) {
		if (c)
			create_free(c);
		return -ENOMEM;
	}
	*c = (struct qv_mig_create){ .d = d, .pool = ist->pool, .items = c->items, .m = m,
				     .spec = spec, .fn = fn, .ud = ud };
	snprintf(c->vm, sizeof(c->vm), "%s", spec->name);
	for (size_t i = 0; i < spec->n_disks; i++) {
		struct vm_disk *dk = &spec->disks[i];
		json_object *v = json_object_array_get_idx(sizes, i);
		int64_t size = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
		struct create_item *it = &c->items[c->n];

		if (dk->readonly)
			continue; /* read-only disks must be shared (same path) */
		r = -EINVAL;
		if (size <= 0 || size % 512) {
			qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				     "params.disk_sizes[%zu] must be a positive multiple of 512", i);
			goto fail;
		}
		*it = (struct create_item){ .disk = i, .size = (uint64_t)size,
					    .fmt = dk->format == VM_DISK_QCOW2 ? QV_IMAGE_QCOW2
									       : QV_IMAGE_RAW };
		if (qv_mig_dest_image_name(spec->name, i, dk, it->name, sizeof(it->name)) < 0) {
			qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				     "no valid image name for disk %zu", i);
			goto fail;
		}
		for (size_t j = 0; j < c->n; j++)
			if (streq(c->items[j].name, it->name)) {
				qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					     "disks %zu and %zu would both be image %s", c->items[j].disk,
					     i, it->name);
				goto fail;
			}
		if (qv_pool_lookup(ist->pool, it->name, NULL, NULL, NULL) == 0) {
			r = qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					 "image %s already exists in the destination pool %s",
					 it->name, qv_pool_dir(ist->pool));
			goto fail;
		}
		r = dest_disk_key(keys, i, &it->key, errp);
		if (r >= 0 && it->key && it->fmt != QV_IMAGE_QCOW2)
			r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					 "params.disk_keys[%zu]: disk %zu is not qcow2", i, i);
		c->n++;
		if (r < 0)
			goto fail;
		m->luks |= it->key != NULL;
	}
	test_stall_arm(c);
	r = bk_work_start(d, create_work, create_done, c);
	if (r < 0) {
		qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot start the image worker");
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	create_free(c);
	return r;
}

void qv_mig_dest_images_abandon(struct qv_mig_create *c)
{
	if (!c)
		return;
	c->fn = NULL;
	c->m = NULL;
	c->spec = NULL;
	atomic_store(&c->cancel, true);
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
