/* SPDX-License-Identifier: MIT */
#pragma once
/* System calls for a spawned child that still shares the daemon's memory:
 * qemu/proc.c clones QEMU's child with CLONE_VM (no copy of the daemon's
 * page tables, no copy-on-write faults in the daemon while children set
 * up), so until exec the child also shares the daemon thread's TLS and with
 * it errno. These return the result or -errno and never write errno; they
 * make no libc call. Where the architecture has no inline version
 * (QV_RAW_SYSCALLS 0), qemu/proc.c forks instead and libc's syscall() is
 * safe to use. */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define QV_RAW_SYSCALLS 1
static inline long qv_sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#else
#define QV_RAW_SYSCALLS 0
static inline long qv_sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long r = syscall(nr, a, b, c, d, e, f);

	return r == -1 ? -errno : r;
}
#endif

#define qv_sys_(nr, a, b, c, d, e, f, ...) \
	qv_sys6((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
/* qv_sys(SYS_x, args...): up to six arguments. */
#define qv_sys(...) qv_sys_(__VA_ARGS__, 0, 0, 0, 0, 0, 0)
