/* SPDX-License-Identifier: MIT */
/* Isolation between VMs, and between QEMU and the host (issue 12,
 * docs/security.md). Each test re-runs an attack that worked before:
 *  - a process with VM A's uid, under qvisor's seccomp filter, reaching VM
 *    B's RAM (/proc/pid/mem, process_vm_readv), its disk fd (pidfd_getfd),
 *    its disk image, its serial socket, or signalling it;
 *  - `nobody` reading a disk image or the state database;
 *  - a symlink or hard link planted as qemu.log, a foreign-owned run dir;
 *  - importing a qcow2 whose data lives in another file. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "common/json.h"
#include "common/macro.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"
#include "qemu/sandbox.h"

static struct qvt_daemon dmn;

static void daemon_up(void)
{
	qvt_daemon_fixture_start(&dmn);
}

static void daemon_down(void)
{
	qvt_daemon_cleanup(&dmn);
}

static uid_t proc_uid(pid_t pid)
{
	char path[64], line[256];
	unsigned uid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "%s", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u", &uid) == 1)
			break;
	fclose(f);
	return uid;
}

/* Create pool image `name` and return its path (static buffer). */
static const char *pool_image(const char *name, const char *clone_of)
{
	static char path[2][256];
	static int slot;
	struct qv_error err = {};
	json_object *r = NULL, *p;

	if (clone_of)
		cr_assert_eq(qvt_callf(&dmn, "image.clone", &r, &err,
				       "{\"source\":\"%s\",\"name\":\"%s\",\"linked\":true}",
				       clone_of, name), 0, "clone: %s", err.message);
	else
		cr_assert_eq(qvt_callf(&dmn, "image.create", &r, &err,
				       "{\"name\":\"%s\",\"size\":\"16M\",\"format\":\"qcow2\"}",
				       name), 0, "create: %s", err.message);
	json_object_put(r);
	r = NULL;
	cr_assert_eq(qvt_callf(&dmn, "image.info", &r, &err, "{\"name\":\"%s\"}", name), 0, "%s",
		     err.message);
	cr_assert(json_object_object_get_ex(r, "path", &p));
	slot ^= 1;
	snprintf(path[slot], sizeof(path[slot]), "%s", json_object_get_string(p));
	json_object_put(r);
	return path[slot];
}

static pid_t boot_with_disk(const char *name, const char *disk)
{
	struct qv_error err = {};
	char extra[512];
	json_object *r;

	snprintf(extra, sizeof(extra), "{\"disks\":[{\"path\":\"%s\",\"format\":\"qcow2\"}]}",
		 disk);
	cr_assert_eq(qvt_define_guest(&dmn, name, extra, &err), 0, "define: %s", err.message);
	r = qvt_call_name(&dmn, "vm.start", name, &err);
	cr_assert_not_null(r, "start %s: %s", name, err.message);
	json_object_put(r);
	return qvt_vm_pid(&dmn, name);
}

/* The fd number under which pid holds path open, or -1. */
static int fd_of(pid_t pid, const char *path)
{
	char dir[64], link[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	int found = -1;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((de = readdir(d)) && found < 0) {
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0 && (target[n] = '\0', streq(target, path)))
			found = atoi(de->d_name);
	}
	closedir(d);
	return found;
}

/* What the probe tried; each entry is the errno it got (0 = it worked). */
enum { P_MEM, P_VMREAD, P_PIDFD_OPEN, P_GETFD, P_DISK, P_SERIAL, P_KILL, P_N };
static const char *const probe_names[P_N] = {
	"open /proc/B/mem", "process_vm_readv(B)", "pidfd_open(B)", "pidfd_getfd(B disk)",
	"open B's disk", "connect B's serial", "kill(B)",
};

struct probe {
	uid_t uid;
	pid_t target;
	int target_pidfd; /* opened by root before dropping ids */
	int target_disk_fd;
	const char *disk, *serial;
	bool seccomp;
};

static int try_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
	close(fd);
	return r;
}

static int res(long r)
{
	return r < 0 ? errno : 0;
}

/* In a child: become uid (as QEMU of VM A is), optionally load qvisor's
 * filter, try every path into VM B; write the errnos to the pipe. */
static void run_probe(const struct probe *p, int out)
{
	int e[P_N];
	char mem[64], buf[16];
	struct iovec local = { buf, sizeof(buf) }, remote = { (void *)0x400000, sizeof(buf) };
	qemu_sandbox *sb = NULL;

	if (p->seccomp && qemu_sandbox_new(&sb, NULL) < 0)
		_exit(2);
	if (setgroups(0, NULL) < 0 || setresgid(p->uid, p->uid, p->uid) < 0 ||
	    setresuid(p->uid, p->uid, p->uid) < 0)
		_exit(3);
	if (sb && qemu_sandbox_install(sb) < 0)
		_exit(4);
	snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)p->target);
	e[P_MEM] = res(open(mem, O_RDONLY | O_CLOEXEC));
	e[P_VMREAD] = res(process_vm_readv(p->target, &local, 1, &remote, 1, 0));
	e[P_PIDFD_OPEN] = res(syscall(SYS_pidfd_open, p->target, 0));
	e[P_GETFD] = res(syscall(SYS_pidfd_getfd, p->target_pidfd, p->target_disk_fd, 0));
	e[P_DISK] = res(open(p->disk, O_RDONLY | O_CLOEXEC));
	e[P_SERIAL] = try_connect(p->serial);
	e[P_KILL] = res(kill(p->target, 0));
	_exit(write(out, e, sizeof(e)) == sizeof(e) ? 0 : 5);
}

static void probe_denied(const struct probe *p)
{
	int pfd[2], e[P_N], st;
	pid_t pid;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		run_probe(p, pfd[1]);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], e, sizeof(e)), (ssize_t)sizeof(e), "probe failed to run");
	close(pfd[0]);
	waitpid(pid, &st, 0);
	for (int i = 0; i < P_N; i++) {
		cr_log_info("probe uid %u %s seccomp: %s -> %s", (unsigned)p->uid,
			    p->seccomp ? "with" : "without", probe_names[i], strerror(e[i]));
		/* A pidfd alone grants nothing (signals and fds still need
		 * permission); only the filter refuses to hand one out. */
		if (i == P_PIDFD_OPEN && !p->seccomp)
			continue;
		cr_expect(e[i] == EPERM || e[i] == EACCES || e[i] == ESRCH,
			  "%s by uid %u (%s seccomp) was not denied: %s", probe_names[i],
			  (unsigned)p->uid, p->seccomp ? "with" : "without",
			  e[i] ? strerror(e[i]) : "it worked");
	}
}

/* As `nobody`: nothing in the state dir can be opened. */
static void nobody_reads_nothing(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[PATH_MAX];

	cr_assert_not_null(d, "%s", dir);
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.'))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) < 0 || S_ISLNK(st.st_mode))
			continue;
		if (S_ISDIR(st.st_mode) && depth < 3)
			nobody_reads_nothing(p, depth + 1);
		if (!S_ISREG(st.st_mode))
			continue;
		pid_t pid = fork();
		if (pid == 0) {
			if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
			    setresuid(65534, 65534, 65534) < 0)
				_exit(3);
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			_exit(fd < 0 && errno == EACCES ? 0 : 1);
		}
		int ws;
		waitpid(pid, &ws, 0);
		cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "nobody can open %s", p);
	}
	closedir(d);
}

Test(isolation, two_vms_have_distinct_uids_and_cannot_reach_each_other, .init = daemon_up,
     .fini = daemon_down, .timeout = 300)
{
	char serial_b[256], run_b[256];
	QVT_REQUIRE_DAEMON(&dmn);
	char disk_a[256], disk_b[256];

	snprintf(disk_a, sizeof(disk_a), "%s", pool_image("a-disk", NULL));
	/* B boots from a linked clone: its backing is passed as an fd too. */
	(void)pool_image("base", NULL);
	snprintf(disk_b, sizeof(disk_b), "%s", pool_image("b-disk", "base"));
	pid_t a = boot_with_disk("a", disk_a), b = boot_with_disk("b", disk_b);
	cr_assert_gt(a, 0);
	cr_assert_gt(b, 0);
	uid_t ua = proc_uid(a), ub = proc_uid(b);
	cr_assert_neq(ua, ub, "both VMs run as uid %u", (unsigned)ua);
	cr_assert_neq(ua, 0);
	cr_assert_neq(ub, 0);

	snprintf(run_b, sizeof(run_b), "%s/vms/b", dmn.run_dir);
	snprintf(serial_b, sizeof(serial_b), "%s/serial.sock", run_b);
	struct probe p = {
		.uid = ua, .target = b, .disk = disk_b, .serial = serial_b,
		.target_pidfd = (int)syscall(SYS_pidfd_open, b, 0),
		.target_disk_fd = fd_of(b, disk_b),
	};
	cr_assert_geq(p.target_pidfd, 0);
	cr_assert_geq(p.target_disk_fd, 0, "QEMU of B does not hold its disk %s", disk_b);
	/* Both layers on their own: the per-VM uid, then uid + seccomp. */
	probe_denied(&p);
	p.seccomp = true;
	probe_denied(&p);
	close(p.target_pidfd);

	/* QEMU holds its disks, but nobody else can read them or the DB. */
	nobody_reads_nothing(dmn.state_dir, 0);
	struct stat st;
	cr_assert_eq(stat(disk_a, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600, "image mode %o", st.st_mode & 0777);
	cr_expect_eq(st.st_uid, 0, "image owned by %u", (unsigned)st.st_uid);

	/* QEMU's mount namespace shows neither the state dir nor the run dir. */
	char seen[512];
	snprintf(seen, sizeof(seen), "/proc/%d/root%s", (int)a, dmn.state_dir);
	cr_expect_neq(access(seen, F_OK), 0, "QEMU of A sees %s", dmn.state_dir);
	snprintf(seen, sizeof(seen), "/proc/%d/root%s/vms/b", (int)a, dmn.run_dir);
	cr_expect_neq(access(seen, F_OK), 0, "QEMU of A sees B's run dir");
	snprintf(seen, sizeof(seen), "/proc/%d/root%s/vms/a/qmp.sock", (int)a, dmn.run_dir);
	cr_expect_neq(access(seen, F_OK), 0, "QEMU of A sees its run dir's sockets");
	snprintf(seen, sizeof(seen), "/proc/%d/root/usr/bin", (int)a);
	cr_expect_eq(access(seen, F_OK), 0, "QEMU of A has no /usr/bin");

	/* QEMU took the fd-passed disks and B's backing chain: still running. */
	cr_assert_eq(kill(a, 0), 0);
	cr_assert_eq(kill(b, 0), 0);
}

/* Files outside the run dir that the plants point at. */
static void make_victim(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "secret\n", 7), 7);
	close(fd);
}

static void assert_victim(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "%s is gone", path);
	cr_expect_eq(st.st_size, 7, "%s changed size: %lld", path, (long long)st.st_size);
	cr_expect_eq(st.st_uid, 0, "%s re-owned to %u", path, (unsigned)st.st_uid);
	cr_expect_eq(st.st_mode & 07777, 0600, "%s mode changed to %o", path,
		     st.st_mode & 07777);
}

static void start_and_stop(const char *name)
{
	struct qv_error err = {};
	json_object *r = qvt_call_name(&dmn, "vm.start", name, &err);

	cr_assert_not_null(r, "start: %s", err.message);
	json_object_put(r);
	cr_assert_not_null(qvt_callf(&dmn, "vm.stop", &r, &err, "{\"name\":\"%s\",\"force\":true}",
				     name) == 0 ? r : NULL, "stop: %s", err.message);
	json_object_put(r);
}

Test(isolation, planted_qemu_log_links_change_nothing_outside, .init = daemon_up,
     .fini = daemon_down, .timeout = 120)
{
	struct qv_error err = {};
	char vdir[256], log[300], v1[256], v2[256], v3[256], junk[300];
	struct stat st;

	QVT_REQUIRE_DAEMON(&dmn);
	cr_assert_eq(qvt_define_guest(&dmn, "p", NULL, &err), 0, "%s", err.message);
	snprintf(v1, sizeof(v1), "%s/victim-symlink", dmn.dir);
	snprintf(v2, sizeof(v2), "%s/victim-hardlink", dmn.dir);
	snprintf(v3, sizeof(v3), "%s/victim-chown", dmn.dir);
	make_victim(v1);
	make_victim(v2);
	make_victim(v3);
	/* What QEMU's user could leave when it owned the run dir. */
	snprintf(vdir, sizeof(vdir), "%s/vms", dmn.run_dir);
	(void)mkdir(vdir, 0700);
	snprintf(vdir, sizeof(vdir), "%s/vms/p", dmn.run_dir);
	cr_assert_eq(mkdir(vdir, 0777), 0);
	cr_assert_eq(chown(vdir, 65534, 65534), 0);
	snprintf(log, sizeof(log), "%s/qemu.log", vdir);
	cr_assert_eq(symlink(v1, log), 0);
	snprintf(junk, sizeof(junk), "%s/junk", vdir);
	cr_assert_eq(link(v3, junk), 0);

	start_and_stop("p");
	assert_victim(v1);
	assert_victim(v3);
	cr_assert_eq(lstat(log, &st), 0);
	cr_expect(S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == 0,
		  "qemu.log is not a fresh root-owned file");
	cr_assert_eq(stat(vdir, &st), 0);
	cr_expect_eq(st.st_uid, 0, "run dir still owned by %u", (unsigned)st.st_uid);
	cr_expect_eq(st.st_mode & 07777, 0700, "run dir mode %o", st.st_mode & 07777);

	/* Second round: a hard link to a root file as qemu.log. */
	cr_assert_eq(unlink(log), 0);
	cr_assert_eq(link(v2, log), 0);
	start_and_stop("p");
	assert_victim(v2);
	cr_assert_eq(lstat(log, &st), 0);
	cr_expect_eq(st.st_nlink, 1, "qemu.log is still a hard link");

	/* Undefine removes the run dir. */
	json_object *r = qvt_call_name(&dmn, "vm.undefine", "p", &err);
	cr_assert_not_null(r, "undefine: %s", err.message);
	json_object_put(r);
	cr_expect_eq(stat(vdir, &st), -1, "run dir %s survived undefine", vdir);
	assert_victim(v3);
}

static void run(const char *cmd)
{
	int r = system(cmd);
	cr_assert_eq(r, 0, "%s failed", cmd);
}

Test(isolation, qcow2_naming_other_files_is_not_imported, .init = daemon_up, .fini = daemon_down,
     .timeout = 60)
{
	struct qv_error err = {};
	char cmd[1024], img[256], bimg[256];
	json_object *r = NULL;

	QVT_REQUIRE_DAEMON(&dmn);
	snprintf(img, sizeof(img), "%s/datafile.qcow2", dmn.dir);
	snprintf(bimg, sizeof(bimg), "%s/backed.qcow2", dmn.dir);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img create -q -f qcow2 -o data_file=%s/data.raw %s 16M && "
		 "qemu-img create -q -f qcow2 -b %s -F qcow2 %s",
		 dmn.dir, img, img, bimg);
	run(cmd);
	int before = qvt_pool_entries(&dmn);

	cr_assert_lt(qvt_callf(&dmn, "image.import", &r, &err, "{\"path\":\"%s\",\"name\":\"df\"}",
			       img), 0, "a data-file qcow2 was imported");
	cr_expect_str_eq(err.reason, "invalid-argument");
	cr_expect(strstr(err.message, "external data file"), "%s", err.message);

	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&dmn, "image.import", &r, &err, "{\"path\":\"%s\",\"name\":\"bk\"}",
			       bimg), 0, "a qcow2 with a backing file was imported");
	cr_expect(strstr(err.message, "backing file"), "%s", err.message);
	cr_expect_eq(qvt_pool_entries(&dmn), before, "the pool changed");
}

/* In a child as uid/gid: call method on the socket at path; write back
 * 0 (it worked), the errno of connect, or 1000 + a known reason. */
static int call_as(uid_t uid, gid_t gid, const char *path, const char *method,
		   const char *params_json, char *ret_text, size_t size)
{
	int pfd[2], st;
	char buf[512] = "";
	pid_t pid;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct qv_error err = {};
		qv_rpc_conn *c = NULL;
		json_object *res = NULL;
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(3);
		if (qv_rpc_connect(path, &c, &err) < 0)
			snprintf(buf, sizeof(buf), "connect: %s", err.message);
		else if (qv_rpc_invoke(c, method, params_json ? json_tokener_parse(params_json) : NULL,
				       10000, &res, &err) < 0)
			snprintf(buf, sizeof(buf), "error %s: %s", err.reason, err.message);
		else
			snprintf(buf, sizeof(buf), "ok %s",
				 json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN));
		_exit(write(pfd[1], buf, strlen(buf)) >= 0 ? 0 : 4);
	}
	close(pfd[1]);
	ssize_t n = read(pfd[0], ret_text, size - 1);
	close(pfd[0]);
	waitpid(pid, &st, 0);
	ret_text[n > 0 ? n : 0] = '\0';
	return 0;
}

Test(isolation, socket_access_by_peer_credentials, .init = daemon_up, .fini = daemon_down,
     .timeout = 60)
{
	struct qv_error err = {};
	struct group *gr = getgrnam("qvisor");
	char ro[256], out[512];
	struct stat st;

	QVT_REQUIRE_DAEMON(&dmn);
	if (!gr)
		cr_skip_test("group qvisor missing (scripts/install-deps.sh creates it)");
	cr_assert_eq(qvt_define_guest(&dmn, "s", "{\"cmdline\":\"console=ttyS0 token=SECRET\"}",
				      &err), 0, "%s", err.message);
	cr_assert_eq(chmod(dmn.dir, 0711), 0); /* the test's own tmp dir */
	snprintf(ro, sizeof(ro), "%s/run/qvisord-ro.sock", dmn.dir);
	cr_assert_eq(stat(dmn.socket, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0660);
	cr_expect_eq(st.st_gid, gr->gr_gid, "qvisord.sock group %u", (unsigned)st.st_gid);
	cr_assert_eq(stat(ro, &st), 0, "no read-only socket %s", ro);
	cr_expect_eq(st.st_mode & 0777, 0666);

	/* nobody: not on the main socket; read-only calls on the other one. */
	call_as(65534, 65534, dmn.socket, "vm.list", NULL, out, sizeof(out));
	cr_expect(strstr(out, "connect:"), "nobody reached qvisord.sock: %s", out);
	call_as(65534, 65534, ro, "vm.list", NULL, out, sizeof(out));
	cr_expect(strncmp(out, "ok ", 3) == 0, "vm.list on the read-only socket: %s", out);
	call_as(65534, 65534, ro, "vm.info", "{\"name\":\"s\"}", out, sizeof(out));
	cr_expect(strncmp(out, "ok ", 3) == 0 && !strstr(out, "SECRET"),
		  "vm.info on the read-only socket: %s", out);
	call_as(65534, 65534, ro, "vm.start", "{\"name\":\"s\"}", out, sizeof(out));
	cr_expect(strstr(out, "error permission-denied") && strstr(out, "vm.start"),
		  "vm.start on the read-only socket: %s", out);
	call_as(0, 0, ro, "vm.undefine", "{\"name\":\"s\"}", out, sizeof(out));
	cr_expect(strstr(out, "error permission-denied"), "root on the read-only socket: %s", out);

	/* A member of group qvisor may change things on the main socket. */
	call_as(2000099999u, gr->gr_gid, dmn.socket, "vm.undefine", "{\"name\":\"s\"}", out,
		sizeof(out));
	cr_expect(strncmp(out, "ok", 2) == 0, "group member: %s", out);

	/* Denials are logged with the peer. */
	FILE *f = fopen(dmn.log, "re");
	char line[512];
	bool logged = false;
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		logged |= strstr(line, "Denied vm.start") && strstr(line, "uid 65534");
	fclose(f);
	cr_expect(logged, "the denied call was not logged");
}
