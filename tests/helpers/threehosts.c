/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/macro.h"
#include "common/pki.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/threehosts.h"
#include "helpers/twohosts.h"

static int in_ns(pid_t ns, const char *const *args)
{
	char *argv[16];
	size_t n = 0;

	argv[n++] = "ip";
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	return qvt_run_netns(ns, argv, NULL) == 0 ? 0 : -1;
}
#define IP(ns, ...) in_ns(ns, (const char *const[]){ __VA_ARGS__, NULL })

static int net_up(struct qvt_threehosts *h)
{
	if (IP(h->br_pid, "link", "add", "br0", "type", "bridge") < 0 ||
	    IP(h->br_pid, "link", "set", "br0", "up") < 0)
		return -1;
	for (int i = 0; i < QVT_NHOSTS; i++) {
		char b[16], x[16], pid[16], cidr[32];
		snprintf(b, sizeof(b), "h%db", i);
		snprintf(x, sizeof(x), "h%dx", i);
		snprintf(pid, sizeof(pid), "%d", (int)h->ns_pid[i]);
		snprintf(cidr, sizeof(cidr), "%s/24", h->addr[i]);
		if (IP(h->br_pid, "link", "add", b, "type", "veth", "peer", "name", x) < 0 ||
		    IP(h->br_pid, "link", "set", x, "netns", pid) < 0 ||
		    IP(h->br_pid, "link", "set", b, "master", "br0", "up") < 0 ||
		    IP(h->ns_pid[i], "addr", "add", cidr, "dev", x) < 0 ||
		    IP(h->ns_pid[i], "link", "set", x, "up") < 0 ||
		    IP(h->ns_pid[i], "link", "set", "lo", "up") < 0)
			return -1;
	}
	return 0;
}

static int pki_up(struct qvt_threehosts *h)
{
	struct qv_error err = {};
	char tmpl[] = "/tmp/qvcpki-XXXXXX";

	if (!mkdtemp(tmpl))
		return -1;
	chmod(tmpl, 0755);
	snprintf(h->pki_root, sizeof(h->pki_root), "%s", tmpl);
	if (qv_pki_init(h->pki_root, "qvisor cluster test CA", 30, &err) < 0)
		return -1;
	for (int i = 0; i < QVT_NHOSTS; i++) {
		const char *names[] = { h->name[i] };
		char dir[96];
		snprintf(dir, sizeof(dir), "%s/%s", h->pki_root, h->name[i]);
		if (qv_pki_issue(h->pki_root, dir, h->addr[i], names, 1, 30, &err) < 0)
			return -1;
		snprintf(h->d[i].pki_dir, sizeof(h->d[i].pki_dir), "%s", dir);
	}
	return 0;
}

static int etcd_up(struct qvt_threehosts *h)
{
	char ic[512];
	size_t n = 0;

	for (int i = 0; i < QVT_NHOSTS; i++)
		n += (size_t)snprintf(ic + n, sizeof(ic) - n, "%se%d=http://%s:2380", i ? "," : "",
				      i, h->addr[i]);
	for (int i = 0; i < QVT_NHOSTS; i++) {
		char name[8];
		snprintf(name, sizeof(name), "e%d", i);
		struct qvt_etcd_opts o = { .name = name, .host = h->addr[i], .client_port = 2379,
					   .peer_port = 2380, .pki_dir = h->d[i].pki_dir,
					   .initial_cluster = ic, .netns_pid = h->ns_pid[i],
					   .token = h->pki_root + 5 };
		if (qvt_etcd_start(&h->etcd[i], &o) < 0)
			return -1;
	}
	h->endpoints[0] = '\0';
	for (int i = 0; i < QVT_NHOSTS; i++) {
		if (i)
			strcat(h->endpoints, ",");
		strcat(h->endpoints, h->etcd[i].client_url);
	}
	return 0;
}

int qvt_threehosts_start_daemon(struct qvt_threehosts *h, int i)
{
	struct qvt_daemon *d = &h->d[i];
	const char *args[] = { "--cluster-endpoints", h->endpoints, "--cluster-host", h->name[i],
			       "--cluster-address", h->listen_addr[i], "--cluster-labels",
			       h->zone[i], "--cluster-ttl", QVT_CLUSTER_TTL, NULL };

	size_t n = 0;
	for (size_t k = 0; k + 1 < ARRAY_SIZE(args); k++)
		d->extra_args[n++] = args[k];
	for (size_t k = 0; h->more_args[k] && n + 1 < ARRAY_SIZE(d->extra_args); k++)
		d->extra_args[n++] = h->more_args[k];
	d->extra_args[n] = NULL;
	strcpy(d->listen, "tls://");
	strcat(d->listen, h->listen_addr[i]);
	return qvt_daemon_start_netns(d, h->ns_pid[i], "/tmp/qvm-XXXXXX");
}

int qvt_cluster_nhosts(struct qvt_threehosts *h, int via)
{
	struct qv_error err = {};
	json_object *res = NULL, *arr;
	int n = -1;

	if (qvt_callf(&h->d[via], "cluster.hosts", &res, &err, "{}") == 0 &&
	    json_object_object_get_ex(res, "hosts", &arr))
		n = (int)json_object_array_length(arr);
	json_object_put(res);
	return n;
}

int qvt_threehosts_index(const struct qvt_threehosts *h, const char *name)
{
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (streq(name, h->name[i]))
			return i;
	return -1;
}

int qvt_cluster_owner(struct qvt_threehosts *h, int via, const char *name, char *owner,
		      size_t size)
{
	struct qv_error err = {};
	json_object *res = NULL, *arr, *v;
	int r = -ENOENT;

	owner[0] = '\0';
	if (qvt_callf(&h->d[via], "cluster.vms", &res, &err, "{}") < 0)
		return -EIO;
	if (json_object_object_get_ex(res, "vms", &arr))
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *o = json_object_array_get_idx(arr, i);
			if (json_object_object_get_ex(o, "name", &v) &&
			    streq(json_object_get_string(v), name) &&
			    json_object_object_get_ex(o, "owner", &v)) {
				snprintf(owner, size, "%s", json_object_get_string(v));
				r = 0;
			}
		}
	json_object_put(res);
	return r;
}

const char *qvt_threehosts_up(struct qvt_threehosts *h)
{
	const char *more[ARRAY_SIZE(h->more_args)];

	/* more_args set by the caller before this call are kept */
	memcpy(more, h->more_args, sizeof(more));
	return qvt_threehosts_up_args(h, more);
}

const char *qvt_threehosts_up_args(struct qvt_threehosts *h, const char *const *more_in)
{
	const char *why = NULL, *more[ARRAY_SIZE(h->more_args)] = { 0 };

	for (size_t k = 0; more_in && more_in[k] && k + 1 < ARRAY_SIZE(more); k++)
		more[k] = more_in[k];
	memset(h, 0, sizeof(*h));
	memcpy(h->more_args, more, sizeof(more));
	h->br_release = -1;
	for (int i = 0; i < QVT_NHOSTS; i++) {
		h->ns_release[i] = -1;
		snprintf(h->addr[i], sizeof(h->addr[i]), "10.233.0.%d", i + 1);
		snprintf(h->name[i], sizeof(h->name[i]), "h%d", i);
		snprintf(h->zone[i], sizeof(h->zone[i]), "zone=z%d", i);
		snprintf(h->listen_addr[i], sizeof(h->listen_addr[i]), "%s:16515", h->addr[i]);
	}
	if (geteuid() != 0)
		return "needs root (network namespaces)";
	if (access(qvt_daemon_binary(), X_OK) < 0)
		return "qvisord not built";
	if ((why = qvt_etcd_missing()))
		return why;
	h->br_pid = qvt_netns_child(&h->br_release);
	for (int i = 0; i < QVT_NHOSTS; i++)
		h->ns_pid[i] = qvt_netns_child(&h->ns_release[i]);
	if (h->br_pid <= 0 || h->ns_pid[0] <= 0 || h->ns_pid[1] <= 0 || h->ns_pid[2] <= 0)
		why = "cannot create network namespaces";
	else if (net_up(h) < 0)
		why = "cannot build the bridge and veth links";
	else if (pki_up(h) < 0)
		why = "cannot make the PKI";
	else if (etcd_up(h) < 0)
		why = "cannot start etcd";
	for (int i = 0; !why && i < QVT_NHOSTS; i++)
		if (qvt_threehosts_start_daemon(h, i) < 0)
			why = "qvisord did not start in its namespace";
	time_t deadline = time(NULL) + 60;
	while (!why && qvt_cluster_nhosts(h, 0) != QVT_NHOSTS) {
		if (time(NULL) > deadline)
			why = "the three daemons did not all join the cluster in 60 s";
		qvt_sleep_ms(200);
	}
	if (why) {
		fprintf(stderr, "threehosts: %s (logs: %s/qvisord.log, %s)\n", why, h->d[0].dir,
			h->etcd[0].log);
		qvt_threehosts_down(h);
	}
	return why;
}

void qvt_threehosts_down(struct qvt_threehosts *h)
{
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (h->d[i].dir[0])
			qvt_daemon_cleanup(&h->d[i]);
	for (int i = 0; i < QVT_NHOSTS; i++)
		qvt_etcd_cleanup(&h->etcd[i]);
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (h->ns_pid[i] > 0)
			qvt_kill_netns_processes(h->ns_pid[i]);
	/* Each namespace child inherited the others' release pipes: close them
	 * all first, then kill and reap. */
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (h->ns_release[i] >= 0)
			close(h->ns_release[i]);
	if (h->br_release >= 0)
		close(h->br_release);
	for (int i = 0; i < QVT_NHOSTS; i++)
		if (h->ns_pid[i] > 0) {
			kill(h->ns_pid[i], SIGKILL);
			qvt_netns_child_release(h->ns_pid[i], -1);
			h->ns_pid[i] = 0;
		}
	if (h->br_pid > 0) {
		kill(h->br_pid, SIGKILL);
		qvt_netns_child_release(h->br_pid, -1);
		h->br_pid = 0;
	}
	if (h->pki_root[0] && !getenv("QVT_KEEP")) {
		char *rm[] = { "rm", "-rf", h->pki_root, NULL };
		qvt_run(rm, NULL);
	}
}

bool qvt_threehosts_fixture_up(struct qvt_threehosts *h, const char *tag, const char *const *more)
{
	const char *why;

	if (!qvt_guest_dir())
		return false;
	why = qvt_threehosts_up_args(h, more);
	if (why)
		fprintf(stderr, "%s: %s\n", tag, why);
	return !why;
}
