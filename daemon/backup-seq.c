/* SPDX-License-Identifier: MIT */
/* QMP commands run in order on the loop, each bounded by QV_VM_QMP_TIMEOUT_MS,
 * and file work on worker threads (a backup's fsync and checksums, restores,
 * verification), so the daemon's loop never waits. */
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/backup-internal.h"

struct bk_seq {
	struct qv_daemon *d;
	char vm[VM_NAME_MAX + 1];
	qemu_instance *inst;
	struct bk_cmd *cmds;
	size_t n, cap, next;
	bk_seq_done_fn fn;
	void *ud;
	/* pipelined: every command sent at once, replies counted */
	bool pipelined;
	size_t replied;
	int error;
	struct qv_error err;
};

qemu_instance *bk_vm_inst(struct qv_daemon *d, const char *vm, qemu_instance *inst)
{
	struct qv_vm *v = qv_vm_find(d, vm);

	return v && v->inst == inst && qmp_client_is_open(qemu_instance_qmp(inst)) ? inst : NULL;
}

struct bk_seq *bk_seq_new(struct qv_daemon *d, const char *vm, qemu_instance *inst)
{
	struct bk_seq *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->d = d;
	s->inst = inst;
	snprintf(s->vm, sizeof(s->vm), "%s", vm);
	return s;
}

struct bk_seq *bk_seq_free(struct bk_seq *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		free(s->cmds[i].command);
		json_object_put(s->cmds[i].args);
		if (s->cmds[i].fd >= 0)
			close(s->cmds[i].fd);
	}
	free(s->cmds);
	free(s);
	return NULL;
}

void bk_seq_add(struct bk_seq *s, const char *command, json_object *args, int fd,
		bool ignore_error, void (*on_ret)(json_object *ret, void *ud), void *ud)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		void *p = realloc(s->cmds, cap * sizeof(*s->cmds));
		if (!p) {
			json_object_put(args);
			if (fd >= 0)
				close(fd);
			return;
		}
		s->cmds = p;
		s->cap = cap;
	}
	s->cmds[s->n++] = (struct bk_cmd){ .command = strdup(command), .args = args, .fd = fd,
					   .ignore_error = ignore_error, .on_ret = on_ret, .ud = ud };
}

static void seq_next(struct bk_seq *s);

static void seq_finish(struct bk_seq *s, int error, const struct qv_error *err)
{
	bk_seq_done_fn fn = s->fn;
	void *ud = s->ud;

	bk_seq_free(s);
	if (fn)
		fn(error, err, ud);
}

static void on_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
		     void *ud)
{
	struct bk_seq *s = ud;
	struct bk_cmd *cmd = &s->cmds[s->next - 1];

	if (error < 0 && !cmd->ignore_error)
		return seq_finish(s, error, errp);
	if (error < 0)
		log_debug("VM %s: %s failed, ignoring: %s", s->vm, cmd->command,
			  errp && errp->set ? errp->message : strerror(-error));
	else if (cmd->on_ret)
		cmd->on_ret(ret, cmd->ud);
	seq_next(s);
}

static void seq_next(struct bk_seq *s)
{
	struct qv_error err = {};
	int r;

	if (s->next == s->n)
		return seq_finish(s, 0, NULL);
	struct bk_cmd *cmd = &s->cmds[s->next++];
	qemu_instance *inst = bk_vm_inst(s->d, s->vm, s->inst);
	if (!inst) {
		qv_error_set(&err, ESRCH, QV_REASON_UNAVAILABLE,
			     "QEMU of VM %s exited or closed QMP during the backup (%s)", s->vm,
			     cmd->command);
		if (cmd->ignore_error)
			return seq_next(s);
		return seq_finish(s, -ESRCH, &err);
	}
	r = qmp_client_execute_async(qemu_instance_qmp(inst), cmd->command, cmd->args,
				     cmd->fd >= 0 ? &cmd->fd : NULL, cmd->fd >= 0 ? 1 : 0,
				     QV_VM_QMP_TIMEOUT_MS, on_reply, s);
	if (r < 0) {
		qv_error_set(&err, -r, QV_REASON_UNAVAILABLE, "%s: cannot send QMP command: %s",
			     cmd->command, strerror(-r));
		if (cmd->ignore_error)
			return seq_next(s);
		seq_finish(s, r, &err);
	}
}

/* --- pipelined: QEMU runs a monitor's commands in order, one after the
 * other, so independent commands need not wait for each other's reply
 * (each round trip costs milliseconds while TCG holds QEMU's lock) --- */

static void pipe_account(struct bk_seq *s, struct bk_cmd *cmd, int error, json_object *ret,
			 const struct qv_error *errp)
{
	if (error < 0 && !cmd->ignore_error && !s->error) {
		s->error = error;
		if (errp && errp->set)
			s->err = *errp;
	} else if (error >= 0 && cmd->on_ret) {
		cmd->on_ret(ret, cmd->ud);
	}
	if (++s->replied == s->n) {
		struct qv_error e = s->err; /* s is freed before fn runs */
		seq_finish(s, s->error, s->error ? &e : NULL);
	}
}

static void on_pipe_reply(qmp_client *c, int error, json_object *ret, const struct qv_error *errp,
			  void *ud)
{
	struct bk_cmd *cmd = ud;

	pipe_account(cmd->seq, cmd, error, ret, errp);
}

void bk_seq_run_pipelined(struct bk_seq *s, bk_seq_done_fn fn, void *ud)
{
	struct qv_error err = {};

	s->fn = fn;
	s->ud = ud;
	s->pipelined = true;
	if (s->n == 0)
		return seq_finish(s, 0, NULL);
	for (size_t i = 0, n = s->n; i < n; i++) {
		struct bk_cmd *cmd = &s->cmds[i];
		qemu_instance *inst = bk_vm_inst(s->d, s->vm, s->inst);
		int r = -ESRCH;
		cmd->seq = s;
		if (inst)
			r = qmp_client_execute_async(qemu_instance_qmp(inst), cmd->command, cmd->args,
						     cmd->fd >= 0 ? &cmd->fd : NULL, cmd->fd >= 0 ? 1 : 0,
						     QV_VM_QMP_TIMEOUT_MS, on_pipe_reply, cmd);
		if (r < 0) {
			qv_error_set(&err, ESRCH, QV_REASON_UNAVAILABLE,
				     "QEMU of VM %s exited or closed QMP during the backup (%s)",
				     s->vm, cmd->command);
			/* the last one accounted may free s */
			pipe_account(s, cmd, r, NULL, &err);
		}
	}
}

void bk_seq_run(struct bk_seq *s, bk_seq_done_fn fn, void *ud)
{
	s->fn = fn;
	s->ud = ud;
	seq_next(s);
}

/* --- worker threads ------------------------------------------------------ */

struct bk_work {
	struct qv_daemon *d;
	pthread_t th;
	int efd;
	qv_source *src;
	bk_work_fn fn;
	bk_work_done_fn done;
	void *ud;
	int r;
	struct qv_error err;
};

static void *work_main(void *arg)
{
	struct bk_work *w = arg;
	uint64_t one = 1;

	w->r = w->fn(w->ud, &w->err);
	if (w->r < 0 && !w->err.set)
		qv_error_set(&w->err, w->r, NULL, "%s", strerror(-w->r));
	if (write(w->efd, &one, sizeof(one)) < 0)
		log_debug("backup worker: eventfd write failed: %m");
	return NULL;
}

static void on_work_done(qv_source *src, int fd, uint32_t revents, void *ud)
{
	struct bk_work *w = ud;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
		return;
	pthread_join(w->th, NULL);
	qv_source_remove(w->src);
	close(w->efd);
	w->done(w->r, w->r < 0 ? &w->err : NULL, w->ud);
	free(w);
}

int bk_work_start(struct qv_daemon *d, bk_work_fn fn, bk_work_done_fn done, void *ud)
{
	struct bk_work *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	int r;

	if (!w)
		return -ENOMEM;
	*w = (struct bk_work){ .d = d, .fn = fn, .done = done, .ud = ud };
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		free(w);
		return -errno;
	}
	r = qv_loop_add_io(d->loop, w->efd, EPOLLIN, on_work_done, w, &w->src);
	if (r < 0)
		goto fail;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&w->th, NULL, work_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		qv_source_remove(w->src);
		goto fail;
	}
	return 0;
fail:
	close(w->efd);
	free(w);
	return r;
}
