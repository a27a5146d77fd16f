/* SPDX-License-Identifier: MIT */
/* VM spec -> QEMU command line. Block devices, devices and objects use the
 * JSON forms of -blockdev/-device/-object so no user string is ever parsed
 * by QemuOpts; the only QemuOpts strings carrying paths (chardev paths under
 * run_dir) have their commas doubled. */
#include <stdarg.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/macro.h"
#include "qemu/argv.h"
#include "qemu/secret.h"

#define INVALID(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

struct strv_builder {
	char **v;
	size_t n, cap;
	bool oom;
};

static void push_take(struct strv_builder *b, char *s)
{
	if (!s || b->oom) {
		b->oom = true;
		free(s);
		return;
	}
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char **v = realloc(b->v, cap * sizeof(*v));
		if (!v) {
			b->oom = true;
			free(s);
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = s;
	b->v[b->n] = NULL;
}

static void push(struct strv_builder *b, const char *s)
{
	push_take(b, strdup(s));
}

static void pushf(struct strv_builder *b, const char *fmt, ...) _printf_(2, 3);
static void pushf(struct strv_builder *b, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	push_take(b, s);
}

/* Push "opt" then the JSON text of o (consumed). */
static void push_json(struct strv_builder *b, const char *opt, json_object *o)
{
	push(b, opt);
	if (!o) {
		b->oom = true;
		return;
	}
	push(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* QemuOpts value escaping: ',' -> ",,". */
static char *opts_escape(const char *s)
{
	size_t n = strlen(s), extra = 0;

	for (const char *p = s; *p; p++)
		extra += *p == ',';
	char *out = malloc(n + extra + 1), *q = out;
	if (!out)
		return NULL;
	for (const char *p = s; *p; p++) {
		*q++ = *p;
		if (*p == ',')
			*q++ = ',';
	}
	*q = '\0';
	return out;
}

char *qemu_run_path(const char *run_dir, const char *file)
{
	char *s;

	return asprintf(&s, "%s/%s", run_dir, file) < 0 ? NULL : s;
}

static json_object *jobj(const char *k1, json_object *v1)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, k1, v1);
	return o;
}

static void jstr(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void jint(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static bool is_q35(const struct vm_spec *spec)
{
	return streq(spec->machine, "q35") || strncmp(spec->machine, "pc-q35-", 7) == 0;
}

static void root_port(struct strv_builder *b, const char *id, unsigned *chassis)
{
	json_object *o = jobj("driver", json_object_new_string("pcie-root-port"));

	jstr(o, "id", id);
	jstr(o, "bus", "pcie.0");
	jint(o, "chassis", (*chassis)++);
	/* virtio behind a PCIe port is modern-only: no I/O window needed. */
	jint(o, "io-reserve", 0);
	push_json(b, "-device", o);
}

/* fdset ids: 1 serial log; disk i: 10 + 16 i (+1 + k for backing k). */
#define FDSET_SERIAL_LOG 1
static int disk_fdset(size_t i, int backing)
{
	return 10 + 16 * (int)i + (backing < 0 ? 0 : 1 + backing);
}

static void add_fd(struct strv_builder *b, int fd, int set)
{
	push(b, "-add-fd");
	pushf(b, "fd=%d,set=%d", fd, set);
}

/* One file node + format node; k < 0 is the disk itself, else backing k. */
static void add_image_nodes(struct strv_builder *b, const struct vm_disk *d, size_t i, int k,
			    const struct qemu_disk_fds *fds)
{
	char file[48], fmt[48], next[48];
	enum vm_disk_format format = k < 0 ? d->format : fds->backing[k].format;
	bool ro = k >= 0 || d->readonly;
	json_object *o;

	snprintf(file, sizeof(file), k < 0 ? "disk%zu-file" : "disk%zu-b%d-file", i, k);
	snprintf(fmt, sizeof(fmt), k < 0 ? "disk%zu" : "disk%zu-b%d", i, k);
	snprintf(next, sizeof(next), "disk%zu-b%d", i, k + 1);
	o = jobj("driver", json_object_new_string("file"));
	if (fds) {
		char path[32];

		add_fd(b, k < 0 ? fds->fd : fds->backing[k].fd, disk_fdset(i, k));
		snprintf(path, sizeof(path), "/dev/fdset/%d", disk_fdset(i, k));
		jstr(o, "filename", path);
	} else {
		jstr(o, "filename", d->path);
	}
	jstr(o, "node-name", file);
	json_object_object_add(o, "read-only", json_object_new_boolean(ro));
	push_json(b, "-blockdev", o);

	o = jobj("driver", json_object_new_string(vm_disk_format_to_string(format)));
	jstr(o, "file", file);
	jstr(o, "node-name", fmt);
	if (k < 0 && fds && fds->key_data) {
		/* Only ciphertext on argv; QEMU decrypts with the master key. */
		char sec[48];
		json_object *so = jobj("qom-type", json_object_new_string("secret"));
		snprintf(sec, sizeof(sec), "disk%zu-secret", i);
		jstr(so, "id", sec);
		jstr(so, "data", fds->key_data);
		jstr(so, "keyid", QEMU_SECRET_MASTER_ID);
		jstr(so, "iv", fds->key_iv);
		jstr(so, "format", "base64");
		push_json(b, "-object", so);
		json_object *enc = jobj("format", json_object_new_string("luks"));
		jstr(enc, "key-secret", sec);
		json_object_object_add(o, "encrypt", enc);
	}
	json_object_object_add(o, "read-only", json_object_new_boolean(ro));
	/* Never let QEMU open a backing file named inside the image. */
	if (format == VM_DISK_QCOW2 && fds)
		json_object_object_add(o, "backing", k + 1 < (int)fds->n_backing
							     ? json_object_new_string(next) : NULL);
	push_json(b, "-blockdev", o);
}

static void add_disk(struct strv_builder *b, const struct vm_spec *spec, size_t i, bool q35,
		     unsigned *chassis, const struct qemu_disk_fds *fds)
{
	const struct vm_disk *d = &spec->disks[i];
	char fmt[48], thr[48], tg[48], dev[48], rp[48];
	bool throttle = d->io_rbps || d->io_wbps || d->io_riops || d->io_wiops;
	json_object *o;

	snprintf(fmt, sizeof(fmt), "disk%zu", i);
	snprintf(thr, sizeof(thr), "disk%zu-throttle", i);
	snprintf(tg, sizeof(tg), "tg-disk%zu", i);
	snprintf(dev, sizeof(dev), "disk%zu-dev", i);
	snprintf(rp, sizeof(rp), "rp-disk%zu", i);

	/* Backing nodes first: a format node names its backing by node-name. */
	for (int k = fds ? (int)fds->n_backing - 1 : -1; k >= 0; k--)
		add_image_nodes(b, d, i, k, fds);
	add_image_nodes(b, d, i, -1, fds);

	if (throttle) {
		json_object *l = json_object_new_object();
		if (d->io_rbps)
			jint(l, "bps-read", (int64_t)d->io_rbps);
		if (d->io_wbps)
			jint(l, "bps-write", (int64_t)d->io_wbps);
		if (d->io_riops)
			jint(l, "iops-read", (int64_t)d->io_riops);
		if (d->io_wiops)
			jint(l, "iops-write", (int64_t)d->io_wiops);
		o = jobj("qom-type", json_object_new_string("throttle-group"));
		jstr(o, "id", tg);
		json_object_object_add(o, "limits", l);
		push_json(b, "-object", o);

		o = jobj("driver", json_object_new_string("throttle"));
		jstr(o, "throttle-group", tg);
		jstr(o, "file", fmt);
		jstr(o, "node-name", thr);
		push_json(b, "-blockdev", o);
	}

	if (q35)
		root_port(b, rp, chassis);
	o = jobj("driver", json_object_new_string("virtio-blk-pci"));
	jstr(o, "id", dev);
	jstr(o, "drive", throttle ? thr : fmt);
	if (q35)
		jstr(o, "bus", rp);
	if (!spec->kernel && spec->boot_disk == (int)i)
		jint(o, "bootindex", 0);
	if (d->serial[0])
		jstr(o, "serial", d->serial);
	push_json(b, "-device", o);
}

/* The cloud-init NoCloud seed: a read-only raw virtio disk. */
#define FDSET_CIDATA 2
static void add_seed(struct strv_builder *b, const char *path, int fd, bool q35,
		     unsigned *chassis)
{
	json_object *o = jobj("driver", json_object_new_string("file"));

	if (fd > 0) {
		add_fd(b, fd, FDSET_CIDATA);
		jstr(o, "filename", "/dev/fdset/2");
	} else {
		jstr(o, "filename", path);
	}
	jstr(o, "node-name", "cidata-file");
	json_object_object_add(o, "read-only", json_object_new_boolean(true));
	push_json(b, "-blockdev", o);
	o = jobj("driver", json_object_new_string("raw"));
	jstr(o, "file", "cidata-file");
	jstr(o, "node-name", "cidata");
	json_object_object_add(o, "read-only", json_object_new_boolean(true));
	push_json(b, "-blockdev", o);
	if (q35)
		root_port(b, "rp-cidata", chassis);
	o = jobj("driver", json_object_new_string("virtio-blk-pci"));
	jstr(o, "id", "cidata-dev");
	jstr(o, "drive", "cidata");
	if (q35)
		jstr(o, "bus", "rp-cidata");
	push_json(b, "-device", o);
}

/* The guest agent channel: a virtio-serial port on a unix socket. */
static void add_agent(struct strv_builder *b, const char *esc_rundir, int fd, bool q35,
		      unsigned *chassis)
{
	json_object *o;

	if (q35)
		root_port(b, "rp-vser0", chassis);
	o = jobj("driver", json_object_new_string("virtio-serial-pci"));
	jstr(o, "id", "vser0");
	if (q35)
		jstr(o, "bus", "rp-vser0");
	push_json(b, "-device", o);
	push(b, "-chardev");
	if (fd > 0)
		pushf(b, "socket,id=qga0,fd=%d,server=on,wait=off", fd);
	else
		pushf(b, "socket,id=qga0,path=%s/" QEMU_QGA_SOCK ",server=on,wait=off", esc_rundir);
	o = jobj("driver", json_object_new_string("virtserialport"));
	jstr(o, "bus", "vser0.0");
	jstr(o, "chardev", "qga0");
	jstr(o, "name", "org.qemu.guest_agent.0");
	push_json(b, "-device", o);
}

/* The memory balloon: id balloon0, so QMP can reach it at
 * /machine/peripheral/balloon0 (guest-stats-polling-interval is a QOM
 * property, set after start, not a -device option). */
static void add_balloon(struct strv_builder *b, bool q35, unsigned *chassis)
{
	json_object *o;

	if (q35)
		root_port(b, "rp-balloon0", chassis);
	o = jobj("driver", json_object_new_string("virtio-balloon-pci"));
	jstr(o, "id", QEMU_BALLOON_ID);
	if (q35)
		jstr(o, "bus", "rp-balloon0");
	push_json(b, "-device", o);
}

static void add_nic(struct strv_builder *b, const struct vm_spec *spec, size_t i, int fd,
		    bool q35, unsigned *chassis)
{
	char rp[48], id[48], netdev[48];
	json_object *o;

	snprintf(rp, sizeof(rp), "rp-net%zu", i);
	snprintf(id, sizeof(id), "net%zu-dev", i);
	snprintf(netdev, sizeof(netdev), "net%zu", i);
	push(b, "-netdev");
	if (fd >= 0)
		pushf(b, "tap,id=%s,fd=%d,vhost=off", netdev, fd);
	else
		pushf(b, "user,id=%s", netdev);
	if (q35)
		root_port(b, rp, chassis);
	o = jobj("driver", json_object_new_string("virtio-net-pci"));
	jstr(o, "id", id);
	jstr(o, "netdev", netdev);
	jstr(o, "mac", spec->nics[i].mac);
	if (q35)
		jstr(o, "bus", rp);
	push_json(b, "-device", o);
}

static void add_chardevs(struct strv_builder *b, const struct vm_spec *spec,
			 const struct qemu_argv_opts *opts)
{
	_cleanup_free_ char *esc = opts_escape(opts->run_dir);
	char serial[64] = "";

	if (!esc) {
		b->oom = true;
		return;
	}
	push(b, "-chardev");
	if (opts->qmp_fd > 0)
		pushf(b, "socket,id=qmp,fd=%d,server=on,wait=off", opts->qmp_fd);
	else
		pushf(b, "socket,id=qmp,path=%s/" QEMU_QMP_SOCK ",server=on,wait=off", esc);
	push(b, "-mon");
	push(b, "chardev=qmp,mode=control");
	if (spec->serial_log && opts->serial_log_fd > 0) {
		add_fd(b, opts->serial_log_fd, FDSET_SERIAL_LOG);
		snprintf(serial, sizeof(serial), ",logfile=/dev/fdset/%d,logappend=on",
			 FDSET_SERIAL_LOG);
	}
	push(b, "-chardev");
	if (opts->serial_fd > 0)
		pushf(b, "socket,id=serial0,fd=%d,server=on,wait=off%s", opts->serial_fd, serial);
	else if (spec->serial_log && !serial[0])
		pushf(b, "socket,id=serial0,path=%s/" QEMU_SERIAL_SOCK ",server=on,wait=off,"
		      "logfile=%s/" QEMU_SERIAL_LOG ",logappend=on", esc, esc);
	else
		pushf(b, "socket,id=serial0,path=%s/" QEMU_SERIAL_SOCK ",server=on,wait=off%s",
		      esc, serial);
	push(b, "-serial");
	push(b, "chardev:serial0");
}

static int check_opts(const struct vm_spec *spec, const struct qemu_argv_opts *opts,
		      struct qv_error *errp)
{
	size_t longest = strlen("/" QEMU_SERIAL_SOCK);

	if (!opts || !opts->run_dir || opts->run_dir[0] != '/')
		return INVALID(errp, "run_dir must be an absolute path");
	if (spec->cloud_init && (!opts->cidata_path || opts->cidata_path[0] != '/'))
		return INVALID(errp, "spec.cloud_init needs the seed image's absolute path");
	if (strlen(opts->run_dir) + longest >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return qv_error_set(errp, ENAMETOOLONG, QV_REASON_INVALID_ARGUMENT,
				    "run_dir \"%.200s\" is too long: \"%s\" must fit in a unix "
				    "socket path (%zu bytes max, run_dir may be at most %zu)",
				    opts->run_dir, QEMU_SERIAL_SOCK,
				    sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
				    sizeof(((struct sockaddr_un *)0)->sun_path) - 1 - longest);
	for (const char *p = opts->run_dir; *p; p++)
		if ((unsigned char)*p < 0x20)
			return INVALID(errp, "run_dir must not contain control characters");
	if (opts->accel != VM_ACCEL_KVM && opts->accel != VM_ACCEL_TCG)
		return INVALID(errp, "accelerator must be resolved to kvm or tcg before building "
			       "the command line");
	if (opts->qemu_binary && !opts->qemu_binary[0])
		return INVALID(errp, "qemu_binary is empty");
	if (opts->incoming) {
		if (!opts->incoming[0])
			return INVALID(errp, "incoming URI is empty");
		for (const char *p = opts->incoming; *p; p++)
			if ((unsigned char)*p < 0x20)
				return INVALID(errp, "incoming URI contains control characters");
	}
	for (size_t i = 0; i < spec->n_nics; i++) {
		int fd = opts->nic_fds && i < opts->n_nic_fds ? opts->nic_fds[i] : -1;
		if (fd < 0 && !opts->nic_user_fallback)
			return INVALID(errp, "spec.nics[%zu]: no TAP fd was provided", i);
	}
	for (size_t i = 0; opts->disk_fds && i < spec->n_disks; i++) {
		const struct qemu_disk_fds *f = &opts->disk_fds[i];
		if (f->fd <= 2 || f->n_backing > QEMU_MAX_BACKING ||
		    (f->n_backing && spec->disks[i].format != VM_DISK_QCOW2))
			return INVALID(errp, "spec.disks[%zu]: bad image fds", i);
		if ((f->key_data || f->key_iv) &&
		    (!f->key_data || !f->key_iv || opts->secret_master_fd <= 2 ||
		     spec->disks[i].format != VM_DISK_QCOW2))
			return INVALID(errp, "spec.disks[%zu]: an encrypted disk needs a qcow2 "
				       "format, its secret and the master key fd", i);
		for (size_t k = 0; k < f->n_backing; k++)
			if (f->backing[k].fd <= 2 ||
			    (k + 1 < f->n_backing && f->backing[k].format != VM_DISK_QCOW2))
				return INVALID(errp, "spec.disks[%zu]: bad backing fds", i);
	}
	if (!spec->name || !spec->machine || spec->vcpus < 1 || spec->memory_mib < 1)
		return INVALID(errp, "spec is incomplete (not from vm_spec_from_json?)");
	return 0;
}

int qemu_argv_build(const struct vm_spec *spec, const struct qemu_argv_opts *opts,
		    char ***ret_argv, struct qv_error *errp)
{
	struct strv_builder b = {};
	bool q35;
	unsigned chassis = 1;
	int r;

	if (!spec)
		return INVALID(errp, "no spec");
	if ((r = check_opts(spec, opts, errp)) < 0)
		return r;
	q35 = is_q35(spec);

	push(&b, opts->qemu_binary ? opts->qemu_binary : QEMU_DEFAULT_BINARY);
	push(&b, "-name");
	pushf(&b, "guest=%s,debug-threads=on", spec->name);
	push(&b, "-uuid");
	push(&b, spec->uuid);
	push(&b, "-nodefaults");
	push(&b, "-no-user-config");
	push(&b, "-display");
	push(&b, "none");
	push(&b, "-msg");
	push(&b, "timestamp=on");
	push(&b, "-machine");
	push(&b, spec->machine);
	push(&b, "-accel");
	push(&b, opts->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
	push(&b, "-cpu");
	push(&b, opts->accel == VM_ACCEL_KVM ? "host" : "max");
	push(&b, "-smp");
	pushf(&b, "%u", spec->vcpus);
	push(&b, "-m");
	pushf(&b, "%lluM", (unsigned long long)spec->memory_mib);
	if (opts->sandbox) {
		push(&b, "-sandbox");
		push(&b, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	}
	/* -kernel/-initrd/-append values go to the machine dict verbatim (no
	 * QemuOpts comma parsing in QEMU >= 7.0). */
	if (spec->kernel) {
		push(&b, "-kernel");
		push(&b, spec->kernel);
	}
	if (spec->kernel && spec->initrd) {
		push(&b, "-initrd");
		push(&b, spec->initrd);
	}
	if (spec->kernel && spec->cmdline) {
		push(&b, "-append");
		push(&b, spec->cmdline);
	}
	if (opts->secret_master_fd > 2) {
		json_object *o = jobj("qom-type", json_object_new_string("secret"));
		char file[48];
		snprintf(file, sizeof(file), "/proc/self/fd/%d", opts->secret_master_fd);
		jstr(o, "id", QEMU_SECRET_MASTER_ID);
		jstr(o, "format", "raw");
		jstr(o, "file", file);
		push_json(&b, "-object", o);
	}
	for (size_t i = 0; i < spec->n_disks; i++)
		add_disk(&b, spec, i, q35, &chassis, opts->disk_fds ? &opts->disk_fds[i] : NULL);
	for (size_t i = 0; i < spec->n_nics; i++) {
		int fd = opts->nic_fds && i < opts->n_nic_fds ? opts->nic_fds[i] : -1;
		add_nic(&b, spec, i, fd, q35, &chassis);
	}
	if (spec->cloud_init)
		add_seed(&b, opts->cidata_path, opts->cidata_fd, q35, &chassis);
	if (spec->guest_agent) {
		_cleanup_free_ char *esc = opts_escape(opts->run_dir);
		if (esc)
			add_agent(&b, esc, opts->agent_fd, q35, &chassis);
		else
			b.oom = true;
	}
	if (spec->balloon.enabled)
		add_balloon(&b, q35, &chassis);
	for (unsigned i = 0; q35 && i < QEMU_HOTPLUG_PORTS; i++) {
		char id[16];
		snprintf(id, sizeof(id), "hp%u", i);
		root_port(&b, id, &chassis);
	}
	add_chardevs(&b, spec, opts);
	if (opts->start_paused)
		push(&b, "-S");
	if (opts->incoming) {
		push(&b, "-incoming");
		push(&b, opts->incoming);
	}
	if (b.oom || !b.v) {
		strv_free(b.v);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	}
	*ret_argv = b.v;
	return 0;
}

static void fds_add(int *v, size_t *n, int fd)
{
	if (fd > 2)
		v[(*n)++] = fd;
}

int qemu_argv_collect_fds(const struct vm_spec *spec, const struct qemu_argv_opts *opts,
			  int **ret_fds, size_t *ret_n)
{
	size_t cap = opts->n_nic_fds + 6, n = 0;
	int *v;

	for (size_t i = 0; opts->disk_fds && i < spec->n_disks; i++)
		cap += 1 + opts->disk_fds[i].n_backing;
	v = calloc(cap, sizeof(int));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < opts->n_nic_fds; i++)
		fds_add(v, &n, opts->nic_fds[i]);
	fds_add(v, &n, opts->qmp_fd);
	fds_add(v, &n, opts->serial_fd);
	fds_add(v, &n, opts->secret_master_fd);
	if (spec->guest_agent)
		fds_add(v, &n, opts->agent_fd);
	if (spec->cloud_init)
		fds_add(v, &n, opts->cidata_fd);
	if (spec->serial_log)
		fds_add(v, &n, opts->serial_log_fd);
	for (size_t i = 0; opts->disk_fds && i < spec->n_disks; i++) {
		fds_add(v, &n, opts->disk_fds[i].fd);
		for (size_t k = 0; k < opts->disk_fds[i].n_backing; k++)
			fds_add(v, &n, opts->disk_fds[i].backing[k].fd);
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*ret_fds = v;
	*ret_n = n;
	return 0;
}

static bool needs_quote(const char *s)
{
	if (!*s)
		return true;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			    "_-./=:,@%+", *s))
			return true;
	return false;
}

char *qemu_argv_to_string(char *const *argv)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	for (char *const *a = argv; a && *a; a++) {
		if (a != argv)
			fputc(' ', f);
		if (!needs_quote(*a)) {
			fputs(*a, f);
			continue;
		}
		fputc('\'', f);
		for (const char *p = *a; *p; p++)
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		fputc('\'', f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
