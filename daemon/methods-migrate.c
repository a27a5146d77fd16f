/* SPDX-License-Identifier: MIT */
/* migrate.* RPC methods: parameter checking and the migration list. The
 * phases live in migrate-source.c and migrate-dest.c. */
#include <ctype.h>
#include <signal.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"
#include "qemu/tls-creds.h"
#include "migrate/protocol.h"

/* Crash tests only: QVISORD_TEST_CRASH_AT=<point> makes the daemon SIGKILL
 * itself at that point (after persisting), where no outside trigger can
 * hit it deterministically (docs/migration.md lists the points). */
void qv_mig_test_crash_point(const char *point)
{
	const char *at = getenv("QVISORD_TEST_CRASH_AT");

	if (at && streq(at, point)) {
		log_warning("QVISORD_TEST_CRASH_AT=%s: killing the daemon", point);
		raise(SIGKILL);
	}
}

static pid_t stalled_pid;

static void stall_over(qv_source *s, void *ud)
{
	log_warning("QVISORD_TEST_STALL_AT: resuming QEMU pid %d", (int)stalled_pid);
	(void)kill(stalled_pid, SIGCONT);
}

void qv_mig_test_stall_point(struct qv_daemon *d, const char *point, pid_t pid)
{
	const char *at = getenv("QVISORD_TEST_STALL_AT"), *ms = getenv("QVISORD_TEST_STALL_MS");
	static bool done;
	int after = ms ? atoi(ms) : 3000;

	if (done || !at || !streq(at, point) || pid <= 0)
		return;
	done = true;
	stalled_pid = pid;
	log_warning("QVISORD_TEST_STALL_AT=%s: stopping QEMU pid %d for %d ms", point, (int)pid,
		    after);
	if (kill(pid, SIGSTOP) < 0 ||
	    qv_loop_add_timer(d->loop, (uint64_t)(after > 0 ? after : 3000), stall_over, NULL,
			      NULL) < 0)
		(void)kill(pid, SIGCONT);
}

/* One daemon per process: the list of migrations is process-wide. */
static struct qv_mig *migs;

struct qv_mig *qv_mig_first(void)
{
	return migs;
}

struct qv_mig *qv_mig_find(const char *vm, bool source)
{
	for (struct qv_mig *m = migs; m; m = m->next)
		if (m->source == source && streq(m->vm, vm))
			return m;
	return NULL;
}

struct qv_mig *qv_mig_new(struct qv_daemon *d, const char *vm, bool source)
{
	struct qv_mig *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->d = d;
	m->vm = strdup(vm);
	m->source = source;
	snprintf(m->id, sizeof(m->id), "%s-%s", vm, source ? "out" : "in");
	if (!m->vm) {
		free(m);
		return NULL;
	}
	m->next = migs;
	migs = m;
	return m;
}

void qv_mig_persist(struct qv_mig *m)
{
	_cleanup_free_ char *data = NULL;
	struct qv_migration_record rec = {
		.id = m->id, .vm = m->vm, .role = m->source ? "source" : "destination",
		.state = m->state, .peer = m->peer, .token = m->token[0] ? m->token : NULL,
	};
	json_object *o = json_object_new_object();

	json_object_object_add(o, "created", json_object_new_boolean(m->created));
	json_object_object_add(o, "saved_policy", json_object_new_int((int)m->saved_policy));
	if (m->source_uri)
		json_object_object_add(o, "source", json_object_new_string(m->source_uri));
	if (m->resume_unix_us)
		json_object_object_add(o, "resume_unix_us", json_object_new_int64(m->resume_unix_us));
	if (m->n_images) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < m->n_images; i++)
			json_object_array_add(a, json_object_new_string(m->images[i]));
		json_object_object_add(o, "images", a);
	}
	if (m->stats)
		json_object_object_add(o, "stats", json_object_get(m->stats));
	data = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	rec.data_json = data;
	if (qv_state_migration_put(m->d->state, &rec) < 0)
		log_warning("Migration %s: cannot persist its record, ignoring", m->id);
}

void qv_mig_drop(struct qv_mig *m)
{
	(void)qv_state_migration_delete(m->d->state, m->id);
	qv_mig_retire(m);
}

void qv_mig_retire(struct qv_mig *m)
{
	for (struct qv_mig **p = &migs; *p; p = &(*p)->next)
		if (*p == m) {
			*p = m->next;
			break;
		}
	m->engine = mig_engine_free(m->engine);
	m->watch = qv_source_remove(m->watch);
	m->mirror_timer = qv_source_remove(m->mirror_timer);
	m->start_seq = qmp_seq_cancel(m->start_seq);
	if (m->tls_stage_dir)
		qemu_tls_unstage(m->tls_stage_dir);
	free(m->tls_stage_dir);
	m->mirror = mig_mirror_free(m->mirror);
	free(m->opts_uri);
	free(m->opts_multifd_reason);
	for (size_t i = 0; m->images && m->images[i]; i++)
		free(m->images[i]);
	free(m->images);
	if (m->client)
		qv_rpc_client_unref(m->client);
	json_object_put(m->stats);
	free(m->peer);
	free(m->source_uri);
	free(m->vm);
	free(m);
}

static int check_keys(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	struct qv_error err = {};

	if (!params || !json_object_is_type(params, json_type_object))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params must be an object");
	if (json_check_keys(params, keys, "params", &err) < 0) {
		qv_rpc_call_error(call, &err);
		return -EINVAL;
	}
	return 0;
}

static int get_name(qv_rpc_call *call, json_object *params, const char **ret)
{
	if (qv_param_string(call, params, "name", ret) < 0)
		return -EINVAL;
	if (!vm_name_valid(*ret))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid VM name \"%.80s\"", *ret);
	return 0;
}

/* Optional integer in [lo, hi]; answers the call on failure. */
static int opt_int(qv_rpc_call *call, json_object *params, const char *key, int64_t lo,
		   int64_t hi, int64_t *val)
{
	struct qv_error err = {};
	int r = json_get_int64(params, key, key, val, &err);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return qv_rpc_call_error(call, &err), -EINVAL;
	if (*val < lo || *val > hi)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.%s must be within %lld..%lld", key, (long long)lo,
				    (long long)hi);
	return 0;
}

static int opt_bool(qv_rpc_call *call, json_object *params, const char *key, bool *val)
{
	struct qv_error err = {};
	int r = json_get_bool(params, key, key, val, &err);

	if (r < 0 && r != -ENOENT)
		return qv_rpc_call_error(call, &err), -EINVAL;
	return 0;
}

static int opt_string(qv_rpc_call *call, json_object *params, const char *key, const char **val)
{
	struct qv_error err = {};
	int r = json_get_string(params, key, key, val, &err);

	if (r < 0 && r != -ENOENT)
		return qv_rpc_call_error(call, &err), -EINVAL;
	return 0;
}

/* tcp:HOST:PORT with a conservative character set. */
static bool uri_valid(const char *uri)
{
	if (strncmp(uri, "tcp:", 4) != 0 || strlen(uri) > 200 || !strrchr(uri + 4, ':'))
		return false;
	for (const char *p = uri + 4; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".:-[]", *p))
			return false;
	return true;
}

static bool uri_valid_host(const char *h)
{
	if (!*h || strlen(h) > 100 || *h == '-')
		return false;
	for (; *h; h++)
		if (!isalnum((unsigned char)*h) && !strchr(".:-", *h))
			return false;
	return true;
}

static bool token_ok(const char *t)
{
	size_t n = strlen(t);

	if (n != 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return false;
	return true;
}

static int m_prepare(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "spec", "listen", "address", "port", "timeout_s",
					    "multifd_channels", "copy_storage", "disk_sizes",
					    "allow_postcopy", "tls", "peer_dn", "source", "token",
					    "disk_keys",
					    NULL };
	struct qv_mig_prepare p = { .timeout_s = 600 };
	qv_rpc_client *client = qv_rpc_call_client(call);
	char local[64];
	struct qv_error err = {};
	int64_t port = 0, timeout = 600, multifd = 0;

	if (check_keys(call, params, keys) < 0)
		return 0;
	if (!json_object_object_get_ex(params, "spec", &p.spec) ||
	    !json_object_is_type(p.spec, json_type_object))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.spec (an object) is required");
	if (opt_string(call, params, "listen", &p.listen) < 0 ||
	    opt_string(call, params, "address", &p.address) < 0 ||
	    opt_string(call, params, "source", &p.source) < 0 ||
	    opt_int(call, params, "port", 0, 65535, &port) < 0 ||
	    opt_int(call, params, "timeout_s", 10, 86400, &timeout) < 0 ||
	    opt_int(call, params, "multifd_channels", 0, 16, &multifd) < 0 ||
	    opt_bool(call, params, "copy_storage", &p.copy_storage) < 0 ||
	    opt_bool(call, params, "allow_postcopy", &p.allow_postcopy) < 0)
		return 0;
	/* TLS unless asked otherwise when this host has a PKI. */
	p.tls = ((struct qv_daemon *)ud)->tls_server != NULL;
	if (opt_bool(call, params, "tls", &p.tls) < 0 ||
	    opt_string(call, params, "peer_dn", &p.peer_dn) < 0 ||
	    opt_string(call, params, "token", &p.token) < 0)
		return 0;
	if (p.token && !token_ok(p.token))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.token must be 32 lowercase hex digits");
	if (qv_mig_tls_allowed(ud, p.tls, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	/* No fallback to the caller's RPC DN: the source QEMU presents its
	 * host's migration-only certificate, never the daemon's. */
	if (qv_rpc_client_local_addr(client, local, sizeof(local)) == 0)
		p.rpc_local = local;
	if (p.allow_postcopy && multifd > 0)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "allow_postcopy cannot be combined with multifd_channels "
				    "(QEMU 7.2)");
	if (p.copy_storage && !json_object_object_get_ex(params, "disk_sizes", &p.disk_sizes))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk_sizes is required with copy_storage "
				    "(migrate.plan on the source gives them)");
	/* Disk keys only over TLS or the local socket (migrate-keys.c). */
	if (json_object_object_get_ex(params, "disk_keys", &p.disk_keys) &&
	    !qv_rpc_client_tls_dn(client) &&
	    qv_rpc_client_local_addr(client, local, sizeof(local)) != -ENOTCONN)
		return qv_call_fail(call, EPERM, QV_REASON_PERMISSION,
				    "params.disk_keys: disk keys are accepted only over a TLS "
				    "connection (tls://) or the local socket");
	if (p.disk_keys && (!p.copy_storage || !json_object_is_type(p.disk_keys, json_type_array)))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.disk_keys must be an array (one passphrase or null "
				    "per spec disk) and needs copy_storage");
	p.multifd_channels = (unsigned)multifd;
	p.port = (int)port;
	p.timeout_s = (unsigned)timeout;
	qv_mig_prepare(call, ud, &p, params); /* answers later */
	return 0;
}

static int m_perform(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "uri", "max_downtime_ms", "bandwidth_mbps",
					    "deadline_s", "allow_postcopy", "postcopy_after_precopy",
					    "plain", "premeasure",
					    "xbzrle", "multifd_channels", "multifd_reason",
					    "copy_storage", "nbd", "tls", "tls_hostname", NULL };
	struct mig_engine_opts o = { .premeasure = true };
	struct qv_mig_storage st = {};
	char host[128], tls_host[128];
	const char *name, *uri, *nbd = NULL;
	int64_t multifd = 0;
	bool xbzrle = true;
	int64_t downtime = QV_MIG_DEFAULT_DOWNTIME_MS, bw = 0, deadline = QV_MIG_DEFAULT_DEADLINE_S;
	struct qv_vm *vm;

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0 ||
	    qv_param_string(call, params, "uri", &uri) < 0)
		return 0;
	if (!uri_valid(uri))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.uri must be tcp:HOST:PORT");
	if (opt_int(call, params, "max_downtime_ms", 1, 60000, &downtime) < 0 ||
	    opt_int(call, params, "bandwidth_mbps", 0, 100000, &bw) < 0 ||
	    opt_int(call, params, "deadline_s", 1, 86400, &deadline) < 0 ||
	    opt_bool(call, params, "allow_postcopy", &o.allow_postcopy) < 0 ||
	    opt_bool(call, params, "postcopy_after_precopy", &o.postcopy_after_precopy) < 0 ||
	    opt_bool(call, params, "plain", &o.plain) < 0 ||
	    opt_bool(call, params, "premeasure", &o.premeasure) < 0 ||
	    opt_bool(call, params, "xbzrle", &xbzrle) < 0 ||
	    opt_int(call, params, "multifd_channels", 0, 16, &multifd) < 0 ||
	    opt_string(call, params, "multifd_reason", &o.multifd_reason) < 0 ||
	    opt_bool(call, params, "copy_storage", &st.copy) < 0 ||
	    opt_string(call, params, "nbd", &nbd) < 0 ||
	    opt_bool(call, params, "tls", &st.tls) < 0 ||
	    opt_string(call, params, "tls_hostname", &st.tls_hostname) < 0)
		return 0;
	{
		struct qv_error err = {};
		if (qv_mig_tls_allowed(ud, st.tls, &err) < 0)
			return qv_rpc_call_error(call, &err), 0;
	}
	if (st.tls && st.tls_hostname && !uri_valid_host(st.tls_hostname))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.tls_hostname is not a host name or address");
	if (st.tls && !st.tls_hostname) { /* the name the destination's certificate carries */
		const char *colon = strrchr(uri + 4, ':');
		snprintf(tls_host, sizeof(tls_host), "%.*s", (int)(colon - (uri + 4)), uri + 4);
		st.tls_hostname = tls_host;
	}
	o.no_xbzrle = !xbzrle;
	o.multifd_channels = (unsigned)multifd;
	if (st.copy) {
		const char *colon;
		if (!nbd || !uri_valid(nbd) || !(colon = strrchr(nbd + 4, ':')) ||
		    (size_t)(colon - (nbd + 4)) >= sizeof(host))
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "params.nbd (tcp:HOST:PORT from migrate.prepare) is "
					    "required with copy_storage");
		snprintf(host, sizeof(host), "%.*s", (int)(colon - (nbd + 4)), nbd + 4);
		st.nbd_host = host;
		st.nbd_port = atoi(colon + 1);
	}
	vm = qv_vm_find(ud, name);
	if (!vm)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", name);
	o.uri = uri;
	o.max_downtime_ms = (int)downtime;
	o.bandwidth_bps = (double)bw * 1024 * 1024; /* MiB/s */
	o.deadline_s = (unsigned)deadline;
	o.ram_bytes = (uint64_t)vm->spec->memory_mib << 20;
	return qv_mig_perform(call, vm, &o, &st);
}

static int m_plan(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "copy_storage", "bandwidth_mbps", NULL };
	struct qv_error err = {};
	json_object *res = NULL;
	const char *name;
	bool copy = false;
	int64_t bw = 0;
	struct qv_vm *vm;

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0 ||
	    opt_bool(call, params, "copy_storage", &copy) < 0 ||
	    opt_int(call, params, "bandwidth_mbps", 0, 100000, &bw) < 0)
		return 0;
	vm = qv_vm_find(ud, name);
	if (!vm)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", name);
	if (qv_mig_plan(ud, vm, copy, (double)bw * 1024 * 1024, &res, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	/* What our QEMU will present (the migration-only certificate): the
	 * destination's tls-authz admits it and nothing else. */
	if (((struct qv_daemon *)ud)->tls_server && ((struct qv_daemon *)ud)->tls_migrate_dn[0])
		json_object_object_add(res, "tls_dn", json_object_new_string(
					       ((struct qv_daemon *)ud)->tls_migrate_dn));
	return qv_rpc_call_reply(call, res), 0;
}

/* The tombstone a finished incoming migration leaves ("<vm>-in", state
 * "finished"): finish is idempotent by token, and cancel is refused. */
static bool finished_here(struct qv_daemon *d, const char *name, const char *token,
			  json_object **ret_data)
{
	struct qv_migration_record rec = {};
	char id[96];
	bool yes;

	snprintf(id, sizeof(id), "%s-in", name);
	if (qv_state_migration_get(d->state, id, &rec) < 0)
		return false;
	yes = streq(rec.state, "finished") && (!token || (rec.token && streq(rec.token, token)));
	if (yes && ret_data)
		*ret_data = rec.data_json ? json_tokener_parse(rec.data_json) : NULL;
	qv_migration_record_done(&rec);
	return yes;
}

static int finish_again(qv_rpc_call *call, struct qv_daemon *d, const char *name,
			const char *token)
{
	_cleanup_json_ json_object *data = NULL;
	json_object *res, *v;

	if (!finished_here(d, name, token, &data))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
				    "no incoming migration of %s", name);
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "state", json_object_new_string("running"));
	json_object_object_add(res, "already_finished", json_object_new_boolean(true));
	if (data && json_object_object_get_ex(data, "resume_unix_us", &v))
		json_object_object_add(res, "resume_unix_us", json_object_get(v));
	return qv_rpc_call_reply(call, res), 0;
}

static int m_finish(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "token", NULL };
	const char *name, *token;
	struct qv_mig *m;

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0 ||
	    qv_param_string(call, params, "token", &token) < 0)
		return 0;
	m = qv_mig_find(name, false);
	if (!m)
		return finish_again(call, ud, name, token);
	if (!streq(m->token, token))
		return qv_call_fail(call, EPERM, QV_REASON_PERMISSION,
				    "wrong migration token for %s", name);
	if (m->prep)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "the incoming migration of %s is still being prepared", name);
	return qv_mig_finish(call, m);
}

static int m_confirm(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "keep_definition", NULL };
	const char *name;
	bool keep = false;
	struct qv_mig *m;

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0 ||
	    opt_bool(call, params, "keep_definition", &keep) < 0)
		return 0;
	m = qv_mig_find(name, true);
	if (!m)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
				    "no outgoing migration of %s", name);
	return qv_mig_confirm(call, m, keep);
}

static int cancel_dest(qv_rpc_call *call, struct qv_daemon *d, const char *name,
		       const char *token)
{
	struct qv_mig *m = qv_mig_find(name, false);
	json_object *res;

	/* The token names one incoming migration: a caller that lost track
	 * of it (a stale abort, another source) never tears down another. */
	if (!token)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.token (migrate.prepare's answer) is required to cancel "
				    "the incoming migration of %s", name);
	if (!m && finished_here(d, name, token, NULL))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "the incoming migration of %s finished: the guest runs here",
				    name);
	if (!m)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "no migration of %s", name);
	if (!streq(m->token, token))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "stale or foreign migration token for %s: the incoming "
				    "migration here is another one", name);
	/* In postcopy the guest runs here and the source cannot take over:
	 * tearing down would destroy the only live copy. */
	if (m->postcopy_running)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "the incoming migration of %s is in postcopy: the guest runs "
				    "here and the source cannot take over",
				    name);
	qv_mig_teardown_dest(m, "cancelled by the client");
	res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(name));
	json_object_object_add(res, "role", json_object_new_string("destination"));
	json_object_object_add(res, "action", json_object_new_string("torn-down"));
	return qv_rpc_call_reply(call, res), 0;
}

/* Source: the driver (vm.migrate) decides, or the step migration; the
 * protocol itself passes destination_never_ran once the destination
 * confirmed the teardown. Destination: tear down (refused once finished). */
static int m_cancel(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "token", "destination_never_ran", NULL };
	const char *name, *token = NULL;
	bool never_ran = false;
	struct qv_error err = {};
	struct qv_p2p *x;
	struct qv_mig *m;
	json_object *res;

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0 ||
	    opt_string(call, params, "token", &token) < 0 ||
	    opt_bool(call, params, "destination_never_ran", &never_ran) < 0)
		return 0;
	x = qv_mig_p2p_find(name);
	/* destination_never_ran resumes the source without asking: only the
	 * driver's own abort path may say it (it does once the destination
	 * confirmed its teardown), never a client while the driver may be
	 * finishing or confirming (the guest would run on both hosts). */
	if (x && never_ran && !streq(qv_mig_p2p_phase(x), mig_phase_to_string(MIG_PHASE_ABORTING)))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "the migration of %s is driven by this daemon (phase %s): "
				    "destination_never_ran is refused; use migrate.cancel without it",
				    name, qv_mig_p2p_phase(x));
	if (x && !never_ran) {
		if (qv_mig_p2p_cancel(x, &err) < 0)
			return qv_rpc_call_error(call, &err), 0;
		res = json_object_new_object();
		json_object_object_add(res, "name", json_object_new_string(name));
		json_object_object_add(res, "role", json_object_new_string("source"));
		json_object_object_add(res, "action", json_object_new_string("cancelling"));
		return qv_rpc_call_reply(call, res), 0;
	}
	m = qv_mig_find(name, true);
	if (m)
		return qv_mig_cancel_source(call, m, never_ran);
	return cancel_dest(call, ud, name, token);
}

static int m_recover(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	const char *name;

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0)
		return 0;
	/* Answered once QEMU said how the migration ended (and the source
	 * runs again when it had not switched): migrate-recover.c. */
	qv_mig_recover_async(ud, name, call);
	return 0;
}

static int m_status(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "token", NULL };
	struct qv_migration_record rec = {};
	const char *name, *token = NULL;
	struct qv_p2p *x;
	struct qv_mig *m;
	json_object *o;
	char id[96];

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0 ||
	    opt_string(call, params, "token", &token) < 0)
		return 0;
	/* A destination asking about its incoming migration (migrate-ask.c)
	 * names it by token: a driver here holding another one is not
	 * driving that one. */
	x = qv_mig_p2p_find(name);
	if (token && x && !streq(qv_mig_p2p_token(x), token))
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "stale or foreign migration token for %s: this daemon drives "
				    "another migration of it", name);
	m = qv_mig_find(name, true);
	if (!m)
		m = qv_mig_find(name, false);
	if (m && m->prep) /* not persisted before it is prepared */
		return qv_rpc_call_reply(call, qv_mig_prep_status(m)), 0;
	snprintf(id, sizeof(id), "%s-%s", name, m && !m->source ? "in" : "out");
	if (qv_state_migration_get(((struct qv_daemon *)ud)->state, id, &rec) < 0) {
		snprintf(id, sizeof(id), "%s-in", name);
		if (qv_state_migration_get(((struct qv_daemon *)ud)->state, id, &rec) < 0)
			return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND,
					    "no migration of %s", name);
	}
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(rec.id));
	json_object_object_add(o, "name", json_object_new_string(rec.vm));
	json_object_object_add(o, "role", json_object_new_string(rec.role));
	json_object_object_add(o, "state", json_object_new_string(rec.state));
	json_object_object_add(o, "active", json_object_new_boolean(m != NULL));
	if (rec.peer)
		json_object_object_add(o, "peer", json_object_new_string(rec.peer));
	if (qv_mig_p2p_find(name))
		json_object_object_add(o, "driver_phase", json_object_new_string(
					       qv_mig_p2p_phase(qv_mig_p2p_find(name))));
	if (rec.data_json)
		json_object_object_add(o, "data", json_tokener_parse(rec.data_json));
	qv_migration_record_done(&rec);
	return qv_rpc_call_reply(call, o), 0;
}

/* vm.migrate {name, to, options...}: the whole protocol, driven from here. */
static int m_vm_migrate(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "to", "max_downtime_ms", "bandwidth_mbps",
					    "deadline_s", "allow_postcopy", "plain",
					    "keep_definition", "copy_storage", "dest_address",
					    "listen", "source_uri", "retry_s", "perform", "insecure",
					    NULL };
	const char *name, *to, *s = NULL;
	int64_t n = 0;
	bool b = false;
	json_object *v;
	struct qv_vm *vm;

	if (check_keys(call, params, keys) < 0 || get_name(call, params, &name) < 0 ||
	    qv_param_string(call, params, "to", &to) < 0 ||
	    opt_int(call, params, "max_downtime_ms", 1, 60000, &n) < 0 ||
	    opt_int(call, params, "bandwidth_mbps", 0, 100000, &n) < 0 ||
	    opt_int(call, params, "deadline_s", 1, 86400, &n) < 0 ||
	    opt_int(call, params, "retry_s", 1, 3600, &n) < 0 ||
	    opt_bool(call, params, "allow_postcopy", &b) < 0 ||
	    opt_bool(call, params, "plain", &b) < 0 ||
	    opt_bool(call, params, "keep_definition", &b) < 0 ||
	    opt_bool(call, params, "copy_storage", &b) < 0 ||
	    opt_bool(call, params, "insecure", &b) < 0 ||
	    opt_string(call, params, "dest_address", &s) < 0 ||
	    opt_string(call, params, "listen", &s) < 0 ||
	    opt_string(call, params, "source_uri", &s) < 0)
		return 0;
	if (!*to || strlen(to) > 1024)
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.to must be a daemon URI (unix:///path, ssh://host, ...)");
	if (json_object_object_get_ex(params, "perform", &v) &&
	    !json_object_is_type(v, json_type_object))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.perform must be an object (extra migrate.perform "
				    "parameters)");
	vm = qv_vm_find(ud, name);
	if (!vm)
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not defined", name);
	if (vm->state != QV_VM_RUNNING)
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "VM %s is %s; only a running VM can be migrated", name,
				    qv_vm_state_to_string(vm->state));
	bool copy_storage = false;
	struct qv_error err = {};
	(void)opt_bool(call, params, "copy_storage", &copy_storage);
	if (qv_mig_check_encrypted(ud, vm, to, copy_storage, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	return qv_mig_p2p_start(call, ud, name, to, params);
}

const struct qv_rpc_method qv_migrate_methods[] = {
	{ "vm.migrate", m_vm_migrate },
	{ "migrate.prepare", m_prepare }, { "migrate.perform", m_perform },
	{ "migrate.finish", m_finish },   { "migrate.confirm", m_confirm },
	{ "migrate.cancel", m_cancel },   { "migrate.recover", m_recover },
	{ "migrate.status", m_status },   { "migrate.plan", m_plan },
};
const size_t qv_migrate_methods_count = ARRAY_SIZE(qv_migrate_methods);
