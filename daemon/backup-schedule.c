/* SPDX-License-Identifier: MIT */
/* Scheduled backups (spec.backup): once a minute, every running VM whose
 * newest backup in its schedule's store is older than the interval (or
 * that has none) is backed up, then pruned by its keep_last/keep_daily.
 * A VM with a backup already running, or not running, waits for the next
 * check. The newest backup's time comes from the chain state and that
 * backup's metadata: two small files per VM and minute. */
#include <limits.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/backup-internal.h"

#define BK_SCHEDULE_FIRST_MS 5000
#define BK_SCHEDULE_EVERY_MS 60000

struct prune_job {
	char store[PATH_MAX];
	char vm[VM_NAME_MAX + 1];
	unsigned keep_last, keep_daily;
	size_t deleted;
};

static int prune_work(void *ud, struct qv_error *err)
{
	struct prune_job *p = ud;
	struct qv_backup_meta **list = NULL;
	size_t n = 0;
	int r;

	if ((r = qv_backup_store_list(p->store, p->vm, &list, &n, err)) < 0)
		return r;
	bool *keep = calloc(n ? n : 1, sizeof(*keep));
	if (!keep) {
		qv_backup_meta_array_free(list, n);
		return -ENOMEM;
	}
	qv_backup_prune_plan(list, n, p->keep_last, p->keep_daily, keep);
	for (size_t i = n; r >= 0 && i-- > 0;)
		if (!keep[i] && (r = qv_backup_delete(p->store, list[i]->id, err)) >= 0)
			p->deleted++;
	free(keep);
	qv_backup_meta_array_free(list, n);
	return r;
}

static void prune_done(int r, const struct qv_error *err, void *ud)
{
	struct prune_job *p = ud;

	if (r < 0)
		log_warning("VM %s: scheduled prune of %s failed: %s", p->vm, p->store,
			    err ? err->message : strerror(-r));
	else if (p->deleted)
		log_info("VM %s: scheduled prune deleted %zu backup(s)", p->vm, p->deleted);
	free(p);
}

static void store_of(struct qv_daemon *d, const struct vm_backup *b, char *buf, size_t size)
{
	char def[PATH_MAX];

	if (b->store[0])
		snprintf(def, sizeof(def), "%s", b->store);
	else if (bk_default_store(d, def, sizeof(def)) < 0)
		def[0] = '\0';
	if (!def[0] || !realpath(def, buf))
		snprintf(buf, size, "%s", def);
}

static void backup_done(struct qv_daemon *d, const char *vm_name, int error, void *ud)
{
	struct qv_vm *vm = qv_vm_find(d, vm_name);
	const struct vm_backup *b = vm ? &vm->spec->backup : NULL;
	struct prune_job *p;

	if (error < 0 || !b || (!b->keep_last && !b->keep_daily) || !(p = calloc(1, sizeof(*p))))
		return;
	store_of(d, b, p->store, sizeof(p->store));
	snprintf(p->vm, sizeof(p->vm), "%s", vm_name);
	p->keep_last = b->keep_last;
	p->keep_daily = b->keep_daily;
	if (bk_work_start(d, prune_work, prune_done, p) < 0)
		free(p);
}

/* Unix ms of the VM's newest backup in store, 0 when it has none. */
static int64_t newest_backup(struct qv_daemon *d, const char *vm, const char *store)
{
	struct bk_chain_state st;
	struct qv_backup_meta *m = NULL;
	int64_t t;

	if (bk_chain_load(d, vm, &st) < 0 || !streq(st.store, store) ||
	    qv_backup_meta_load(store, st.last, &m, NULL) < 0)
		return 0;
	t = m->created_ms;
	qv_backup_meta_free(m);
	return t;
}

static void check(struct qv_daemon *d)
{
	char store[PATH_MAX];
	struct stat sb;

	for (struct qv_vm *vm = d->vms; vm; vm = vm->next) {
		const struct vm_backup *b = &vm->spec->backup;
		if (!b->interval_s || vm->state != QV_VM_RUNNING || bk_run_busy(d, vm->name))
			continue;
		store_of(d, b, store, sizeof(store));
		if (stat(store, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
			log_warning("VM %s: backup store %s of its schedule is missing", vm->name, store);
			continue;
		}
		if (qv_unix_ms() - newest_backup(d, vm->name, store) < (int64_t)b->interval_s * 1000)
			continue;
		struct bk_params p = { .done = backup_done, .vm = vm->name, .store = store };
		int r = bk_run_start(d, NULL, &p);
		if (r < 0)
			log_warning("VM %s: scheduled backup not started: %s", vm->name, strerror(-r));
		else
			log_info("VM %s: scheduled backup started", vm->name);
	}
}

static void tick(qv_source *s, void *ud)
{
	struct qv_daemon *d = ud;
	qv_source *next;

	check(d);
	if (qv_loop_add_timer(d->loop, BK_SCHEDULE_EVERY_MS, tick, d, &next) < 0)
		log_error("Backup schedule timer lost: scheduled backups stop");
}

void bk_schedule_start(struct qv_daemon *d)
{
	qv_source *s;

	if (qv_loop_add_timer(d->loop, BK_SCHEDULE_FIRST_MS, tick, d, &s) < 0)
		log_error("Backup schedule timer not armed: scheduled backups are off");
}
