/* SPDX-License-Identifier: MIT */
/* qvisord: the per-host daemon. See docs/qvisord.8. */
#include <fcntl.h>
#include <getopt.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/fw.h"
#include "daemon/activate.h"
#include "daemon/cluster.h"
#include "daemon/hooks.h"
#include "daemon/foreign.h"
#include "daemon/hostloop.h"
#include "daemon/interop.h"
#include "daemon/migrate.h"
#include "daemon/vm-queue.h"
#include "daemon/vm.h"
#include "daemon/vm-files.h"
#include "daemon/vm-identity.h"
#include "daemon/rpc-access.h"
#include "daemon/snapshot.h"
#include "daemon/backup-internal.h"
#include "daemon/vm-move.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qvisord [OPTIONS]\n"
		"\n"
		"The qvisor host daemon: supervises QEMU VMs and serves JSON-RPC 2.0.\n"
		"\n"
		"  --state-dir DIR     state database and images (default /var/lib/qvisor)\n"
		"  --run-dir DIR       sockets and per-VM runtime files (default /run/qvisor)\n"
		"  --socket PATH       RPC socket (default RUN_DIR/qvisord.sock)\n"
		"  --cache-dir DIR     accelerator probe cache (default /var/cache/qvisor)\n"
		"  --qemu PATH         QEMU binary (default qemu-system-x86_64)\n"
		"  --guest-dir DIR     probe guest (vmlinuz, initrd.img) for accel auto\n"
		"  --no-kvm-probe      never boot the KVM probe; accel auto means TCG\n"
		"  --max-clients N     concurrent RPC clients (default 64)\n"
		"  --vm-uid-range A-B  one uid/gid per VM from A..B (default 2000000000-2000065535)\n"
		"  --serial-log-max N  bytes per serial log file (default 1048576)\n"
		"  --max-starts N      QEMUs starting at once, the rest queue (default 16 per\n"
		"                      CPU; 0: no bound)\n"
		"  --pki-dir DIR       CA, host certificates and keys (default /etc/qvisor/pki)\n"
		"  --master-key-file F wrap the disk keys of encrypted images with this key\n"
		"                      (32 random bytes or 64 hex digits, mode 0600)\n"
		"  --listen URI        also serve RPC on tls://HOST[:PORT] (mutual TLS)\n"
		"  --insecure          allow plain TCP (--listen tcp://, migration streams,\n"
		"                      http:// etcd endpoints)\n"
		"  --log-level LEVEL   error|warning|info|debug (default info)\n"
		"  --loop-mode MODE    resource loop: off|advise|enforce|auto (default auto)\n"
		"  --loop-interval MS  resource loop interval (default 1000)\n"
		"  --exclusive-min-cpus N  latency VMs get exclusive cores only on hosts with\n"
		"                      at least N CPUs (default 2)\n"
		"  --metrics-listen ADDR:PORT  serve Prometheus metrics (default off)\n"
		"  --cluster-endpoints URL[,URL..]  join the cluster whose etcd answers there\n"
		"                      (https:// uses mutual TLS with --cluster-pki-dir)\n"
		"  --cluster-host NAME this host's name in the cluster\n"
		"  --cluster-address HOST[:PORT]  where peers reach our tls:// listener\n"
		"  --cluster-labels k=v[,k=v..]  labels placement can require\n"
		"  --cluster-pki-dir DIR  CA and client certificate for etcd (default --pki-dir)\n"
		"  --cluster-ttl S     membership lease TTL in seconds (default 6)\n"
		"  --cluster-capacity-vcpus N  this host's CPU capacity for placement and\n"
		"                      the balancer (default: online CPUs)\n"
		"  --cluster-balance-interval S  leader's balancer round (default 10)\n"
		"  --cluster-balance-threshold F  CPU share above which a host is\n"
		"                      overloaded (default 0.8)\n"
		"  --cluster-balance-cooldown S  a VM moved stays that long (default 1800)\n"
		"  --cluster-balance-policy P  overload detector: thr (default), mad, iqr,\n"
		"                      lr, lrr, or qvisor (its forecast; docs/policy.md)\n"
		"  --cluster-balance-power-saving  empty underloaded hosts onto others\n"
		"  --cluster-shared-dir DIR[,DIR..]  storage every host sees (disks of ha VMs)\n"
		"  --cluster-fence-timeout S  stop our ha VMs after S s without a lease\n"
		"                      renewal (default: twice the TTL; 0 never)\n"
		"  -h, --help          this help\n");
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return negative_errno();
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return negative_errno();
	return 0;
}

/* DIR/vmlinuz + DIR/initrd.img: the probe guest. */
static char *find_guest_dir(const char *configured)
{
	char exe[PATH_MAX], p[PATH_MAX + 512];
	const char *env = getenv("QV_GUEST_DIR");
	ssize_t n;

	if (configured)
		return strdup(configured);
	if (env && *env)
		return strdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(p, sizeof(p), "%s/guest/vmlinuz", dirname(exe));
		if (access(p, R_OK) == 0) {
			p[strlen(p) - strlen("/vmlinuz")] = '\0';
			return strdup(p);
		}
	}
	if (access("/usr/share/qvisor/guest/vmlinuz", R_OK) == 0)
		return strdup("/usr/share/qvisor/guest");
	return NULL;
}

static void probe_accel(struct qv_daemon *d)
{
	struct qv_error err = {};
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	struct qemu_accel_probe_opts o = {
		.qemu_binary = d->cfg.qemu_binary,
		.cache_dir = d->cfg.cache_dir,
	};

	if (!d->cfg.no_probe && d->cfg.guest_dir) {
		if (asprintf(&kernel, "%s/vmlinuz", d->cfg.guest_dir) < 0 ||
		    asprintf(&initrd, "%s/initrd.img", d->cfg.guest_dir) < 0)
			return;
		o.kernel = kernel;
		o.initrd = initrd;
	}
	if (qemu_accel_probe(&o, &d->accel, &err) < 0) {
		log_warning("Accelerator probe failed (%s); accel auto means TCG", err.message);
		d->accel.chosen = VM_ACCEL_TCG;
		snprintf(d->accel.reason, sizeof(d->accel.reason), "probe failed: %.300s", err.message);
		return;
	}
	if (d->accel.chosen == VM_ACCEL_KVM)
		log_info("accel auto -> kvm: %s", d->accel.reason);
	else
		log_warning("accel auto -> tcg: %s", d->accel.reason);
}

static void on_signal(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct qv_daemon *d = ud;
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("Received %s; exiting (VMs keep running)", strsignal((int)si.ssi_signo));
	d->shutting_down = true;
	qv_loop_quit(d->loop, 0);
}

static void on_connect(qv_rpc_client *c, const struct qv_rpc_peer *peer, void *ud)
{
	const char *dn = qv_rpc_client_tls_dn(c);

	if (dn) {
		log_info("Client %u connected over TLS: %s", qv_rpc_client_id(c), dn);
		return;
	}
	log_info("Client %u connected: pid=%d uid=%d gid=%d", qv_rpc_client_id(c), (int)peer->pid,
		 (int)peer->uid, (int)peer->gid);
}

/* Served on the read-only socket too (rpc-access.c filters them). */
static const struct {
	const struct qv_rpc_method *m;
	const size_t *n;
} method_tables[] = {
	{ qv_vm_methods, &qv_vm_methods_count },       { qv_host_methods, &qv_host_methods_count },
	{ qv_net_methods, &qv_net_methods_count },     { qv_image_methods, &qv_image_methods_count },
	{ qv_migrate_methods, &qv_migrate_methods_count },
	{ qv_fw_methods, &qv_fw_methods_count },
	{ qv_cluster_methods, &qv_cluster_methods_count },
	{ qv_snapshot_methods, &qv_snapshot_methods_count },
};

static int run(struct qv_daemon *d)
{
	struct qv_error err = {};
	_cleanup_close_ int sfd = -1;
	sigset_t mask;
	int r;

	r = mkdir_p(d->cfg.state_dir, 0700);
	if (r < 0)
		return log_error_errno(r, "Failed to create state dir %s: %m", d->cfg.state_dir);
	r = mkdir_p(d->cfg.run_dir, 0755);
	if (r < 0)
		return log_error_errno(r, "Failed to create run dir %s: %m", d->cfg.run_dir);
	/* Our own run root: searchable, so group members reach the sockets
	 * (umask 077 made it 0700); everything below it stays private. */
	(void)chmod(d->cfg.run_dir, 0755);
	if (d->cfg.cache_dir && mkdir_p(d->cfg.cache_dir, 0755) < 0) {
		log_warning("Cannot create cache dir %s, probing without cache", d->cfg.cache_dir);
		d->cfg.cache_dir = NULL;
	}
	/* One daemon per state dir: hold an exclusive lock for our lifetime. */
	{
		char lock[PATH_MAX];
		snprintf(lock, sizeof(lock), "%s/qvisord.lock", d->cfg.state_dir);
		int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lfd < 0)
			return log_error_errno(errno, "Failed to open %s: %m", lock);
		if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
			return log_error_errno(errno, "Another qvisord uses %s (lock %s held)",
					       d->cfg.state_dir, lock);
		/* lfd stays open (and locked) until exit. */
	}
	r = qv_state_open(d->cfg.state_dir, &d->state, &err);
	if (r < 0)
		return log_error_errno(r, "Failed to open state in %s: %s", d->cfg.state_dir,
				       err.message);
	r = qv_loop_new(&d->loop);
	if (r < 0)
		return log_error_errno(r, "Failed to create event loop: %m");
	/* Before anything is spawned: the passed socket must not leak into
	 * children (it is not close-on-exec until we make it so), nor the
	 * LISTEN_* and NOTIFY_SOCKET variables. */
	qv_notify_init();
	int afd = -1;
	r = qv_activation_listen_fd(d->cfg.socket_path, &afd, &err);
	if (r < 0)
		return log_error_errno(r, "Socket activation: %s", err.message);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return log_error_errno(errno, "Failed to create signalfd: %m");
	r = qv_loop_add_io(d->loop, sfd, EPOLLIN, on_signal, d, NULL);
	if (r < 0)
		return log_error_errno(r, "Failed to watch signals: %m");

	probe_accel(d);
	r = qv_cgroup_registry_load(d);
	if (r < 0)
		return log_error_errno(r, "Failed to set up cgroups: %m");
	r = qv_vm_registry_load(d);
	if (r < 0)
		return log_error_errno(r, "Failed to load VMs from the state store: %m");
	/* Resolves migrations cut by a restart, never fatal; once the VMs'
	 * re-attaches (asynchronous) ended: recovery needs their QMP. */
	qv_vm_load_migrations_when_attached(d);
	qv_snapshot_recover(d); /* finishes snapshot operations cut by a restart; never fatal */
	r = qv_hostloop_load(d);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the resource loop: %m");
	r = qv_net_registry_load(d);
	if (r < 0)
		return log_error_errno(r, "Failed to set up networks: %m");
	r = qv_fw_load(d); /* after networks: DHCP leases */
	if (r < 0)
		return log_error_errno(r, "Failed to set up the firewall: %m");
	r = qv_image_registry_load(d);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the image pool: %m");

	if (afd >= 0)
		r = qv_rpc_server_new_fd(d->loop, afd, d->cfg.socket_path, &d->rpc, &err);
	else
		r = qv_rpc_server_new(d->loop, d->cfg.socket_path, 0660, &d->rpc, &err);
	if (r < 0)
		return log_error_errno(r, "Failed to listen on %s: %s", d->cfg.socket_path,
				       err.message);
	if (d->cfg.max_clients)
		qv_rpc_server_set_max_clients(d->rpc, d->cfg.max_clients);
	qv_rpc_server_set_connect_fn(d->rpc, on_connect, d);
	qv_rpc_server_set_gate_fn(d->rpc, qv_vm_attach_gate, d);
	r = qv_rpc_server_add_methods(d->rpc, qv_vm_methods, qv_vm_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_host_methods, qv_host_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_net_methods, qv_net_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_cgroup_methods, qv_cgroup_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_image_methods, qv_image_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_migrate_methods, qv_migrate_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_hostloop_methods, qv_hostloop_methods_count,
					      d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_interop_methods, qv_interop_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_agent_methods, qv_agent_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_foreign_methods, qv_foreign_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_fw_methods, qv_fw_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_cluster_methods, qv_cluster_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_snapshot_methods, qv_snapshot_methods_count,
					      d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_backup_methods, qv_backup_methods_count, d);
	if (r >= 0)
		r = qv_rpc_server_add_methods(d->rpc, qv_move_methods, qv_move_methods_count, d);
	if (r >= 0)
		r = qv_rpc_access_setup(d, &err);
	if (d->rpc_ro)
		qv_rpc_server_set_gate_fn(d->rpc_ro, qv_vm_attach_gate, d);
	for (size_t i = 0; r >= 0 && d->rpc_ro && i < ARRAY_SIZE(method_tables); i++)
		r = qv_rpc_server_add_methods(d->rpc_ro, method_tables[i].m, *method_tables[i].n, d);
	if (r < 0)
		return log_error_errno(r, "Failed to register methods: %m");
	qv_hostloop_rpc_ready(d);
	bk_schedule_start(d);
	r = qv_daemon_tls_setup(d);
	if (r < 0)
		return r;
	r = qv_cluster_load(d);
	if (r < 0)
		return r;
	qv_move_load(d); /* cold migrations cut by a restart; never fatal */
	qv_daemon_emit(d, NULL, "daemon-started", NULL);
	log_info("qvisord ready on %s (state %s, run %s)", d->cfg.socket_path, d->cfg.state_dir,
		 d->cfg.run_dir);
	qv_notify("READY=1"); /* Type=notify: systemctl start returns once we serve */
	/* Readiness for scripts: a line on stdout when started with --ready-fd? Keep
	 * it simple: the socket exists once we are serving. */
	return qv_loop_run(d->loop);
}

/* The daemon holds image keys, the master key and TLS keys in memory: no
 * core file, and not dumpable (no ptrace or /proc/PID/mem by another
 * process of the same uid). Children reset it on exec; QEMU sets its own. */
static int no_core_dumps(void)
{
	struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &none) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		fprintf(stderr, "qvisord: cannot disable core dumps: %m\n");
		return -errno;
	}
	return 0;
}

/* A decimal in min..max into *ret (untouched otherwise). */
static bool opt_uint(const char *arg, unsigned long min, unsigned long max, unsigned *ret)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (*end || end == arg || n < min || n > max)
		return false;
	*ret = (unsigned)n;
	return true;
}

int main(int argc, char **argv)
{
	enum { OPT_STATE = 256, OPT_RUN, OPT_SOCKET, OPT_CACHE, OPT_QEMU, OPT_GUEST, OPT_NOPROBE,
	       OPT_MAXCLIENTS, OPT_LOG, OPT_PKI, OPT_LISTEN, OPT_INSECURE, OPT_MAXSTARTS,
	       OPT_UIDS, OPT_SERIALMAX, OPT_LOOP_MODE, OPT_LOOP_INTERVAL, OPT_METRICS,
	       OPT_MASTER_KEY, OPT_CL_ENDPOINTS, OPT_CL_HOST, OPT_CL_ADDRESS, OPT_CL_LABELS,
	       OPT_CL_PKI, OPT_CL_TTL, OPT_CL_MORE, OPT_CL_SHARED, OPT_CL_FENCE,
	       OPT_EXCL_MIN };
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, OPT_STATE },
		{ "run-dir", required_argument, NULL, OPT_RUN },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "cache-dir", required_argument, NULL, OPT_CACHE },
		{ "qemu", required_argument, NULL, OPT_QEMU },
		{ "guest-dir", required_argument, NULL, OPT_GUEST },
		{ "no-kvm-probe", no_argument, NULL, OPT_NOPROBE },
		{ "max-clients", required_argument, NULL, OPT_MAXCLIENTS },
		{ "max-starts", required_argument, NULL, OPT_MAXSTARTS },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "vm-uid-range", required_argument, NULL, OPT_UIDS },
		{ "serial-log-max", required_argument, NULL, OPT_SERIALMAX },
		{ "loop-mode", required_argument, NULL, OPT_LOOP_MODE },
		{ "loop-interval", required_argument, NULL, OPT_LOOP_INTERVAL },
		{ "exclusive-min-cpus", required_argument, NULL, OPT_EXCL_MIN },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS },
		{ "pki-dir", required_argument, NULL, OPT_PKI },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "master-key-file", required_argument, NULL, OPT_MASTER_KEY },
		{ "cluster-endpoints", required_argument, NULL, OPT_CL_ENDPOINTS },
		{ "cluster-host", required_argument, NULL, OPT_CL_HOST },
		{ "cluster-address", required_argument, NULL, OPT_CL_ADDRESS },
		{ "cluster-labels", required_argument, NULL, OPT_CL_LABELS },
		{ "cluster-pki-dir", required_argument, NULL, OPT_CL_PKI },
		{ "cluster-ttl", required_argument, NULL, OPT_CL_TTL },
		{ "cluster-capacity-vcpus", required_argument, NULL, OPT_CL_MORE },
		{ "cluster-balance-interval", required_argument, NULL, OPT_CL_MORE },
		{ "cluster-balance-threshold", required_argument, NULL, OPT_CL_MORE },
		{ "cluster-balance-cooldown", required_argument, NULL, OPT_CL_MORE },
		{ "cluster-balance-policy", required_argument, NULL, OPT_CL_MORE },
		{ "cluster-balance-power-saving", no_argument, NULL, OPT_CL_MORE },
		{ "cluster-shared-dir", required_argument, NULL, OPT_CL_SHARED },
		{ "cluster-fence-timeout", required_argument, NULL, OPT_CL_FENCE },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct qv_daemon d = {
		.cfg = {
			.state_dir = "/var/lib/qvisor",
			.run_dir = "/run/qvisor",
			.cache_dir = "/var/cache/qvisor",
			.vm_uid_first = QV_VM_UID_FIRST_DEFAULT,
			.vm_uid_count = QV_VM_UID_COUNT_DEFAULT,
			.serial_log_max = QV_SERIAL_LOG_MAX_DEFAULT,
			.cluster_balance_cooldown_s = -1,
			.cluster_fence_timeout_s = -1,
		},
	};
	_cleanup_free_ char *sock = NULL, *guest = NULL;
	const char *guest_opt = NULL;
	bool max_starts_set = false;
	int c, r;

	log_set_ident("qvisord");
	/* Private by default: DB, logs, sockets and images are ours alone. */
	umask(077);
	int longindex = 0;
	while ((c = getopt_long(argc, argv, "h", opts, &longindex)) != -1) {
		switch (c) {
		case OPT_STATE: d.cfg.state_dir = optarg; break;
		case OPT_RUN: d.cfg.run_dir = optarg; break;
		case OPT_SOCKET: d.cfg.socket_path = optarg; break;
		case OPT_CACHE: d.cfg.cache_dir = optarg; break;
		case OPT_QEMU: d.cfg.qemu_binary = optarg; break;
		case OPT_GUEST: guest_opt = optarg; break;
		case OPT_NOPROBE: d.cfg.no_probe = true; break;
		case OPT_PKI: d.cfg.pki_dir = optarg; d.cfg.pki_dir_set = true; break;
		case OPT_LISTEN: d.cfg.listen = optarg; break;
		case OPT_INSECURE: d.cfg.insecure = true; break;
		case OPT_MASTER_KEY: d.cfg.master_key_file = optarg; break;
		case OPT_MAXCLIENTS: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || n < 1 || n > 4096) {
				fprintf(stderr, "qvisord: --max-clients must be 1..4096\n");
				return 2;
			}
			d.cfg.max_clients = (unsigned)n;
			break;
		}
		case OPT_MAXSTARTS: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || end == optarg || n > 4096) {
				fprintf(stderr, "qvisord: --max-starts must be 0..4096\n");
				return 2;
			}
			d.cfg.max_starts = (unsigned)n;
			max_starts_set = true;
			break;
		}
		case OPT_LOG:
			if (streq(optarg, "debug")) log_set_level(LOG_LEVEL_DEBUG);
			else if (streq(optarg, "info")) log_set_level(LOG_LEVEL_INFO);
			else if (streq(optarg, "warning")) log_set_level(LOG_LEVEL_WARNING);
			else if (streq(optarg, "error")) log_set_level(LOG_LEVEL_ERROR);
			else {
				fprintf(stderr, "qvisord: unknown log level %s\n", optarg);
				return 2;
			}
			break;
		case OPT_UIDS:
			if (qv_vm_uid_range_parse(optarg, &d.cfg.vm_uid_first, &d.cfg.vm_uid_count) < 0) {
				fprintf(stderr, "qvisord: --vm-uid-range must be FIRST-LAST, 0 < FIRST "
					"<= LAST, at most 1048576 ids\n");
				return 2;
			}
			break;
		case OPT_SERIALMAX: {
			char *end;
			unsigned long long n = strtoull(optarg, &end, 10);
			if (*end || n < 4096 || n > (1ull << 34)) {
				fprintf(stderr, "qvisord: --serial-log-max must be 4096..17179869184\n");
				return 2;
			}
			d.cfg.serial_log_max = n;
			break;
		}
		case OPT_LOOP_MODE: d.cfg.loop_mode = optarg; break;
		case OPT_METRICS: d.cfg.metrics_listen = optarg; break;
		case OPT_LOOP_INTERVAL:
			if (!opt_uint(optarg, 100, 60000, &d.cfg.loop_interval_ms)) {
				fprintf(stderr, "qvisord: --loop-interval must be 100..60000 ms\n");
				return 2;
			}
			break;
		case OPT_EXCL_MIN:
			if (!opt_uint(optarg, 2, 4096, &d.cfg.exclusive_min_cpus)) {
				fprintf(stderr, "qvisord: --exclusive-min-cpus must be 2..4096\n");
				return 2;
			}
			break;
		case OPT_CL_ENDPOINTS: d.cfg.cluster_endpoints = optarg; break;
		case OPT_CL_HOST: d.cfg.cluster_host = optarg; break;
		case OPT_CL_ADDRESS: d.cfg.cluster_address = optarg; break;
		case OPT_CL_PKI: d.cfg.cluster_pki_dir = optarg; break;
		case OPT_CL_LABELS:
			if (qv_cluster_labels_check(optarg) < 0) {
				fprintf(stderr, "qvisord: --cluster-labels must be k=v[,k=v..] of "
					"[a-zA-Z0-9_.-/]\n");
				return 2;
			}
			d.cfg.cluster_labels = optarg;
			break;
		case OPT_CL_TTL: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || n < 2 || n > 300) {
				fprintf(stderr, "qvisord: --cluster-ttl must be 2..300 seconds\n");
				return 2;
			}
			d.cfg.cluster_ttl_s = (unsigned)n;
			break;
		}
		case OPT_CL_MORE:
			if (qv_cluster_option(&d.cfg, opts[longindex].name, optarg) < 0)
				return 2;
			break;
		case OPT_CL_SHARED: d.cfg.cluster_shared_dirs = optarg; break;
		case OPT_CL_FENCE: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || !*optarg || n > 3600) {
				fprintf(stderr, "qvisord: --cluster-fence-timeout must be 0..3600 "
						"seconds (0: never self-fence)\n");
				return 2;
			}
			d.cfg.cluster_fence_timeout_s = (int)n;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qvisord: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if (d.cfg.state_dir[0] != '/' || d.cfg.run_dir[0] != '/') {
		fprintf(stderr, "qvisord: --state-dir and --run-dir must be absolute paths\n");
		return 2;
	}
	if (!d.cfg.socket_path) {
		if (asprintf(&sock, "%s/qvisord.sock", d.cfg.run_dir) < 0)
			return 1;
		d.cfg.socket_path = sock;
	}
	if (!max_starts_set) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		d.cfg.max_starts = QV_MAX_STARTS_PER_CPU * (unsigned)(cpus > 0 ? cpus : 1);
	}
	guest = find_guest_dir(guest_opt);
	d.cfg.guest_dir = guest;
	d.started_at = qv_unix_ms();

	if ((d.cfg.cluster_host || d.cfg.cluster_address || d.cfg.cluster_labels ||
	     d.cfg.cluster_capacity_vcpus || d.cfg.cluster_balance_interval_s ||
	     d.cfg.cluster_shared_dirs || d.cfg.cluster_fence_timeout_s >= 0) &&
	    !d.cfg.cluster_endpoints) {
		fprintf(stderr, "qvisord: --cluster-* options need --cluster-endpoints\n");
		return 2;
	}
	/* Plain HTTP to etcd: whoever is on the path reads and rewrites the
	 * cluster's state (ownership, placement). Only on purpose. */
	if (d.cfg.cluster_endpoints && strstr(d.cfg.cluster_endpoints, "http://") &&
	    !d.cfg.insecure) {
		fprintf(stderr, "qvisord: --cluster-endpoints names a plain http:// etcd endpoint: "
			"use https:// (mutual TLS) or pass --insecure to allow it\n");
		return 2;
	}
	r = no_core_dumps();
	if (r < 0)
		return 1;
	r = run(&d);
	/* Before the RPC server: cancelled cluster jobs still answer calls. */
	qv_move_free(&d);
	qv_cluster_free(&d);
	qv_rpc_server_free(d.rpc);
	qv_rpc_server_free(d.rpc_ro);
	qv_daemon_tls_free(&d);
	qv_vm_registry_free(&d);
	qv_net_registry_free(&d);
	qv_fw_free(&d);
	qv_image_registry_free(&d);
	qv_hostloop_free(&d);
	qv_cgroup_registry_free(&d);
	qv_state_close(d.state);
	qv_loop_free(d.loop);
	return r < 0 ? 1 : 0;
}
