/* SPDX-License-Identifier: MIT */
/* qvisord --metrics-listen ADDR:PORT: GET /metrics serves the Prometheus
 * text exposition (sched/metrics.c) plus the daemon's own gauges. libmicrohttpd
 * runs inside our event loop (its epoll fd is one of our sources), so the
 * collector is read single-threaded. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hostloop.h"
#include "daemon/migrate.h"
#include "daemon/metrics-http.h"
#include "daemon/vm.h"
#include "sched/metrics.h"

struct qv_metrics_http {
	struct qv_daemon *d;
	struct MHD_Daemon *mhd;
	qv_source *io, *timer;
	unsigned long scrapes;
	struct qv_rpc_hists *rpc;
};

static void on_rpc_done(const char *method, uint64_t ms, bool ok, void *ud)
{
	struct qv_metrics_http *m = ud;
	qv_rpc_hists_observe(m->rpc, method, ms, ok);
}

void qv_metrics_http_observe_rpc(struct qv_metrics_http *m)
{
	if (m && m->d->rpc)
		qv_rpc_server_set_observer(m->d->rpc, on_rpc_done, m);
}

/* The balloon of each running VM that has one (daemon/vm-balloon.c): known
 * values only (a target is unknown after a daemon restart). */
static void balloon_metrics(struct qv_metrics_http *m, FILE *f)
{
	fprintf(f, "# HELP qvisor_vm_balloon_target_bytes Memory the VM's balloon leaves the guest.\n"
		   "# TYPE qvisor_vm_balloon_target_bytes gauge\n");
	for (struct qv_vm *vm = m->d->vms; vm; vm = vm->next)
		if (vm->spec->balloon.enabled && vm->inst && vm->balloon_target)
			fprintf(f, "qvisor_vm_balloon_target_bytes{vm=\"%s\"} %" PRIu64 "\n", vm->name,
				vm->balloon_target);
	fprintf(f, "# HELP qvisor_vm_balloon_actual_bytes Memory the guest has, as its balloon "
		   "driver reports.\n# TYPE qvisor_vm_balloon_actual_bytes gauge\n");
	for (struct qv_vm *vm = m->d->vms; vm; vm = vm->next)
		if (vm->spec->balloon.enabled && vm->inst && vm->balloon_actual)
			fprintf(f, "qvisor_vm_balloon_actual_bytes{vm=\"%s\"} %" PRIu64 "\n", vm->name,
				vm->balloon_actual);
}

static void daemon_metrics(struct qv_metrics_http *m, FILE *f)
{
	static const enum qv_vm_state states[] = { QV_VM_STOPPED, QV_VM_STARTING, QV_VM_RUNNING,
						   QV_VM_PAUSED, QV_VM_STOPPING, QV_VM_CRASHED,
						   QV_VM_MIGRATING };
	fprintf(f, "# HELP qvisor_vms Defined VMs by state.\n# TYPE qvisor_vms gauge\n");
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		unsigned n = 0;
		for (struct qv_vm *vm = m->d->vms; vm; vm = vm->next)
			n += vm->state == states[s];
		fprintf(f, "qvisor_vms{state=\"%s\"} %u\n", qv_vm_state_to_string(states[s]), n);
	}
	balloon_metrics(m, f);
	qv_migrate_metrics(f);
	fprintf(f, "# HELP qvisor_daemon_start_time_seconds Unix time qvisord started.\n"
		   "# TYPE qvisor_daemon_start_time_seconds gauge\n"
		   "qvisor_daemon_start_time_seconds %.3f\n", m->d->started_at / 1000.0);
	fprintf(f, "# HELP qvisor_metrics_scrapes_total Scrapes served.\n"
		   "# TYPE qvisor_metrics_scrapes_total counter\n"
		   "qvisor_metrics_scrapes_total %lu\n", m->scrapes);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
			     const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct qv_metrics_http *m = cls;
	char *body = NULL;
	size_t len = 0;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET only\n"), 9,
			     "text/plain");
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, strdup("see /metrics\n"), 13, "text/plain");
	FILE *f = open_memstream(&body, &len);
	if (!f)
		return MHD_NO;
	struct qv_hostloop_view v;
	qv_hostloop_view(m->d, &v);
	m->scrapes++;
	if (v.col)
		qv_metrics_render(v.col, v.loop, f);
	daemon_metrics(m, f);
	qv_rpc_hists_render(m->rpc, f);
	fclose(f);
	return reply(conn, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static void on_io(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct qv_metrics_http *m = ud;
	MHD_run(m->mhd);
}

/* Connection timeouts need MHD_run even when nothing is readable. */
static void on_timer(qv_source *s, void *ud)
{
	struct qv_metrics_http *m = ud;

	m->timer = NULL;
	MHD_run(m->mhd);
	if (qv_loop_add_timer(m->d->loop, 1000, on_timer, m, &m->timer) < 0)
		log_warning("metrics: cannot re-arm the timer, ignoring");
}

/* "127.0.0.1:9464", ":9464" or "0.0.0.0:9464" (IPv4). */
static int parse_listen(const char *s, struct sockaddr_in *ret)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	char *end;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || !colon[1] || port < 1 || port > 65535)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	ret->sin_family = AF_INET;
	ret->sin_port = htons((uint16_t)port);
	if (!host[0] || strcmp(host, "*") == 0)
		ret->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		ret->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &ret->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

int qv_metrics_http_start(struct qv_daemon *d, const char *listen, struct qv_metrics_http **ret)
{
	struct sockaddr_in sa;
	struct qv_metrics_http *m;

	if (parse_listen(listen, &sa) < 0) {
		log_error("--metrics-listen %s: expected ADDR:PORT (IPv4, e.g. 127.0.0.1:9464)",
			  listen);
		return -EINVAL;
	}
	if (!(m = calloc(1, sizeof(*m))))
		return -ENOMEM;
	m->d = d;
	if (!(m->rpc = qv_rpc_hists_new())) {
		free(m);
		return -ENOMEM;
	}
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, ntohs(sa.sin_port), NULL, NULL,
				  on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				  MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT,
				  10u, MHD_OPTION_END);
	const union MHD_DaemonInfo *info =
		m->mhd ? MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info || qv_loop_add_io(d->loop, info->epoll_fd, EPOLLIN, on_io, m, &m->io) < 0 ||
	    qv_loop_add_timer(d->loop, 1000, on_timer, m, &m->timer) < 0) {
		log_error("metrics: cannot listen on %s (address in use?)", listen);
		qv_metrics_http_stop(m);
		return -EADDRINUSE;
	}
	log_info("metrics on http://%s/metrics", listen);
	*ret = m;
	return 0;
}

struct qv_metrics_http *qv_metrics_http_stop(struct qv_metrics_http *m)
{
	if (!m)
		return NULL;
	qv_source_remove(m->io);
	qv_source_remove(m->timer);
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	/* main frees the RPC server before the resource loop: no observer call
	 * can reach us after this */
	qv_rpc_hists_free(m->rpc);
	free(m);
	return NULL;
}
