/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/json.h"
#include "common/log.h"
#include "qemu/instance-internal.h"

const char *qemu_stop_step_to_string(enum qemu_stop_step step)
{
	switch (step) {
	case QEMU_STOP_STEP_POWERDOWN:
		return "powerdown";
	case QEMU_STOP_STEP_QUIT:
		return "quit";
	case QEMU_STOP_STEP_KILL:
		return "kill";
	}
	return "?";
}

/* ---- exit and events ------------------------------------------------------ */

static void stop_finish(qemu_instance *vm, int error, const struct qemu_exit_status *st)
{
	struct stop_state s = vm->stop;

	vm->stop.timer = qv_source_remove(vm->stop.timer);
	vm->stop.active = false;
	vm->stop.fn = NULL;
	log_debug("QEMU %d stop finished at step %s: %s", (int)qemu_proc_pid(vm->proc),
		  qemu_stop_step_to_string(s.step), error ? strerror(-error) : "ok");
	if (s.fn)
		s.fn(vm, error, s.step, st, s.userdata); /* may free vm */
}

static void on_proc_exit(qemu_proc *p, const struct qemu_exit_status *st, void *userdata)
{
	qemu_instance *vm = userdata;

	/* Events QEMU wrote before exiting (its SHUTDOWN) can still be queued on
	 * the socket when the pidfd fires: read them (up to EOF, bounded) before
	 * the exit is classified. */
	for (int i = 0; i < 64 && vm->qmp && qmp_client_process(vm->qmp) >= 0; i++)
		;
	vm->exited = true;
	if (vm->stop.active)
		stop_finish(vm, 0, st);
	else if (vm->cfg.on_exit)
		vm->cfg.on_exit(vm, st, vm->cfg.userdata);
}

static void send_quit(qemu_instance *vm, qmp_reply_fn fn);

/* quit after the guest's SHUTDOWN: only needed with -no-shutdown; errors
 * (QEMU already exiting) are expected. */
static void on_shutdown_quit_reply(qmp_client *c, int error, json_object *ret,
				   const struct qv_error *errp, void *userdata)
{
}

static void on_qmp_event(qmp_client *c, const char *name, json_object *event, void *userdata)
{
	qemu_instance *vm = userdata;

	/* With -no-shutdown QEMU stays up after the guest powered off. */
	if (vm->stop.active && vm->stop.step == QEMU_STOP_STEP_POWERDOWN && streq(name, "SHUTDOWN"))
		send_quit(vm, on_shutdown_quit_reply);
	if (vm->cfg.on_event)
		vm->cfg.on_event(vm, name, event, vm->cfg.userdata);
}

static bool on_qmp_event_filter(qmp_client *c, const char *name, void *userdata)
{
	qemu_instance *vm = userdata;

	if (!vm->cfg.event_filter || streq(name, "SHUTDOWN"))
		return true;
	return vm->cfg.event_filter(vm, name, vm->cfg.userdata);
}

static void on_qmp_closed(qmp_client *c, int error, void *userdata)
{
	qemu_instance *vm = userdata;

	/* The pidfd is authoritative for the process; just note it. */
	log_debug_errno(error, "QMP connection of QEMU %d closed: %m", (int)qemu_proc_pid(vm->proc));
}

/* ---- stop state machine --------------------------------------------------- */

static void step_quit(qemu_instance *vm);
static void step_kill(qemu_instance *vm);

static void arm_timer(qemu_instance *vm, int ms, qv_timer_fn fn)
{
	vm->stop.timer = qv_source_remove(vm->stop.timer);
	if (qv_loop_add_timer(vm->loop, (uint64_t)ms, fn, vm, &vm->stop.timer) < 0)
		vm->stop.timer = NULL; /* ENOMEM: the pidfd still ends the stop */
}

static void on_kill_timeout(qv_source *s, void *userdata)
{
	qemu_instance *vm = userdata;

	vm->stop.timer = NULL;
	qv_source_remove(s);
	stop_finish(vm, -ETIMEDOUT, NULL);
}

static void step_kill(qemu_instance *vm)
{
	int r;

	vm->stop.step = QEMU_STOP_STEP_KILL;
	r = qemu_proc_signal(vm->proc, SIGKILL);
	if (r < 0)
		log_debug_errno(r, "SIGKILL to QEMU %d: %m, ignoring", (int)qemu_proc_pid(vm->proc));
	arm_timer(vm, QEMU_KILL_TIMEOUT_MS, on_kill_timeout);
}

static void on_quit_timeout(qv_source *s, void *userdata)
{
	qemu_instance *vm = userdata;

	vm->stop.timer = NULL;
	qv_source_remove(s);
	step_kill(vm);
}

/* A command of the stop sequence failed: move on, unless the QMP link is
 * gone (QEMU is exiting; the pidfd reports it, the step timer bounds it). */
static void on_stop_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			  void *userdata)
{
	qemu_instance *vm = userdata;
	enum qemu_stop_step sent;

	if (vm->freeing || !vm->stop.active || error == 0)
		return;
	sent = vm->stop.step;
	log_debug("QMP stop command at step %s failed: %s", qemu_stop_step_to_string(sent),
		  errp && errp->set ? errp->message : strerror(-error));
	if (!qmp_client_is_open(vm->qmp) || qemu_proc_exited(vm->proc))
		return;
	if (sent == QEMU_STOP_STEP_POWERDOWN)
		step_quit(vm);
	else if (sent == QEMU_STOP_STEP_QUIT)
		step_kill(vm);
}

static void send_quit(qemu_instance *vm, qmp_reply_fn fn)
{
	int r = -ENOTCONN;

	if (qmp_client_is_open(vm->qmp))
		r = qmp_client_execute_async(vm->qmp, "quit", NULL, NULL, 0,
					     QEMU_QUIT_TIMEOUT_MS, fn, vm);
	if (r < 0)
		log_debug_errno(r, "QMP quit not sent: %m");
}

static void step_quit(qemu_instance *vm)
{
	vm->stop.step = QEMU_STOP_STEP_QUIT;
	arm_timer(vm, QEMU_QUIT_TIMEOUT_MS, on_quit_timeout);
	if (!qmp_client_is_open(vm->qmp)) {
		step_kill(vm);
		return;
	}
	send_quit(vm, on_stop_reply);
}

static void on_powerdown_timeout(qv_source *s, void *userdata)
{
	qemu_instance *vm = userdata;

	vm->stop.timer = NULL;
	qv_source_remove(s);
	step_quit(vm);
}

static void step_powerdown(qemu_instance *vm)
{
	int r = -ENOTCONN;

	vm->stop.step = QEMU_STOP_STEP_POWERDOWN;
	arm_timer(vm, vm->stop.powerdown_timeout_ms, on_powerdown_timeout);
	if (qmp_client_is_open(vm->qmp))
		r = qmp_client_execute_async(vm->qmp, "system_powerdown", NULL, NULL, 0,
					     QMP_DEFAULT_TIMEOUT_MS, on_stop_reply, vm);
	if (r < 0) {
		log_debug_errno(r, "system_powerdown not sent: %m");
		step_quit(vm);
	}
}

int qemu_instance_stop(qemu_instance *vm, enum qemu_stop_mode mode, int powerdown_timeout_ms,
		       qemu_instance_stop_fn fn, void *userdata)
{
	if (vm->stop.active)
		return -EBUSY;
	if (vm->exited || qemu_proc_exited(vm->proc))
		return -ESRCH;
	vm->stop = (struct stop_state){
		.active = true,
		.mode = mode,
		.powerdown_timeout_ms = powerdown_timeout_ms > 0 ? powerdown_timeout_ms
								 : QEMU_POWERDOWN_TIMEOUT_MS,
		.fn = fn,
		.userdata = userdata,
	};
	if (mode == QEMU_STOP_FORCE)
		step_kill(vm);
	else
		step_powerdown(vm);
	return 0;
}

/* ---- start / attach ------------------------------------------------------- */

static int safe_close(int fd)
{
	if (fd >= 0)
		close(fd);
	return -1;
}

static int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return negative_errno();
		*s = '/';
	}
	if (mkdir(p, mode) < 0) {
		if (errno != EEXIST)
			return negative_errno();
		if (chmod(p, mode) < 0)
			return negative_errno();
	}
	return 0;
}

/* The last line QEMU wrote to its log since offset that names the binary
 * ("qemu-system-x86_64: -machine foo: unsupported machine type"), else the
 * last non-empty line. */
static void log_tail(const char *path, off_t offset, const char *binary, char *buf, size_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char data[4096];
	ssize_t n;
	off_t end;
	char *line;

	buf[0] = '\0';
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end < offset)
		offset = 0;
	if (end - offset > (off_t)sizeof(data) - 1)
		offset = end - (off_t)sizeof(data) + 1;
	n = pread(fd, data, sizeof(data) - 1, offset);
	if (n <= 0)
		return;
	data[n] = '\0';
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		data[--n] = '\0';
	line = NULL;
	if (binary) {
		const char *base = strrchr(binary, '/');
		char needle[128];

		snprintf(needle, sizeof(needle), "%s: ", base ? base + 1 : binary);
		for (char *q = strstr(data, needle); q; q = strstr(q + 1, needle))
			line = q;
	}
	if (!line) {
		line = strrchr(data, '\n');
		line = line ? line + 1 : data;
	} else {
		line[strcspn(line, "\n")] = '\0';
	}
	n = (ssize_t)strnlen(line, size - 1);
	memcpy(buf, line, (size_t)n);
	buf[n] = '\0';
}

/* Connect QMP before the deadline while watching the pidfd: QEMU creates its
 * socket shortly after exec; if it dies first, stop at once. With an inotify
 * fd watching the run dir, wait for the socket's creation instead of
 * sleeping; ECONNREFUSED (bound, not yet listening) retries after 1 ms. */
static int connect_qmp(qemu_proc *p, const char *path, int inotify_fd, int timeout_ms,
		       qmp_client **ret, struct qv_error *errp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = qv_now_ms() + (uint64_t)timeout_ms;

	if (strlen(path) >= sizeof(sa.sun_path))
		return qv_error_set(errp, ENAMETOOLONG, QV_REASON_INVALID_ARGUMENT,
				    "QMP socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		uint64_t now;

		if (fd < 0)
			return qv_error_set(errp, errno, QV_REASON_INTERNAL, "socket: %m");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			now = qv_now_ms();
			return qmp_client_connect_fd(fd, now >= deadline ? 1 : (int)(deadline - now),
						     ret, errp);
		}
		if (errno != ENOENT && errno != ECONNREFUSED) {
			int e = errno;
			close(fd);
			return qv_error_set(errp, e, QV_REASON_QEMU_ERROR,
					    "Failed to connect to QMP socket %s: %s", path, strerror(e));
		}
		bool refused = errno == ECONNREFUSED;
		close(fd);
		now = qv_now_ms();
		if (now >= deadline)
			return qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
					    "QEMU did not open its QMP socket %s within %d ms", path,
					    timeout_ms);
		/* Sleep on the pidfd: wakes at once if QEMU dies. */
		struct pollfd pfd[2] = {
			{ .fd = qemu_proc_pidfd(p), .events = POLLIN },
			{ .fd = refused ? -1 : inotify_fd, .events = POLLIN },
		};
		int t = (int)(deadline - now);
		if (refused || inotify_fd < 0)
			t = t < (refused ? 1 : 5) ? t : (refused ? 1 : 5);
		if (poll(pfd, 2, t) > 0 && pfd[0].revents)
			return -ECHILD;
		if (pfd[1].revents) {
			char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
			ssize_t _unused_ n = read(inotify_fd, evbuf, sizeof(evbuf));
		}
	}
}

static qemu_instance *instance_new(qv_loop *loop, const struct qemu_instance_config *cfg)
{
	qemu_instance *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->loop = loop;
	if (cfg)
		vm->cfg = *cfg;
	vm->cfg.proc = NULL;
	vm->cfg.qmp_listen_fdp = NULL;
	return vm;
}

/* Hook up QMP and pidfd to the loop. */
int qemu_instance_wire(qemu_instance *vm, bool attach_qmp, struct qv_error *errp)
{
	int r;

	qmp_client_set_event_handler(vm->qmp, on_qmp_event, vm);
	qmp_client_set_event_filter(vm->qmp, on_qmp_event_filter, vm);
	qmp_client_set_closed_handler(vm->qmp, on_qmp_closed, vm);
	r = attach_qmp ? qmp_client_attach(vm->qmp, vm->loop) : 0;
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "Failed to attach QMP to the loop: %m");
	r = qemu_proc_watch(vm->proc, vm->loop, on_proc_exit, vm);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "Failed to watch the pidfd: %m");
	return 0;
}

int qemu_instance_spawn(qv_loop *loop, char *const *argv, const char *run_dir,
			const int *keep_fds, size_t n_keep_fds,
			const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			int *ret_inotify, off_t *ret_log_off, int *ret_report_fd,
			struct qv_error *errp)
{
	_cleanup_free_ char *log_path = NULL, *qmp_path = NULL;
	_cleanup_close_ int inotify_fd = -1;
	struct qemu_proc_opts po = { 0 };
	struct stat sb;
	qemu_instance *vm;
	off_t log_off = 0;
	int r;

	if (!run_dir || run_dir[0] != '/')
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "run_dir must be an absolute path");
	bool prepared = cfg && cfg->log_fd > 0;

	r = prepared ? 0 : mkdir_p(run_dir, 0700);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "Failed to create %s: %m", run_dir);
	log_path = qemu_run_path(run_dir, QEMU_LOG);
	qmp_path = qemu_run_path(run_dir, QEMU_QMP_SOCK);
	vm = instance_new(loop, cfg);
	if (!log_path || !qmp_path || !vm || !(vm->run_dir = strdup(run_dir))) {
		qemu_instance_free(vm);
		return -ENOMEM;
	}
	if (prepared ? fstat(cfg->log_fd, &sb) == 0 : stat(log_path, &sb) == 0)
		log_off = sb.st_size;
	if (!prepared)
		(void)unlink(qmp_path); /* stale socket of a previous run */
	if (ret_inotify && !prepared) {
		inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (inotify_fd >= 0 && inotify_add_watch(inotify_fd, run_dir, IN_CREATE) < 0)
			inotify_fd = safe_close(inotify_fd);
	}

	if (cfg && cfg->proc)
		po = *cfg->proc;
	po.log_path = prepared ? NULL : log_path;
	po.log_fd = prepared ? cfg->log_fd : -1;
	po.keep_fds = keep_fds;
	po.n_keep_fds = n_keep_fds;
	if (ret_report_fd)
		r = qemu_proc_spawn_nowait(argv, &po, &vm->proc, ret_report_fd, errp);
	else
		r = qemu_proc_spawn(argv, &po, &vm->proc, errp);
	if (cfg && cfg->qmp_listen_fdp && *cfg->qmp_listen_fdp > 0)
		*cfg->qmp_listen_fdp = safe_close(*cfg->qmp_listen_fdp);
	if (r < 0) {
		qemu_instance_free(vm);
		return r;
	}
	*ret_vm = vm;
	if (ret_inotify)
		*ret_inotify = TAKE_FD(inotify_fd);
	*ret_log_off = log_off;
	return 0;
}

int qemu_instance_startup_exit_error(qemu_instance *vm, const char *binary, off_t log_off,
				     const struct qemu_exit_status *st, struct qv_error *errp)
{
	_cleanup_free_ char *log_path = qemu_run_path(vm->run_dir, QEMU_LOG);
	char tail[256] = "", what[QEMU_EXIT_STATUS_MAX];

	if (log_path)
		log_tail(log_path, log_off, binary, tail, sizeof(tail));
	qv_error_clear(errp);
	return qv_error_set(errp, ECHILD, QV_REASON_QEMU_ERROR, "QEMU %s during startup%s%s",
			    qemu_exit_status_format(st, what, sizeof(what)), tail[0] ? ": " : "",
			    tail);
}

/* Blocking: the caller waits until QMP is ready (tests, tools). */
int qemu_instance_start_argv(qv_loop *loop, char *const *argv, const char *run_dir,
			     const int *keep_fds, size_t n_keep_fds,
			     const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			     struct qv_error *errp)
{
	_cleanup_free_ char *qmp_path = NULL;
	_cleanup_close_ int inotify_fd = -1;
	struct qemu_exit_status st;
	qemu_instance *vm;
	off_t log_off = 0;
	int timeout, r;

	r = qemu_instance_spawn(loop, argv, run_dir, keep_fds, n_keep_fds, cfg, &vm, &inotify_fd,
				&log_off, NULL, errp);
	if (r < 0)
		return r;
	qmp_path = qemu_run_path(run_dir, QEMU_QMP_SOCK);
	timeout = cfg && cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
						     : QEMU_CONNECT_TIMEOUT_MS;
	r = qmp_path ? connect_qmp(vm->proc, qmp_path, inotify_fd, timeout, &vm->qmp, errp)
		     : -ENOMEM;
	/* A prepared socket closes as QEMU exits, a moment before its pidfd
	 * fires: give the exit a second to show. */
	if (r < 0 && qemu_proc_wait(vm->proc, r == -ECHILD || (cfg && cfg->log_fd > 0) ? 1000 : 0,
				    &st) == 0)
		r = qemu_instance_startup_exit_error(vm, argv[0], log_off, &st, errp);
	else if (r == -ECHILD)
		r = qv_error_set(errp, ECHILD, QV_REASON_QEMU_ERROR, "QEMU exited during startup");
	if (r >= 0)
		r = qemu_instance_wire(vm, true, errp);
	if (r < 0) {
		qemu_proc_signal(vm->proc, SIGKILL);
		(void)qemu_proc_wait(vm->proc, 5000, NULL);
		qemu_instance_free(vm);
		return r;
	}
	log_debug("QEMU %d up, QMP ready (version %s)", (int)qemu_proc_pid(vm->proc),
		  qmp_client_version(vm->qmp));
	*ret_vm = vm;
	return 0;
}

int qemu_instance_argv(const struct vm_spec *spec, const struct qemu_argv_opts *argv_opts,
		       char ***ret_argv, int **ret_keep, size_t *ret_n_keep,
		       struct qv_error *errp)
{
	_cleanup_strv_free_ char **argv = NULL;
	_cleanup_free_ int *keep = NULL;
	size_t n_keep = 0;
	int r;

	r = qemu_argv_build(spec, argv_opts, &argv, errp);
	if (r < 0)
		return r;
	r = qemu_argv_collect_fds(spec, argv_opts, &keep, &n_keep);
	if (r < 0)
		return r;
	*ret_argv = TAKE_PTR(argv);
	*ret_keep = TAKE_PTR(keep);
	*ret_n_keep = n_keep;
	return 0;
}

int qemu_instance_start(qv_loop *loop, const struct vm_spec *spec,
			const struct qemu_argv_opts *argv_opts,
			const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			struct qv_error *errp)
{
	_cleanup_strv_free_ char **argv = NULL;
	_cleanup_free_ int *keep = NULL;
	size_t n_keep = 0;
	int r;

	r = qemu_instance_argv(spec, argv_opts, &argv, &keep, &n_keep, errp);
	if (r < 0)
		return r;
	return qemu_instance_start_argv(loop, argv, argv_opts->run_dir, keep, n_keep, cfg, ret_vm,
					errp);
}

int qemu_instance_attach(qv_loop *loop, pid_t pid, uint64_t start_time, const char *qmp_path,
			 const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			 struct qv_error *errp)
{
	qemu_instance *vm = instance_new(loop, cfg);
	int timeout, r;

	if (!vm)
		return -ENOMEM;
	r = qemu_proc_attach(pid, start_time, &vm->proc, errp);
	if (r >= 0) {
		timeout = cfg && cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
							     : QEMU_CONNECT_TIMEOUT_MS;
		r = connect_qmp(vm->proc, qmp_path, -1, timeout, &vm->qmp, errp);
		if (r == -ECHILD)
			r = qv_error_set(errp, ESRCH, QV_REASON_NOT_FOUND,
					 "QEMU %d exited while re-attaching", (int)pid);
	}
	if (r >= 0)
		r = qemu_instance_wire(vm, true, errp);
	if (r < 0) {
		qemu_instance_free(vm);
		return r;
	}
	*ret_vm = vm;
	return 0;
}

qemu_instance *qemu_instance_free(qemu_instance *vm)
{
	if (!vm)
		return NULL;
	vm->freeing = true;
	qemu_instance_start_cancel(vm);
	vm->stop.timer = qv_source_remove(vm->stop.timer);
	vm->qmp = qmp_client_free(vm->qmp);
	vm->proc = qemu_proc_free(vm->proc);
	free(vm->run_dir);
	free(vm);
	return NULL;
}

void qemu_instance_freep(qemu_instance **vm)
{
	*vm = qemu_instance_free(*vm);
}

qemu_proc *qemu_instance_proc(qemu_instance *vm)
{
	return vm->proc;
}

qmp_client *qemu_instance_qmp(qemu_instance *vm)
{
	return vm->qmp;
}

pid_t qemu_instance_pid(qemu_instance *vm)
{
	return qemu_proc_pid(vm->proc);
}

uint64_t qemu_instance_start_time(qemu_instance *vm)
{
	return qemu_proc_start_time(vm->proc);
}

const char *qemu_instance_run_dir(qemu_instance *vm)
{
	return vm->run_dir;
}

bool qemu_instance_exited(qemu_instance *vm)
{
	return vm->exited;
}

bool qemu_instance_stopping(qemu_instance *vm)
{
	return vm->stop.active;
}
