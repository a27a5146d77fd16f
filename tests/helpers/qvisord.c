/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>

#include <criterion/criterion.h>

#include "common/json.h"
#include "common/loop.h"
#include "common/macro.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

const char *qvt_daemon_binary(void)
{
	static char path[512];
	const char *b = getenv("QV_BUILD_DIR");

	snprintf(path, sizeof(path), "%s/qvisord", b && *b ? b : "build");
	return path;
}

/* Fresh d->dir from tmpl (mkdtemp) and the paths below it; mode 0 keeps
 * mkdtemp's 0700. */
static int make_dirs(struct qvt_daemon *d, const char *tmpl, mode_t mode)
{
	snprintf(d->dir, sizeof(d->dir), "%s", tmpl);
	if (!mkdtemp(d->dir))
		return negative_errno();
	if (mode && chmod(d->dir, mode) < 0)
		return negative_errno();
	snprintf(d->state_dir, sizeof(d->state_dir), "%s/state", d->dir);
	snprintf(d->run_dir, sizeof(d->run_dir), "%s/run", d->dir);
	snprintf(d->socket, sizeof(d->socket), "%s/run/qvisord.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/qvisord.log", d->dir);
	return 0;
}

/* setns() into the network namespace of process pid. 0 or -errno. */
static int join_netns(pid_t pid)
{
	_cleanup_close_ int fd = -EBADF;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		return negative_errno();
	return 0;
}

/* Fork qvisord (after setns into netns_pid's network namespace unless 0)
 * and wait until its socket answers host.info. */
/* host.info says "ready": the re-attaches and migration recoveries after
 * a restart ended (a daemon without the member counts as ready). */
static int wait_attached(struct qvt_daemon *d, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 50) {
		struct qv_error err = {};
		json_object *r = qvt_call(d, "host.info", NULL, &err), *v;
		bool ready = r && (!json_object_object_get_ex(r, "ready", &v) ||
				   json_object_get_boolean(v));

		json_object_put(r);
		if (ready)
			return 0;
		qvt_sleep_ms(50);
	}
	return -ETIMEDOUT;
}

static int spawn_and_wait(struct qvt_daemon *d, pid_t netns_pid)
{
	pid_t pid;

	if (access(qvt_daemon_binary(), X_OK) < 0)
		return -ENOENT;
	pid = fork();
	if (pid < 0)
		return negative_errno();
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (netns_pid > 0 && join_netns(netns_pid) < 0)
			_exit(126);
		setsid();
		/* Daemons of concurrent tests get disjoint VM uid ranges. */
		char uids[64];
		unsigned base = 2000100000u + (unsigned)(getpid() % 100000) * 64u;
		snprintf(uids, sizeof(uids), "%u-%u", base, base + 63);
		char nopki[160];
		const char *argv[48] = { "qvisord", "--state-dir", d->state_dir, "--run-dir",
					 d->run_dir, "--socket", d->socket, "--no-kvm-probe",
					 "--cache-dir", d->dir, "--vm-uid-range", uids, "--pki-dir" };
		size_t n = 13;
		snprintf(nopki, sizeof(nopki), "%s/nopki", d->dir);
		argv[n++] = d->pki_dir[0] ? d->pki_dir : nopki;
		if (!d->pki_dir[0])
			argv[n++] = "--insecure";
		if (d->listen[0]) {
			argv[n++] = "--listen";
			argv[n++] = d->listen;
		}
		if (d->max_starts[0]) {
			argv[n++] = "--max-starts";
			argv[n++] = d->max_starts;
		}
		for (size_t i = 0; i < ARRAY_SIZE(d->extra_args) && d->extra_args[i] && n < 46; i++)
			argv[n++] = d->extra_args[i];
		argv[n] = NULL;
		execv(qvt_daemon_binary(), (char *const *)argv);
		_exit(127);
	}
	d->pid = pid;
	/* 60 s (was 15): a start opens the state store and recovers VMs,
	 * migrations and moves before it answers, on a 2-core host that TCG
	 * guests of the other lane keep busy. A daemon that exits is seen at
	 * once (waitpid below). */
	for (uint64_t t0 = qv_now_ms(); qv_now_ms() - t0 < 60000;) {
		struct qv_error err = {};
		json_object *r = qvt_call(d, "host.info", NULL, &err);
		if (r) {
			json_object_put(r);
			return d->no_attach_wait ? 0 : wait_attached(d, 120000);
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			d->pid = 0;
			return -ECHILD;
		}
		qvt_sleep_ms(50);
	}
	return -ETIMEDOUT;
}

int qvt_daemon_start(struct qvt_daemon *d)
{
	int r;

	/* QEMU runs as an unprivileged user: it must reach run/vms/NAME. */
	if (!d->dir[0] && (r = make_dirs(d, "/tmp/qvd-XXXXXX", 0711)) < 0)
		return r;
	return spawn_and_wait(d, 0);
}

int qvt_daemon_start_netns(struct qvt_daemon *d, pid_t netns_pid, const char *tmpl)
{
	int r;

	if (!d->dir[0] && (r = make_dirs(d, tmpl, 0)) < 0)
		return r;
	return spawn_and_wait(d, netns_pid);
}

void qvt_daemon_fixture_start(struct qvt_daemon *d)
{
	int r;

	if (!qvt_guest_dir())
		return;
	r = qvt_daemon_start(d);
	if (r == -ENOENT)
		return;
	cr_assert_eq(r, 0, "qvisord did not start: %s (log %s)", strerror(-r), d->log);
}

int qvt_daemon_stop(struct qvt_daemon *d, int sig)
{
	int status;

	if (d->pid <= 0)
		return 0;
	kill(d->pid, sig);
	for (int i = 0; i < 600; i++) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return 0;
		}
		qvt_sleep_ms(50);
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &status, 0);
	d->pid = 0;
	return -ETIMEDOUT;
}

/* dnsmasq runs in its own session and outlives the daemon by design. */
static void kill_dnsmasqs(const struct qvt_daemon *d)
{
	char path[256];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/net", d->run_dir);
	dir = opendir(path);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		long pid = 0;
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/net/%s/dnsmasq.pid", d->run_dir, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%ld", &pid) == 1 && pid > 1)
			kill((pid_t)pid, SIGKILL);
		fclose(f);
	}
	closedir(dir);
}

void qvt_daemon_cleanup(struct qvt_daemon *d)
{
	struct qv_error err = {};
	json_object *list, *vms;

	if (d->pid > 0) {
		list = qvt_call(d, "vm.list", NULL, &err);
		if (list && json_object_object_get_ex(list, "vms", &vms)) {
			for (size_t i = 0; i < json_object_array_length(vms); i++) {
				json_object *vm = json_object_array_get_idx(vms, i), *pid;
				if (json_object_object_get_ex(vm, "pid", &pid) &&
				    json_object_get_int(pid) > 0)
					kill(json_object_get_int(pid), SIGKILL);
			}
		}
		json_object_put(list);
		qvt_daemon_stop(d, SIGTERM);
	}
	if (d->dir[0]) {
		char cmd[160];
		kill_dnsmasqs(d);
		/* Test-only cleanup of our own mkdtemp dir. */
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (getenv("QVT_KEEP"))
			fprintf(stderr, "QVT_KEEP: leaving %s\n", d->dir);
		else if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", d->dir);
	}
	memset(d, 0, sizeof(*d));
}

qv_rpc_conn *qvt_connect(const struct qvt_daemon *d)
{
	qv_rpc_conn *c = NULL;
	struct qv_error err = {};

	if (qv_rpc_connect(d->socket, &c, &err) < 0)
		return NULL;
	return c;
}

int qvt_invoke(const struct qvt_daemon *d, const char *method, json_object *params,
	       json_object **ret_result, struct qv_error *errp)
{
	_cleanup_rpc_conn_ qv_rpc_conn *c = NULL;
	json_object *res = NULL;
	int r;

	r = qv_rpc_connect(d->socket, &c, errp);
	if (r < 0) {
		json_object_put(params);
		return r;
	}
	r = qv_rpc_invoke(c, method, params, 180000, &res, errp);
	if (r < 0)
		return r;
	if (!ret_result)
		json_object_put(res);
	else
		*ret_result = res ? res : json_object_new_object();
	return 0;
}

json_object *qvt_call(const struct qvt_daemon *d, const char *method, json_object *params,
		      struct qv_error *errp)
{
	json_object *res = NULL;

	if (qvt_invoke(d, method, params, &res, errp) < 0)
		return NULL;
	return res;
}

int qvt_callf(const struct qvt_daemon *d, const char *method, json_object **ret_result,
	      struct qv_error *errp, const char *fmt, ...)
{
	_cleanup_free_ char *text = NULL;
	json_object *params;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (r < 0)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	params = json_tokener_parse(text);
	if (!params)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "bad test JSON: %s",
				    text);
	return qvt_invoke(d, method, params, ret_result, errp);
}

json_object *qvt_call_name(const struct qvt_daemon *d, const char *method, const char *name,
			   struct qv_error *errp)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "name", json_object_new_string(name));
	return qvt_call(d, method, p, errp);
}

int qvt_define_guest(const struct qvt_daemon *d, const char *name, const char *extra_json,
		     struct qv_error *errp)
{
	_cleanup_(vm_spec_freep) struct vm_spec *spec = qvt_guest_spec(name);
	json_object *j, *p, *res;

	if (!spec)
		return -ENOENT;
	j = vm_spec_to_json(spec);
	/* Let the daemon pick a fresh uuid per VM. */
	json_object_object_del(j, "uuid");
	if (extra_json) {
		_cleanup_json_ json_object *extra = json_tokener_parse(extra_json);
		if (!extra) {
			json_object_put(j);
			return -EINVAL;
		}
		json_object_object_foreach(extra, k, v)
			json_object_object_add(j, k, json_object_get(v));
	}
	p = json_object_new_object();
	json_object_object_add(p, "spec", j);
	res = qvt_call(d, "vm.define", p, errp);
	if (!res)
		return -EIO;
	json_object_put(res);
	return 0;
}

const char *qvt_serial_log(const struct qvt_daemon *d, const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/vms/%s/serial.log", d->run_dir, name);
	return buf;
}

const char *qvt_vm_state(const struct qvt_daemon *d, const char *name, char *buf, size_t size)
{
	struct qv_error err = {};
	_cleanup_json_ json_object *r = qvt_call_name(d, "vm.info", name, &err);
	json_object *s;

	buf[0] = '\0';
	if (r && json_object_object_get_ex(r, "state", &s))
		snprintf(buf, size, "%s", json_object_get_string(s));
	return buf;
}

int qvt_vm_pid(const struct qvt_daemon *d, const char *name)
{
	struct qv_error err = {};
	_cleanup_json_ json_object *r = qvt_call_name(d, "vm.info", name, &err);
	json_object *p;

	if (r && json_object_object_get_ex(r, "pid", &p))
		return json_object_get_int(p);
	return -1;
}

bool qvt_wait_vm_undefined(const struct qvt_daemon *d, const char *name, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 200) {
		struct qv_error err = {};
		json_object *r = qvt_call_name(d, "vm.info", name, &err);
		if (!r && streq(err.reason, "not-found"))
			return true;
		json_object_put(r);
		qvt_sleep_ms(200);
	}
	return false;
}

void qvt_start_dirtier_guest(const struct qvt_daemon *d, const char *name, const char *dirty,
			     int boot_timeout_ms)
{
	qvt_start_dirtier_guest_mem(d, name, dirty, 256, boot_timeout_ms);
}

void qvt_start_dirtier_guest_mem(const struct qvt_daemon *d, const char *name, const char *dirty,
				 int memory_mib, int boot_timeout_ms)
{
	struct qv_error err = {};
	char extra[256];
	json_object *r;

	snprintf(extra, sizeof(extra),
		 "{\"memory\": %d, \"cmdline\": \"console=ttyS0 panic=-1 qv.dirty=%s\"}",
		 memory_mib, dirty);
	cr_assert_eq(qvt_define_guest(d, name, extra, &err), 0, "define: %s", err.message);
	r = qvt_call_name(d, "vm.start", name, &err);
	cr_assert_not_null(r, "start: %s", err.message);
	json_object_put(r);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(d, name), "QVISOR-DIRTIER-START",
					       boot_timeout_ms), 0, "guest did not boot");
}

int qvt_pool_entries(const struct qvt_daemon *d)
{
	char dir[160];
	struct dirent *de;
	DIR *dp;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/images", d->state_dir);
	dp = opendir(dir);
	cr_assert_not_null(dp, "opendir %s: %m", dir);
	while ((de = readdir(dp)))
		n += !streq(de->d_name, ".") && !streq(de->d_name, "..");
	closedir(dp);
	return n;
}

int qvt_cli(const struct qvt_daemon *d, const char *args, char *out, size_t size)
{
	const char *b = getenv("QV_BUILD_DIR");
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s/qvisor --socket %s %s 2>&1", b && *b ? b : "build",
		 d->socket, args);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, size - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char qvt_proc_state(int pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

const char *qvt_json_str(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

int64_t qvt_json_int(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

void qvt_md5_of_cmd(const char *cmd, char out[33])
{
	char line[128] = "";
	FILE *f = popen(cmd, "r");

	cr_assert_not_null(f, "popen %s", cmd);
	cr_assert_not_null(fgets(line, sizeof(line), f), "no output from %s", cmd);
	pclose(f);
	cr_assert_geq(strlen(line), 32, "bad md5sum output %s", line);
	memcpy(out, line, 32);
	out[32] = '\0';
}
