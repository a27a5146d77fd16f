/* SPDX-License-Identifier: MIT */
/* TLS for the migration stream and the NBD storage exports: the host's
 * migration-only certificate staged for the unprivileged QEMU (never the
 * daemon's RPC key), tls-creds-x509 and tls-authz (qemu/tls-creds.c). See
 * docs/security.md. */
#include <limits.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/migrate-internal.h"
#include "daemon/vm-files.h"
#include "qemu/tls-creds.h"

int qv_mig_tls_allowed(struct qv_daemon *d, bool tls, struct qv_error *errp)
{
	if (tls && !d->tls_server)
		return qv_error_set(errp, ENOENT, QV_REASON_UNAVAILABLE,
				    "TLS migration needs a PKI on this host (%s: qvisor pki init / "
				    "qvisor pki issue HOST)", d->cfg.pki_dir);
	if (tls && !d->tls_migrate_dn[0])
		return qv_error_set(errp, ENOENT, QV_REASON_UNAVAILABLE,
				    "TLS migration needs a migration-only certificate in %s (QEMU "
				    "never gets the daemon's own key): qvisor pki issue "
				    "--migration-only HOST", d->cfg.pki_dir);
	if (!tls && !d->cfg.insecure)
		return qv_error_set(errp, EPERM, QV_REASON_PERMISSION,
				    "refusing a plain-TCP migration stream: this host has %s and "
				    "was not started with --insecure",
				    d->tls_server ? "a PKI (migrate over TLS)" : "no PKI");
	return 0;
}

/* Stage the migration-only pair for QEMU in dir (PATH_MAX): QEMU reads the
 * files once, at object-add; the caller unstages after. */
static int stage_creds(struct qv_daemon *d, struct qv_vm *vm, bool server, char *dir,
		       struct qv_error *errp)
{
	uint32_t uid;

	if (!vm->inst || !vm->run_dir)
		return qv_error_set(errp, ESRCH, QV_REASON_CONFLICT, "VM %s has no QEMU", vm->name);
	/* Staged in the directory QEMU's mount namespace shows at the same
	 * path, readable by the VM's own uid only (daemon/vm-files.h). */
	if (qv_state_vm_uid_get(d->state, vm->name, &uid) < 0)
		return qv_error_set(errp, ESRCH, QV_REASON_INTERNAL, "VM %s has no uid", vm->name);
	snprintf(dir, PATH_MAX, "%s/" QV_VM_SHARE_DIR "/tls", vm->run_dir);
	return qemu_tls_stage(d->cfg.pki_dir, server, dir, uid, uid, errp);
}

int qv_mig_tls_dest_steps(struct qv_daemon *d, struct qv_vm *vm, const char *peer_dn, qmp_seq *s,
			  char **ret_stage_dir, struct qv_error *errp)
{
	char dir[PATH_MAX];
	int r;

	*ret_stage_dir = NULL;
	if (!peer_dn || !*peer_dn)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "TLS migration: which certificate will the source present? "
				    "Pass params.peer_dn (migrate.plan's tls_dn)");
	if ((r = stage_creds(d, vm, true, dir, errp)) < 0)
		return r;
	if (!(*ret_stage_dir = strdup(dir))) {
		qemu_tls_unstage(dir);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	}
	if ((r = qemu_tls_creds_steps(s, dir, true)) < 0 || (r = qemu_tls_authz_steps(s, peer_dn)) < 0 ||
	    (r = qemu_tls_migrate_params_step(s, true, true, NULL)) < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue TLS objects");
	log_info("VM %s: incoming stream and NBD over TLS, only for \"%s\"", vm->name, peer_dn);
	return 0;
}

int qv_mig_tls_source_steps(struct qv_daemon *d, struct qv_vm *vm, bool tls, const char *hostname,
			    qmp_seq *s, char **ret_stage_dir, struct qv_error *errp)
{
	char dir[PATH_MAX];
	int r;

	*ret_stage_dir = NULL;
	if (tls) {
		if ((r = stage_creds(d, vm, false, dir, errp)) < 0)
			return r;
		if (!(*ret_stage_dir = strdup(dir))) {
			qemu_tls_unstage(dir);
			return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		}
		if ((r = qemu_tls_creds_steps(s, dir, false)) < 0)
			return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue TLS objects");
	}
	/* Plain after a TLS attempt: QEMU keeps tls-creds until cleared. */
	r = qemu_tls_migrate_params_step(s, tls, false, hostname);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot queue TLS parameters");
	if (tls)
		log_info("VM %s: outgoing stream over TLS to \"%s\"", vm->name, hostname);
	return 0;
}
