/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between sched/collect*.c. */
#include "sched/collect.h"

enum { F_CPU_STAT, F_MEM_CUR, F_MEM_STAT, F_MEM_EV, F_IO_STAT, F_PSI_CPU, F_PSI_MEM,
       F_PSI_IO, F_N };
enum { H_STAT, H_MEMINFO, H_PSI_CPU, H_PSI_MEM, H_PSI_IO, H_N };

struct col_vm {
	char *name;
	int fd[F_N];
	struct col_vm_raw raw, prev;
	bool have_raw, have_prev, stale;
	struct col_point last;
	struct col_ring ring;
};

struct qv_collector {
	struct col_opts o;
	struct col_vm **vms;
	size_t n_vms, cap_vms;
	int hfd[H_N];
	struct col_host host;
	uint64_t t0_us;
	bool started;
	char buf[16384];
};

/* pread the whole file from offset 0 into c->buf; NULL if fd < 0 or on error. */
const char *col_read_fd(qv_collector *c, int fd);
