/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/etcd.h"
#include "common/macro.h"
#include "helpers/etcd.h"

#define ETCD_BIN "/usr/bin/etcd"
#define ETCD_MAX_ARGS 40

const char *qvt_etcd_missing(void)
{
	if (access(ETCD_BIN, X_OK) < 0)
		return "etcd is not installed (Debian etcd-server)";
	return NULL;
}

int qvt_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Flags kept in e->dir/args (one per line) so a restart repeats them. */
static int write_args(struct qvt_etcd *e, char **argv)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "%s/args", e->dir);
	f = fopen(p, "we");
	if (!f)
		return -errno;
	for (size_t i = 0; argv[i]; i++)
		fprintf(f, "%s\n", argv[i]);
	fclose(f);
	return 0;
}

static int spawn(struct qvt_etcd *e, char **argv, pid_t netns_pid)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY);
		if (netns_pid > 0) {
			char ns[64];
			snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)netns_pid);
			int nsfd = open(ns, O_RDONLY | O_CLOEXEC);
			if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
				_exit(126);
		}
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execv(ETCD_BIN, argv);
		_exit(127);
	}
	e->pid = pid;
	return 0;
}

int qvt_etcd_start(struct qvt_etcd *e, const struct qvt_etcd_opts *o)
{
	const char *host = o->host ? o->host : "127.0.0.1";
	char data[96], ic[512], cp[8][160], tmpl[] = "/tmp/qve-XXXXXX";
	char *argv[ETCD_MAX_ARGS];
	int cport = o->client_port ? o->client_port : qvt_free_port();
	int pport = o->peer_port ? o->peer_port : qvt_free_port();
	size_t n = 0;
	const char *scheme = o->pki_dir ? "https" : "http";

	memset(e, 0, sizeof(*e));
	if (cport <= 0 || pport <= 0 || !mkdtemp(tmpl))
		return -EIO;
	snprintf(e->dir, sizeof(e->dir), "%s", tmpl);
	snprintf(e->name, sizeof(e->name), "%s", o->name ? o->name : "e0");
	snprintf(e->client_url, sizeof(e->client_url), "%s://%s:%d", scheme, host, cport);
	snprintf(e->peer_url, sizeof(e->peer_url), "http://%s:%d", host, pport);
	snprintf(e->log, sizeof(e->log), "%s/etcd.log", e->dir);
	snprintf(data, sizeof(data), "%s/data", e->dir);
	if (o->initial_cluster)
		snprintf(ic, sizeof(ic), "%s", o->initial_cluster);
	else
		snprintf(ic, sizeof(ic), "%s=%s", e->name, e->peer_url);
	argv[n++] = "etcd";
	argv[n++] = "--name"; argv[n++] = e->name;
	argv[n++] = "--data-dir"; argv[n++] = data;
	argv[n++] = "--listen-client-urls"; argv[n++] = e->client_url;
	argv[n++] = "--advertise-client-urls"; argv[n++] = e->client_url;
	argv[n++] = "--listen-peer-urls"; argv[n++] = e->peer_url;
	argv[n++] = "--initial-advertise-peer-urls"; argv[n++] = e->peer_url;
	argv[n++] = "--initial-cluster"; argv[n++] = ic;
	argv[n++] = "--initial-cluster-state"; argv[n++] = "new";
	argv[n++] = "--initial-cluster-token"; argv[n++] = (char *)(o->token ? o->token : e->dir + 5);
	argv[n++] = "--logger"; argv[n++] = "zap";
	argv[n++] = "--log-outputs"; argv[n++] = "stderr";
	/* A member back from a partition must not depose the leader (etcd
	 * 3.4 has pre-vote off): the election pause would stall every
	 * lease renewal (docs/cluster.md "etcd: 3 or 5 members"). */
	argv[n++] = "--pre-vote";
	if (o->pki_dir) {
		snprintf(cp[0], sizeof(cp[0]), "%s/server-cert.pem", o->pki_dir);
		snprintf(cp[1], sizeof(cp[1]), "%s/server-key.pem", o->pki_dir);
		snprintf(cp[2], sizeof(cp[2]), "%s/ca-cert.pem", o->pki_dir);
		argv[n++] = "--cert-file"; argv[n++] = cp[0];
		argv[n++] = "--key-file"; argv[n++] = cp[1];
		argv[n++] = "--trusted-ca-file"; argv[n++] = cp[2];
		argv[n++] = "--client-cert-auth";
	}
	argv[n] = NULL;
	char nsbuf[16];
	snprintf(nsbuf, sizeof(nsbuf), "%d", (int)o->netns_pid);
	write_args(e, argv);
	{
		char p[128];
		snprintf(p, sizeof(p), "%s/netns", e->dir);
		FILE *f = fopen(p, "we");
		if (f) {
			fprintf(f, "%s\n", nsbuf);
			fclose(f);
		}
	}
	return spawn(e, argv, o->netns_pid);
}

int qvt_etcd_restart(struct qvt_etcd *e)
{
	char p[128], lines[ETCD_MAX_ARGS][256], *argv[ETCD_MAX_ARGS];
	size_t n = 0;
	int nspid = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/args", e->dir);
	if (!(f = fopen(p, "re")))
		return -errno;
	while (n < ETCD_MAX_ARGS - 1 && fgets(lines[n], sizeof(lines[n]), f)) {
		lines[n][strcspn(lines[n], "\n")] = '\0';
		argv[n] = lines[n];
		n++;
	}
	fclose(f);
	argv[n] = NULL;
	snprintf(p, sizeof(p), "%s/netns", e->dir);
	if ((f = fopen(p, "re"))) {
		if (fscanf(f, "%d", &nspid) != 1)
			nspid = 0;
		fclose(f);
	}
	return spawn(e, argv, nspid);
}

int qvt_etcd_wait(const struct qvt_etcd *e, const char *pki_dir, int timeout_ms)
{
	struct qv_etcd_opts o = { .endpoints = e->client_url, .pki_dir = pki_dir,
				  .timeout_ms = 1000 };
	_cleanup_etcd_ qv_etcd *c = NULL;
	struct qv_error err = {};

	if (qv_etcd_new(&o, &c, &err) < 0)
		return -EINVAL;
	for (int t = 0; t < timeout_ms; t += 200) {
		struct qv_etcd_kv kv;
		int r = qv_etcd_get(c, "qvt-probe", &kv, &err);
		if (r == 0)
			qv_etcd_kv_done(&kv);
		if (r == 0 || r == -ENOENT)
			return 0;
		if (e->pid > 0 && waitpid(e->pid, NULL, WNOHANG) == e->pid)
			return -ECHILD;
		usleep(200 * 1000);
	}
	return -ETIMEDOUT;
}

void qvt_etcd_kill(struct qvt_etcd *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
	}
	e->pid = 0;
}

void qvt_etcd_cleanup(struct qvt_etcd *e)
{
	qvt_etcd_kill(e);
	if (e->dir[0] && !getenv("QVT_KEEP")) {
		char *rm[] = { "rm", "-rf", e->dir, NULL };
		pid_t pid = fork();
		if (pid == 0) {
			execvp("rm", rm);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	memset(e, 0, sizeof(*e));
}
