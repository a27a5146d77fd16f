/* SPDX-License-Identifier: MIT */
/* vm.move (cold migration of a stopped VM): the refusals, what to copy,
 * and the method table (docs/cluster.md "Cold migration", docs/rpc.md). */
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster.h"
#include "daemon/migrate-internal.h"
#include "daemon/vm-move-source.h"
#include "daemon/vm.h"
#include "storage/qcow2-refs.h"

static bool is_uri(const char *to)
{
	return strncmp(to, "tls://", 6) == 0 || strncmp(to, "unix://", 7) == 0;
}

static int check_state(struct qv_vm *vm, struct qv_error *errp)
{
	if (mv_source_busy(vm->name))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT, "VM %s is already moving",
				    vm->name);
	if (vm->spec->ha) /* the copy would leave the shared storage the leader restarts it from */
		return qv_error_set(errp, EINVAL, QV_REASON_UNSUPPORTED,
				    "VM %s is an ha VM: its disks are on shared storage every host "
				    "sees, and vm.move would copy them into the destination's pool; "
				    "start it and migrate it live (qvisor migrate %s --to ...)",
				    vm->name, vm->name);
	if (qv_vm_is_active(vm) || (vm->state != QV_VM_STOPPED && vm->state != QV_VM_CRASHED))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is %s: vm.move moves stopped VMs; use migrate (qvisor "
				    "migrate %s --to ...) for a running one, or stop it first",
				    vm->name, qv_vm_state_to_string(vm->state), vm->name);
	return 0;
}

/* What each disk is: copied (writable) or shared (read-only), its sizes. */
static int plan_disks(struct mv_out *o, struct qv_vm *vm, struct qv_error *errp)
{
	if (vm->spec->n_disks > MV_MAX_DISKS)
		return qv_error_set(errp, E2BIG, QV_REASON_UNSUPPORTED,
				    "VM %s has more than %d disks", vm->name, MV_MAX_DISKS);
	o->n = vm->spec->n_disks;
	for (size_t i = 0; i < o->n; i++) {
		const struct vm_disk *dk = &vm->spec->disks[i];
		struct mv_src_disk *s = &o->disks[i];
		struct qv_qcow2_refs refs = {};
		struct stat st;
		_cleanup_close_ int fd = -1;

		snprintf(s->path, sizeof(s->path), "%s", dk->path);
		s->copy = !dk->readonly;
		if (!s->copy)
			continue;
		fd = open(dk->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0 || fstat(fd, &st) < 0)
			return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "VM %s: disk %s: %m",
					    vm->name, dk->path);
		if (!S_ISREG(st.st_mode))
			return qv_error_set(errp, EINVAL, QV_REASON_UNSUPPORTED,
					    "VM %s: disk %s is not a regular file; only file disks "
					    "move", vm->name, dk->path);
		if (dk->format == VM_DISK_QCOW2) {
			int r = qv_qcow2_read_refs(fd, &refs, errp);
			bool chained = r >= 0 && (refs.backing || refs.external_data);
			qv_qcow2_refs_clear(&refs);
			if (r < 0)
				return r;
			if (chained)
				return qv_error_set(errp, EINVAL, QV_REASON_UNSUPPORTED,
						    "VM %s: disk %s has a backing or data file; "
						    "cold migration copies self-contained images only "
						    "(flatten it first, e.g. with a full image clone)",
						    vm->name, dk->path);
		}
		s->size = (uint64_t)st.st_size;
		s->alloc = (uint64_t)st.st_blocks * 512;
		o->total += s->size;
	}
	return 0;
}

static int new_token(char buf[33])
{
	unsigned char rnd[16];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(buf + 2 * i, 3, "%02x", rnd[i]);
	return 0;
}

/* disk_keys for the destination: only over TLS (migrate-keys.c). */
static int add_keys(struct mv_out *o, struct qv_vm *vm, const char *to, struct qv_error *errp)
{
	_cleanup_json_ json_object *p = json_object_new_object();
	json_object *k;
	int r = qv_mig_check_encrypted(o->d, vm, to, true, errp);

	if (r < 0)
		return r;
	json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
	r = qv_mig_add_disk_keys(o->d, vm->name, to, p, errp);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(p, "disk_keys", &k))
		json_object_deep_copy(k, &o->keys, NULL);
	return 0;
}

static int m_move(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "to", "bandwidth_mib", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	const char *name, *to;
	int64_t bw = 0;
	struct qv_vm *vm;
	struct mv_out *o;

	if (qv_param_check_keys(call, params, keys) < 0 ||
	    qv_param_string(call, params, "name", &name) < 0 ||
	    qv_param_string(call, params, "to", &to) < 0)
		return 0;
	if (json_get_int64(params, "bandwidth_mib", "params.bandwidth_mib", &bw, &err) == -EINVAL ||
	    bw < 0 || bw > MV_MAX_BANDWIDTH_MIB) /* bw << 20 must not wrap */
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.bandwidth_mib must be an integer from 0 (no cap) to %d "
				    "(MiB/s)", MV_MAX_BANDWIDTH_MIB);
	vm = qv_vm_find(d, name);
	if (!vm) {
		if (vm_name_valid(name) &&
		    qv_cluster_forward_vm_call(d, call, "vm.move", params, name))
			return 0;
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.80s is not defined",
				    name);
	}
	if (check_state(vm, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (!is_uri(to)) {
		if (!qv_cluster_enabled(d))
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "--to %.80s: a host name needs a cluster "
					    "(--cluster-endpoints); name the daemon as tls://ADDR[:PORT]",
					    to);
		if (streq(to, d->cfg.cluster_host))
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "VM %s is already on host %s", name, to);
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->d = d;
	o->call = call;
	o->bandwidth = (uint64_t)bw << 20;
	snprintf(o->vm, sizeof(o->vm), "%s", name);
	snprintf(o->to, sizeof(o->to), "%s", is_uri(to) ? to : "tls://");
	if (new_token(o->token) < 0 || plan_disks(o, vm, &err) < 0 ||
	    add_keys(o, vm, o->to, &err) < 0) {
		if (!err.message[0])
			qv_error_set(&err, EIO, QV_REASON_INTERNAL, "no randomness for the token");
		json_object_put(o->keys);
		free(o);
		return qv_rpc_call_error(call, &err), 0;
	}
	o->spec = vm_spec_to_json(vm->spec);
	if (mv_source_begin(o, is_uri(to) ? NULL : to, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	return 0;
}

const struct qv_rpc_method qv_move_methods[] = {
	{ "vm.move", m_move },          { "move.prepare", mv_m_prepare },
	{ "move.write", mv_m_write },   { "move.commit", mv_m_commit },
	{ "move.finish", mv_m_finish }, { "move.abort", mv_m_abort },
};
const size_t qv_move_methods_count = ARRAY_SIZE(qv_move_methods);

void qv_move_load(struct qv_daemon *d)
{
	mv_dest_load(d);
	mv_source_load(d);
}

void qv_move_free(struct qv_daemon *d)
{
	(void)d;
	mv_source_cancel_all();
	mv_workq_free();
}
