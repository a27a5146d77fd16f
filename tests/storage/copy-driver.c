/* SPDX-License-Identifier: MIT */
/* Small driver for the copy engine, used by scripts/bench/copy.sh:
 *   copy-driver [-q depth] [-b KiB] [-B] [-n] [-v] [-z] SRC DST
 * Defaults as qvisord uses them. -B buffered (no O_DIRECT: the kernel copy,
 * copy_file_range), -n no reflink (FICLONE and copy_file_range off),
 * -v verify, -z skip zero blocks.
 * Prints one line of stats. Not built by the Makefile (not test_*.c). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/copy.h"

int main(int argc, char **argv)
{
	struct qv_copy_opts o;
	struct qv_copy_stats st;
	struct qv_error err = { 0 };
	int c;

	qv_copy_opts_init(&o);
	while ((c = getopt(argc, argv, "q:b:Bnvz")) != -1) {
		switch (c) {
		case 'q': o.queue_depth = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'b': o.block_size = strtoull(optarg, NULL, 0) * 1024; break;
		case 'B': o.direct = false; break;
		case 'n': o.reflink = false; break;
		case 'v': o.verify = true; break;
		case 'z': o.skip_zeroes = true; break;
		default: return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: %s [-q depth] [-b KiB] [-B] [-n] [-v] [-z] SRC DST\n", argv[0]);
		return 2;
	}
	if (qv_copy_file(argv[optind], argv[optind + 1], &o, &st, &err) < 0) {
		fprintf(stderr, "copy failed (%s): %s\n", err.reason, err.message);
		return 1;
	}
	printf("total=%" PRIu64 " copied=%" PRIu64 " holes=%" PRIu64 " elapsed_ms=%.1f "
	       "MBps=%.1f reflink=%d kernel_copy=%d direct=%d fixed=%d verified=%d\n",
	       st.bytes_total, st.bytes_copied, st.holes_skipped, st.elapsed_ns / 1e6,
	       st.elapsed_ns ? st.bytes_total / (st.elapsed_ns / 1e9) / 1e6 : 0.0,
	       st.used_reflink, st.used_kernel_copy, st.used_direct, st.used_fixed_buffers, st.verified);
	return 0;
}
