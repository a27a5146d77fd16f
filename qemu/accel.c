/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "common/json.h"
#include "common/log.h"
#include "qemu/accel.h"
#include "qemu/proc.h"

#define CACHE_FILE "accel-probe.json"
#define CACHE_VERSION 1

enum vm_accel qemu_accel_resolve(enum vm_accel requested, const struct qemu_accel_result *probe)
{
	if (requested != VM_ACCEL_AUTO)
		return requested;
	return probe && probe->kvm_usable ? VM_ACCEL_KVM : VM_ACCEL_TCG;
}

static void set_reason(struct qemu_accel_result *r, const char *fmt, ...) _printf_(2, 3);
static void set_reason(struct qemu_accel_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

static bool kvm_check(const char *dev, struct qemu_accel_result *res)
{
	_cleanup_close_ int fd = open(dev, O_RDWR | O_CLOEXEC);
	int v;

	if (fd < 0) {
		set_reason(res, "KVM not present: %s: %s; using TCG", dev, strerror(errno));
		return false;
	}
	v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		set_reason(res, "KVM not present: %s: KVM_GET_API_VERSION returned %d (want %d); using TCG",
			   dev, v, KVM_API_VERSION);
		return false;
	}
	return true;
}

/* ---- running the probe QEMU ------------------------------------------------ */

struct probe_out {
	bool marker_seen;
	char tail[1024]; /* last output bytes, for error messages */
	size_t tail_len;
};

static void out_feed(struct probe_out *o, const char *marker, const char *data, size_t n)
{
	size_t keep = sizeof(o->tail) - 1;
	char buf[sizeof(o->tail) + 4096];
	size_t len;

	/* tail + data in one buffer so a marker split across reads is found. */
	memcpy(buf, o->tail, o->tail_len);
	memcpy(buf + o->tail_len, data, n);
	len = o->tail_len + n;
	buf[len] = '\0';
	if (memmem(buf, len, marker, strlen(marker)))
		o->marker_seen = true;
	if (len > keep) {
		memmove(buf, buf + len - keep, keep);
		len = keep;
	}
	memcpy(o->tail, buf, len);
	o->tail_len = len;
	o->tail[len] = '\0';
}

static void out_last_line(const struct probe_out *o, char *buf, size_t size)
{
	char t[sizeof(o->tail)];
	size_t n = o->tail_len;
	char *line;

	memcpy(t, o->tail, n);
	while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
		n--;
	t[n] = '\0';
	line = strrchr(t, '\n');
	snprintf(buf, size, "%.200s", line ? line + 1 : t);
}

/* Run argv with stdout+stderr on a pipe until EOF/exit/marker/deadline.
 * Returns 0 when the process ended or the marker showed, -ETIMEDOUT at the
 * deadline; in every case the process is gone (killed) on return. */
static int run_capture(char *const *argv, int timeout_ms, const char *marker,
		       struct probe_out *out, struct qemu_exit_status *ret_st, struct qv_error *errp)
{
	_cleanup_(qemu_proc_freep) qemu_proc *p = NULL;
	_cleanup_close_ int rfd = -1, wfd = -1;
	uint64_t deadline = qv_now_ms() + (uint64_t)timeout_ms;
	bool eof = false, exited = false, timed_out = false;
	int pfd[2], r;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return qv_error_set(errp, errno, QV_REASON_INTERNAL, "pipe: %m");
	rfd = pfd[0];
	wfd = pfd[1];
	r = qemu_proc_spawn(argv, &(struct qemu_proc_opts){ .log_fd = wfd }, &p, errp);
	if (r < 0)
		return r;
	wfd = -1;
	close(pfd[1]);

	while (!(eof && exited) && !(marker && out->marker_seen)) {
		struct pollfd fds[2] = {
			{ .fd = eof ? -1 : rfd, .events = POLLIN },
			{ .fd = exited ? -1 : qemu_proc_pidfd(p), .events = POLLIN },
		};
		uint64_t now = qv_now_ms();
		char buf[4096];

		if (now >= deadline) {
			timed_out = true;
			break;
		}
		r = poll(fds, 2, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			break;
		if (fds[0].revents) {
			ssize_t n = read(rfd, buf, sizeof(buf));
			if (n > 0)
				out_feed(out, marker ? marker : "\x01\x02", buf, (size_t)n);
			else if (n == 0 || errno != EINTR)
				eof = true;
		}
		if (fds[1].revents)
			exited = true;
	}
	if (!qemu_proc_exited(p)) {
		qemu_proc_signal(p, SIGKILL);
		if (qemu_proc_wait(p, 3000, NULL) < 0)
			log_debug("Probe QEMU %d did not die within 3 s of SIGKILL, leaving it",
				  (int)qemu_proc_pid(p));
	}
	if (qemu_proc_exited(p))
		*ret_st = *qemu_proc_exit_status(p);
	else
		*ret_st = (struct qemu_exit_status){ .kind = QEMU_EXIT_UNKNOWN };
	return timed_out ? -ETIMEDOUT : 0;
}

static char *qemu_version(const char *bin)
{
	struct probe_out out = { 0 };
	struct qemu_exit_status st;
	const char *p;

	if (run_capture((char *[]){ (char *)bin, (char *)"--version", NULL }, 5000, NULL, &out,
			&st, NULL) < 0)
		return NULL;
	p = strstr(out.tail, "version ");
	if (!p)
		return NULL;
	p += strlen("version ");
	return strndup(p, strcspn(p, " \n("));
}

static const char *fmt_secs(int ms, char *buf, size_t size)
{
	if (ms % 1000 == 0)
		snprintf(buf, size, "%d s", ms / 1000);
	else
		snprintf(buf, size, "%d ms", ms);
	return buf;
}

static void probe_boot(const struct qemu_accel_probe_opts *o, const char *bin, int timeout_ms,
		       struct qemu_accel_result *res)
{
	char append[] = "console=ttyS0 panic=-1 quiet";
	char *argv[] = {
		(char *)bin, "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "128",
		"-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-kernel", (char *)o->kernel, "-initrd", (char *)o->initrd,
		"-append", append, NULL,
	};
	const char *marker = o->marker ? o->marker : QEMU_ACCEL_READY_MARKER;
	struct probe_out out = { 0 };
	struct qemu_exit_status st;
	struct qv_error err = { 0 };
	char what[QEMU_EXIT_STATUS_MAX], line[256], secs[32];
	int r;

	r = run_capture(argv, timeout_ms, marker, &out, &st, &err);
	if (out.marker_seen) {
		res->kvm_usable = true;
		res->chosen = VM_ACCEL_KVM;
		set_reason(res, "KVM usable: probe guest reached %s", marker);
		return;
	}
	if (r == -ETIMEDOUT)
		set_reason(res, "KVM present but unusable: probe guest did not reach the ready marker within %s (nested KVM hangs?); using TCG",
			   fmt_secs(timeout_ms, secs, sizeof(secs)));
	else if (r < 0)
		set_reason(res, "KVM present but unusable: %s; using TCG", err.message);
	else {
		out_last_line(&out, line, sizeof(line));
		set_reason(res, "KVM present but unusable: probe QEMU %s%s%s; using TCG",
			   qemu_exit_status_format(&st, what, sizeof(what)), line[0] ? ": " : "", line);
	}
}

/* ---- cache ------------------------------------------------------------------ */

static json_object *file_key(const char *path)
{
	json_object *o = json_object_new_object();
	struct stat sb;

	if (!o)
		return NULL;
	json_object_object_add(o, "path", json_object_new_string(path));
	if (stat(path, &sb) == 0) {
		json_object_object_add(o, "size", json_object_new_int64(sb.st_size));
		json_object_object_add(o, "mtime", json_object_new_int64(sb.st_mtime));
	}
	return o;
}

static json_object *make_key(const struct qemu_accel_probe_opts *o, const char *bin,
			     const char *version, int timeout_ms)
{
	json_object *k = json_object_new_object();
	struct utsname u;

	if (!k)
		return NULL;
	uname(&u);
	json_object_object_add(k, "version", json_object_new_int(CACHE_VERSION));
	json_object_object_add(k, "kernel_release", json_object_new_string(u.release));
	json_object_object_add(k, "qemu_binary", json_object_new_string(bin));
	json_object_object_add(k, "qemu_version", json_object_new_string(version));
	json_object_object_add(k, "probe_kernel", file_key(o->kernel));
	json_object_object_add(k, "probe_initrd", file_key(o->initrd));
	json_object_object_add(k, "timeout_ms", json_object_new_int(timeout_ms));
	return k;
}

static char *cache_path(const char *dir)
{
	char *p;

	return asprintf(&p, "%s/" CACHE_FILE, dir) < 0 ? NULL : p;
}

static bool cache_load(const char *dir, json_object *key, struct qemu_accel_result *res)
{
	_cleanup_free_ char *path = cache_path(dir);
	_cleanup_json_ json_object *root = NULL;
	json_object *k, *usable, *reason;

	if (!path)
		return false;
	root = json_object_from_file(path);
	if (!root || !json_object_object_get_ex(root, "key", &k) || !json_object_equal(k, key) ||
	    !json_object_object_get_ex(root, "kvm_usable", &usable) ||
	    !json_object_object_get_ex(root, "reason", &reason) ||
	    !json_object_is_type(usable, json_type_boolean) ||
	    !json_object_is_type(reason, json_type_string))
		return false;
	res->kvm_usable = json_object_get_boolean(usable);
	res->chosen = res->kvm_usable ? VM_ACCEL_KVM : VM_ACCEL_TCG;
	res->from_cache = true;
	set_reason(res, "%s", json_object_get_string(reason));
	return true;
}

static void cache_store(const char *dir, json_object *key, const struct qemu_accel_result *res)
{
	_cleanup_free_ char *path = cache_path(dir), *tmp = NULL;
	_cleanup_json_ json_object *root = json_object_new_object();

	if (!path || !root || asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) < 0)
		return;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		log_debug_errno(errno, "Cannot create cache dir %s: %m, not caching", dir);
		return;
	}
	json_object_object_add(root, "key", json_object_get(key));
	json_object_object_add(root, "kvm_usable", json_object_new_boolean(res->kvm_usable));
	json_object_object_add(root, "reason", json_object_new_string(res->reason));
	if (json_object_to_file_ext(tmp, root, JSON_C_TO_STRING_PRETTY) < 0 ||
	    rename(tmp, path) < 0) {
		log_debug("Failed to write %s, not caching", path);
		unlink(tmp);
	}
}

int qemu_accel_probe(const struct qemu_accel_probe_opts *opts, struct qemu_accel_result *ret,
		     struct qv_error *errp)
{
	static const struct qemu_accel_probe_opts none;
	const struct qemu_accel_probe_opts *o = opts ? opts : &none;
	const char *bin = o->qemu_binary ? o->qemu_binary : "qemu-system-x86_64";
	int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : QEMU_ACCEL_PROBE_TIMEOUT_MS;
	struct qemu_accel_result res = { .chosen = VM_ACCEL_TCG };
	_cleanup_free_ char *version = NULL;
	_cleanup_json_ json_object *key = NULL;

	if ((o->kernel == NULL) != (o->initrd == NULL))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "Probe guest needs both kernel and initrd");

	res.kvm_present = kvm_check(o->kvm_device ? o->kvm_device : "/dev/kvm", &res);
	if (!res.kvm_present)
		goto done;
	if (!o->kernel) {
		set_reason(&res, "KVM present but not probed: no probe guest configured; using TCG");
		goto done;
	}

	version = qemu_version(bin);
	key = make_key(o, bin, version ? version : "unknown", timeout_ms);
	if (o->cache_dir && key && version && cache_load(o->cache_dir, key, &res))
		goto done;

	probe_boot(o, bin, timeout_ms, &res);
	if (o->cache_dir && key && version)
		cache_store(o->cache_dir, key, &res);
done:
	*ret = res;
	return 0;
}
