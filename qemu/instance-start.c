/* SPDX-License-Identifier: MIT */
/* Asynchronous start: after the spawn, everything runs on the loop. The
 * socket is tried on a short backoff timer (1, 2, 4, 4... ms: a connect
 * attempt costs microseconds, while closing an inotify fd waits for an RCU
 * grace period, ~20 ms, which would stall the loop once per VM), the QMP
 * handshake runs on the loop, the pidfd ends the start at once if QEMU dies,
 * and one deadline bounds the whole. A failed start kills QEMU and reports
 * only once the pidfd saw it exit, so the caller may then release what QEMU
 * held (TAPs, cgroup). */
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/log.h"
#include "qemu/instance-internal.h"

#define RETRY_MAX_MS 4

struct qemu_start {
	qemu_instance_started_fn fn;
	void *userdata;
	char *binary;
	char *qmp_path;
	off_t log_off;
	int timeout_ms;
	uint64_t deadline_ms;
	int retry_ms; /* next backoff step */
	int report_fd; /* the child's exec report, until read */
	qv_source *report_src;
	qv_source *retry;
	qv_source *deadline; /* connect deadline, then the kill deadline */
	bool failing;        /* QEMU was killed; report err once it exited */
	bool attach;         /* re-attach: never kill QEMU, fail at once */
	struct qv_error err;
};

static void try_connect(qemu_instance *vm);

bool qemu_instance_starting(qemu_instance *vm)
{
	return vm->start != NULL;
}

static void start_free(qemu_instance *vm)
{
	struct qemu_start *s = vm->start;

	vm->start = NULL;
	if (!s)
		return;
	qv_source_remove(s->report_src);
	if (s->report_fd >= 0)
		close(s->report_fd);
	qv_source_remove(s->retry);
	qv_source_remove(s->deadline);
	free(s->binary);
	free(s->qmp_path);
	free(s);
}

/* Detach the start first: fn may free vm. */
static void start_finish(qemu_instance *vm, int error, const struct qv_error *errp)
{
	qemu_instance_started_fn fn = vm->start->fn;
	void *ud = vm->start->userdata;

	if (error < 0)
		(void)qemu_proc_watch(vm->proc, vm->loop, NULL, NULL);
	start_free(vm);
	log_debug("QEMU %d start %s", (int)qemu_proc_pid(vm->proc),
		  error ? (errp && errp->set ? errp->message : strerror(-error)) : "done");
	fn(vm, error, errp, ud);
}

static void stop_watching_socket(struct qemu_start *s)
{
	s->retry = qv_source_remove(s->retry);
	s->deadline = qv_source_remove(s->deadline);
}

static void on_kill_deadline(qv_source *src, void *userdata)
{
	qemu_instance *vm = userdata;

	vm->start->deadline = NULL;
	log_debug("QEMU %d did not exit after SIGKILL within %d ms", (int)qemu_proc_pid(vm->proc),
		  QEMU_KILL_TIMEOUT_MS);
	start_finish(vm, -vm->start->err.error, &vm->start->err);
}

/* Kill QEMU; the pidfd (or the kill deadline) then reports err. */
static void start_fail(qemu_instance *vm, const struct qv_error *errp)
{
	struct qemu_start *s = vm->start;

	if (s->failing)
		return;
	s->failing = true;
	s->err = *errp;
	stop_watching_socket(s);
	vm->qmp = qmp_client_free(vm->qmp);
	if (s->attach) { /* not ours to kill: QEMU keeps running */
		struct qv_error err = *errp;
		start_finish(vm, -err.error, &err);
		return;
	}
	(void)qemu_proc_signal(vm->proc, SIGKILL);
	if (qv_loop_add_timer(vm->loop, QEMU_KILL_TIMEOUT_MS, on_kill_deadline, vm,
			      &s->deadline) < 0)
		log_debug("QEMU %d: cannot arm the kill deadline, relying on the pidfd",
			  (int)qemu_proc_pid(vm->proc));
}

static void start_failf(qemu_instance *vm, int error, const char *reason, const char *fmt, ...)
	_printf_(4, 5);
static void start_failf(qemu_instance *vm, int error, const char *reason, const char *fmt, ...)
{
	struct qv_error err = {};
	char msg[sizeof(err.message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	qv_error_set(&err, error, reason, "%s", msg);
	start_fail(vm, &err);
}

/* The child's exec report: 0 once it exec'd, else the start is finished
 * with the error (the child is reaped). */
static int read_report(qemu_instance *vm)
{
	struct qemu_start *s = vm->start;
	struct qv_error err = {};
	int r;

	if (s->report_fd < 0)
		return 0;
	s->report_src = qv_source_remove(s->report_src);
	r = qemu_proc_spawn_finish(vm->proc, TAKE_FD(s->report_fd), s->binary, &err);
	if (r < 0) {
		vm->exited = true;
		vm->qmp = qmp_client_free(vm->qmp);
		start_finish(vm, r, &err);
	}
	return r;
}

static void on_report(qv_source *src, int fd, uint32_t revents, void *userdata)
{
	(void)read_report(userdata);
}

static void on_start_exit(qemu_proc *p, const struct qemu_exit_status *st, void *userdata)
{
	qemu_instance *vm = userdata;
	struct qemu_start *s = vm->start;
	struct qv_error err = {};

	if (read_report(vm) < 0)
		return; /* it never exec'd: the report says why */
	vm->exited = true;
	vm->qmp = qmp_client_free(vm->qmp);
	if (s->attach) {
		qv_error_set(&err, ESRCH, QV_REASON_NOT_FOUND, "QEMU %d exited while re-attaching",
			     (int)qemu_proc_pid(vm->proc));
		start_finish(vm, -ESRCH, &err);
		return;
	}
	/* QEMU died on its own (not by our SIGKILL): its status and log say why. */
	if (!s->failing || st->kind != QEMU_EXIT_KILLED || st->signal != SIGKILL) {
		qemu_instance_startup_exit_error(vm, s->binary, s->log_off, st, &err);
		start_finish(vm, -ECHILD, &err);
		return;
	}
	err = s->err;
	start_finish(vm, -err.error, &err);
}

static void on_handshake(qmp_client *c, int error, const struct qv_error *errp, void *userdata)
{
	qemu_instance *vm = userdata;
	struct qv_error err = {};

	if (error < 0) {
		start_fail(vm, errp);
		return;
	}
	if (qemu_instance_wire(vm, false, &err) < 0) {
		start_fail(vm, &err);
		return;
	}
	log_debug("QEMU %d up, QMP ready (version %s)", (int)qemu_proc_pid(vm->proc),
		  qmp_client_version(vm->qmp));
	start_finish(vm, 0, NULL);
}

static void on_retry(qv_source *src, void *userdata)
{
	qemu_instance *vm = userdata;

	vm->start->retry = NULL;
	try_connect(vm);
}

static void on_connect_deadline(qv_source *src, void *userdata)
{
	qemu_instance *vm = userdata;

	vm->start->deadline = NULL;
	if (vm->start->attach)
		start_failf(vm, ETIMEDOUT, QV_REASON_TIMEOUT,
			    "QEMU %d did not accept a QMP connection on %s within %d ms",
			    (int)qemu_proc_pid(vm->proc), vm->start->qmp_path, vm->start->timeout_ms);
	else
		start_failf(vm, ETIMEDOUT, QV_REASON_TIMEOUT,
			    "QEMU did not open its QMP socket %s within %d ms", vm->start->qmp_path,
			    vm->start->timeout_ms);
}

static void schedule_retry(qemu_instance *vm, int ms)
{
	struct qemu_start *s = vm->start;

	s->retry = qv_source_remove(s->retry);
	if (qv_loop_add_timer(vm->loop, (uint64_t)ms, on_retry, vm, &s->retry) < 0)
		start_failf(vm, ENOMEM, QV_REASON_INTERNAL, "Cannot arm a timer to connect to %s",
			    s->qmp_path);
}

static void try_connect(qemu_instance *vm)
{
	struct qemu_start *s = vm->start;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t now = qv_now_ms();
	int fd, r;

	strcpy(sa.sun_path, s->qmp_path); /* length checked at start */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		start_failf(vm, errno, QV_REASON_INTERNAL, "socket for %s: %s", s->qmp_path,
			    strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED || e == EAGAIN) {
			/* not created, not listening yet, or backlog full */
			schedule_retry(vm, s->retry_ms);
			s->retry_ms = s->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->retry_ms * 2;
		} else
			start_failf(vm, e, QV_REASON_QEMU_ERROR, "Failed to connect to QMP socket %s: %s",
				    s->qmp_path, strerror(e));
		return;
	}
	stop_watching_socket(s);
	r = qmp_client_handshake_async(vm->loop, fd,
				       s->deadline_ms > now ? (int)(s->deadline_ms - now) : 1,
				       on_handshake, vm, &vm->qmp);
	if (r < 0)
		start_failf(vm, -r, QV_REASON_INTERNAL, "Cannot start the QMP handshake on %s: %s",
			    s->qmp_path, strerror(-r));
}

void qemu_instance_start_cancel(qemu_instance *vm)
{
	/* Like any free, this never stops QEMU: a daemon shutting down leaves it
	 * running and its successor re-attaches through the recorded pid. */
	start_free(vm);
}

static int start_begin(qemu_instance *vm, struct qemu_start *s, struct qv_error *errp)
{
	int r;

	r = qemu_proc_watch(vm->proc, vm->loop, on_start_exit, vm);
	if (r >= 0 && s->report_fd >= 0)
		r = qv_loop_add_io(vm->loop, s->report_fd, EPOLLIN, on_report, vm, &s->report_src);
	if (r >= 0)
		r = qv_loop_add_timer(vm->loop, (uint64_t)s->timeout_ms, on_connect_deadline, vm,
				      &s->deadline);
	if (r < 0)
		return qv_error_set(errp, r, QV_REASON_INTERNAL,
				    "Cannot watch QEMU %d on the loop: %s",
				    (int)qemu_proc_pid(vm->proc), strerror(-r));
	/* Deferred so fn never runs before we return. */
	schedule_retry(vm, 0);
	return 0;
}

int qemu_instance_start_async(qv_loop *loop, const struct vm_spec *spec,
			      const struct qemu_argv_opts *argv_opts,
			      const struct qemu_instance_config *cfg, qemu_instance_started_fn fn,
			      void *userdata, qemu_instance **ret_vm, struct qv_error *errp)
{
	_cleanup_strv_free_ char **argv = NULL;
	_cleanup_free_ int *keep = NULL;
	struct sockaddr_un sa;
	struct qemu_start *s;
	qemu_instance *vm;
	size_t n_keep = 0;
	off_t log_off = 0;
	int r;

	if (!fn)
		return qv_error_set(errp, EINVAL, QV_REASON_INTERNAL, "No start callback");
	r = qemu_instance_argv(spec, argv_opts, &argv, &keep, &n_keep, errp);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct qemu_start){ .fn = fn, .userdata = userdata, .retry_ms = 1, .report_fd = -1 };
	s->timeout_ms = cfg && cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
							   : QEMU_CONNECT_TIMEOUT_MS;
	s->binary = strdup(argv[0]);
	s->qmp_path = argv_opts->run_dir ? qemu_run_path(argv_opts->run_dir, QEMU_QMP_SOCK) : NULL;
	if (!s->binary || !s->qmp_path || strlen(s->qmp_path) >= sizeof(sa.sun_path)) {
		r = s->binary && s->qmp_path
			    ? qv_error_set(errp, ENAMETOOLONG, QV_REASON_INVALID_ARGUMENT,
					   "QMP socket path too long: %s", s->qmp_path)
			    : -ENOMEM;
		free(s->binary), free(s->qmp_path), free(s);
		return r;
	}
	r = qemu_instance_spawn(loop, argv, argv_opts->run_dir, keep, n_keep, cfg, &vm,
				NULL, &log_off, &s->report_fd, errp);
	if (r < 0) {
		free(s->binary), free(s->qmp_path), free(s);
		return r;
	}
	s->log_off = log_off;
	s->deadline_ms = qv_now_ms() + (uint64_t)s->timeout_ms;
	vm->start = s;
	r = start_begin(vm, s, errp);
	if (r < 0) {
		qemu_instance_free(vm); /* kills QEMU */
		return r;
	}
	*ret_vm = vm;
	return 0;
}

int qemu_instance_attach_async(qv_loop *loop, pid_t pid, uint64_t start_time,
			       const char *qmp_path, const struct qemu_instance_config *cfg,
			       qemu_instance_started_fn fn, void *userdata, qemu_instance **ret_vm,
			       struct qv_error *errp)
{
	struct sockaddr_un sa;
	struct qemu_start *s;
	qemu_instance *vm;
	int r;

	if (!fn)
		return qv_error_set(errp, EINVAL, QV_REASON_INTERNAL, "No attach callback");
	if (strlen(qmp_path) >= sizeof(sa.sun_path))
		return qv_error_set(errp, ENAMETOOLONG, QV_REASON_INVALID_ARGUMENT,
				    "QMP socket path too long: %s", qmp_path);
	vm = calloc(1, sizeof(*vm));
	s = calloc(1, sizeof(*s));
	if (!vm || !s) {
		free(vm), free(s);
		return -ENOMEM;
	}
	vm->loop = loop;
	if (cfg)
		vm->cfg = *cfg;
	vm->cfg.proc = NULL;
	vm->cfg.qmp_listen_fdp = NULL;
	*s = (struct qemu_start){ .fn = fn, .userdata = userdata, .retry_ms = 1, .report_fd = -1,
				  .attach = true };
	s->timeout_ms = cfg && cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
							   : QEMU_CONNECT_TIMEOUT_MS;
	s->qmp_path = strdup(qmp_path);
	vm->start = s;
	r = s->qmp_path ? qemu_proc_attach(pid, start_time, &vm->proc, errp) : -ENOMEM;
	if (r >= 0) {
		s->deadline_ms = qv_now_ms() + (uint64_t)s->timeout_ms;
		r = start_begin(vm, s, errp);
	}
	if (r < 0) {
		qemu_instance_free(vm); /* an attached instance: QEMU keeps running */
		return r;
	}
	*ret_vm = vm;
	return 0;
}
