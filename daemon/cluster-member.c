/* SPDX-License-Identifier: MIT */
/* Cluster membership: our host record under an etcd lease, kept alive and
 * refreshed with usage every TTL/3 from a loop timer; the work itself runs
 * on the etcd worker (docs/design.md "The cluster store"). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/tls.h"
#include "daemon/cluster-internal.h"
#include "daemon/hostloop.h"
#include "daemon/vm.h"

static void on_job_done(void *ud, bool cancelled)
{
	struct cl_job *j = ud;

	j->finish(j, cancelled);
	free(j);
}

static void on_job_run(void *ud)
{
	struct cl_job *j = ud;

	j->run(j);
}

int cl_job_push(struct qv_cluster *c, qv_workq *q, cl_run_fn run, cl_finish_fn finish,
		qv_rpc_call *call, void *data)
{
	struct cl_job *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	*j = (struct cl_job){ .c = c, .run = run, .finish = finish, .call = call, .data = data };
	r = qv_workq_push(q, on_job_run, on_job_done, j);
	if (r < 0)
		free(j);
	return r;
}

static bool label_char(char ch)
{
	return isalnum((unsigned char)ch) || strchr("_.-/", ch);
}

int qv_cluster_labels_check(const char *labels)
{
	bool key = true, any = false;

	for (const char *p = labels; *p; p++) {
		if (*p == '=' && key && any) {
			key = false;
			any = false;
		} else if (*p == ',' && any) {
			key = true;
			any = false;
		} else if (label_char(*p))
			any = true;
		else
			return -EINVAL;
	}
	return *labels && any ? 0 : -EINVAL;
}

static json_object *labels_json(const char *labels)
{
	_cleanup_free_ char *copy = strdup(labels ? labels : "");
	json_object *o = json_object_new_object();
	char *save = NULL;

	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (eq)
			*eq = '\0';
		json_object_object_add(o, t, json_object_new_string(eq ? eq + 1 : ""));
	}
	return o;
}

/* "Key:   123 kB" from /proc/meminfo, in MiB; 0 if absent. */
static uint64_t meminfo_mib(const char *key)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	size_t n = strlen(key);

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			return strtoull(line + n + 1, NULL, 10) / 1024;
	return 0;
}

/* "some avg10=1.23 ..." of /proc/pressure/<what>; -1 when unavailable. */
static double pressure_avg10(const char *what)
{
	char p[64], line[256];
	double v = -1;

	snprintf(p, sizeof(p), "/proc/pressure/%s", what);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	if (f && fgets(line, sizeof(line), f) && sscanf(line, "some avg10=%lf", &v) != 1)
		v = -1;
	return v;
}

static double load1(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/loadavg", "re");
	double v = 0;

	if (!f || fscanf(f, "%lf", &v) != 1)
		return 0;
	return v;
}

json_object *cl_host_record(struct qv_cluster *c)
{
	struct qv_daemon *d = c->d;
	json_object *o = json_object_new_object(), *cap = json_object_new_object();
	json_object *use = json_object_new_object();
	uint64_t vcpus = 0, mem = 0;
	unsigned n = 0, running = 0;

	for (struct qv_vm *vm = d->vms; vm; vm = vm->next) {
		n++;
		if (vm->state == QV_VM_STOPPED || vm->state == QV_VM_CRASHED)
			continue;
		running++;
		vcpus += vm->spec->vcpus;
		mem += vm->spec->memory_mib;
	}
	json_object_object_add(o, "name", json_object_new_string(d->cfg.cluster_host));
	json_object_object_add(o, "address", json_object_new_string(d->cfg.cluster_address));
	json_object_object_add(o, "labels", labels_json(d->cfg.cluster_labels));
	json_object_object_add(cap, "vcpus", json_object_new_int64(cl_capacity_vcpus(c)));
	json_object_object_add(cap, "memory_mib", json_object_new_int64((int64_t)meminfo_mib("MemTotal")));
	json_object_object_add(o, "capacity", cap);
	json_object_object_add(use, "vms", json_object_new_int64(n));
	json_object_object_add(use, "running", json_object_new_int64(running));
	json_object_object_add(use, "vcpus", json_object_new_int64((int64_t)vcpus));
	json_object_object_add(use, "memory_mib", json_object_new_int64((int64_t)mem));
	json_object_object_add(use, "host_memory_used_mib",
			       json_object_new_int64((int64_t)(meminfo_mib("MemTotal") -
							       meminfo_mib("MemAvailable"))));
	json_object_object_add(use, "load1", json_object_new_double(load1()));
	cl_usage_cpu(c, use);
	json_object_object_add(use, "cpu_pressure", json_object_new_double(pressure_avg10("cpu")));
	json_object_object_add(use, "memory_pressure",
			       json_object_new_double(pressure_avg10("memory")));
	/* The resource loop's overload verdict when it runs (it reads the
	 * VMs' cgroups); /proc alone otherwise. */
	struct qv_hostloop_view view = {};
	char why[256] = "";
	qv_hostloop_view(d, &view);
	if (view.loop) {
		bool over = hl_loop_overloaded(view.loop, why, sizeof(why));
		json_object_object_add(use, "overloaded", json_object_new_boolean(over));
		if (over)
			json_object_object_add(use, "overload_reason", json_object_new_string(why));
	}
	json_object_object_add(use, "source",
			       json_object_new_string(view.loop ? "resource-loop,proc" : "proc"));
	json_object_object_add(o, "usage", use);
	json_object_object_add(o, "schedulable", json_object_new_boolean(true));
	cl_ha_host_fields(c, o);
	json_object_object_add(o, "started_at", json_object_new_int64(d->started_at));
	json_object_object_add(o, "updated", json_object_new_int64(qv_unix_ms()));
	return o;
}

/* --- heartbeat: lease grant/keep-alive and the host record ------------- */

struct heartbeat {
	int64_t lease;      /* in: current (0: grant); out: the one in use */
	bool new_lease;
	uint64_t sent_ms;   /* when the renewal went out (the fence counts from it) */
	char *key, *value;
};

static void heartbeat_run(struct cl_job *j)
{
	struct heartbeat *h = j->data;
	struct qv_cluster *c = j->c;
	int64_t ttl;

	h->sent_ms = qv_now_ms();
	if (h->lease) {
		j->r = qv_etcd_lease_keepalive(c->etcd, h->lease, &ttl, &j->err);
		if (j->r == -ENOENT) { /* expired while we were cut off: start over */
			qv_error_clear(&j->err);
			h->lease = 0;
		} else if (j->r < 0)
			return;
	}
	if (!h->lease) {
		j->r = qv_etcd_lease_grant(c->etcd, c->ttl_s, &h->lease, &j->err);
		if (j->r < 0)
			return;
		h->new_lease = true;
	}
	j->r = qv_etcd_put(c->etcd, h->key, h->value, h->lease, NULL, &j->err);
}

static void heartbeat_finish(struct cl_job *j, bool cancelled)
{
	struct heartbeat *h = j->data;
	struct qv_cluster *c = j->c;

	c->heartbeat_busy = false;
	if (!cancelled) {
		if (j->r < 0) {
			if (c->reachable || !c->ever_registered)
				log_warning("Cluster: cannot renew our membership: %s (VMs keep "
					    "running; retrying)", j->err.message);
			c->reachable = false;
			cl_leader_lost_contact(c);
		} else {
			if (!c->reachable)
				log_info("Cluster: %s host %s at %s (lease %llx, TTL %u s)",
					 c->ever_registered ? "re-registered" : "registered",
					 c->d->cfg.cluster_host, c->d->cfg.cluster_address,
					 (unsigned long long)h->lease, c->ttl_s);
			if (h->new_lease && c->ever_registered)
				qv_daemon_emit(c->d, NULL, "cluster-rejoined", NULL);
			c->reachable = true;
			c->ever_registered = true;
			cl_fence_renewed(c, h->sent_ms);
		}
		c->lease = h->lease;
		if (j->r >= 0)
			cl_leader_refresh(c);
	}
	free(h->key);
	free(h->value);
	free(h);
}

static void heartbeat(struct qv_cluster *c)
{
	_cleanup_json_ json_object *rec = NULL;
	struct heartbeat *h;

	if (c->heartbeat_busy)
		return;
	h = calloc(1, sizeof(*h));
	if (!h)
		return;
	rec = cl_host_record(c);
	h->lease = c->lease;
	if (asprintf(&h->key, CL_HOSTS "%s", c->d->cfg.cluster_host) < 0 ||
	    !(h->value = strdup(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN))) ||
	    cl_job_push(c, c->eq, heartbeat_run, heartbeat_finish, NULL, h) < 0) {
		free(h->key);
		free(h->value);
		free(h);
		return;
	}
	c->heartbeat_busy = true;
}

static void on_tick(qv_source *s, void *ud)
{
	struct qv_cluster *c = ud;

	c->tick = NULL;
	heartbeat(c);
	cl_inventory_sync_states(c);
	qv_loop_add_timer(c->d->loop, c->ttl_s * 1000 / 3, on_tick, c, &c->tick);
}

bool qv_cluster_enabled(const struct qv_daemon *d)
{
	return d->cluster != NULL;
}

/* Peers call this host only if its RPC certificate names --cluster-host
 * (cl_peer_check): say so at start rather than at the first refused call. */
static void warn_cert_name(struct qv_daemon *d)
{
	struct qv_error err = {};
	char path[4096];
	bool named = false;

	snprintf(path, sizeof(path), "%s/%s", d->cfg.pki_dir ? d->cfg.pki_dir : QV_PKI_DEFAULT_DIR,
		 QV_PKI_SERVER_CERT);
	if (qv_tls_cert_file_has_name(path, d->cfg.cluster_host, &named, &err) < 0)
		log_warning("Cluster: %s; peers cannot call this host", err.message);
	else if (!named)
		log_warning("Cluster: %s does not name host %s: peers will refuse to call this "
			    "host (issue it with `qvisor pki issue ADDRESS %s`)", path,
			    d->cfg.cluster_host, d->cfg.cluster_host);
}

int qv_cluster_load(struct qv_daemon *d)
{
	struct qv_error err = {};
	struct qv_cluster *c;
	char host[256];
	int port, r;

	if (!d->cfg.cluster_endpoints)
		return 0;
	if (!d->cfg.cluster_host || !vm_name_valid(d->cfg.cluster_host))
		return log_error_errno(-EINVAL, "--cluster-host NAME is required with "
					       "--cluster-endpoints (1-63 of [a-zA-Z0-9_.-])");
	if (!d->cfg.cluster_address ||
	    qv_parse_host_port(d->cfg.cluster_address, QV_TLS_DEFAULT_PORT, host, sizeof(host),
			       &port, &err) < 0)
		return log_error_errno(-EINVAL, "--cluster-address HOST[:PORT] is required with "
					       "--cluster-endpoints (where peers reach our tls:// "
					       "listener)%s%s", err.set ? ": " : "",
				       err.set ? err.message : "");
	c = calloc(1, sizeof(*c));
	if (!c)
		return log_error_errno(-ENOMEM, "Out of memory");
	d->cluster = c;
	c->d = d;
	c->ttl_s = d->cfg.cluster_ttl_s ? d->cfg.cluster_ttl_s : CL_DEFAULT_TTL_S;
	c->reachable = true; /* until proven otherwise: the first failure is logged */
	const char *pki = d->cfg.cluster_pki_dir ? d->cfg.cluster_pki_dir
						 : (d->cfg.pki_dir ? d->cfg.pki_dir
								   : QV_PKI_DEFAULT_DIR);
	struct qv_etcd_opts o = {
		.endpoints = d->cfg.cluster_endpoints,
		.pki_dir = strstr(d->cfg.cluster_endpoints, "https://") ? pki : NULL,
	};
	r = qv_etcd_new(&o, &c->etcd, &err);
	if (r < 0)
		return log_error_errno(r, "Cluster: %s", err.message);
	r = cl_leader_init(c);
	if (r < 0)
		return log_error_errno(r, "Out of memory");
	r = cl_balance_init(c);
	if (r < 0)
		return log_error_errno(r, "Cluster: cannot set up the balancer: %m");
	r = qv_workq_new(d->loop, 1, &c->eq);
	if (r < 0)
		return log_error_errno(r, "Cluster: cannot start the etcd worker thread: %m");
	r = cl_fence_start(c);
	if (r < 0)
		return log_error_errno(r, "Cluster: cannot arm the self-fence: %m");
	if ((r = cl_ha_init(c)) < 0 || (r = cl_ha_leader_init(c)) < 0)
		return r;
	cl_inventory_reconcile(c);
	heartbeat(c);
	r = qv_loop_add_timer(d->loop, c->ttl_s * 1000 / 3, on_tick, c, &c->tick);
	if (r < 0)
		return log_error_errno(r, "Cluster: cannot arm the heartbeat: %m");
	log_info("Cluster: host %s, etcd %s%s", d->cfg.cluster_host, d->cfg.cluster_endpoints,
		 o.pki_dir ? " (mutual TLS)" : "");
	warn_cert_name(d);
	return 0;
}

void qv_cluster_free(struct qv_daemon *d)
{
	struct qv_cluster *c = d->cluster;

	if (!c)
		return;
	qv_source_remove(c->tick);
	/* Running jobs finish (bounded by the etcd timeout), queued ones are
	 * cancelled; their calls get no answer but the clients are closing. */
	qv_workq_free(c->eq);
	cl_forward_shutdown(c);
	cl_evacuate_shutdown(c);
	/* A clean exit leaves the cluster at once rather than after the TTL
	 * (the workers are gone: the handle is ours now). Bounded by the
	 * etcd timeout per endpoint; a crash leaves it to the lease. */
	if (c->lease) {
		struct qv_error err = {};
		if (qv_etcd_lease_revoke(c->etcd, c->lease, &err) < 0)
			log_warning("Cluster: cannot revoke our lease, ignoring (it expires in "
				    "%u s): %s", c->ttl_s, err.message);
		else
			log_info("Cluster: left (lease revoked)");
	}
	qv_etcd_free(c->etcd);
	cl_balance_free(c);
	cl_leader_free(c);
	cl_usage_free(c);
	cl_ha_leader_free(c);
	cl_ha_free(c);
	cl_fence_free(c);
	while (c->written) {
		struct cl_vmstate *w = c->written;
		c->written = w->next;
		free(w);
	}
	free(c);
	d->cluster = NULL;
}
