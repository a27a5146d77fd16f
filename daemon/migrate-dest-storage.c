/* SPDX-License-Identifier: MIT */
/* Destination side of copy_storage: the names of the images created in
 * this daemon's pool for the mirrored disks (created off the loop by
 * migrate-dest-images.c), and the NBD exports (TLS when the migration is)
 * the source's mirror writes into. */
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
