/* SPDX-License-Identifier: MIT */
/* The backup store: metadata, listing, chains, retention, delete
 * (docs/backup.md). Everything here is plain file work; the daemon calls it
 * from worker threads or for small files on its loop. */
#include <limits.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/macro.h"
#include "storage/backup-store.h"

#define META_MAX (4 << 20)

bool qv_backup_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > QV_BACKUP_ID_MAX)
		return false;
	if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z') ||
	      (id[0] >= '0' && id[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

struct qv_backup_meta *qv_backup_meta_free(struct qv_backup_meta *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n_disks; i++) {
		free(m->disks[i].source);
		free(m->disks[i].source_format);
		free(m->disks[i].file);
		free(m->disks[i].format);
	}
	free(m->disks);
	free(m->id);
	free(m->vm);
	free(m->parent);
	free(m->chain);
	free(m->bitmap);
	free(m->forced_full);
	free(m->quiesce_note);
	json_object_put(m->spec);
	free(m);
	return NULL;
}

void qv_backup_meta_freep(struct qv_backup_meta **m)
{
	*m = qv_backup_meta_free(*m);
}

void qv_backup_meta_array_free(struct qv_backup_meta **a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		qv_backup_meta_free(a[i]);
	free(a);
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

json_object *qv_backup_meta_to_json(const struct qv_backup_meta *m)
{
	json_object *o = json_object_new_object(), *disks = json_object_new_array();
	char hex[17];

	json_object_object_add(o, "format_version", json_object_new_int(1));
	json_object_object_add(o, "id", json_object_new_string(m->id));
	json_object_object_add(o, "vm", json_object_new_string(m->vm));
	json_object_object_add(o, "kind", json_object_new_string(m->incremental ? "incremental"
										: "full"));
	json_object_object_add(o, "parent", str_or_null(m->parent));
	json_object_object_add(o, "chain", json_object_new_string(m->chain));
	json_object_object_add(o, "bitmap", str_or_null(m->bitmap));
	json_object_object_add(o, "forced_full", str_or_null(m->forced_full));
	json_object_object_add(o, "quiesced", json_object_new_boolean(m->quiesced));
	json_object_object_add(o, "quiesce_note", str_or_null(m->quiesce_note));
	json_object_object_add(o, "created", json_object_new_int64(m->created_ms));
	json_object_object_add(o, "completed", json_object_new_int64(m->completed_ms));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)m->size));
	json_object_object_add(o, "spec", m->spec ? json_object_get(m->spec) : NULL);
	for (size_t i = 0; i < m->n_disks; i++) {
		const struct qv_backup_disk *d = &m->disks[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "index", json_object_new_int((int)d->index));
		json_object_object_add(j, "source", json_object_new_string(d->source));
		json_object_object_add(j, "source_format", json_object_new_string(d->source_format));
		json_object_object_add(j, "virtual_size", json_object_new_int64((int64_t)d->virtual_size));
		json_object_object_add(j, "file", json_object_new_string(d->file));
		json_object_object_add(j, "format", json_object_new_string(d->format));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)d->bytes));
		snprintf(hex, sizeof(hex), "%016" PRIx64, d->checksum);
		json_object_object_add(j, "checksum", json_object_new_string(hex));
		json_object_array_add(disks, j);
	}
	json_object_object_add(o, "disks", disks);
	return o;
}

/* Optional string member: absent or null leaves *ret NULL. */
static int opt_str(json_object *o, const char *key, char **ret, struct qv_error *errp)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup metadata: %s must be a string", key);
	*ret = strdup(json_object_get_string(v));
	return *ret ? 0 : -ENOMEM;
}

static int req_str(json_object *o, const char *key, char **ret, struct qv_error *errp)
{
	int r = opt_str(o, key, ret, errp);

	if (r >= 0 && !*ret)
		r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				 "backup metadata: %s is missing", key);
	return r;
}

static int req_u64(json_object *o, const char *key, uint64_t *ret, struct qv_error *errp)
{
	int64_t v;
	int r = json_get_int64(o, key, key, &v, errp);

	if (r == -ENOENT || (r >= 0 && v < 0))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup metadata: %s is missing or negative", key);
	if (r >= 0)
		*ret = (uint64_t)v;
	return r;
}

static bool disk_file_valid(const char *f, unsigned index)
{
	char raw[32], qcow2[32];

	snprintf(raw, sizeof(raw), "disk%u.raw", index);
	snprintf(qcow2, sizeof(qcow2), "disk%u.qcow2", index);
	return streq(f, raw) || streq(f, qcow2);
}

static int disk_from_json(json_object *j, unsigned pos, struct qv_backup_disk *d,
			  struct qv_error *errp)
{
	const char *hex = NULL;
	uint64_t idx;
	char *end;
	int r;

	if (!json_object_is_type(j, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup metadata: disks[%u] is not an object", pos);
	if ((r = req_u64(j, "index", &idx, errp)) < 0 || (r = req_str(j, "source", &d->source, errp)) < 0 ||
	    (r = req_str(j, "source_format", &d->source_format, errp)) < 0 ||
	    (r = req_u64(j, "virtual_size", &d->virtual_size, errp)) < 0 ||
	    (r = req_str(j, "file", &d->file, errp)) < 0 ||
	    (r = req_str(j, "format", &d->format, errp)) < 0 ||
	    (r = req_u64(j, "bytes", &d->bytes, errp)) < 0 ||
	    (r = json_get_string(j, "checksum", "checksum", &hex, errp)) < 0)
		return r == -ENOENT ? qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
						   "backup metadata: disks[%u].checksum missing", pos)
				    : r;
	d->index = (unsigned)idx;
	d->checksum = strtoull(hex, &end, 16);
	if (idx >= 64 || !disk_file_valid(d->file, d->index) || strlen(hex) != 16 || *end ||
	    (!streq(d->format, "raw") && !streq(d->format, "qcow2")) ||
	    !strstr(d->file, d->format))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup metadata: disks[%u] is malformed", pos);
	return 0;
}

int qv_backup_meta_from_json(json_object *o, struct qv_backup_meta **ret, struct qv_error *errp)
{
	_cleanup_backup_meta_ struct qv_backup_meta *m = calloc(1, sizeof(*m));
	_cleanup_free_ char *kind = NULL;
	json_object *disks, *spec;
	uint64_t u;
	bool q = false;
	int r;

	if (!m)
		return -ENOMEM;
	if (!json_object_is_type(o, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup metadata is not a JSON object");
	if ((r = req_str(o, "id", &m->id, errp)) < 0 || (r = req_str(o, "vm", &m->vm, errp)) < 0 ||
	    (r = req_str(o, "kind", &kind, errp)) < 0 || (r = opt_str(o, "parent", &m->parent, errp)) < 0 ||
	    (r = req_str(o, "chain", &m->chain, errp)) < 0 ||
	    (r = opt_str(o, "bitmap", &m->bitmap, errp)) < 0 ||
	    (r = opt_str(o, "forced_full", &m->forced_full, errp)) < 0 ||
	    (r = opt_str(o, "quiesce_note", &m->quiesce_note, errp)) < 0)
		return r;
	if ((r = json_get_bool(o, "quiesced", "quiesced", &q, errp)) < 0 && r != -ENOENT)
		return r;
	m->quiesced = q;
	if ((r = req_u64(o, "created", &u, errp)) < 0)
		return r;
	m->created_ms = (int64_t)u;
	if ((r = req_u64(o, "completed", &u, errp)) < 0 || (r = req_u64(o, "size", &m->size, errp)) < 0)
		return r;
	m->completed_ms = (int64_t)u;
	m->incremental = streq(kind, "incremental");
	if ((!m->incremental && !streq(kind, "full")) || !qv_backup_id_valid(m->id) ||
	    !qv_backup_id_valid(m->chain) || (m->parent && !qv_backup_id_valid(m->parent)) ||
	    m->incremental != !!m->parent)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup metadata: bad id, kind, parent or chain");
	if (json_object_object_get_ex(o, "spec", &spec) && spec)
		m->spec = json_object_get(spec);
	if (!json_object_object_get_ex(o, "disks", &disks) ||
	    !json_object_is_type(disks, json_type_array) || json_object_array_length(disks) == 0 ||
	    json_object_array_length(disks) > QV_BACKUP_MAX_DISKS)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup metadata: disks must list 1..%d disks", QV_BACKUP_MAX_DISKS);
	m->n_disks = json_object_array_length(disks);
	if (!(m->disks = calloc(m->n_disks, sizeof(*m->disks))))
		return -ENOMEM;
	for (size_t i = 0; i < m->n_disks; i++)
		if ((r = disk_from_json(json_object_array_get_idx(disks, i), (unsigned)i,
					&m->disks[i], errp)) < 0)
			return r;
	*ret = TAKE_PTR(m);
	return 0;
}

int qv_backup_meta_write(int dirfd, const struct qv_backup_meta *m, struct qv_error *errp)
{
	_cleanup_json_ json_object *o = qv_backup_meta_to_json(m);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	size_t len = strlen(text);
	const char *tmp = "." QV_BACKUP_META_FILE ".tmp";
	_cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
							O_NOFOLLOW, 0600);
	int r = 0;

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "writing backup metadata: %m");
	for (size_t off = 0; off < len && r >= 0;) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0)
			r = -errno;
		else
			off += (size_t)n;
	}
	if (r >= 0 && (write(fd, "\n", 1) != 1 || fsync(fd) < 0))
		r = -errno;
	if (r >= 0 && renameat(dirfd, tmp, dirfd, QV_BACKUP_META_FILE) < 0)
		r = -errno;
	if (r >= 0 && fsync(dirfd) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return qv_error_set(errp, r, r == -ENOSPC || r == -EDQUOT ? QV_REASON_NO_SPACE
									   : QV_REASON_IO_ERROR,
				    "writing backup metadata: %s", strerror(-r));
	}
	return 0;
}

static int load_at(int storefd, const char *id, struct qv_backup_meta **ret, struct qv_error *errp)
{
	char path[QV_BACKUP_ID_MAX + 32];
	_cleanup_json_ json_object *o = NULL;
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	struct qv_backup_meta *m;
	struct stat st;
	int r;

	snprintf(path, sizeof(path), "%s/" QV_BACKUP_META_FILE, id);
	fd = openat(storefd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return qv_error_set(errp, errno, errno == ENOENT ? QV_REASON_NOT_FOUND : QV_REASON_IO_ERROR,
				    "backup %s: %s", id, errno == ENOENT ? "no such backup" : strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > META_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup %s: metadata is not a regular file of at most 4 MiB", id);
	if (!(buf = calloc(1, (size_t)st.st_size + 1)))
		return -ENOMEM;
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		return qv_error_set(errp, EIO, QV_REASON_IO_ERROR, "backup %s: short read", id);
	if (!(o = json_tokener_parse(buf)))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup %s: metadata is not valid JSON", id);
	if ((r = qv_backup_meta_from_json(o, &m, errp)) < 0)
		return qv_error_prefix(errp, "backup %s", id), r;
	if (!streq(m->id, id)) {
		qv_backup_meta_free(m);
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "backup %s: metadata names another id", id);
	}
	*ret = m;
	return 0;
}

static int open_store(const char *store, struct qv_error *errp)
{
	int fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return qv_error_set(errp, errno, errno == ENOENT ? QV_REASON_NOT_FOUND : QV_REASON_IO_ERROR,
				    "backup store %s: %m", store);
	return fd;
}

int qv_backup_meta_load(const char *store, const char *id, struct qv_backup_meta **ret,
			struct qv_error *errp)
{
	_cleanup_close_ int fd = -1;

	if (!qv_backup_id_valid(id))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid backup id \"%.80s\"", id ? id : "");
	if ((fd = open_store(store, errp)) < 0)
		return fd;
	return load_at(fd, id, ret, errp);
}

static int cmp_meta(const void *a, const void *b)
{
	const struct qv_backup_meta *x = *(struct qv_backup_meta *const *)a;
	const struct qv_backup_meta *y = *(struct qv_backup_meta *const *)b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

int qv_backup_store_list(const char *store, const char *vm, struct qv_backup_meta ***ret,
			 size_t *ret_n, struct qv_error *errp)
{
	struct qv_backup_meta **a = NULL, *m;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int fd = open_store(store, errp);
	DIR *dir;

	if (fd < 0)
		return fd;
	if (!(dir = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		if (!qv_backup_id_valid(de->d_name) || load_at(dirfd(dir), de->d_name, &m, NULL) < 0)
			continue;
		if (vm && !streq(m->vm, vm)) {
			qv_backup_meta_free(m);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			void *na = realloc(a, cap * sizeof(*a));
			if (!na) {
				qv_backup_meta_free(m);
				closedir(dir);
				qv_backup_meta_array_free(a, n);
				return -ENOMEM;
			}
			a = na;
		}
		a[n++] = m;
	}
	closedir(dir);
	if (n)
		qsort(a, n, sizeof(*a), cmp_meta);
	*ret = a;
	*ret_n = n;
	return 0;
}

static ssize_t find_id(struct qv_backup_meta *const *list, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (streq(list[i]->id, id))
			return (ssize_t)i;
	return -1;
}

int qv_backup_chain(struct qv_backup_meta *const *list, size_t n, size_t idx, size_t **ret,
		    size_t *ret_n, struct qv_error *errp)
{
	_cleanup_free_ size_t *v = calloc(n ? n : 1, sizeof(*v));
	size_t k = 0, cur = idx;

	if (!v)
		return -ENOMEM;
	for (;;) {
		if (k == n)
			return qv_error_set(errp, ELOOP, QV_REASON_INVALID_ARGUMENT,
					    "backup %s: its chain loops", list[idx]->id);
		v[k++] = cur;
		if (!list[cur]->parent)
			break;
		ssize_t p = find_id(list, n, list[cur]->parent);
		if (p < 0)
			return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
					    "backup %s needs %s, which is missing from the store",
					    list[cur]->id, list[cur]->parent);
		cur = (size_t)p;
	}
	for (size_t i = 0; i < k / 2; i++) {
		size_t t = v[i];
		v[i] = v[k - 1 - i];
		v[k - 1 - i] = t;
	}
	*ret = TAKE_PTR(v);
	*ret_n = k;
	return 0;
}

static int64_t utc_day(int64_t ms)
{
	return ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000;
}

static void keep_chain(struct qv_backup_meta *const *list, size_t n, size_t i, bool *keep)
{
	for (size_t guard = 0; guard <= n; guard++) {
		keep[i] = true;
		if (!list[i]->parent)
			return;
		ssize_t p = find_id(list, n, list[i]->parent);
		if (p < 0)
			return;
		i = (size_t)p;
	}
}

void qv_backup_prune_plan(struct qv_backup_meta *const *list, size_t n, unsigned keep_last,
			  unsigned keep_daily, bool *keep)
{
	_cleanup_free_ bool *pick = calloc(n ? n : 1, sizeof(*pick));

	for (size_t i = 0; i < n; i++)
		keep[i] = false;
	if (!pick) { /* cannot plan: keep everything */
		for (size_t i = 0; i < n; i++)
			keep[i] = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *vm = list[i]->vm;
		unsigned last = 0, days = 0;
		int64_t day = INT64_MIN;
		bool first_of_vm = true;

		for (size_t j = 0; j < i; j++)
			if (streq(list[j]->vm, vm))
				first_of_vm = false;
		if (!first_of_vm)
			continue;
		/* newest first */
		for (size_t k = n; k-- > 0;) {
			if (!streq(list[k]->vm, vm))
				continue;
			if (last < keep_last) {
				pick[k] = true;
				last++;
			}
			int64_t d = utc_day(list[k]->created_ms);
			if (d != day && days < keep_daily) {
				pick[k] = true;
				days++;
			}
			if (d != day)
				day = d;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (pick[i])
			keep_chain(list, n, i, keep);
}

static int rm_dir_at(int storefd, const char *name)
{
	_cleanup_close_ int fd = openat(storefd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *de;
	DIR *dir;

	if (fd < 0)
		return -errno;
	if (!(dir = fdopendir(fd)))
		return -errno;
	fd = -1;
	while ((de = readdir(dir)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			(void)unlinkat(dirfd(dir), de->d_name, 0);
	closedir(dir);
	if (unlinkat(storefd, name, AT_REMOVEDIR) < 0)
		return -errno;
	(void)fsync(storefd);
	return 0;
}

int qv_backup_delete(const char *store, const char *id, struct qv_error *errp)
{
	struct qv_backup_meta **list = NULL;
	size_t n = 0;
	int r;

	if (!qv_backup_id_valid(id))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid backup id \"%.80s\"", id);
	if ((r = qv_backup_store_list(store, NULL, &list, &n, errp)) < 0)
		return r;
	ssize_t me = find_id(list, n, id);
	for (size_t i = 0; r >= 0 && i < n; i++)
		if (list[i]->parent && streq(list[i]->parent, id))
			r = qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
					 "backup %s is needed by backup %s (delete that first, or "
					 "use prune)", id, list[i]->id);
	qv_backup_meta_array_free(list, n);
	if (r < 0)
		return r;
	if (me < 0)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "backup %s: no such backup", id);
	_cleanup_close_ int fd = open_store(store, errp);
	if (fd < 0)
		return fd;
	/* The metadata goes first: a half-deleted backup is no longer listed. */
	char meta[QV_BACKUP_ID_MAX + 32];
	snprintf(meta, sizeof(meta), "%s/" QV_BACKUP_META_FILE, id);
	(void)unlinkat(fd, meta, 0);
	if ((r = rm_dir_at(fd, id)) < 0)
		return qv_error_set(errp, r, QV_REASON_IO_ERROR, "deleting backup %s: %s", id,
				    strerror(-r));
	return 0;
}

int qv_backup_new_id(const char *store, const char *vm, int64_t ms, char **ret)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char base[96], id[128], partial[160];
	struct stat st;

	gmtime_r(&t, &tm);
	snprintf(base, sizeof(base), "%.63s-%04d%02d%02d-%02d%02d%02d", vm, tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	for (int i = 0; i < 1000; i++) {
		char path[PATH_MAX], ppath[PATH_MAX];
		if (i == 0)
			snprintf(id, sizeof(id), "%s", base);
		else
			snprintf(id, sizeof(id), "%s-%d", base, i);
		snprintf(partial, sizeof(partial), ".%s.partial", id);
		snprintf(path, sizeof(path), "%s/%s", store, id);
		snprintf(ppath, sizeof(ppath), "%s/%s", store, partial);
		if (lstat(path, &st) < 0 && errno == ENOENT && lstat(ppath, &st) < 0 &&
		    errno == ENOENT) {
			*ret = strdup(id);
			return *ret ? 0 : -ENOMEM;
		}
	}
	return -EEXIST;
}

int qv_backup_partial_create(const char *store, const char *id, int *ret_dirfd,
			     struct qv_error *errp)
{
	char name[QV_BACKUP_ID_MAX + 16];
	_cleanup_close_ int sfd = open_store(store, errp);
	int fd;

	if (sfd < 0)
		return sfd;
	snprintf(name, sizeof(name), ".%s.partial", id);
	if (mkdirat(sfd, name, 0700) < 0)
		return qv_error_set(errp, errno, errno == ENOSPC ? QV_REASON_NO_SPACE : QV_REASON_IO_ERROR,
				    "backup store %s: cannot create %s: %m", store, name);
	fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "backup store %s: %s: %m",
				    store, name);
	*ret_dirfd = fd;
	return 0;
}

int qv_backup_partial_publish(const char *store, const char *id, struct qv_error *errp)
{
	char name[QV_BACKUP_ID_MAX + 16];
	_cleanup_close_ int sfd = open_store(store, errp);

	if (sfd < 0)
		return sfd;
	snprintf(name, sizeof(name), ".%s.partial", id);
	/* the directory's entries are on disk already: qv_backup_meta_write(),
	 * the last thing written into it, fsyncs it */
	if (renameat2(sfd, name, sfd, id, RENAME_NOREPLACE) < 0)
		return qv_error_set(errp, errno, errno == EEXIST ? QV_REASON_CONFLICT : QV_REASON_IO_ERROR,
				    "backup %s: cannot publish: %m", id);
	if (fsync(sfd) < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "backup store %s: fsync: %m", store);
	return 0;
}

void qv_backup_partial_discard(const char *store, const char *id)
{
	char name[QV_BACKUP_ID_MAX + 16];
	_cleanup_close_ int sfd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (sfd < 0)
		return;
	snprintf(name, sizeof(name), ".%s.partial", id);
	(void)rm_dir_at(sfd, name);
}
