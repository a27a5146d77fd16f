/* SPDX-License-Identifier: MIT */
/* qvisord --metrics-listen scraped by a real Prometheus server (Debian's
 * prometheus): its HTTP API returns qvisor_vm_cpu_seconds_total for each
 * running VM, and the values increase between scrapes. On this host (no
 * cgroup-v2 cpu controller) the CPU seconds come from the QEMU processes;
 * in a whole cgroup v2 from each VM's cpu.stat. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/etcd.h"
#include "helpers/guest.h"
#include "helpers/http.h"
#include "helpers/qvisord.h"

static struct qvt_daemon D;
static pid_t prom;
static char tmp[64];

static void teardown(void)
{
	if (prom > 0) {
		kill(prom, SIGTERM);
		waitpid(prom, NULL, 0);
	}
	qvt_daemon_cleanup(&D);
	if (tmp[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		(void)system(cmd);
	}
}

/* The instant vector of query as {value of label key: value} (key "" for
 * samples without that label); an empty object on error. */
static json_object *query_by(unsigned port, const char *q, const char *key)
{
	char path[1024], buf[65536];
	size_t o = snprintf(path, sizeof(path), "/api/v1/query?query=");
	for (; *q && o + 4 < sizeof(path); q++) /* URL-encode all but [A-Za-z0-9_.] */
		o += (size_t)snprintf(path + o, sizeof(path) - o,
				      isalnum((unsigned char)*q) || *q == '_' || *q == '.' ? "%c"
											 : "%%%02X",
				      (unsigned char)*q);
	qvt_http_get(port, path, buf, sizeof(buf));
	json_object *j = json_tokener_parse(buf), *data, *result, *out = json_object_new_object();
	if (!j || !json_object_object_get_ex(j, "data", &data) ||
	    !json_object_object_get_ex(data, "result", &result)) {
		json_object_put(j);
		return out;
	}
	for (size_t i = 0; i < json_object_array_length(result); i++) {
		json_object *r = json_object_array_get_idx(result, i), *m, *k, *v;
		if (json_object_object_get_ex(r, "metric", &m) &&
		    json_object_object_get_ex(r, "value", &v))
			json_object_object_add(
				out, json_object_object_get_ex(m, key, &k) ? json_object_get_string(k) : "",
				json_object_new_double(
					atof(json_object_get_string(json_object_array_get_idx(v, 1)))));
	}
	json_object_put(j);
	return out;
}

static json_object *query(unsigned port, const char *q)
{
	return query_by(port, q, "vm");
}

static double val(json_object *o, const char *vm)
{
	json_object *v;
	return json_object_object_get_ex(o, vm, &v) ? json_object_get_double(v) : -1;
}

Test(metrics, prometheus_scrapes_cpu_seconds_of_each_running_vm, .fini = teardown,
     .timeout = 400)
{
	QVT_REQUIRE_GUEST();
	if (access("/usr/bin/prometheus", X_OK) < 0)
		cr_skip_test("prometheus not installed (scripts/install-deps.sh)");
	struct qv_error err = { 0 };
	unsigned mport = (unsigned)qvt_free_port(), pport = (unsigned)qvt_free_port();
	char listen[32], path[160];

	snprintf(listen, sizeof(listen), "127.0.0.1:%u", mport);
	D.extra_args[0] = "--metrics-listen";
	D.extra_args[1] = listen;
	int r = qvt_daemon_start(&D);
	if (r == -ENOENT)
		cr_skip_test("qvisord not built");
	cr_assert_eq(r, 0, "qvisord did not start: %s", strerror(-r));
	const char *vms[] = { "m1", "m2" };
	/* m1 writes 2 MiB to a disk at boot: QEMU's query-blockstats counts them */
	json_object *img = NULL, *ip;
	char m1_extra[600];
	cr_assert_eq(qvt_callf(&D, "image.create", &img, &err,
			       "{\"name\": \"mdata\", \"size\": 4194304, \"format\": \"raw\"}"),
		     0, "image.create: %s", err.message);
	cr_assert(json_object_object_get_ex(img, "path", &ip));
	snprintf(m1_extra, sizeof(m1_extra), "{\"cmdline\": \"console=ttyS0 panic=-1 "
		 "qv.blkwrite=/dev/vda:2:metrics\", \"disks\": [{\"path\": \"%s\", "
		 "\"format\": \"raw\"}]}", json_object_get_string(ip));
	json_object_put(img);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(qvt_define_guest(&D, vms[i], i ? NULL : m1_extra, &err), 0, "%s",
			     err.message);
		cr_assert_eq(qvt_callf(&D, "vm.start", NULL, &err, "{\"name\":\"%s\"}", vms[i]), 0,
			     "%s", err.message);
	}

	snprintf(tmp, sizeof(tmp), "/tmp/qvt-prom-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(path, sizeof(path), "%s/prometheus.yml", tmp);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
		   "scrape_configs:\n  - job_name: qvisor\n    static_configs:\n"
		   "      - targets: ['%s']\n", listen);
	fclose(f);
	prom = fork();
	cr_assert_geq(prom, 0);
	if (prom == 0) {
		char cfg[200], data[200], web[64], log[200];
		snprintf(cfg, sizeof(cfg), "--config.file=%s", path);
		snprintf(data, sizeof(data), "--storage.tsdb.path=%s/data", tmp);
		snprintf(web, sizeof(web), "--web.listen-address=127.0.0.1:%u", pport);
		snprintf(log, sizeof(log), "%s/prometheus.log", tmp);
		freopen(log, "w", stdout);
		freopen(log, "a", stderr);
		execl("/usr/bin/prometheus", "prometheus", cfg, data, web, "--log.level=warn",
		      (char *)NULL);
		_exit(127);
	}

	/* Prometheus answers with both VMs once it has scraped qvisord */
	json_object *first = NULL;
	for (int i = 0; i < 120; i++) {
		json_object *q = query(pport, "qvisor_vm_cpu_seconds_total");
		if (val(q, "m1") > 0 && val(q, "m2") > 0) {
			first = q;
			break;
		}
		json_object_put(q);
		qvt_sleep_ms(500);
	}
	cr_assert_not_null(first, "Prometheus never returned qvisor_vm_cpu_seconds_total for "
				  "both VMs (see %s/prometheus.log)", tmp);
	printf("prometheus: %s\n", json_object_to_json_string(first));
	json_object *up = query(pport, "up");
	(void)up;
	json_object_put(up);
	json_object *second = NULL;
	for (int i = 0; i < 60; i++) {
		qvt_sleep_ms(500);
		json_object *q = query(pport, "qvisor_vm_cpu_seconds_total");
		if (val(q, "m1") > val(first, "m1") && val(q, "m2") > val(first, "m2")) {
			second = q;
			break;
		}
		json_object_put(q);
	}
	cr_assert_not_null(second, "the CPU seconds did not increase between scrapes");
	printf("prometheus: %s\n", json_object_to_json_string(second));
	json_object_put(first);
	json_object_put(second);
	/* m1's disk writes, from QEMU's block layer, through Prometheus */
	double written = -1;
	for (int i = 0; i < 120 && written < 2 << 20; i++) {
		json_object *q = query(pport, "qvisor_vm_disk_written_bytes_total");
		written = val(q, "m1");
		json_object_put(q);
		if (written < 2 << 20)
			qvt_sleep_ms(500);
	}
	cr_assert_geq(written, 2 << 20, "qvisor_vm_disk_written_bytes_total of m1: %g", written);
	/* the collector's history of a running VM */
	json_object *hist = NULL, *pts;
	cr_assert_eq(qvt_callf(&D, "vm.history", &hist, &err, "{\"name\":\"m1\",\"max\":5}"), 0,
		     "%s", err.message);
	cr_assert(json_object_object_get_ex(hist, "points", &pts));
	cr_assert_gt(json_object_array_length(pts), 0);
	json_object *dl, *d0, *wb;
	cr_assert(json_object_object_get_ex(hist, "disks", &dl) && json_object_array_length(dl) == 1,
		  "%s", json_object_to_json_string(hist));
	d0 = json_object_array_get_idx(dl, 0);
	cr_assert(json_object_object_get_ex(d0, "written_bytes", &wb) &&
		  json_object_get_int64(wb) >= 2 << 20, "%s", json_object_to_json_string(d0));
	cr_assert_leq(json_object_array_length(pts), 5);
	json_object_put(hist);
	/* a VM that stops leaves the exposition */
	cr_assert_eq(qvt_callf(&D, "vm.stop", NULL, &err, "{\"name\":\"m2\",\"force\":true}"), 0,
		     "%s", err.message);
	static char body[262144];
	bool gone = false;
	for (int i = 0; i < 50 && !gone; i++) {
		qvt_sleep_ms(200);
		qvt_http_get(mport, "/metrics", body, sizeof(body));
		gone = strstr(body, "qvisor_vm_cpu_seconds_total{vm=\"m1\"}") &&
		       !strstr(body, "qvisor_vm_cpu_seconds_total{vm=\"m2\"}");
	}
	cr_assert(gone, "m2 still exported after it stopped:\n%s", body);
	/* RPC latencies: the calls this test made */
	cr_assert_not_null(strstr(body, "qvisor_rpc_duration_seconds_count{method=\"vm.start\"} 2\n"),
			   "%s", body);
	cr_assert_not_null(strstr(body, "qvisor_rpc_duration_seconds_bucket{method=\"vm.history\","
					"le=\"+Inf\"} 1\n"), "%s", body);
	/* ... and through Prometheus: a histogram series with its buckets */
	json_object *b = NULL;
	double count = -1, p90 = -1;
	for (int i = 0; i < 60; i++) {
		json_object *c = query_by(pport, "qvisor_rpc_duration_seconds_count{method=\"vm.start\"}",
					  "method");
		count = val(c, "vm.start");
		json_object_put(c);
		json_object_put(b);
		b = query_by(pport, "qvisor_rpc_duration_seconds_bucket{method=\"vm.start\"}", "le");
		if (count == 2 && json_object_object_length(b) == 15)
			break;
		qvt_sleep_ms(500);
	}
	cr_assert_eq(count, 2, "qvisor_rpc_duration_seconds_count{method=vm.start}: %g", count);
	cr_assert_eq(json_object_object_length(b), 15, "buckets: %s", json_object_to_json_string(b));
	cr_assert_eq(val(b, "+Inf"), 2, "%s", json_object_to_json_string(b));
	cr_assert_leq(val(b, "0.001"), val(b, "60"), "%s", json_object_to_json_string(b));
	printf("prometheus: vm.start buckets %s\n", json_object_to_json_string(b));
	json_object_put(b);
	json_object *q = query_by(pport, "histogram_quantile(0.9, qvisor_rpc_duration_seconds_bucket"
				  "{method=\"vm.start\"})", "method");
	p90 = val(q, "vm.start");
	json_object_put(q);
	cr_assert(p90 > 0 && p90 <= 60, "histogram_quantile over vm.start: %g", p90);
	printf("prometheus: vm.start p90 %.3f s\n", p90);
}
