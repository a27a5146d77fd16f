/* SPDX-License-Identifier: MIT */
/* A VM's backup chain state: which store, which full backup started the
 * chain, the newest backup and the dirty bitmap that has recorded every
 * write since it. One small JSON file per VM in <state-dir>/backup-chains,
 * written under a temporary name, fsync'd and renamed, so a daemon killed at
 * any point finds either the old or the new state, never a mix. It only
 * changes after a backup is complete and published. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/backup-internal.h"

static void chain_path(struct qv_daemon *d, const char *vm, char *buf, size_t size, bool tmp)
{
	snprintf(buf, size, "%s/backup-chains/%s%s.json", d->cfg.state_dir, tmp ? "." : "", vm);
}

static int copy_member(json_object *o, const char *key, char *buf, size_t size)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) >= size)
		return -EINVAL;
	snprintf(buf, size, "%s", json_object_get_string(v));
	return 0;
}

int bk_chain_load(struct qv_daemon *d, const char *vm, struct bk_chain_state *ret)
{
	char path[PATH_MAX];
	_cleanup_json_ json_object *o = NULL;
	struct bk_chain_state st = {};
	json_object *v;

	chain_path(d, vm, path, sizeof(path), false);
	if (access(path, F_OK) < 0)
		return -ENOENT;
	o = json_object_from_file(path);
	if (!o || copy_member(o, "store", st.store, sizeof(st.store)) < 0 ||
	    copy_member(o, "chain", st.chain, sizeof(st.chain)) < 0 ||
	    copy_member(o, "last", st.last, sizeof(st.last)) < 0 ||
	    copy_member(o, "bitmap", st.bitmap, sizeof(st.bitmap)) < 0 ||
	    !json_object_object_get_ex(o, "disks", &v)) {
		log_warning("Backup chain state %s is unreadable, ignoring (next backup is full)",
			    path);
		return -EINVAL;
	}
	st.n_disks = (unsigned)json_object_get_int(v);
	*ret = st;
	return 0;
}

int bk_chain_save(struct qv_daemon *d, const char *vm, const struct bk_chain_state *st)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
	_cleanup_json_ json_object *o = json_object_new_object();
	int fd, r = 0;

	snprintf(dir, sizeof(dir), "%s/backup-chains", d->cfg.state_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	chain_path(d, vm, path, sizeof(path), false);
	chain_path(d, vm, tmp, sizeof(tmp), true);
	json_object_object_add(o, "store", json_object_new_string(st->store));
	json_object_object_add(o, "chain", json_object_new_string(st->chain));
	json_object_object_add(o, "last", json_object_new_string(st->last));
	json_object_object_add(o, "bitmap", json_object_new_string(st->bitmap));
	json_object_object_add(o, "disks", json_object_new_int((int)st->n_disks));
	const char *text = json_object_to_json_string(o);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	close(fd);
	if (r >= 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	return 0;
}

void bk_chain_forget(struct qv_daemon *d, const char *vm)
{
	char path[PATH_MAX];

	chain_path(d, vm, path, sizeof(path), false);
	(void)unlink(path);
}
