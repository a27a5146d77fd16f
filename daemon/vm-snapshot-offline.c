/* SPDX-License-Identifier: MIT */
/* Offline merges for snapshot.delete: the VM is stopped, or the snapshot is
 * on a branch its QEMU does not use. qemu-img runs on a worker thread (the
 * loop thread is told through an eventfd). Every image is named explicitly
 * in a json: description, backing included, so qemu-img (root) never opens
 * a file named inside an image QEMU could have written. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/snapshot-internal.h"
#include "storage/qcow2-refs.h"
#include "storage/qemu-img.h"

#define MAX_CMDS (2 * SNAP_MAX_DISKS)

struct offline {
	struct snap_op *op;
	pthread_t thread;
	int efd;
	qv_source *src;
	char *argv[MAX_CMDS][12];
	char *strs[MAX_CMDS][3];
	size_t n;
	int result;
	struct qv_error err;
};

static void *worker(void *ud)
{
	struct offline *o = ud;
	uint64_t one = 1;

	for (size_t k = 0; k < o->n && o->result >= 0; k++)
		o->result = qv_qemu_img_run(o->argv[k], NULL, &o->err);
	(void)!write(o->efd, &one, sizeof(one));
	return NULL;
}

static void offline_free(struct offline *o)
{
	for (size_t k = 0; k < o->n; k++)
		for (size_t j = 0; j < 3; j++)
			free(o->strs[k][j]);
	qv_source_remove(o->src);
	if (o->efd >= 0)
		close(o->efd);
	free(o);
}

static void on_done(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct offline *o = ud;
	struct snap_op *op = o->op;
	struct qv_vm *vm;
	struct qv_error err = o->err;
	int r = o->result;

	pthread_join(o->thread, NULL);
	offline_free(o);
	if (r < 0)
		return snap_op_failf(op, -r, err.set ? err.reason : NULL,
				     "VM %s: merging snapshot %s failed: %s (it stays \"deleting\"; "
				     "run the delete again)", op->vm, op->name,
				     err.set ? err.message : strerror(-r));
	if (!(vm = snap_op_vm(op)))
		return;
	for (size_t k = 0; k < op->n_disks; k++)
		if (snap_delete_record(op, vm, &op->disks[k]) < 0)
			return;
	snap_delete_finish(op);
}

/* json: description of a qcow2 image with its backing pinned to `base`
 * (format fmt, never its own backing). */
static char *pinned(const char *top, const char *base, const char *fmt)
{
	json_object *o = json_object_new_object(), *f = json_object_new_object(),
		    *b = json_object_new_object(), *bf = json_object_new_object();
	char *s = NULL;

	json_object_object_add(f, "driver", json_object_new_string("file"));
	json_object_object_add(f, "filename", json_object_new_string(top));
	json_object_object_add(bf, "driver", json_object_new_string("file"));
	json_object_object_add(bf, "filename", json_object_new_string(base));
	json_object_object_add(b, "driver", json_object_new_string(fmt));
	json_object_object_add(b, "file", bf);
	if (streq(fmt, "qcow2"))
		json_object_object_add(b, "backing", NULL);
	json_object_object_add(o, "driver", json_object_new_string("qcow2"));
	json_object_object_add(o, "file", f);
	json_object_object_add(o, "backing", b);
	if (asprintf(&s, "json:%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0)
		s = NULL;
	json_object_put(o);
	return s;
}

/* A qcow2 image we let qemu-img open: no external data file. */
static int plain_qcow2(const char *path, struct qv_error *errp)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	struct qv_qcow2_refs refs;
	bool external;
	int r;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %m", path);
	if ((r = qv_qcow2_read_refs(fd, &refs, errp)) < 0)
		return qv_error_prefix(errp, "%s", path), r;
	external = refs.external_data || refs.data_file || !refs.is_qcow2;
	qv_qcow2_refs_clear(&refs);
	if (external)
		return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
				    "%s is not a plain qcow2 image (external data file?): refused",
				    path);
	return 0;
}

/* The one image whose backing is C (the image of C's snapshot's only
 * child, or the active one), or NULL when C is the active image. */
static const char *above(struct snap_op *op, struct qv_vm *vm, size_t i)
{
	json_object *x = snap_delete_child(op), *y = NULL;
	bool active;

	if (!x)
		return NULL;
	qv_snap_children(op->tree, qv_snap_str(x, "name"), &y, &active);
	return active ? vm->spec->disks[i].path : y ? qv_snap_disk_path(y, i) : NULL;
}

static int plan(struct offline *o, struct snap_op *op, struct qv_vm *vm, struct qv_error *errp)
{
	for (size_t k = 0; k < op->n_disks; k++) {
		struct snap_disk *dk = &op->disks[k];
		const char *c = snap_delete_child_path(op, vm, dk->index), *a;
		int r;

		if (!c || streq(c, dk->path))
			continue; /* merged by an earlier run */
		if ((r = plain_qcow2(c, errp)) < 0)
			return r;
		o->strs[o->n][0] = pinned(c, dk->path, dk->node);
		if (!o->strs[o->n][0])
			return -ENOMEM;
		char **v = o->argv[o->n++];
		v[0] = "qemu-img", v[1] = "commit", v[2] = "-q", v[3] = "-d";
		v[4] = o->strs[o->n - 1][0], v[5] = NULL;
		a = above(op, vm, dk->index);
		if (!a)
			continue;
		if ((r = plain_qcow2(a, errp)) < 0)
			return r;
		if (!(o->strs[o->n][0] = strdup(a)) || !(o->strs[o->n][1] = strdup(dk->path)) ||
		    !(o->strs[o->n][2] = strdup(dk->node)))
			return -ENOMEM;
		v = o->argv[o->n++];
		v[0] = "qemu-img", v[1] = "rebase", v[2] = "-q", v[3] = "-u", v[4] = "-f";
		v[5] = "qcow2", v[6] = "-b", v[7] = o->strs[o->n - 1][1], v[8] = "-F";
		v[9] = o->strs[o->n - 1][2], v[10] = o->strs[o->n - 1][0], v[11] = NULL;
	}
	return 0;
}

void snap_delete_offline(struct snap_op *op)
{
	struct qv_vm *vm = snap_op_vm(op);
	struct offline *o;
	struct qv_error err = {};
	int r;

	if (!vm)
		return;
	if (!(o = calloc(1, sizeof(*o))))
		return snap_op_failf(op, ENOMEM, NULL, "out of memory");
	o->op = op;
	o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = o->efd < 0 ? -errno : plan(o, op, vm, &err);
	if (r >= 0)
		r = qv_loop_add_io(op->d->loop, o->efd, EPOLLIN, on_done, o, &o->src);
	if (r >= 0 && (r = -pthread_create(&o->thread, NULL, worker, o)) < 0)
		o->src = qv_source_remove(o->src);
	if (r < 0) {
		offline_free(o);
		if (!err.set)
			qv_error_set(&err, -r, NULL, "VM %s: cannot start the merge: %s", op->vm,
				     strerror(-r));
		return snap_op_fail(op, &err);
	}
	log_info("VM %s: merging snapshot %s offline (%zu qemu-img step(s))", op->vm, op->name,
		 o->n);
}
