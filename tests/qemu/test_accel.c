/* SPDX-License-Identifier: MIT */
/* Accelerator probe logic without a real guest: a fake QEMU (a test script)
 * that hangs like a nested-KVM guest, a missing /dev/kvm, and the cache. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/loop.h"
#include "common/macro.h"
#include "helpers/guest.h"
#include "qemu/accel.h"

static char dir[64];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qv-test-accel-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static char *write_file(const char *name, const char *text, mode_t mode)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return p;
}

/* Prints a version, then hangs (or prints the marker if $1.. asks). */
static const char fake_qemu[] =
	"#!/bin/sh\n"
	"case \"$1\" in --version) echo 'QEMU emulator version 9.9.9 (fake)'; exit 0;; esac\n"
	"if [ -e \"$(dirname \"$0\")/boots\" ]; then echo QVISOR-GUEST-READY; fi\n"
	"exec sleep 30\n";

static bool have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

Test(accel, no_kvm_device_means_tcg_without_boot)
{
	struct qemu_accel_result res;
	struct qemu_accel_probe_opts o = {
		.kvm_device = "/nonexistent/kvm", .kernel = "/k", .initrd = "/i",
		.qemu_binary = "/nonexistent/qemu",
	};
	cr_assert_eq(qemu_accel_probe(&o, &res, NULL), 0);
	cr_assert_not(res.kvm_present);
	cr_assert_not(res.kvm_usable);
	cr_assert_eq(res.chosen, VM_ACCEL_TCG);
	cr_assert(strstr(res.reason, "KVM not present: /nonexistent/kvm: No such file"), "%s",
		  res.reason);
	cr_assert_eq(qemu_accel_resolve(VM_ACCEL_AUTO, &res), VM_ACCEL_TCG);
	cr_assert_eq(qemu_accel_resolve(VM_ACCEL_KVM, &res), VM_ACCEL_KVM);
}

Test(accel, half_probe_guest_rejected)
{
	struct qemu_accel_result res;
	struct qv_error err = { 0 };
	struct qemu_accel_probe_opts o = { .kernel = "/k" };
	cr_assert_eq(qemu_accel_probe(&o, &res, &err), -EINVAL);
}

Test(accel, hanging_guest_times_out_then_cache_hits, .timeout = 60)
{
	if (!have_kvm())
		cr_skip_test("/dev/kvm not usable here");
	make_dir();
	_cleanup_free_ char *bin = write_file("qemu", fake_qemu, 0755);
	_cleanup_free_ char *k = write_file("vmlinuz", "k", 0644);
	_cleanup_free_ char *i = write_file("initrd.img", "i", 0644);
	_cleanup_free_ char *cache = NULL;
	cr_assert(asprintf(&cache, "%s/cache", dir) > 0);
	struct qemu_accel_probe_opts o = {
		.qemu_binary = bin, .kernel = k, .initrd = i, .cache_dir = cache, .timeout_ms = 1500,
	};
	struct qemu_accel_result res;

	uint64_t t0 = qv_now_ms();
	cr_assert_eq(qemu_accel_probe(&o, &res, NULL), 0);
	uint64_t took = qv_now_ms() - t0;
	cr_assert(res.kvm_present);
	cr_assert_not(res.kvm_usable);
	cr_assert_not(res.from_cache);
	cr_assert_eq(res.chosen, VM_ACCEL_TCG);
	cr_assert_str_eq(res.reason,
			 "KVM present but unusable: probe guest did not reach the ready marker "
			 "within 1500 ms (nested KVM hangs?); using TCG");
	cr_assert_lt(took, 1500 + 10000, "probe did not respect its deadline (%llu ms)",
		     (unsigned long long)took);

	/* Same key: from the cache, no boot (the fake would now "boot"). */
	free(write_file("boots", "", 0644));
	cr_assert_eq(qemu_accel_probe(&o, &res, NULL), 0);
	cr_assert(res.from_cache);
	cr_assert_not(res.kvm_usable);

	/* Key change (probe kernel differs): probes again, now usable. */
	free(write_file("vmlinuz", "kernel-2", 0644));
	cr_assert_eq(qemu_accel_probe(&o, &res, NULL), 0);
	cr_assert_not(res.from_cache);
	cr_assert(res.kvm_usable, "%s", res.reason);
	cr_assert_eq(res.chosen, VM_ACCEL_KVM);
	cr_assert_eq(qemu_accel_resolve(VM_ACCEL_AUTO, &res), VM_ACCEL_KVM);
	cr_assert_eq(qemu_accel_resolve(VM_ACCEL_TCG, &res), VM_ACCEL_TCG);
	qvt_rm_rf(cache);
	qvt_rm_rf(dir);
}
