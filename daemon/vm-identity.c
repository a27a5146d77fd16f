/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/vm-identity.h"

int qv_vm_uid_range_parse(const char *s, uint32_t *ret_first, uint32_t *ret_count)
{
	unsigned long long a, b;
	char *end;

	errno = 0;
	a = strtoull(s, &end, 10);
	if (errno || end == s || *end != '-')
		return -EINVAL;
	s = end + 1;
	b = strtoull(s, &end, 10);
	if (errno || end == s || *end || a == 0 || b < a || b >= UINT32_MAX ||
	    b - a + 1 > (1u << 20))
		return -EINVAL;
	*ret_first = (uint32_t)a;
	*ret_count = (uint32_t)(b - a + 1);
	return 0;
}

struct used {
	uint8_t *bits;
	uint32_t first, count;
	const char *self; /* this VM's own record does not count */
};

static void mark(struct used *u, uint32_t uid)
{
	if (uid >= u->first && uid - u->first < u->count)
		u->bits[(uid - u->first) / 8] |= (uint8_t)(1u << ((uid - u->first) % 8));
}

static bool is_marked(const struct used *u, uint32_t uid)
{
	return u->bits[(uid - u->first) / 8] & (1u << ((uid - u->first) % 8));
}

static int mark_recorded(const char *vm, uint32_t uid, void *userdata)
{
	struct used *u = userdata;

	if (!streq(vm, u->self))
		mark(u, uid);
	return 0;
}

/* Owners of live processes (/proc/<pid> belongs to the process's euid). */
static void mark_processes(struct used *u)
{
	DIR *d = opendir("/proc");
	struct stat st;

	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));)
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			mark(u, st.st_uid);
	closedir(d);
}

int qv_vm_identity_acquire(struct qv_vm *vm, uid_t *ret_uid, struct qv_error *errp)
{
	struct qv_daemon *d = vm->d;
	struct used u = { .first = d->cfg.vm_uid_first, .count = d->cfg.vm_uid_count,
			  .self = vm->name };
	_cleanup_free_ uint8_t *bits = calloc(u.count / 8 + 1, 1);
	uint32_t uid = 0;
	int r;

	if (!bits)
		return -ENOMEM;
	u.bits = bits;
	r = qv_state_vm_uid_list(d->state, mark_recorded, &u);
	if (r < 0)
		return qv_error_set(errp, -r, NULL, "Cannot read VM ids: %s", strerror(-r));
	mark_processes(&u);
	if (qv_state_vm_uid_get(d->state, vm->name, &uid) == 0 && uid >= u.first &&
	    uid - u.first < u.count && !is_marked(&u, uid)) {
		*ret_uid = uid;
		return 0;
	}
	for (uint32_t i = 0; i < u.count; i++) {
		if (is_marked(&u, u.first + i))
			continue;
		r = qv_state_vm_uid_set(d->state, vm->name, u.first + i);
		if (r < 0)
			return qv_error_set(errp, -r, NULL, "Cannot record the uid of VM %s: %s",
					    vm->name, strerror(-r));
		log_info("VM %s: runs as uid/gid %u", vm->name, u.first + i);
		*ret_uid = u.first + i;
		return 0;
	}
	return qv_error_set(errp, EUSERS, QV_REASON_UNAVAILABLE,
			    "No free VM uid in %u-%u (--vm-uid-range): every id is taken by a "
			    "defined VM or a running process", u.first, u.first + u.count - 1);
}
