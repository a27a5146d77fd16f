/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between sched/collect*.c. */
#include "sched/collect.h"

enum { F_CPU_STAT, F_MEM_CUR, F_MEM_STAT, F_MEM_EV, F_IO_STAT, F_PSI_CPU, F_PSI_MEM,
       F_PSI_IO, F_N };
enum { H_STAT, H_MEMINFO, H_PSI_CPU, H_PSI_MEM, H_PSI_IO, H_N };
/* A VM watched by pid reuses fd[]: */
enum { P_STAT = F_CPU_STAT, P_STATUS = F_MEM_CUR, P_IO = F_IO_STAT };

struct col_vm {
	char *name;
	int fd[F_N];
	struct col_vm_raw raw, prev;
	bool have_raw, have_prev, stale;
	bool by_pid;
	struct col_point last;
	struct col_ring ring;
	struct col_guest guest;
	struct col_nic nics[COL_NICS_MAX];
	struct col_disk disks[COL_DISKS_MAX];
	size_t n_nics, n_disks;
	uint64_t nics_t_us, disks_t_us; /* when stored; 0 = never */
	float net_rx_bps, net_tx_bps, disk_rd_bps, disk_wr_bps; /* last rates */
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
/* Register v (fds already open) in c; frees v on failure. */
int col_insert(qv_collector *c, struct col_vm *v);
struct col_vm *col_vm_alloc(const qv_collector *c, const char *name);
void col_vm_free(struct col_vm *v);
/* /proc/PID counters of a VM watched by pid (sched/collect-pid.c). */
void col_read_pid(qv_collector *c, struct col_vm *v, struct col_vm_raw *r);
