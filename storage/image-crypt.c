/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include <fcntl.h>

#include "common/macro.h"
#include "storage/image-crypt.h"
#include "storage/qcow2-refs.h"
#include "storage/qemu-img.h"

/* Secrets as memfds, and the --object / --image-opts strings naming them. */
struct keyargs {
	int fd[2];
	char obj[2][96];
	char *image_opts; /* json:{"driver":"qcow2",...,"backing":null} */
	size_t n;
};

static void keyargs_clear(struct keyargs *k)
{
	for (size_t i = 0; i < k->n; i++)
		close(k->fd[i]);
	free(k->image_opts);
	*k = (struct keyargs){ 0 };
}

static int keyargs_add(struct keyargs *k, const struct qv_secret *s, struct qv_error *errp)
{
	int r = qv_memfd_secret("qv-luks", s->data, s->len, &k->fd[k->n]);

	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "memfd for a secret: %s",
				    strerror(-r));
	snprintf(k->obj[k->n], sizeof(k->obj[0]), "secret,id=sec%zu,format=raw,file=/proc/self/fd/%d",
		 k->n, k->fd[k->n]);
	k->n++;
	return 0;
}

/* The image as a json: filename with "backing": null, after checking that
 * its header names no other file: root's qemu-img then opens exactly this
 * file, whatever a compromised QEMU wrote into the header (an encrypted
 * image is always self-contained). */
static int keyargs_open(struct keyargs *k, const char *path, const char *secret_id,
			struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, NULL, "open %s: %m", path);
	r = qv_qcow2_check_self_contained(fd, path, errp);
	if (r < 0)
		return r;
	k->image_opts = qv_qemu_img_json_name(path, secret_id);
	return k->image_opts ? 0 : qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
}

/* QEMU 7.2 sizes a new keyslot's PBKDF by timing it (qcrypto_pbkdf2_count_iters);
 * that measurement sometimes reads no CPU time and fails with "Unable to get
 * accurate CPU usage" (about 1 run in 6 on the 2-core test machines, idle or
 * not). It is transient and fails before any slow work: try again (at most
 * 5 times, so about 1 keyslot in 8,000 still fails).
 * unlink_on_retry: a partial file qemu-img create left. */
static int run_pbkdf_retry(char *const argv[], struct keyargs *k, const char *unlink_on_retry,
			   struct qv_error *errp)
{
	int r = 0;

	for (int attempt = 0; attempt < 5; attempt++) {
		if (attempt) {
			qv_error_clear(errp);
			if (unlink_on_retry)
				(void)unlink(unlink_on_retry);
		}
		r = qv_qemu_img_run_fds(argv, k->fd, k->n, NULL, errp);
		if (r >= 0 || !errp || !errp->set || !strstr(errp->message, "accurate CPU usage"))
			break;
	}
	return r;
}

int qv_image_create_luks(const char *path, uint64_t size, const struct qv_secret *key,
			 unsigned iter_time_ms, struct qv_error *errp)
{
	struct keyargs k = { 0 };
	char sz[32], o[128];
	int r;

	if (size > INT64_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "size too large");
	if (access(path, F_OK) == 0)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT, "%s already exists", path);
	r = keyargs_add(&k, key, errp);
	if (r < 0)
		return r;
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	if (iter_time_ms)
		snprintf(o, sizeof(o), "encrypt.format=luks,encrypt.key-secret=sec0,"
			 "encrypt.iter-time=%u", iter_time_ms);
	else
		snprintf(o, sizeof(o), "encrypt.format=luks,encrypt.key-secret=sec0");
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "--object", k.obj[0],
			 "-o", o, (char *)path, sz, NULL };
	r = run_pbkdf_retry(argv, &k, path, errp);
	keyargs_clear(&k);
	return r;
}

int qv_image_check_key(const char *path, const struct qv_secret *key, struct qv_error *errp)
{
	struct keyargs k = { 0 };
	int r = keyargs_add(&k, key, errp);

	if (r >= 0 && (r = keyargs_open(&k, path, "sec0", errp)) >= 0) {
		char *argv[] = { "qemu-img", "check", "-q", "--object", k.obj[0], k.image_opts,
				 NULL };
		r = qv_qemu_img_run_fds(argv, k.fd, k.n, NULL, errp);
	}
	keyargs_clear(&k);
	return r;
}

static int amend(const char *path, const struct qv_secret *open_key,
		 const struct qv_secret *other, const char *opts, struct qv_error *errp)
{
	struct keyargs k = { 0 };
	int r = keyargs_add(&k, open_key, errp);

	if (r >= 0)
		r = keyargs_add(&k, other, errp);
	if (r >= 0 && (r = keyargs_open(&k, path, "sec0", errp)) >= 0) {
		char *argv[] = { "qemu-img", "amend", "-q", "--object", k.obj[0], "--object",
				 k.obj[1], "-o", (char *)opts, k.image_opts, NULL };
		r = run_pbkdf_retry(argv, &k, NULL, errp);
	}
	keyargs_clear(&k);
	return r;
}

int qv_image_rekey_add(const char *path, const struct qv_secret *old_key,
		       const struct qv_secret *new_key, unsigned iter_time_ms,
		       struct qv_error *errp)
{
	char o[128];

	/* sec0 opens the image (old), sec1 is the new keyslot's secret. */
	if (iter_time_ms)
		snprintf(o, sizeof(o), "encrypt.state=active,encrypt.new-secret=sec1,"
			 "encrypt.iter-time=%u", iter_time_ms);
	else
		snprintf(o, sizeof(o), "encrypt.state=active,encrypt.new-secret=sec1");
	return amend(path, old_key, new_key, o, errp);
}

int qv_image_rekey_drop(const char *path, const struct qv_secret *old_key,
			const struct qv_secret *new_key, struct qv_error *errp)
{
	/* sec0 opens the image (new), the slots sec1 (old) opens are erased. */
	return amend(path, new_key, old_key, "encrypt.state=inactive,encrypt.old-secret=sec1",
		     errp);
}

int qv_image_resize_luks(const char *path, uint64_t size, bool shrink,
			 const struct qv_secret *key, struct qv_error *errp)
{
	struct keyargs k = { 0 };
	char sz[32];
	int r;

	if (size > INT64_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "size too large");
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	r = keyargs_add(&k, key, errp);
	if (r >= 0 && (r = keyargs_open(&k, path, "sec0", errp)) >= 0) {
		char *argv[] = { "qemu-img", "resize", "-q", "--object", k.obj[0], k.image_opts, sz,
				 NULL };
		char *argv_shrink[] = { "qemu-img", "resize", "-q", "--shrink", "--object", k.obj[0],
					k.image_opts, sz, NULL };
		r = qv_qemu_img_run_fds(shrink ? argv_shrink : argv, k.fd, k.n, NULL, errp);
	}
	keyargs_clear(&k);
	return r;
}
