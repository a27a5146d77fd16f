/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>

#include "migrate/converge.h"

#define MB 1000000.0

/* 512 MiB at 20 MB/s is ~27 s of transfer: worth channels when CPUs idle. */
Test(multifd, long_transfer_with_idle_cpus_gets_channels)
{
	char why[256] = "";
	unsigned n = mig_multifd_plan(512ULL << 20, 20 * MB, 6.0, why, sizeof(why));

	cr_assert_eq(n, 4, "channels %u (%s)", n, why);
	cr_assert_gt(strlen(why), 10);
	n = mig_multifd_plan(512ULL << 20, 20 * MB, 2.5, why, sizeof(why));
	cr_assert_eq(n, 2, "channels %u with 2.5 idle CPUs (%s)", n, why);
}

Test(multifd, off_when_short_or_cpu_bound)
{
	char why[256] = "";

	/* 256 MiB at 1 GB/s: well under QV_MIG_MULTIFD_MIN_S. */
	cr_assert_eq(mig_multifd_plan(256ULL << 20, 1000 * MB, 8.0, why, sizeof(why)), 0, "%s",
		     why);
	cr_assert_gt(strlen(why), 10, "the reason for 'off' is recorded too");
	/* Long transfer, but no idle CPU to run the channels. */
	cr_assert_eq(mig_multifd_plan(4ULL << 30, 20 * MB, 1.0, why, sizeof(why)), 0, "%s", why);
}
