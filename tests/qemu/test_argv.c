/* SPDX-License-Identifier: MIT */
/* QEMU argv builder: contents of the command line, option validation, and
 * real QEMU runs (TCG) checking the built argv is accepted: QMP answers,
 * sandbox on, TAP fd passing, and a guest kernel boot when one is built. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "common/json.h"
#include "qemu/argv.h"

static struct vm_spec *spec_parse(const char *text)
{
	struct qv_error err = {};
	struct vm_spec *spec = NULL;

	cr_assert_eq(vm_spec_from_string(text, &spec, &err), 0, "%s", err.message);
	return spec;
}

static char **build_ok(const struct vm_spec *spec, const struct qemu_argv_opts *opts)
{
	struct qv_error err = {};
	char **argv = NULL;

	cr_assert_eq(qemu_argv_build(spec, opts, &argv, &err), 0, "%s", err.message);
	cr_assert_not_null(argv);
	return argv;
}

static ssize_t find(char **argv, const char *s)
{
	for (size_t i = 0; argv[i]; i++)
		if (streq(argv[i], s))
			return (ssize_t)i;
	return -1;
}

/* Index of the value following the n-th (0-based) occurrence of opt. */
static const char *opt_value(char **argv, const char *opt, unsigned n)
{
	for (size_t i = 0; argv[i]; i++)
		if (streq(argv[i], opt) && argv[i + 1] && n-- == 0)
			return argv[i + 1];
	return NULL;
}

/* The -blockdev/-device JSON argument whose key equals value. */
static json_object *json_arg(char **argv, const char *opt, const char *key, const char *value)
{
	for (size_t i = 0; argv[i]; i++) {
		if (!streq(argv[i], opt) || !argv[i + 1] || argv[i + 1][0] != '{')
			continue;
		json_object *o = json_tokener_parse(argv[i + 1]), *v;
		cr_assert_not_null(o, "bad JSON: %s", argv[i + 1]);
		if (json_object_object_get_ex(o, key, &v) &&
		    streq(json_object_get_string(v), value))
			return o;
		json_object_put(o);
	}
	return NULL;
}

static const char *jget(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

#define FULL_SPEC                                                                           \
	"{\"name\":\"web1\",\"uuid\":\"0b6c1a4e-1111-4222-8333-444455556666\",\"vcpus\":2,"   \
	"\"memory\":\"512M\",\"kernel\":\"/g/vmlinuz\",\"initrd\":\"/g/initrd,x.img\","       \
	"\"cmdline\":\"console=ttyS0 quiet; rm -rf /\","                                      \
	"\"disks\":[{\"path\":\"/img/a,b.qcow2\",\"format\":\"qcow2\"},"                      \
	"{\"path\":\"/img/ro.raw\",\"readonly\":true,\"limits\":{\"rbps\":\"1M\",\"wiops\":9}}]," \
	"\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:aa:bb:cc\"},{\"network\":\"lan\"}]}"

static const int two_fds[] = { 7, 9 };

Test(argv, full_command_line)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(FULL_SPEC);
	struct qemu_argv_opts opts = { .run_dir = "/run/qvisor/vm/web1", .accel = VM_ACCEL_TCG,
				       .nic_fds = two_fds, .n_nic_fds = 2 };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);

	cr_assert_str_eq(argv[0], "qemu-system-x86_64");
	cr_assert_geq(find(argv, "-nodefaults"), 0);
	cr_assert_geq(find(argv, "-no-user-config"), 0);
	cr_assert_str_eq(opt_value(argv, "-display", 0), "none");
	cr_assert_str_eq(opt_value(argv, "-name", 0), "guest=web1,debug-threads=on");
	cr_assert_str_eq(opt_value(argv, "-uuid", 0), "0b6c1a4e-1111-4222-8333-444455556666");
	cr_assert_str_eq(opt_value(argv, "-machine", 0), "q35");
	cr_assert_str_eq(opt_value(argv, "-accel", 0), "tcg");
	cr_assert_str_eq(opt_value(argv, "-cpu", 0), "max");
	cr_assert_str_eq(opt_value(argv, "-smp", 0), "2");
	cr_assert_str_eq(opt_value(argv, "-m", 0), "512M");
	cr_assert_str_eq(opt_value(argv, "-kernel", 0), "/g/vmlinuz");
	cr_assert_str_eq(opt_value(argv, "-initrd", 0), "/g/initrd,x.img");
	/* the cmdline is one argv element, never shell-interpreted */
	cr_assert_str_eq(opt_value(argv, "-append", 0), "console=ttyS0 quiet; rm -rf /");
	cr_assert_lt(find(argv, "-sandbox"), 0);
	cr_assert_lt(find(argv, "-S"), 0);
	cr_assert_lt(find(argv, "-incoming"), 0);
	for (size_t i = 0; argv[i]; i++) {
		cr_assert(!streq(argv[i], "sh") && !streq(argv[i], "/bin/sh") &&
			  !streq(argv[i], "-c"), "shell-ish argument %s", argv[i]);
		cr_assert(!strstr(argv[i], "-nographic") && !strstr(argv[i], "stdio"),
			  "%s", argv[i]);
	}
}

Test(argv, disks_as_blockdev_json)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(FULL_SPEC);
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_KVM,
				       .nic_fds = two_fds, .n_nic_fds = 2 };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);
	json_object *o;

	cr_assert_str_eq(opt_value(argv, "-cpu", 0), "host");
	cr_assert_str_eq(opt_value(argv, "-accel", 0), "kvm");

	o = json_arg(argv, "-blockdev", "node-name", "disk0-file");
	cr_assert_not_null(o);
	cr_assert_str_eq(jget(o, "driver"), "file");
	cr_assert_str_eq(jget(o, "filename"), "/img/a,b.qcow2"); /* comma is safe in JSON */
	cr_assert_str_eq(jget(o, "read-only"), "false");
	json_object_put(o);
	o = json_arg(argv, "-blockdev", "node-name", "disk0");
	cr_assert_str_eq(jget(o, "driver"), "qcow2");
	cr_assert_str_eq(jget(o, "file"), "disk0-file");
	json_object_put(o);
	o = json_arg(argv, "-device", "id", "disk0-dev");
	cr_assert_str_eq(jget(o, "driver"), "virtio-blk-pci");
	cr_assert_str_eq(jget(o, "drive"), "disk0");
	cr_assert_str_eq(jget(o, "bus"), "rp-disk0");
	cr_assert_null(jget(o, "bootindex")); /* kernel boot */
	json_object_put(o);

	o = json_arg(argv, "-blockdev", "node-name", "disk1-file");
	cr_assert_str_eq(jget(o, "read-only"), "true");
	json_object_put(o);
	o = json_arg(argv, "-object", "id", "tg-disk1");
	cr_assert_not_null(o);
	cr_assert_str_eq(jget(o, "qom-type"), "throttle-group");
	json_object *l;
	cr_assert(json_object_object_get_ex(o, "limits", &l));
	cr_assert_str_eq(jget(l, "bps-read"), "1048576");
	cr_assert_str_eq(jget(l, "iops-write"), "9");
	cr_assert_null(jget(l, "bps-write"));
	json_object_put(o);
	o = json_arg(argv, "-blockdev", "node-name", "disk1-throttle");
	cr_assert_str_eq(jget(o, "file"), "disk1");
	json_object_put(o);
	o = json_arg(argv, "-device", "id", "disk1-dev");
	cr_assert_str_eq(jget(o, "drive"), "disk1-throttle");
	json_object_put(o);
	cr_assert_null(json_arg(argv, "-object", "id", "tg-disk0"));
}

/* The daemon's form: sockets, logs and disks as fds, backing set explicitly. */
Test(argv, daemon_fds_replace_paths)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(FULL_SPEC);
	static const struct qemu_backing_fd chain[] = { { 14, VM_DISK_QCOW2 }, { 15, VM_DISK_RAW } };
	const struct qemu_disk_fds disks[] = { { .fd = 13, .backing = chain, .n_backing = 2 },
					       { .fd = 16 } };
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_TCG,
				       .nic_fds = two_fds, .n_nic_fds = 2, .qmp_fd = 10,
				       .serial_fd = 11, .serial_log_fd = 12, .disk_fds = disks };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);
	_cleanup_free_ int *keep = NULL;
	size_t n_keep = 0;
	json_object *o, *v;
	bool add13 = false, add12 = false;

	for (char **a = argv; *a; a++) {
		add13 |= streq(*a, "-add-fd") && streq(a[1], "fd=13,set=10");
		add12 |= streq(*a, "-add-fd") && streq(a[1], "fd=12,set=1");
		cr_assert_null(strstr(*a, "/img/a,b.qcow2"), "a disk path reached argv: %s", *a);
		cr_assert_null(strstr(*a, "path=/r/"), "a run dir path reached argv: %s", *a);
	}
	cr_assert(add13 && add12);
	cr_assert_str_eq(opt_value(argv, "-chardev", 0), "socket,id=qmp,fd=10,server=on,wait=off");
	cr_assert_str_eq(opt_value(argv, "-chardev", 1),
			 "socket,id=serial0,fd=11,server=on,wait=off,logfile=/dev/fdset/1,"
			 "logappend=on");
	o = json_arg(argv, "-blockdev", "node-name", "disk0-file");
	cr_assert_str_eq(jget(o, "filename"), "/dev/fdset/10");
	json_object_put(o);
	o = json_arg(argv, "-blockdev", "node-name", "disk0");
	cr_assert_str_eq(jget(o, "backing"), "disk0-b0");
	json_object_put(o);
	o = json_arg(argv, "-blockdev", "node-name", "disk0-b0");
	cr_assert_str_eq(jget(o, "backing"), "disk0-b1");
	cr_assert_str_eq(jget(o, "read-only"), "true");
	json_object_put(o);
	o = json_arg(argv, "-blockdev", "node-name", "disk0-b1");
	cr_assert_str_eq(jget(o, "driver"), "raw");
	cr_assert_not(json_object_object_get_ex(o, "backing", &v), "raw has no backing option");
	json_object_put(o);
	o = json_arg(argv, "-blockdev", "node-name", "disk0-b1-file");
	cr_assert_str_eq(jget(o, "filename"), "/dev/fdset/12");
	json_object_put(o);

	cr_assert_eq(qemu_argv_collect_fds(spec, &opts, &keep, &n_keep), 0);
	cr_assert_eq(n_keep, 9, "kept %zu fds", n_keep);
}

Test(argv, qcow2_without_chain_gets_backing_null)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(FULL_SPEC);
	const struct qemu_disk_fds disks[] = { { .fd = 13 }, { .fd = 16 } };
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_TCG,
				       .nic_fds = two_fds, .n_nic_fds = 2, .disk_fds = disks };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);
	json_object *o = json_arg(argv, "-blockdev", "node-name", "disk0"), *v = (void *)1;

	cr_assert(json_object_object_get_ex(o, "backing", &v));
	cr_assert_null(v, "backing must be JSON null");
	json_object_put(o);

	/* A backing chain on a raw disk is refused. */
	static const struct qemu_backing_fd chain[] = { { 14, VM_DISK_RAW } };
	const struct qemu_disk_fds bad[] = { { .fd = 13 }, { .fd = 16, .backing = chain, .n_backing = 1 } };
	struct qv_error err = {};
	char **av = NULL;
	opts.disk_fds = bad;
	cr_assert_lt(qemu_argv_build(spec, &opts, &av, &err), 0);
	cr_assert(strstr(err.message, "spec.disks[1]"), "%s", err.message);
}

Test(argv, nics_get_tap_fds)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(FULL_SPEC);
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_TCG,
				       .nic_fds = two_fds, .n_nic_fds = 2 };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);

	cr_assert_str_eq(opt_value(argv, "-netdev", 0), "tap,id=net0,fd=7,vhost=off");
	cr_assert_str_eq(opt_value(argv, "-netdev", 1), "tap,id=net1,fd=9,vhost=off");
	json_object *o = json_arg(argv, "-device", "id", "net0-dev");
	cr_assert_str_eq(jget(o, "driver"), "virtio-net-pci");
	cr_assert_str_eq(jget(o, "netdev"), "net0");
	cr_assert_str_eq(jget(o, "mac"), "52:54:00:aa:bb:cc");
	cr_assert_str_eq(jget(o, "bus"), "rp-net0");
	json_object_put(o);
	o = json_arg(argv, "-device", "id", "net1-dev");
	cr_assert_str_eq(jget(o, "mac"), spec->nics[1].mac);
	json_object_put(o);
}

Test(argv, nic_without_fd)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(FULL_SPEC);
	const int one[] = { 5, -1 };
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_TCG, .nic_fds = one,
				       .n_nic_fds = 2 };
	struct qv_error err = {};
	char **argv = NULL;

	cr_assert_eq(qemu_argv_build(spec, &opts, &argv, &err), -EINVAL);
	cr_assert_null(argv);
	cr_assert(strstr(err.message, "spec.nics[1]: no TAP fd"), "%s", err.message);
	opts.n_nic_fds = 1;
	qv_error_clear(&err);
	cr_assert_eq(qemu_argv_build(spec, &opts, &argv, &err), -EINVAL);

	opts.nic_user_fallback = true;
	argv = build_ok(spec, &opts);
	cr_assert_str_eq(opt_value(argv, "-netdev", 0), "tap,id=net0,fd=5,vhost=off");
	cr_assert_str_eq(opt_value(argv, "-netdev", 1), "user,id=net1");
	strv_free(argv);
}

Test(argv, q35_hotplug_ports_and_pc_without)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec =
		spec_parse("{\"name\":\"a\",\"disks\":[{\"path\":\"/d\"}]}");
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_TCG };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);
	unsigned chassis_seen = 0;

	for (unsigned i = 0; i < QEMU_HOTPLUG_PORTS; i++) {
		char id[8];
		snprintf(id, sizeof(id), "hp%u", i);
		json_object *o = json_arg(argv, "-device", "id", id);
		cr_assert_not_null(o, "%s missing", id);
		cr_assert_str_eq(jget(o, "driver"), "pcie-root-port");
		unsigned c = (unsigned)atoi(jget(o, "chassis"));
		cr_assert(c >= 1 && c < 32 && !(chassis_seen & (1u << c)), "chassis %u reused", c);
		chassis_seen |= 1u << c;
		json_object_put(o);
	}
	json_object *o = json_arg(argv, "-device", "id", "disk0-dev");
	cr_assert_str_eq(jget(o, "bootindex"), "0");
	json_object_put(o);

	free(spec->machine);
	spec->machine = strdup("pc");
	char **pc = build_ok(spec, &opts);
	cr_assert_null(json_arg(pc, "-device", "id", "hp0"));
	o = json_arg(pc, "-device", "id", "disk0-dev");
	cr_assert_null(jget(o, "bus"));
	json_object_put(o);
	strv_free(pc);
}

Test(argv, sandbox_paused_incoming)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse("{\"name\":\"a\",\"kernel\":\"/k\"}");
	struct qemu_argv_opts opts = { .qemu_binary = "/usr/bin/qemu-system-x86_64",
				       .run_dir = "/r", .accel = VM_ACCEL_TCG, .sandbox = true,
				       .start_paused = true, .incoming = "defer" };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);

	cr_assert_str_eq(argv[0], "/usr/bin/qemu-system-x86_64");
	cr_assert_str_eq(opt_value(argv, "-sandbox", 0),
			 "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	cr_assert_geq(find(argv, "-S"), 0);
	cr_assert_str_eq(opt_value(argv, "-incoming", 0), "defer");
	cr_assert_lt(find(argv, "-initrd"), 0);
	cr_assert_lt(find(argv, "-append"), 0);
	cr_assert_lt(find(argv, "-netdev"), 0);
}

Test(argv, chardevs_and_escaping)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse("{\"name\":\"a\",\"kernel\":\"/k\"}");
	struct qemu_argv_opts opts = { .run_dir = "/run/a,b", .accel = VM_ACCEL_TCG };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);

	cr_assert_str_eq(opt_value(argv, "-chardev", 0),
			 "socket,id=qmp,path=/run/a,,b/qmp.sock,server=on,wait=off");
	cr_assert_str_eq(opt_value(argv, "-mon", 0), "chardev=qmp,mode=control");
	cr_assert_str_eq(opt_value(argv, "-chardev", 1),
			 "socket,id=serial0,path=/run/a,,b/serial.sock,server=on,wait=off,"
			 "logfile=/run/a,,b/serial.log,logappend=on");
	cr_assert_str_eq(opt_value(argv, "-serial", 0), "chardev:serial0");

	spec->serial_log = false;
	char **nolog = build_ok(spec, &opts);
	cr_assert_null(strstr(opt_value(nolog, "-chardev", 1), "logfile"));
	strv_free(nolog);
}

Test(argv, option_validation)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse("{\"name\":\"a\",\"kernel\":\"/k\"}");
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_AUTO };
	struct qv_error err = {};
	char **argv = NULL, longdir[200];

	cr_assert_eq(qemu_argv_build(spec, &opts, &argv, &err), -EINVAL);
	cr_assert(strstr(err.message, "accelerator"), "%s", err.message);

	/* 96 + "/serial.sock" = 108 bytes: one too many for sun_path */
	memset(longdir, 'x', sizeof(longdir));
	longdir[0] = '/';
	longdir[96] = '\0';
	opts = (struct qemu_argv_opts){ .run_dir = longdir, .accel = VM_ACCEL_TCG };
	qv_error_clear(&err);
	cr_assert_eq(qemu_argv_build(spec, &opts, &argv, &err), -ENAMETOOLONG);
	cr_assert(strstr(err.message, "too long"), "%s", err.message);
	cr_assert(strstr(err.message, "at most 95"), "%s", err.message);
	longdir[95] = '\0';
	argv = build_ok(spec, &opts);
	strv_free(argv);
	argv = NULL;

	opts.run_dir = "relative/dir";
	qv_error_clear(&err);
	cr_assert_eq(qemu_argv_build(spec, &opts, &argv, &err), -EINVAL);
	opts.run_dir = "/r";
	opts.incoming = "defer\n";
	qv_error_clear(&err);
	cr_assert_eq(qemu_argv_build(spec, &opts, &argv, &err), -EINVAL);
	cr_assert_null(argv);
}

Test(argv, to_string_quotes)
{
	char *argv[] = { "qemu", "-append", "a b'c", "-m", "256M", NULL };
	_cleanup_free_ char *s = qemu_argv_to_string(argv);

	cr_assert_str_eq(s, "qemu -append 'a b'\\''c' -m 256M");
}

/* ---- real QEMU ------------------------------------------------------------ */

static bool have_qemu(void)
{
	return access("/usr/bin/qemu-system-x86_64", X_OK) == 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t spawn(char **argv, const char *run_dir)
{
	char log[256];

	snprintf(log, sizeof(log), "%s/qemu.log", run_dir);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0 || nul < 0)
			_exit(126);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		/* a failed assertion ends the test process: take QEMU with it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Connect to qmp.sock within a generous deadline; returns the fd. */
static int qmp_connect(const char *run_dir, pid_t pid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double deadline = now_s() + 60;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qmp.sock", run_dir);
	while (now_s() < deadline) {
		int status;
		cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "QEMU exited early, see %s/qemu.log",
			     run_dir);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		usleep(50 * 1000);
	}
	cr_assert_fail("qmp.sock did not appear");
	return -1;
}

/* Read until `needle` shows up (or 30 s pass); returns the accumulated text. */
static char *read_until(int fd, const char *needle)
{
	static char buf[65536];
	size_t n = 0;
	double deadline = now_s() + 30;

	buf[0] = '\0';
	while (!strstr(buf, needle) && now_s() < deadline && n < sizeof(buf) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 500) <= 0)
			continue;
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
	}
	return buf;
}

static void qmp_cmd(int fd, const char *cmd)
{
	cr_assert_eq(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
}

static void stop_qemu(int qmp, pid_t pid)
{
	int status;

	qmp_cmd(qmp, "{\"execute\":\"quit\"}\n");
	for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(50 * 1000);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	close(qmp);
}

static char *make_run_dir(void)
{
	char *d = strdup("/tmp/qv-argv-XXXXXX");

	cr_assert_not_null(mkdtemp(d));
	return d;
}

static void rm_run_dir(char *d)
{
	const char *files[] = { "qmp.sock", "serial.sock", "serial.log", "qemu.log", "d.raw" };
	char p[256];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(p, sizeof(p), "%s/%s", d, files[i]);
		unlink(p);
	}
	rmdir(d);
	free(d);
}

Test(argv_qemu, disk_boot_sandboxed_qmp_answers, .timeout = 120)
{
	if (!have_qemu())
		cr_skip_test("qemu-system-x86_64 not installed");
	char *dir = make_run_dir(), img[256], text[512];
	snprintf(img, sizeof(img), "%s/d.raw", dir);
	int fd = open(img, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 16 << 20), 0);
	close(fd);
	snprintf(text, sizeof(text),
		 "{\"name\":\"argv-test\",\"memory\":64,\"disks\":[{\"path\":\"%s\","
		 "\"limits\":{\"rbps\":\"10M\",\"wiops\":100}}]}", img);
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(text);
	struct qemu_argv_opts opts = { .qemu_binary = "/usr/bin/qemu-system-x86_64",
				       .run_dir = dir, .accel = VM_ACCEL_TCG, .sandbox = true,
				       .start_paused = true };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);

	pid_t pid = spawn(argv, dir);
	int qmp = qmp_connect(dir, pid);
	cr_assert_not_null(strstr(read_until(qmp, "\"QMP\""), "\"QMP\""));
	qmp_cmd(qmp, "{\"execute\":\"qmp_capabilities\"}\n"
		     "{\"execute\":\"query-name\"}\n");
	cr_assert_not_null(strstr(read_until(qmp, "argv-test"), "\"name\": \"argv-test\""));
	qmp_cmd(qmp, "{\"execute\":\"query-block\"}\n");
	const char *blk = read_until(qmp, "disk0-dev");
	cr_assert_not_null(strstr(blk, "\"qdev\": \"/machine/peripheral/disk0-dev/virtio-backend\""),
			   "%s", blk);
	cr_assert_not_null(strstr(blk, "\"node-name\": \"disk0-throttle\""), "%s", blk);
	qmp_cmd(qmp, "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/objects/tg-disk0\","
		     "\"property\":\"limits\"}}\n");
	blk = read_until(qmp, "iops-write");
	cr_assert_not_null(strstr(blk, "\"bps-read\": 10485760"), "%s", blk);
	cr_assert_not_null(strstr(blk, "\"iops-write\": 100,"), "%s", blk);
	qmp_cmd(qmp, "{\"execute\":\"query-status\"}\n");
	cr_assert_not_null(strstr(read_until(qmp, "\"status\": \"prelaunch\""), "prelaunch"));
	struct stat st;
	char p[256];
	snprintf(p, sizeof(p), "%s/serial.sock", dir);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	stop_qemu(qmp, pid);
	rm_run_dir(dir);
}

static int open_tap(char ret_name[IFNAMSIZ])
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int fd = open("/dev/net/tun", O_RDWR); /* inheritable on purpose */

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "qvargv%d", getpid() % 100000);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	snprintf(ret_name, IFNAMSIZ, "%s", ifr.ifr_name);
	return fd;
}

Test(argv_qemu, tap_fd_is_accepted, .timeout = 120)
{
	char tap[IFNAMSIZ];

	if (!have_qemu())
		cr_skip_test("qemu-system-x86_64 not installed");
	int tfd = open_tap(tap);
	if (tfd < 0)
		cr_skip_test("cannot create a TAP device here: %s", strerror(-tfd));
	char *dir = make_run_dir(), img[256], text[512];
	snprintf(img, sizeof(img), "%s/d.raw", dir);
	close(open(img, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	snprintf(text, sizeof(text),
		 "{\"name\":\"tap-test\",\"memory\":64,\"disks\":[{\"path\":\"%s\"}],"
		 "\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:01:02:03\"}]}", img);
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(text);
	struct qemu_argv_opts opts = { .qemu_binary = "/usr/bin/qemu-system-x86_64",
				       .run_dir = dir, .accel = VM_ACCEL_TCG, .nic_fds = &tfd,
				       .n_nic_fds = 1, .start_paused = true };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);

	pid_t pid = spawn(argv, dir);
	close(tfd);
	int qmp = qmp_connect(dir, pid);
	read_until(qmp, "\"QMP\"");
	qmp_cmd(qmp, "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"human-monitor-command\","
		     "\"arguments\":{\"command-line\":\"info network\"}}\n");
	const char *out = read_until(qmp, "fd=");
	cr_assert_not_null(strstr(out, "net0: index=0,type=tap,fd="), "%s", out);
	cr_assert_not_null(strstr(out, "macaddr=52:54:00:01:02:03"), "%s", out);
	/* hotplug into a free root port works with the ports we added */
	qmp_cmd(qmp, "{\"execute\":\"netdev_add\",\"arguments\":{\"type\":\"user\",\"id\":\"hpn\"}}\n"
		     "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"virtio-net-pci\","
		     "\"netdev\":\"hpn\",\"id\":\"hpn-dev\",\"bus\":\"hp0\"}}\n"
		     "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/"
		     "hpn-dev\",\"property\":\"parent_bus\"}}\n");
	out = read_until(qmp, "/hp0/");
	cr_assert_null(strstr(out, "\"error\""), "%s", out);
	cr_assert_not_null(strstr(out, "\"return\": \"/machine/peripheral/hp0/hp0\""), "%s", out);
	stop_qemu(qmp, pid);
	rm_run_dir(dir);
}

Test(argv_qemu, guest_kernel_boots_to_serial_log, .timeout = 180)
{
	const char *gdir = getenv("QV_GUEST_DIR") ? getenv("QV_GUEST_DIR") : "build/guest";
	char kernel[512], initrd[512], text[2048];

	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", gdir);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", gdir);
	if (!have_qemu())
		cr_skip_test("qemu-system-x86_64 not installed");
	if (access(kernel, R_OK) != 0)
		cr_skip_test("no test guest kernel at %s (make guest)", kernel);
	_cleanup_free_ char *ak = realpath(kernel, NULL);
	_cleanup_free_ char *ai = access(initrd, R_OK) == 0 ? realpath(initrd, NULL) : NULL;
	snprintf(text, sizeof(text),
		 "{\"name\":\"boot-test\",\"memory\":256,\"kernel\":\"%s\"%s%s%s,"
		 "\"cmdline\":\"console=ttyS0 panic=-1\"}", ak, ai ? ",\"initrd\":\"" : "",
		 ai ? ai : "", ai ? "\"" : "");
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(text);
	char *dir = make_run_dir();
	struct qemu_argv_opts opts = { .qemu_binary = "/usr/bin/qemu-system-x86_64",
				       .run_dir = dir, .accel = VM_ACCEL_TCG, .sandbox = true };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);

	pid_t pid = spawn(argv, dir);
	int qmp = qmp_connect(dir, pid);
	char log[256];
	snprintf(log, sizeof(log), "%s/serial.log", dir);
	bool seen = false;
	for (double deadline = now_s() + 120; !seen && now_s() < deadline; usleep(200 * 1000)) {
		_cleanup_fclose_ FILE *f = fopen(log, "re");
		char line[1024];
		while (f && fgets(line, sizeof(line), f))
			seen |= strstr(line, "Linux version") != NULL;
	}
	cr_assert(seen, "no \"Linux version\" in %s", log);
	stop_qemu(qmp, pid);
	rm_run_dir(dir);
}

/* An encrypted disk: only ciphertext on argv, the master key as an fd. */
Test(argv, encrypted_disk_gets_an_encrypted_secret)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = spec_parse(FULL_SPEC);
	const struct qemu_disk_fds disks[] = { { .fd = 13, .key_data = "Q1RDVA==", .key_iv = "SVY=" },
					       { .fd = 16 } };
	struct qemu_argv_opts opts = { .run_dir = "/r", .accel = VM_ACCEL_TCG,
				       .nic_fds = two_fds, .n_nic_fds = 2, .disk_fds = disks,
				       .secret_master_fd = 20 };
	_cleanup_strv_free_ char **argv = build_ok(spec, &opts);
	json_object *m = json_arg(argv, "-object", "id", "qv-master");
	json_object *s = json_arg(argv, "-object", "id", "disk0-secret");
	json_object *d = json_arg(argv, "-blockdev", "node-name", "disk0"), *enc;

	cr_assert_not_null(m);
	cr_assert_str_eq(jget(m, "file"), "/proc/self/fd/20");
	cr_assert_str_eq(jget(m, "format"), "raw");
	cr_assert_not_null(s);
	cr_assert_str_eq(jget(s, "data"), "Q1RDVA==");
	cr_assert_str_eq(jget(s, "keyid"), "qv-master");
	cr_assert_str_eq(jget(s, "iv"), "SVY=");
	cr_assert_str_eq(jget(s, "format"), "base64");
	cr_assert(json_object_object_get_ex(d, "encrypt", &enc));
	cr_assert_str_eq(jget(enc, "format"), "luks");
	cr_assert_str_eq(jget(enc, "key-secret"), "disk0-secret");
	/* The master object comes before the secret that names it. */
	ssize_t im = -1, is = -1;
	for (size_t i = 0; argv[i]; i++) {
		if (strstr(argv[i], "\"id\":\"qv-master\""))
			im = (ssize_t)i;
		if (strstr(argv[i], "\"id\":\"disk0-secret\""))
			is = (ssize_t)i;
	}
	cr_assert(im > 0 && is > im, "qv-master at %zd, disk0-secret at %zd", im, is);
	json_object_put(m);
	json_object_put(s);
	json_object_put(d);
	_cleanup_free_ int *fds = NULL;
	size_t n = 0;
	cr_assert_eq(qemu_argv_collect_fds(spec, &opts, &fds, &n), 0);
	bool kept = false;
	for (size_t i = 0; i < n; i++)
		kept |= fds[i] == 20;
	cr_assert(kept, "the master key fd is not kept for QEMU");

	/* No master key fd, or a key on a raw disk: refused. */
	struct qv_error err = {};
	char **av = NULL;
	opts.secret_master_fd = 0;
	cr_assert_lt(qemu_argv_build(spec, &opts, &av, &err), 0);
	cr_assert(strstr(err.message, "encrypted"), "%s", err.message);
	const struct qemu_disk_fds raw_enc[] = { { .fd = 13 },
						 { .fd = 16, .key_data = "x", .key_iv = "y" } };
	opts.secret_master_fd = 20;
	opts.disk_fds = raw_enc;
	qv_error_clear(&err);
	cr_assert_lt(qemu_argv_build(spec, &opts, &av, &err), 0);
	cr_assert(strstr(err.message, "spec.disks[1]"), "%s", err.message);
}
