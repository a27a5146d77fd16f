/* SPDX-License-Identifier: MIT */
/* Mutual TLS between hosts: two real qvisord in two network namespaces with
 * a lab PKI (common/pki.c), listening on tls://, and real QEMU (TCG).
 * - the RPC port serves only clients with a certificate of the cluster CA,
 *   and a client refuses a daemon whose certificate names another host;
 * - a storage migration runs over TLS (stream and NBD) while strangers are
 *   refused on the NBD port (plain qemu-io, qemu-io with a foreign CA's
 *   certificate) and the migration port (garbage, a foreign certificate),
 *   and a source expecting another host name refuses the destination;
 * - `qvisor migrate --to tls://HOST` moves a running guest. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/pki.h"
#include "common/tls.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/twohosts.h"

#define BOOT_TIMEOUT_MS 180000
#define VM "mtls1"
#define PORT "16515"

static struct qvt_twohosts *const H = &qvt_hosts;
static char ca_dir[160], rogue_dir[160], other_dir[160];

static void restart_with_pki(int i, const char *pki_dir)
{
	char listen[64], pki[160];

	snprintf(listen, sizeof(listen), "tls://%s:" PORT, H->addr[i]);
	snprintf(pki, sizeof(pki), "%s", pki_dir);
	cr_assert_eq(qvt_daemon_stop(&H->d[i], SIGTERM), 0);
	memcpy(H->d[i].pki_dir, pki, sizeof(H->d[i].pki_dir));
	memcpy(H->d[i].listen, listen, sizeof(H->d[i].listen));
	cr_assert_eq(qvt_twohosts_start_daemon(H, i), 0, "qvisord with TLS did not start (log %s)",
		     H->d[i].log);
}

/* A cluster CA, one host PKI per daemon (named by its address), both
 * daemons restarted on it; and a foreign CA whose "host" 10.231.0.1
 * trusts our CA (so it can talk to the servers) but presents its own. */
static void tls_up(void)
{
	struct qv_error err = {};
	char dir[160], p[200];

	snprintf(ca_dir, sizeof(ca_dir), "%s/ca", H->d[0].dir);
	cr_assert_eq(qv_pki_init(ca_dir, "test CA", 30, &err), 0, "%s", err.message);
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/pki", H->d[i].dir);
		cr_assert_eq(qv_pki_issue(ca_dir, dir, H->addr[i], NULL, 0, 30, &err), 0, "%s",
			     err.message);
		restart_with_pki(i, dir);
	}
	snprintf(other_dir, sizeof(other_dir), "%s/other", H->d[0].dir);
	cr_assert_eq(qv_pki_issue(ca_dir, other_dir, "10.231.0.3", NULL, 0, 30, &err), 0, "%s",
		     err.message);
	snprintf(dir, sizeof(dir), "%s/rogue-ca", H->d[0].dir);
	snprintf(rogue_dir, sizeof(rogue_dir), "%s/rogue", H->d[0].dir);
	cr_assert_eq(qv_pki_init(dir, "rogue CA", 30, &err), 0, "%s", err.message);
	cr_assert_eq(qv_pki_issue(dir, rogue_dir, H->addr[0], NULL, 0, 30, &err), 0, "%s",
		     err.message);
	snprintf(p, sizeof(p), "%s/ca-cert.pem", rogue_dir);
	cr_assert_eq(unlink(p), 0);
	char *cp[] = { "cp", ca_dir, p, NULL };
	char src[200];
	snprintf(src, sizeof(src), "%s/ca-cert.pem", ca_dir);
	cp[1] = src;
	cr_assert_eq(qvt_run(cp, NULL), 0);
}

/* `qvisor ARGS...` run in host i's namespace; exit status, stdout and
 * stderr in *out. */
static int cli_in(int i, char **out, const char *const *args)
{
	char q[512];
	char *argv[32];
	size_t n = 0;

	snprintf(q, sizeof(q), "%s/qvisor", getenv("QV_BUILD_DIR") ?: "build");
	argv[n++] = "sh"; /* stderr too: the errors are what we check */
	argv[n++] = "-c";
	argv[n++] = "exec \"$0\" \"$@\" 2>&1";
	argv[n++] = q;
	for (; *args && n < 31; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	return qvt_run_netns(H->ns_pid[i], argv, out);
}

/* Run fn in a child that joined host i's network namespace: its exit code. */
static int in_netns(int i, int (*fn)(void *), void *arg)
{
	char path[64];
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)H->ns_pid[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			_exit(100);
		_exit(fn(arg));
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

static int tcp_connect(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };

	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

struct target {
	int port;
	const char *payload; /* plain bytes to send */
};

/* Plain client: send payload, then read; 0 if the peer never answered
 * with JSON-RPC (what we want), 1 if it did, 2 if connect failed. */
static int plain_probe(void *ud)
{
	const struct target *t = ud;
	char buf[4096];
	ssize_t n, total = 0;
	int fd = tcp_connect("10.231.0.2", t->port);

	if (fd < 0)
		return 2;
	(void)!write(fd, t->payload, strlen(t->payload));
	while (total < (ssize_t)sizeof(buf) - 1 &&
	       (n = read(fd, buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
		total += n;
	buf[total > 0 ? total : 0] = '\0';
	close(fd);
	return strstr(buf, "\"result\"") ? 1 : 0;
}

/* TLS client presenting the foreign certificate: 0 if refused (handshake
 * or the first exchange fails), 1 if the session works, 2 no connect. */
static int rogue_tls_probe(void *ud)
{
	const struct target *t = ud;
	qv_tls_creds *creds = NULL;
	qv_tls *tls = NULL;
	struct qv_error err = {};
	char buf[256];
	int fd = tcp_connect("10.231.0.2", t->port);

	if (fd < 0)
		return 2;
	if (qv_tls_creds_load(rogue_dir, QV_TLS_CLIENT, &creds, &err) < 0 ||
	    qv_tls_new(creds, fd, "10.231.0.2", &tls, &err) < 0)
		return 3;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	if (qv_tls_handshake_wait(tls, 5000, &err) < 0)
		return 0;
	/* TLS 1.3: the server checks our certificate after the client
	 * finished; its verdict arrives as an alert on the first read. A
	 * migration port never answers an accepted peer, so silence for 15 s
	 * (a loaded host) counts as accepted. */
	ssize_t n = qv_tls_write(tls, t->payload, strlen(t->payload));
	for (int i = 0; i < 150 && (n >= 0 || n == -EAGAIN); i++) {
		usleep(100 * 1000);
		n = qv_tls_read(tls, buf, sizeof(buf));
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
	}
	return n == -EAGAIN ? 1 : 0;
}

/* A client that starts a TLS record and then says nothing for 9 s (the
 * daemon cuts handshakes after 5 s, QV_RPC_HANDSHAKE_TIMEOUT_MS). Returns
 * once the client has connected and sent its partial record (it says so
 * on a pipe), so what the caller does next overlaps the stall however
 * slowly the child was scheduled. */
static pid_t start_stalled_client(int i, int port)
{
	int pfd[2];
	char ok = 0;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char path[64];
		close(pfd[0]);
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)H->ns_pid[i]);
		int nfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0)
			_exit(100);
		int fd = tcp_connect("10.231.0.2", port);
		if (fd < 0)
			_exit(2);
		(void)!write(fd, "\x16\x03\x01", 3);
		(void)!write(pfd[1], "1", 1);
		sleep(9);
		_exit(0);
	}
	close(pfd[1]);
	struct pollfd p = { .fd = pfd[0], .events = POLLIN };
	if (poll(&p, 1, 30000) == 1)
		(void)!read(pfd[0], &ok, 1);
	close(pfd[0]);
	cr_assert_eq(ok, '1', "the stalled client did not connect within 30 s");
	return pid;
}

TestSuite(migrate_tls, .init = qvt_twohosts_setup, .fini = qvt_twohosts_teardown, .timeout = 600);

Test(migrate_tls, rpc_port_admits_only_the_cluster_ca)
{
	char pki0[160], wrong[160], *out = NULL;
	struct qv_error err = {};
	struct target t = { .port = atoi(PORT),
			    .payload = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"host.info\"}\n" };
	json_object *r;

	QVT_REQUIRE_HOSTS();
	tls_up();
	snprintf(pki0, sizeof(pki0), "%s/pki", H->d[0].dir);
	/* host 0's certificate: served, also while another client stalls in
	 * its handshake (the daemon's loop does not wait for it) */
	const char *ok[] = { "--pki-dir", pki0, "-c", "tls://10.231.0.2:" PORT, "--json",
			     "host", "info", NULL };
	pid_t stalled = start_stalled_client(0, atoi(PORT));
	uint64_t t0 = qv_now_ms();
	cr_assert_eq(cli_in(0, &out, ok), 0, "tls client refused: %s", out);
	cr_assert_lt(qv_now_ms() - t0, 8000, "served only after the stalled handshake gave up");
	kill(stalled, SIGKILL);
	waitpid(stalled, NULL, 0);
	cr_assert(strstr(out, "\"hostname\""), "%s", out);
	cr_assert(strstr(out, "CN=10.231.0.2"), "host.info should name the daemon's certificate: %s",
		  out);
	free(out);
	/* a certificate from another CA: refused by the server */
	const char *rogue[] = { "--pki-dir", rogue_dir, "-c", "tls://10.231.0.2:" PORT, "host",
				"info", NULL };
	cr_assert_neq(cli_in(0, &out, rogue), 0, "a foreign certificate was served: %s", out);
	free(out);
	cr_assert_eq(in_netns(0, rogue_tls_probe, &t), 0, "foreign TLS client served");
	/* no TLS at all: never answered */
	cr_assert_eq(in_netns(0, plain_probe, &t), 0, "plain client served on the TLS port");
	/* Host 0's migration-only certificate (what its QEMUs hold): our CA,
	 * the right host, and still refused on the RPC port. */
	char migc[200], cmd[900];
	snprintf(migc, sizeof(migc), "%s/mig-as-client", H->d[0].dir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s && cp %s/ca-cert.pem %s/ && cp %s/migrate-cert.pem %s/client-cert.pem "
		 "&& install -m 0600 %s/migrate-key.pem %s/client-key.pem",
		 migc, pki0, migc, pki0, migc, pki0, migc);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	const char *mig[] = { "--pki-dir", migc, "-c", "tls://10.231.0.2:" PORT, "host", "info",
			      NULL };
	cr_assert_neq(cli_in(0, &out, mig), 0, "a migration-only certificate was served: %s", out);
	cr_assert_null(strstr(out, "\"hostname\""), "%s", out);
	free(out);
	cr_assert_eq(qvt_wait_for_line_in_file(H->d[1].log, "migration-only certificate", 5000), 0,
		     "the daemon did not say why it refused (log %s)", H->d[1].log);
	/* Plain migration streams are refused on a host with a PKI and no
	 * --insecure. */
	cr_assert_lt(qvt_callf(&H->d[1], "migrate.prepare", &r, &err,
			       "{\"spec\": {\"name\": \"x\"}, \"tls\": false}"), 0);
	cr_assert_str_eq(err.reason, "permission-denied", "%s", err.message);
	/* A daemon whose certificate names another host: the client refuses. */
	snprintf(wrong, sizeof(wrong), "%s/pki-wrong", H->d[1].dir);
	cr_assert_eq(qv_pki_issue(ca_dir, wrong, "10.231.0.9", NULL, 0, 30, &err), 0, "%s",
		     err.message);
	restart_with_pki(1, wrong);
	cr_assert_neq(cli_in(0, &out, ok), 0, "a wrong-host certificate was accepted");
	cr_assert(strstr(out, "certificate") || strstr(out, "TLS"), "[%s]", out);
	free(out);
}

/* Data disk in the source pool, a guest that writes blkpat to it at boot. */
static void start_disk_guest(char *ret_path, size_t psize)
{
	struct qv_error err = {};
	char extra[1024];
	json_object *r, *v;

	cr_assert_eq(qvt_callf(&H->d[0], "image.create", &r, &err,
			       "{\"name\": \"data\", \"size\": %u, \"format\": \"raw\"}", 32u << 20),
		     0, "image.create: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "path", &v));
	snprintf(ret_path, psize, "%s", json_object_get_string(v));
	json_object_put(r);
	snprintf(extra, sizeof(extra),
		 "{\"memory\": 192, \"cmdline\": \"console=ttyS0 panic=-1 "
		 "qv.blkwrite=/dev/vda:8:tls\", \"disks\": [{\"path\": \"%s\", \"format\": \"raw\"}]}",
		 ret_path);
	cr_assert_eq(qvt_define_guest(&H->d[0], VM, extra, &err), 0, "define: %s", err.message);
	r = qvt_call_name(&H->d[0], "vm.start", VM, &err);
	cr_assert_not_null(r, "start: %s", err.message);
	json_object_put(r);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&H->d[0], VM), "QVISOR-BLK-SUM",
					       BOOT_TIMEOUT_MS), 0, "guest did not write its disk");
}

struct prep {
	char uri[128], token[64], nbd[128], dest_path[512];
	int port, nbd_port;
};

/* plan on the source (its certificate DN), prepare over TLS. */
static void prepare_tls(struct prep *pr)
{
	struct qv_error err = {};
	json_object *info, *spec, *p, *plan, *r, *v, *disks, *sizes = json_object_new_array();

	info = qvt_call_name(&H->d[0], "vm.info", VM, &err);
	cr_assert_not_null(info, "%s", err.message);
	cr_assert(json_object_object_get_ex(info, "spec", &spec));
	cr_assert_eq(qvt_callf(&H->d[0], "migrate.plan", &plan, &err,
			       "{\"name\": \"%s\", \"copy_storage\": true}", VM), 0, "%s", err.message);
	cr_assert(json_object_object_get_ex(plan, "tls_dn", &v), "plan without tls_dn");
	cr_assert(strstr(json_object_get_string(v), H->addr[0]), "%s", json_object_get_string(v));
	/* what the source QEMU presents: the migration-only certificate */
	cr_assert(strstr(json_object_get_string(v), "OU=" QV_PKI_MIGRATION_OU), "%s",
		  json_object_get_string(v));
	p = json_object_new_object();
	json_object_object_add(p, "peer_dn", json_object_get(v));
	cr_assert(json_object_object_get_ex(plan, "disks", &disks));
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(disks, 0), "virtual_size", &v));
	json_object_array_add(sizes, json_object_get(v));
	json_object_put(plan);
	json_object_object_add(p, "spec", json_object_get(spec));
	json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
	json_object_object_add(p, "disk_sizes", sizes);
	/* multifd: every channel is its own TLS session */
	json_object_object_add(p, "multifd_channels", json_object_new_int(2));
	json_object_put(info);
	r = qvt_call(&H->d[1], "migrate.prepare", p, &err);
	cr_assert_not_null(r, "prepare: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "tls", &v) && json_object_get_boolean(v),
		  "prepare did not choose TLS");
	cr_assert(json_object_object_get_ex(r, "uri", &v));
	snprintf(pr->uri, sizeof(pr->uri), "%s", json_object_get_string(v));
	cr_assert(json_object_object_get_ex(r, "token", &v));
	snprintf(pr->token, sizeof(pr->token), "%s", json_object_get_string(v));
	cr_assert(json_object_object_get_ex(r, "nbd", &v));
	snprintf(pr->nbd, sizeof(pr->nbd), "%s", json_object_get_string(v));
	cr_assert(json_object_object_get_ex(r, "disks", &disks));
	snprintf(pr->dest_path, sizeof(pr->dest_path), "%s",
		 json_object_get_string(json_object_array_get_idx(disks, 0)));
	json_object_put(r);
	pr->port = atoi(strrchr(pr->uri, ':') + 1);
	pr->nbd_port = atoi(strrchr(pr->nbd, ':') + 1);
}

/* The destination's sockets listen on its own address only. */
static void assert_bound_to_peer_address(const struct prep *pr)
{
	char *out = NULL, want[64];
	char *ss[] = { "ss", "-Htln", NULL };

	cr_assert_eq(qvt_run_netns(H->ns_pid[1], ss, &out), 0);
	snprintf(want, sizeof(want), "%s:%d", H->addr[1], pr->port);
	cr_assert(strstr(out, want), "stream not listening on %s: %s", want, out);
	snprintf(want, sizeof(want), "%s:%d", H->addr[1], pr->nbd_port);
	cr_assert(strstr(out, want), "NBD not listening on %s: %s", want, out);
	snprintf(want, sizeof(want), "0.0.0.0:%d", pr->port);
	cr_assert_null(strstr(out, want), "%s", out);
	free(out);
}

static void nbd_attacks(const struct prep *pr)
{
	char url[128], image_opts[512], obj[256], *out = NULL;

	snprintf(url, sizeof(url), "nbd://%s:%d/disk0", H->addr[1], pr->nbd_port);
	char *plain[] = { "sh", "-c", "exec \"$0\" \"$@\" 2>&1", "qemu-io", "-f", "raw", url, "-c", "write -P 0x55 0 4096", NULL };
	int rc = qvt_run_netns(H->ns_pid[0], plain, &out);
	cr_assert(rc != 0 || strstr(out, "rror") || strstr(out, "failed"),
		  "a plain NBD write went through: %s", out);
	cr_assert_null(strstr(out, "wrote 4096"), "%s", out);
	fprintf(stderr, "plain qemu-io on the NBD port: rc %d: %s", rc, out);
	free(out);
	snprintf(obj, sizeof(obj), "tls-creds-x509,id=tls0,dir=%s,endpoint=client,sanity-check=off", rogue_dir);
	snprintf(image_opts, sizeof(image_opts),
		 "driver=nbd,server.type=inet,server.host=%s,server.port=%d,export=disk0,"
		 "tls-creds=tls0", H->addr[1], pr->nbd_port);
	char *rogue[] = { "sh", "-c", "exec \"$0\" \"$@\" 2>&1", "qemu-io", "--object", obj, "--image-opts", image_opts, "-c",
			  "write -P 0x55 0 4096", NULL };
	rc = qvt_run_netns(H->ns_pid[0], rogue, &out);
	cr_assert(rc != 0 || strstr(out, "rror") || strstr(out, "failed"),
		  "an NBD write with a foreign certificate went through: %s", out);
	cr_assert_null(strstr(out, "wrote 4096"), "%s", out);
	fprintf(stderr, "foreign-CA qemu-io on the NBD port: rc %d: %s", rc, out);
	free(out);
	/* A certificate of our own CA, but not the source's: tls-authz. */
	snprintf(obj, sizeof(obj), "tls-creds-x509,id=tls0,dir=%s,endpoint=client", other_dir);
	rc = qvt_run_netns(H->ns_pid[0], rogue, &out);
	cr_assert(rc != 0 || strstr(out, "rror") || strstr(out, "failed"),
		  "an NBD write from another cluster host went through: %s", out);
	cr_assert_null(strstr(out, "wrote 4096"), "%s", out);
	fprintf(stderr, "other-host qemu-io on the NBD port: rc %d: %s", rc, out);
	free(out);
	/* The source daemon's own RPC certificate: the NBD server admits the
	 * source QEMU's migration-only identity, nothing else. */
	char pki0[160];
	snprintf(pki0, sizeof(pki0), "%s/pki", H->d[0].dir);
	snprintf(obj, sizeof(obj), "tls-creds-x509,id=tls0,dir=%s,endpoint=client", pki0);
	rc = qvt_run_netns(H->ns_pid[0], rogue, &out);
	cr_assert(rc != 0 || strstr(out, "rror") || strstr(out, "failed"),
		  "an NBD write with the source daemon's RPC certificate went through: %s", out);
	cr_assert_null(strstr(out, "wrote 4096"), "%s", out);
	free(out);
}

/* No file under either daemon's run dir (where QEMU's staged TLS files
 * live) holds one of the daemons' RPC keys. */
static void assert_qemu_holds_no_rpc_key(void)
{
	char cmd[1200], *out = NULL;

	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++) {
			snprintf(cmd, sizeof(cmd),
				 "find %s -type f -size -64k -exec cmp -s {} %s/pki/%s \\; -print",
				 H->d[i].run_dir, H->d[i].dir, k ? "client-key.pem" : "server-key.pem");
			char *argv[] = { "sh", "-c", cmd, NULL };
			cr_assert_eq(qvt_run(argv, &out), 0, "%s", cmd);
			cr_assert_eq(out ? strlen(out) : 0, 0, "an RPC key in QEMU's reach: %s", out);
			free(out);
			out = NULL;
		}
}

Test(migrate_tls, storage_migration_over_tls_refuses_strangers)
{
	char src_path[512], buf[32];
	struct prep pr;
	struct qv_error err = {};
	json_object *r, *v;

	QVT_REQUIRE_HOSTS();
	tls_up();
	start_disk_guest(src_path, sizeof(src_path));
	prepare_tls(&pr);
	assert_bound_to_peer_address(&pr);
	assert_qemu_holds_no_rpc_key();
	nbd_attacks(&pr);
	struct target t = { .port = pr.port, .payload = "QEVM garbage garbage garbage garbage "
							"garbage garbage garbage garbage!" };
	cr_assert_eq(in_netns(0, plain_probe, &t), 0);
	cr_assert_eq(in_netns(0, rogue_tls_probe, &t), 0, "foreign certificate on the stream port");
	/* A source expecting another host name refuses the destination. */
	cr_assert_lt(qvt_callf(&H->d[0], "migrate.perform", &r, &err,
			       "{\"name\": \"%s\", \"uri\": \"%s\", \"copy_storage\": true, "
			       "\"nbd\": \"%s\", \"tls\": true, \"tls_hostname\": \"other.example\"}",
			       VM, pr.uri, pr.nbd), 0, "perform to a wrong host name succeeded");
	fprintf(stderr, "perform with a wrong tls_hostname: %s\n", err.message);
	qv_error_clear(&err);
	for (int i = 0; i < 100 && !streq(qvt_vm_state(&H->d[0], VM, buf, sizeof(buf)), "running");
	     i++)
		qvt_sleep_ms(100);
	cr_assert_str_eq(buf, "running", "the source should keep running");
	/* The real one, still accepted after all that. */
	cr_assert_eq(qvt_callf(&H->d[0], "migrate.perform", &r, &err,
			       "{\"name\": \"%s\", \"uri\": \"%s\", \"copy_storage\": true, "
			       "\"nbd\": \"%s\", \"tls\": true, \"deadline_s\": 180, "
			       "\"multifd_channels\": 2, \"multifd_reason\": \"test\"}",
			       VM, pr.uri, pr.nbd), 0, "perform: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "status", &v));
	cr_assert_str_eq(json_object_get_string(v), "completed");
	json_object_put(r);
	cr_assert_eq(qvt_callf(&H->d[1], "migrate.finish", &r, &err,
			       "{\"name\": \"%s\", \"token\": \"%s\"}", VM, pr.token), 0, "finish: %s",
		     err.message);
	json_object_put(r);
	r = qvt_call_name(&H->d[0], "migrate.confirm", VM, &err);
	cr_assert_not_null(r, "confirm: %s", err.message);
	json_object_put(r);
	cr_assert_str_eq(qvt_vm_state(&H->d[1], VM, buf, sizeof(buf)), "running");
	/* Same first 8 MiB (what the guest wrote) on both images. */
	char cmd[1200], a[40] = "", b[40] = "";
	snprintf(cmd, sizeof(cmd), "head -c 8M '%s' | md5sum; head -c 8M '%s' | md5sum", src_path,
		 pr.dest_path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%32s %*s %32s", a, b), 2);
	pclose(p);
	cr_assert_str_eq(a, b, "destination image differs");
}

Test(migrate_tls, cli_migrates_to_a_tls_destination)
{
	char pki0[160], *out = NULL;
	int src_pid;

	QVT_REQUIRE_HOSTS();
	tls_up();
	qvt_start_dirtier_guest(&H->d[0], VM, "5:32", BOOT_TIMEOUT_MS);
	src_pid = qvt_vm_pid(&H->d[0], VM);
	snprintf(pki0, sizeof(pki0), "%s/pki", H->d[0].dir);
	const char *args[] = { "--pki-dir", pki0, "-s", H->d[0].socket, "--json", "migrate", VM,
			       "--to", "tls://10.231.0.2:" PORT, "--quiet",
			       NULL };
	cr_assert_eq(cli_in(0, &out, args), 0, "qvisor migrate over TLS failed: %s", out);
	cr_assert(strstr(out, "total_time_ms"), "%s", out);
	free(out);
	for (int t = 0; t < 50 && kill(src_pid, 0) == 0; t++)
		qvt_sleep_ms(100);
	cr_assert_neq(kill(src_pid, 0), 0, "source QEMU still alive");
	/* seen once in ~20 clean-clone runs; the helper prints what tells a
	 * stopped guest from a silent one */
	cr_assert_eq(qvt_twohosts_wait_dirtier(H, 1, VM, 60000), 0,
		     "no dirtier output on the destination within 60 s (details above)");
	/* The source daemon drove it over tls:// with its own certificate. */
	cr_assert_eq(qvt_wait_for_line_in_file(H->d[1].log, "connected over TLS: O=qvisor,CN=10.231.0.1",
					       1000), 0, "no TLS client with host 0's certificate in %s",
		     H->d[1].log);
}
