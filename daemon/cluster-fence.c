/* SPDX-License-Identifier: MIT */
/* Self-fencing (docs/cluster.md "HA restart"): a host that has not renewed
 * its membership lease for --cluster-fence-timeout seconds kills its own
 * ha VMs (SIGKILL: it is a fence, a watchdog without hardware), because the
 * leader will restart them elsewhere once the lease is gone. It never
 * restarts them itself; when it can reach etcd again it reconciles: a VM
 * the leader gave to another host is removed here, one still ours stays
 * stopped and its record says "fenced" until the leader restarts it. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm.h"

#define FENCE_CHECK_MS 250
/* <state_dir>/ha-fenced/NAME: the fenced marks survive a daemon restart
 * (else a restarted daemon would write "stopped" and nobody would restart
 * the VM, and a local start would not be refused). */
#define FENCED_DIR "ha-fenced"

struct cl_fenced {
	struct cl_fenced *next;
	char name[64];
};

struct cl_fence {
	unsigned timeout_s;       /* 0: never fence */
	uint64_t renewed_ms;      /* qv_now_ms when the last good renewal went out */
	qv_source *timer;
	bool tripped;             /* no renewal for timeout_s: ha VMs may not run */
	bool need_check;          /* reconcile our ha VMs after the next renewal */
	bool check_busy;
	struct cl_fenced *fenced; /* stopped by a fence, not restarted since */
	int dirfd;                /* <state_dir>/ha-fenced, -1 until opened */
};

unsigned cl_fence_timeout_s(const struct qv_cluster *c)
{
	return c->fence ? c->fence->timeout_s : 0;
}

bool cl_fence_is_fenced(const struct qv_cluster *c, const char *name)
{
	for (struct cl_fenced *f = c->fence ? c->fence->fenced : NULL; f; f = f->next)
		if (streq(f->name, name))
			return true;
	return false;
}

/* The marks' directory, created on first use; -1 (logged) when it cannot be. */
static int fenced_dir(struct cl_fence *fe, const char *state_dir)
{
	char path[PATH_MAX];

	if (fe->dirfd >= 0)
		return fe->dirfd;
	snprintf(path, sizeof(path), "%s/" FENCED_DIR, state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "Cluster: %s: %m (fence marks kept in memory only)",
				       path), -1;
	fe->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fe->dirfd < 0)
		log_error_errno(-errno, "Cluster: %s: %m (fence marks kept in memory only)", path);
	return fe->dirfd;
}

static void fenced_remember(struct cl_fence *fe, const char *name)
{
	struct cl_fenced *f;

	for (f = fe->fenced; f; f = f->next)
		if (streq(f->name, name))
			return;
	f = calloc(1, sizeof(*f));
	if (!f)
		return;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->next = fe->fenced;
	fe->fenced = f;
}

static void fenced_add(struct qv_cluster *c, const char *name)
{
	int dfd = fenced_dir(c->fence, c->d->cfg.state_dir), fd;

	fenced_remember(c->fence, name);
	if (dfd < 0)
		return;
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fsync(fd) < 0 || fsync(dfd) < 0)
		log_error_errno(-errno, "Cluster: VM %s: cannot record its fence on disk: %m",
				name);
	if (fd >= 0)
		close(fd);
}

static void fenced_del(struct qv_cluster *c, const char *name)
{
	struct cl_fence *fe = c->fence;

	for (struct cl_fenced **p = &fe->fenced; *p; p = &(*p)->next)
		if (streq((*p)->name, name)) {
			struct cl_fenced *f = *p;
			*p = f->next;
			free(f);
			if (fenced_dir(fe, c->d->cfg.state_dir) >= 0)
				(void)unlinkat(fe->dirfd, name, 0);
			return;
		}
}

/* The marks a previous run left (names of VMs no longer defined go). */
static void fenced_load(struct qv_cluster *c)
{
	struct cl_fence *fe = c->fence;
	int dfd = fenced_dir(fe, c->d->cfg.state_dir), dup_fd;
	struct dirent *de;
	DIR *dp;

	if (dfd < 0 || (dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3)) < 0 || !(dp = fdopendir(dup_fd)))
		return;
	while ((de = readdir(dp))) {
		if (de->d_name[0] == '.')
			continue;
		if (!qv_vm_find(c->d, de->d_name)) {
			(void)unlinkat(dfd, de->d_name, 0);
			continue;
		}
		fenced_remember(fe, de->d_name);
		log_info("VM %s: stopped by a self-fence before this daemon started; it stays "
			 "stopped until the leader restarts it", de->d_name);
	}
	closedir(dp);
}

void cl_fence_clear(struct qv_cluster *c, const char *name)
{
	if (c->fence)
		fenced_del(c, name);
}

int qv_cluster_start_check(struct qv_daemon *d, const struct qv_vm *vm, struct qv_error *errp)
{
	struct qv_cluster *c = d->cluster;

	if (!c || !c->fence || !vm->spec->ha)
		return 0;
	if (cl_fence_is_fenced(c, vm->name))
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "VM %s was stopped by host %s's self-fence: the leader restarts "
				    "it (on this host or another; event vm-ha-adopted), a start here "
				    "could run a second copy", vm->name, d->cfg.cluster_host);
	if (c->fence->tripped)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "host %s is self-fenced (no membership lease renewal for %u s): "
				    "ha VM %s cannot start until it reaches the cluster store again",
				    d->cfg.cluster_host, c->fence->timeout_s, vm->name);
	return 0;
}

/* --- the fence ------------------------------------------------------------ */

static void fence_vm(struct qv_cluster *c, struct qv_vm *vm, uint64_t silent_ms)
{
	struct qv_error err = {};
	char why[192];
	int r;

	snprintf(why, sizeof(why), "self-fence: membership lease not renewed for %.1f s "
		 "(--cluster-fence-timeout %u s); the leader may restart it elsewhere",
		 silent_ms / 1000.0, c->fence->timeout_s);
	r = vm->state == QV_VM_MIGRATING
		    ? qv_vm_stop_migrated(vm, true, 0, NULL, NULL, &err)
		    : qv_vm_stop(vm, true, 0, NULL, NULL, &err);
	if (r < 0) {
		log_error("VM %s: %s: cannot kill it: %s", vm->name, why, err.message);
		return;
	}
	log_warning("VM %s: killed (%s)", vm->name, why);
	fenced_add(c, vm->name);
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "reason", json_object_new_string(why));
	json_object_object_add(ev, "silent_ms", json_object_new_int64((int64_t)silent_ms));
	json_object_object_add(ev, "fence_timeout_s", json_object_new_int64(c->fence->timeout_s));
	qv_daemon_emit(c->d, vm->name, "vm-fenced", ev);
}

static void on_check(qv_source *s, void *ud)
{
	struct qv_cluster *c = ud;
	struct cl_fence *fe = c->fence;
	uint64_t silent = qv_now_ms() - fe->renewed_ms;

	(void)s;
	fe->timer = NULL;
	if (silent >= fe->timeout_s * 1000ULL) {
		if (!fe->tripped) {
			log_warning("Cluster: no lease renewal for %.1f s: self-fencing (stopping "
				    "this host's ha VMs; other VMs keep running)", silent / 1000.0);
			json_object *ev = json_object_new_object();
			json_object_object_add(ev, "silent_ms", json_object_new_int64((int64_t)silent));
			qv_daemon_emit(c->d, NULL, "cluster-fenced", ev);
		}
		fe->tripped = true;
		fe->need_check = true;
		/* Every check while tripped: an ha VM started meanwhile goes too. */
		for (struct qv_vm *vm = c->d->vms; vm; vm = vm->next)
			if (vm->spec->ha && (vm->inst || vm->starting) && vm->state != QV_VM_STOPPING)
				fence_vm(c, vm, silent);
	}
	qv_loop_add_timer(c->d->loop, FENCE_CHECK_MS, on_check, c, &fe->timer);
}

/* --- back in contact: reconcile our ha VMs with the inventory ------------- */

struct check {
	size_t n;
	char (*names)[64];
	char (*owners)[64];  /* out: "" when there is no record */
};

static void check_run(struct cl_job *j)
{
	struct check *k = j->data;
	struct qv_etcd_kv *kvs = NULL;
	size_t n = 0;

	j->r = qv_etcd_list(j->c->etcd, CL_VMS, &kvs, &n, &j->err);
	if (j->r < 0)
		return;
	for (size_t i = 0; i < k->n; i++)
		for (size_t m = 0; m < n; m++) {
			json_object *v;
			if (!streq(kvs[m].key + strlen(CL_VMS), k->names[i]))
				continue;
			_cleanup_json_ json_object *rec = json_tokener_parse(kvs[m].value);
			if (rec && json_object_object_get_ex(rec, "owner", &v))
				snprintf(k->owners[i], sizeof(k->owners[i]), "%s",
					 json_object_get_string(v));
		}
	qv_etcd_kvs_free(kvs, n);
}

static void remove_vm(struct qv_vm *vm, int error, enum qemu_stop_step step, const char *exit_text,
		      void *ud)
{
	struct qv_error err = {};

	(void)step;
	(void)exit_text;
	(void)ud;
	struct qv_daemon *d = vm->d;
	_cleanup_free_ char *name = strdup(vm->name);

	if (error < 0 || qv_vm_undefine(vm, &err) < 0)
		log_error("VM %s: owned by another host now, but cannot remove it here: %s",
			  vm->name, error < 0 ? strerror(-error) : err.message);
	else if (name) /* forgets what we wrote; the record is not ours, it stays */
		qv_cluster_vm_undefined(d, name);
}

static void give_up_vm(struct qv_cluster *c, struct qv_vm *vm, const char *owner)
{
	struct qv_error err = {};
	char why[160];

	snprintf(why, sizeof(why), "host %s owns it now (HA restart by the leader); the definition "
		 "here is removed, its disks are kept", owner);
	log_warning("VM %s: %s", vm->name, why);
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "owner", json_object_new_string(owner));
	json_object_object_add(ev, "reason", json_object_new_string(why));
	qv_daemon_emit(c->d, vm->name, "vm-ha-removed", ev);
	fenced_del(c, vm->name);
	if (vm->inst || vm->starting) { /* never two running copies */
		if (qv_vm_stop(vm, true, 0, remove_vm, NULL, &err) < 0)
			log_error("VM %s: cannot kill it: %s", vm->name, err.message);
		return;
	}
	remove_vm(vm, 0, QEMU_STOP_STEP_KILL, NULL, NULL);
}

static void check_finish(struct cl_job *j, bool cancelled)
{
	struct check *k = j->data;
	struct qv_cluster *c = j->c;

	if (!cancelled) {
		c->fence->check_busy = false;
		if (j->r < 0)
			c->fence->need_check = true; /* next renewal */
		for (size_t i = 0; j->r >= 0 && i < k->n; i++) {
			struct qv_vm *vm = qv_vm_find(c->d, k->names[i]);
			if (vm && vm->spec->ha && k->owners[i][0] &&
			    !streq(k->owners[i], c->d->cfg.cluster_host))
				give_up_vm(c, vm, k->owners[i]);
			else if (vm && cl_fence_is_fenced(c, vm->name))
				log_info("VM %s: still ours after the fence; stays stopped (record "
					 "\"%s\") until the leader restarts it", vm->name,
					 CL_FENCED_STATE);
		}
	}
	free(k->names);
	free(k->owners);
	free(k);
}

static void push_check(struct qv_cluster *c)
{
	struct check *k = calloc(1, sizeof(*k));
	size_t n = 0;

	if (!k)
		return;
	for (struct qv_vm *vm = c->d->vms; vm; vm = vm->next)
		n += vm->spec->ha;
	k->names = calloc(n + 1, sizeof(*k->names));
	k->owners = calloc(n + 1, sizeof(*k->owners));
	for (struct qv_vm *vm = c->d->vms; k->names && vm; vm = vm->next)
		if (vm->spec->ha)
			snprintf(k->names[k->n++], sizeof(k->names[0]), "%s", vm->name);
	if (!k->names || !k->owners || cl_job_push(c, c->eq, check_run, check_finish, NULL, k) < 0) {
		free(k->names);
		free(k->owners);
		free(k);
		return;
	}
	c->fence->need_check = false;
	c->fence->check_busy = true;
}

void cl_fence_renewed(struct qv_cluster *c, uint64_t sent_ms)
{
	struct cl_fence *fe = c->fence;

	if (!fe)
		return;
	if (sent_ms > fe->renewed_ms)
		fe->renewed_ms = sent_ms;
	if (fe->tripped && qv_now_ms() - fe->renewed_ms < fe->timeout_s * 1000ULL) {
		fe->tripped = false;
		log_info("Cluster: lease renewed after the self-fence; fenced ha VMs stay stopped "
			 "(the leader restarts them)");
	}
	/* After a fence, and once after start-up (a restarted daemon may find
	 * its ha VMs restarted elsewhere meanwhile). */
	if (fe->need_check && !fe->check_busy)
		push_check(c);
}

int cl_fence_start(struct qv_cluster *c)
{
	struct cl_fence *fe = calloc(1, sizeof(*fe));
	int t = c->d->cfg.cluster_fence_timeout_s;

	if (!fe)
		return -ENOMEM;
	c->fence = fe;
	fe->dirfd = -1;
	fenced_load(c);
	/* Two TTLs by default: the lease is long gone by then, and a failover
	 * to another etcd member (one request timeout) or an etcd election
	 * (the member that led is the one cut off) never fences a healthy
	 * host. */
	fe->timeout_s = t < 0 ? 2 * c->ttl_s : (unsigned)t;
	fe->renewed_ms = qv_now_ms(); /* a start without etcd gets one timeout */
	fe->need_check = true;
	if (!fe->timeout_s) {
		log_info("Cluster: self-fencing off (--cluster-fence-timeout 0): ha VMs cannot be "
			 "defined here");
		return 0;
	}
	log_info("Cluster: ha VMs self-fence after %u s without a lease renewal", fe->timeout_s);
	return qv_loop_add_timer(c->d->loop, FENCE_CHECK_MS, on_check, c, &fe->timer);
}

void cl_fence_free(struct qv_cluster *c)
{
	struct cl_fence *fe = c->fence;

	if (!fe)
		return;
	qv_source_remove(fe->timer);
	if (fe->dirfd >= 0)
		close(fe->dirfd);
	while (fe->fenced) {
		struct cl_fenced *f = fe->fenced;
		fe->fenced = f->next;
		free(f);
	}
	free(fe);
	c->fence = NULL;
}
