/* SPDX-License-Identifier: MIT */
/* qvisord's PKI and TCP listener (--pki-dir, --listen, --insecure); see
 * docs/security.md. */
#include <limits.h>

#include "common/log.h"
#include "common/rpc-client.h"
#include "common/tls.h"
#include "daemon/daemon.h"

/* The migration-only certificate QEMU presents (common/tls.h). Without
 * it TLS migrations are refused (qv_mig_tls_allowed), never done with the
 * daemon's own key. */
static void load_migration_dn(struct qv_daemon *d, const char *dir)
{
	char path[PATH_MAX];
	struct qv_error err = {};
	bool mig = false;

	d->tls_migrate_dn[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, QV_PKI_MIGRATE_CERT);
	if (qv_tls_cert_file_is_migration(path, &mig, &err) < 0 || !mig ||
	    qv_tls_cert_file_dn(path, d->tls_migrate_dn, sizeof(d->tls_migrate_dn), &err) < 0) {
		d->tls_migrate_dn[0] = '\0';
		log_warning("PKI %s: this host is \"%s\", but %s %s; TLS migrations are refused "
			    "until `qvisor pki issue --migration-only HOST` creates it", dir,
			    d->tls_client_dn, path,
			    err.message[0] ? err.message : "is not a migration-only certificate");
		return;
	}
	log_info("PKI %s: this host is \"%s\"; its QEMUs present \"%s\" for migration streams "
		 "and NBD (TLS)", dir, d->tls_client_dn, d->tls_migrate_dn);
}

static int load_pki(struct qv_daemon *d, const char *dir, bool required)
{
	_cleanup_(qv_tls_creds_freep) qv_tls_creds *client = NULL;
	struct qv_error err = {};
	int r;

	r = qv_tls_creds_load(dir, QV_TLS_SERVER, &d->tls_server, &err);
	if (r >= 0)
		r = qv_tls_creds_load(dir, QV_TLS_CLIENT, &client, &err);
	if (r >= 0) {
		snprintf(d->tls_client_dn, sizeof(d->tls_client_dn), "%s",
			 qv_tls_creds_dn(client));
		load_migration_dn(d, dir);
		return 0;
	}
	d->tls_server = qv_tls_creds_free(d->tls_server);
	if (required || access(dir, F_OK) == 0)
		return log_error_errno(r, "The PKI in %s is not usable: %s", dir, err.message);
	log_info("No PKI in %s: %s", dir,
		 d->cfg.insecure ? "migration streams are plain TCP (--insecure)"
				 : "migrations are refused until one is set up (qvisor pki) or "
				   "qvisord runs with --insecure");
	return 0;
}

static int start_listener(struct qv_daemon *d, const char *uri)
{
	struct qv_error err = {};
	bool tls = strncmp(uri, "tls://", 6) == 0;
	char host[256];
	int port, r;

	if (!tls && strncmp(uri, "tcp://", 6) != 0)
		return log_error_errno(-EINVAL, "--listen wants tls://HOST[:PORT] (or tcp:// with "
						"--insecure), not %s", uri);
	if (!tls && !d->cfg.insecure)
		return log_error_errno(-EPERM, "--listen %s is plain TCP: anyone who reaches it "
					       "controls this host; pass --insecure to allow it", uri);
	if (tls && !d->tls_server)
		return log_error_errno(-ENOENT, "--listen %s needs a PKI in %s (qvisor pki init, "
						"qvisor pki issue HOST)", uri, d->cfg.pki_dir);
	r = qv_parse_host_port(uri + 6, QV_TLS_DEFAULT_PORT, host, sizeof(host), &port, &err);
	if (r >= 0)
		r = qv_rpc_server_listen_tcp(d->rpc, host, port, tls ? d->tls_server : NULL, &err);
	if (r < 0)
		return log_error_errno(r, "Failed to listen on %s: %s", uri, err.message);
	if (tls)
		log_info("Listening on tls://%s:%d (clients need a certificate signed by %s/%s)",
			 host, port, d->cfg.pki_dir, QV_PKI_CA_CERT);
	else
		log_warning("Listening on tcp://%s:%d WITHOUT authentication (--insecure)", host,
			    port);
	return 0;
}

int qv_daemon_tls_setup(struct qv_daemon *d)
{
	int r;

	if (!d->cfg.pki_dir)
		d->cfg.pki_dir = QV_PKI_DEFAULT_DIR;
	/* Our own tls:// calls to other daemons present the same client cert. */
	if (qv_rpc_set_pki_dir(d->cfg.pki_dir) < 0)
		return log_error_errno(-ENOMEM, "Out of memory");
	/* A missing PKI is fatal when TLS was asked for: an explicit --pki-dir
	 * (unless --insecure accepts plain streams) or a tls:// listener. */
	r = load_pki(d, d->cfg.pki_dir,
		     (d->cfg.pki_dir_set && !d->cfg.insecure) ||
			     (d->cfg.listen && !strncmp(d->cfg.listen, "tls://", 6)));
	if (r < 0)
		return r;
	return d->cfg.listen ? start_listener(d, d->cfg.listen) : 0;
}

void qv_daemon_tls_free(struct qv_daemon *d)
{
	d->tls_server = qv_tls_creds_free(d->tls_server);
}

json_object *qv_daemon_tls_json(const struct qv_daemon *d)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "pki_dir", d->cfg.pki_dir ? json_object_new_string(d->cfg.pki_dir)
							    : NULL);
	json_object_object_add(o, "enabled", json_object_new_boolean(d->tls_server != NULL));
	json_object_object_add(o, "dn", d->tls_server ? json_object_new_string(d->tls_client_dn)
						      : NULL);
	json_object_object_add(o, "migration_dn", d->tls_server && d->tls_migrate_dn[0]
							  ? json_object_new_string(d->tls_migrate_dn)
							  : NULL);
	json_object_object_add(o, "listen", d->cfg.listen ? json_object_new_string(d->cfg.listen)
							  : NULL);
	json_object_object_add(o, "insecure", json_object_new_boolean(d->cfg.insecure));
	return o;
}
