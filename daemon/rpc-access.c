/* SPDX-License-Identifier: MIT */
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/rpc-access.h"

static const char *const read_only[] = {
	"vm.list", "vm.info", "vm.stats", "vm.nic-list", "events.subscribe",
	"events.unsubscribe", "host.info", "net.list", "net.info", "image.list", "image.info",
	"migrate.status",
	"fw.show", "fw.group.list", "fw.group.show",
	"cluster.hosts", "cluster.vms",
	"snapshot.list",
	"cluster.plan",
};

bool qv_rpc_method_is_read_only(const char *method)
{
	for (size_t i = 0; i < ARRAY_SIZE(read_only); i++)
		if (streq(method, read_only[i]))
			return true;
	return false;
}

char *qv_rpc_ro_socket_path(const char *socket_path)
{
	size_t n = strlen(socket_path);
	char *p;

	if (n > 5 && streq(socket_path + n - 5, ".sock"))
		return asprintf(&p, "%.*s-ro.sock", (int)(n - 5), socket_path) < 0 ? NULL : p;
	return asprintf(&p, "%s-ro", socket_path) < 0 ? NULL : p;
}

static void log_denied(const struct qv_rpc_peer *peer, const char *method, const char *where)
{
	log_warning("Denied %.64s to pid %d uid %u gid %u on %s", method, (int)peer->pid,
		    (unsigned)peer->uid, (unsigned)peer->gid, where);
}

/* Is uid (primary gid) a member of group gid? */
static bool in_group(uid_t uid, gid_t primary, gid_t gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	gid_t groups[64];
	int n = ARRAY_SIZE(groups);

	if (primary == gid)
		return true;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res ||
	    getgrouplist(res->pw_name, primary, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

static bool access_main(const struct qv_rpc_peer *peer, const char *method, void *userdata)
{
	struct qv_daemon *d = userdata;

	/* The TCP listener (no SO_PEERCRED): a peer host with a certificate of
	 * the cluster CA, or plain TCP the operator allowed with --insecure. */
	if (peer->pid == 0 && peer->uid == (uid_t)-1)
		return true;
	if (peer->uid == 0 || qv_rpc_method_is_read_only(method) ||
	    (d->rpc_gid && in_group(peer->uid, peer->gid, d->rpc_gid)))
		return true;
	log_denied(peer, method, d->cfg.socket_path);
	return false;
}

static bool access_ro(const struct qv_rpc_peer *peer, const char *method, void *userdata)
{
	if (qv_rpc_method_is_read_only(method))
		return true;
	log_denied(peer, method, "the read-only socket");
	return false;
}

static void give_to_group(struct qv_daemon *d)
{
	struct group gr, *res = NULL;
	char buf[4096];

	if (getgrnam_r(QV_RPC_GROUP, &gr, buf, sizeof(buf), &res) != 0 || !res) {
		log_warning("Group %s does not exist: only root can use %s (scripts/install-deps.sh "
			    "creates it)", QV_RPC_GROUP, d->cfg.socket_path);
		return;
	}
	d->rpc_gid = res->gr_gid;
	if (chown(d->cfg.socket_path, 0, res->gr_gid) < 0 || chmod(d->cfg.socket_path, 0660) < 0)
		log_warning_errno(errno, "Cannot give %s to group %s: %m", d->cfg.socket_path,
				  QV_RPC_GROUP);
}

int qv_rpc_access_setup(struct qv_daemon *d, struct qv_error *errp)
{
	_cleanup_free_ char *ro = qv_rpc_ro_socket_path(d->cfg.socket_path);
	int r;

	if (!ro)
		return -ENOMEM;
	give_to_group(d);
	qv_rpc_server_set_access_fn(d->rpc, access_main, d);
	r = qv_rpc_server_new(d->loop, ro, 0666, &d->rpc_ro, errp);
	if (r < 0)
		return r;
	qv_rpc_server_set_access_fn(d->rpc_ro, access_ro, d);
	qv_rpc_server_set_max_clients(d->rpc_ro, 16);
	return 0;
}

bool qv_rpc_call_is_read_only(struct qv_daemon *d, qv_rpc_call *call)
{
	return d->rpc_ro && qv_rpc_client_server(qv_rpc_call_client(call)) == d->rpc_ro;
}
