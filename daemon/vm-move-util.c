/* SPDX-License-Identifier: MIT */
/* Helpers shared by both roles of a cold migration (daemon/vm-move*.c). */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/vm-move-internal.h"

static qv_workq *workq;
static bool shut_down;

int mv_workq(struct qv_daemon *d, qv_workq **ret)
{
	int r;

	if (shut_down)
		return -ESHUTDOWN;
	if (!workq && (r = qv_workq_new(d->loop, 2, &workq)) < 0)
		return r;
	*ret = workq;
	return 0;
}

void mv_workq_free(void)
{
	shut_down = true;
	workq = qv_workq_free(workq);
}

int mv_write_json(const char *path, json_object *obj)
{
	char tmp[PATH_MAX];
	const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, s, n) != (ssize_t)n || fsync(fd) < 0)
		r = -EIO;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(tmp);
	return r;
}

json_object *mv_read_json(const char *path)
{
	return json_object_from_file(path);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		log_warning_errno(errno, "Cannot remove %s, ignoring: %m", path);
	return 0;
}

void mv_rm_dir(const char *dir)
{
	/* Depth first, never following a symlink (a VM's run dir holds files
	 * its QEMU wrote). */
	(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

bool mv_token_valid(const char *t)
{
	if (!t || strlen(t) != 32)
		return false;
	for (const char *p = t; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

void mv_scan_dir(struct qv_daemon *d, const char *sub, mv_scan_fn fn)
{
	char top[PATH_MAX];
	DIR *dh;
	struct dirent *e;

	snprintf(top, sizeof(top), "%s/%s", d->cfg.state_dir, sub);
	if (!(dh = opendir(top)))
		return;
	while ((e = readdir(dh))) {
		char path[PATH_MAX * 2];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", top, e->d_name);
		fn(d, path, e->d_name);
	}
	closedir(dh);
}

void mv_hex64(uint64_t v, char buf[17])
{
	snprintf(buf, 17, "%016llx", (unsigned long long)v);
}
