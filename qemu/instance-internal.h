/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by qemu/instance.c (stop, blocking start, attach, helpers) and
 * qemu/instance-start.c (the asynchronous start on the loop). */

#include "qemu/instance.h"

struct stop_state {
	bool active;
	enum qemu_stop_mode mode;
	enum qemu_stop_step step;
	qv_source *timer;
	int powerdown_timeout_ms;
	qemu_instance_stop_fn fn;
	void *userdata;
};

struct qemu_instance {
	qv_loop *loop;
	qemu_proc *proc;
	qmp_client *qmp;
	char *run_dir;
	struct qemu_instance_config cfg;
	bool exited;
	bool freeing;
	struct stop_state stop;
	struct qemu_start *start; /* asynchronous start in progress (instance-start.c) */
};

/* instance.c */
/* Prepare run_dir and spawn QEMU: *ret_vm holds the process, not yet QMP;
 * *ret_inotify (if not NULL) watches run_dir for the socket (-1 if
 * unavailable) and *ret_log_off is where this run's log starts. With
 * ret_report_fd, the exec is not waited for (qemu_proc_spawn_nowait). */
int qemu_instance_spawn(qv_loop *loop, char *const *argv, const char *run_dir,
			const int *keep_fds, size_t n_keep_fds,
			const struct qemu_instance_config *cfg, qemu_instance **ret_vm,
			int *ret_inotify, off_t *ret_log_off, int *ret_report_fd,
			struct qv_error *errp);
/* Build argv and the kept NIC fds from spec + argv_opts. */
int qemu_instance_argv(const struct vm_spec *spec, const struct qemu_argv_opts *argv_opts,
		       char ***ret_argv, int **ret_keep, size_t *ret_n_keep,
		       struct qv_error *errp);
/* Hook up QMP events/close and the pidfd to the loop; attach_qmp: the client
 * is not yet attached. */
int qemu_instance_wire(qemu_instance *vm, bool attach_qmp, struct qv_error *errp);
/* "QEMU exited with status 1 during startup: <last log line>". */
int qemu_instance_startup_exit_error(qemu_instance *vm, const char *binary, off_t log_off,
				     const struct qemu_exit_status *st, struct qv_error *errp);

/* instance-start.c */
/* Abandon an asynchronous start (the instance is being freed); QEMU keeps running. */
void qemu_instance_start_cancel(qemu_instance *vm);
