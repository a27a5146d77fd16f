/* SPDX-License-Identifier: MIT */
/* Which whole disk holds an image file (io.max / io.weight take MAJ:MIN of a
 * disk, never of a partition). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/macro.h"
#include "sched/cgroup.h"

static int read_devno(const char *path, unsigned *ret_major, unsigned *ret_minor)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	unsigned ma, mi;

	if (!f)
		return -errno;
	if (fscanf(f, "%u:%u", &ma, &mi) != 2)
		return -EINVAL;
	*ret_major = ma;
	*ret_minor = mi;
	return 0;
}

int cg_blkdev_for_path(const char *path, unsigned *ret_major, unsigned *ret_minor,
		       struct qv_error *errp)
{
	struct stat st;
	char sys[128], real[PATH_MAX], part[PATH_MAX + 16];
	dev_t dev;

	if (stat(path, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND, "Cannot stat %s: %m", path);
	dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u", major(dev), minor(dev));
	if (!realpath(sys, real))
		return qv_error_set(errp, ENODEV, QV_REASON_UNSUPPORTED,
				    "%s is on device %u:%u, which is not a block device "
				    "(tmpfs, overlay or a btrfs subvolume?): io limits cannot "
				    "apply to it", path, major(dev), minor(dev));
	snprintf(part, sizeof(part), "%s/partition", real);
	if (access(part, F_OK) == 0) {
		/* A partition: its parent directory is the disk. */
		char *slash = strrchr(real, '/');
		if (!slash)
			return qv_error_set(errp, ENODEV, QV_REASON_INTERNAL,
					    "Unexpected sysfs path %s", real);
		*slash = '\0';
		snprintf(part, sizeof(part), "%s/dev", real);
		unsigned ma = 0, mi = 0;
		int r = read_devno(part, &ma, &mi);
		if (r < 0)
			return qv_error_set(errp, -r, QV_REASON_IO_ERROR, "Cannot read %s: %s",
					    part, strerror(-r));
		*ret_major = ma;
		*ret_minor = mi;
		return 0;
	}
	*ret_major = major(dev);
	*ret_minor = minor(dev);
	return 0;
}
