/* SPDX-License-Identifier: MIT */
/* NBD storage mirror of a migrating VM (see mirror.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "migrate/mirror-internal.h"

int mirror_qmp(mig_mirror *m, const char *cmd, json_object *args, json_object **ret,
	       struct qv_error *errp)
{
	qmp_client *c = m->get_qmp(m->userdata);
	int r;

	if (!c || !qmp_client_is_open(c)) {
		json_object_put(args);
		return qv_error_set(errp, ENOTCONN, QV_REASON_UNAVAILABLE,
				    "the source QEMU is gone (%s)", cmd);
	}
	r = qmp_client_execute(c, cmd, args, QMP_TIMEOUT_MS, ret, errp);
	json_object_put(args);
	return r;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

json_object *mirror_job_arg(const char *job)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "device", json_object_new_string(job));
	return a;
}

json_object *mirror_id_arg(const char *key, const char *id)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, key, json_object_new_string(id));
	return a;
}

json_object *mirror_nbd_node_args(const struct mirror_disk *d, const struct mig_mirror_disk *in,
				   const struct mig_mirror_target *t)
{
	json_object *a = json_object_new_object(), *srv = json_object_new_object();
	char p[16];

	snprintf(p, sizeof(p), "%d", t->port);
	json_object_object_add(srv, "type", json_object_new_string("inet"));
	json_object_object_add(srv, "host", json_object_new_string(t->host));
	json_object_object_add(srv, "port", json_object_new_string(p));
	json_object_object_add(a, "driver", json_object_new_string("nbd"));
	json_object_object_add(a, "node-name", json_object_new_string(d->node));
	json_object_object_add(a, "server", srv);
	json_object_object_add(a, "export", json_object_new_string(in->export));
	if (t->tls_creds) {
		json_object_object_add(a, "tls-creds", json_object_new_string(t->tls_creds));
		json_object_object_add(a, "tls-hostname",
				       json_object_new_string(t->tls_hostname ?: t->host));
	}
	return a;
}

json_object *mirror_job_args(const struct mirror_disk *d, const struct mig_mirror_disk *in)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "job-id", json_object_new_string(d->job));
	json_object_object_add(a, "device", json_object_new_string(in->device));
	json_object_object_add(a, "target", json_object_new_string(d->node));
	json_object_object_add(a, "sync", json_object_new_string("full"));
	/* Only settable at job start on QEMU 7.2. */
	json_object_object_add(a, "copy-mode", json_object_new_string("write-blocking"));
	json_object_object_add(a, "auto-dismiss", json_object_new_boolean(false));
	return a;
}

static int add_one(mig_mirror *m, struct mirror_disk *d, const struct mig_mirror_disk *in,
		   const struct mig_mirror_target *t, struct qv_error *errp)
{
	int r;

	r = mirror_qmp(m, "blockdev-add", mirror_nbd_node_args(d, in, t), NULL, errp);
	if (r < 0)
		return qv_error_prefix(errp, "NBD client for disk %u", in->index), r;
	d->node_added = true;
	r = mirror_qmp(m, "blockdev-mirror", mirror_job_args(d, in), NULL, errp);
	if (r < 0)
		return qv_error_prefix(errp, "mirror of disk %u", in->index), r;
	d->job_started = true;
	snprintf(d->status, sizeof(d->status), "created");
	return 0;
}

mig_mirror *mirror_alloc(mig_mirror_qmp_fn get_qmp, void *userdata,
			      const struct mig_mirror_disk *disks, size_t n)
{
	mig_mirror *m = calloc(1, sizeof(*m));

	if (!m || !(m->disks = calloc(n, sizeof(*m->disks)))) {
		free(m);
		return NULL;
	}
	m->get_qmp = get_qmp;
	m->userdata = userdata;
	m->n = n;
	for (size_t i = 0; i < n; i++) {
		struct mirror_disk *d = &m->disks[i];
		d->index = disks[i].index;
		snprintf(d->job, sizeof(d->job), "qvmig-mirror%u", d->index);
		snprintf(d->node, sizeof(d->node), "qvmig-nbd%u", d->index);
	}
	return m;
}

bool mirror_target_ok(const struct mig_mirror_target *target, size_t n)
{
	return n > 0 && target && target->host && target->port > 0 && target->port <= 65535;
}

int mig_mirror_start(mig_mirror_qmp_fn get_qmp, void *userdata,
		     const struct mig_mirror_target *target,
		     const struct mig_mirror_disk *disks, size_t n, mig_mirror **ret,
		     struct qv_error *errp)
{
	mig_mirror *m;
	int r;

	if (!mirror_target_ok(target, n))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "storage mirror needs disks and an NBD address");
	m = mirror_alloc(get_qmp, userdata, disks, n);
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = add_one(m, &m->disks[i], &disks[i], target, errp);
		if (r < 0) {
			if (!mig_mirror_abort(m, 5000))
				log_debug("mirror: start failed, jobs still draining, ignoring");
			mig_mirror_free(m);
			return r;
		}
	}
	log_debug("mirror: %zu job(s) started towards %s:%d%s", n, target->host, target->port,
		  target->tls_creds ? " (TLS)" : "");
	*ret = m;
	return 0;
}

static struct mirror_disk *find_job(mig_mirror *m, const char *job)
{
	for (size_t i = 0; i < m->n; i++)
		if (streq(m->disks[i].job, job))
			return &m->disks[i];
	return NULL;
}

/* One query-block-jobs; marks every job of ours it lists in *seen. */
/* query-block-jobs' answer q (borrowed) into the disks' state. */
int mirror_parse_jobs(mig_mirror *m, json_object *q, bool *ret_all_ready, struct qv_error *errp)
{
	bool all = true;
	int r = 0;

	for (size_t i = 0; i < m->n; i++)
		if (m->disks[i].job_started)
			snprintf(m->disks[i].status, sizeof(m->disks[i].status), "gone");
	for (size_t k = 0; q && k < json_object_array_length(q); k++) {
		json_object *j = json_object_array_get_idx(q, k), *v;
		struct mirror_disk *d;

		if (!json_object_object_get_ex(j, "device", &v) ||
		    !(d = find_job(m, json_object_get_string(v))))
			continue;
		if (json_object_object_get_ex(j, "offset", &v))
			d->offset = (uint64_t)json_object_get_int64(v);
		if (json_object_object_get_ex(j, "len", &v))
			d->len = (uint64_t)json_object_get_int64(v);
		d->ready = json_object_object_get_ex(j, "ready", &v) && json_object_get_boolean(v);
		snprintf(d->status, sizeof(d->status), "%s",
			 json_object_object_get_ex(j, "status", &v) ? json_object_get_string(v)
								    : "?");
		if (json_object_object_get_ex(j, "error", &v)) {
			r = qv_error_set(errp, EIO, QV_REASON_QEMU_ERROR,
					 "mirror of disk %u failed: %s", d->index,
					 json_object_get_string(v));
		}
	}
	for (size_t i = 0; i < m->n; i++)
		if (m->disks[i].job_started && !m->disks[i].ready)
			all = false;
	if (ret_all_ready)
		*ret_all_ready = all;
	return r;
}

static int query(mig_mirror *m, bool *ret_all_ready, struct qv_error *errp)
{
	_cleanup_json_ json_object *q = NULL;
	int r = mirror_qmp(m, "query-block-jobs", NULL, &q, errp);

	return r < 0 ? r : mirror_parse_jobs(m, q, ret_all_ready, errp);
}

int mirror_check_jobs(mig_mirror *m, bool ready, bool *ret_ready, struct qv_error *errp)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mirror_disk *d = &m->disks[i];
		if (!d->job_started)
			continue;
		if (streq(d->status, "gone") || streq(d->status, "concluded") ||
		    streq(d->status, "aborting") || streq(d->status, "null"))
			return qv_error_set(errp, EIO, QV_REASON_QEMU_ERROR,
					    "mirror of disk %u ended unexpectedly (%s)", d->index,
					    d->status);
	}
	*ret_ready = ready;
	return 0;
}

int mig_mirror_poll(mig_mirror *m, bool *ret_ready, struct qv_error *errp)
{
	bool ready = false;
	int r = query(m, &ready, errp);

	return r < 0 ? r : mirror_check_jobs(m, ready, ret_ready, errp);
}

int mig_mirror_poll_reply(mig_mirror *m, json_object *jobs, bool *ret_ready,
			  struct qv_error *errp)
{
	bool ready = false;
	int r = mirror_parse_jobs(m, jobs, &ready, errp);

	return r < 0 ? r : mirror_check_jobs(m, ready, ret_ready, errp);
}

json_object *mig_mirror_progress_json(const mig_mirror *m)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	uint64_t off = 0, len = 0;
	bool ready = true;

	for (size_t i = 0; i < m->n; i++) {
		const struct mirror_disk *d = &m->disks[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "index", json_object_new_int((int)d->index));
		json_object_object_add(j, "job", json_object_new_string(d->job));
		json_object_object_add(j, "offset", json_object_new_int64((int64_t)d->offset));
		json_object_object_add(j, "len", json_object_new_int64((int64_t)d->len));
		json_object_object_add(j, "ready", json_object_new_boolean(d->ready));
		json_object_object_add(j, "status", json_object_new_string(d->status));
		json_object_array_add(a, j);
		off += d->offset;
		len += d->len;
		ready = ready && d->ready;
	}
	json_object_object_add(o, "ready", json_object_new_boolean(ready));
	json_object_object_add(o, "offset", json_object_new_int64((int64_t)off));
	json_object_object_add(o, "len", json_object_new_int64((int64_t)len));
	json_object_object_add(o, "disks", a);
	return o;
}

/* Wait until none of our started jobs is still running (concluded or
 * gone), then dismiss the concluded ones. */
static int wait_ended(mig_mirror *m, int timeout_ms, struct qv_error *errp)
{
	int r = 0;

	for (int t = 0;; t += 5) {
		bool running = false;
		struct qv_error qerr = {};

		r = query(m, NULL, &qerr);
		if (r < 0 && r != -EIO) {
			if (errp)
				*errp = qerr;
			return r;
		}
		if (r == -EIO && errp && !errp->set)
			*errp = qerr; /* a job ended with an error: report it */
		for (size_t i = 0; i < m->n; i++) {
			struct mirror_disk *d = &m->disks[i];
			if (!d->job_started)
				continue;
			if (streq(d->status, "concluded")) {
				(void)mirror_qmp(m, "job-dismiss", mirror_id_arg("id", d->job), NULL, NULL);
				d->job_started = false;
			} else if (streq(d->status, "gone") || streq(d->status, "null")) {
				d->job_started = false;
			} else {
				running = true;
			}
		}
		if (!running)
			return r == -EIO ? -EIO : 0;
		if (t >= timeout_ms)
			return qv_error_set(errp, ETIMEDOUT, QV_REASON_TIMEOUT,
					    "mirror jobs did not end within %d ms", timeout_ms);
		sleep_ms(5);
	}
}

static void del_nodes(mig_mirror *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mirror_disk *d = &m->disks[i];
		struct qv_error err = {};

		if (!d->node_added || d->job_started)
			continue;
		if (mirror_qmp(m, "blockdev-del", mirror_id_arg("node-name", d->node), NULL, &err) < 0)
			log_debug("mirror: blockdev-del %s: %s, ignoring", d->node, err.message);
		d->node_added = false;
	}
}

int mig_mirror_complete(mig_mirror *m, int timeout_ms, struct qv_error *errp)
{
	bool ready = false;
	int r;

	r = mig_mirror_poll(m, &ready, errp);
	if (r < 0)
		return r;
	if (!ready)
		return qv_error_set(errp, EAGAIN, QV_REASON_UNAVAILABLE,
				    "storage mirror is not in sync");
	for (size_t i = 0; i < m->n; i++) {
		json_object *a = mirror_job_arg(m->disks[i].job);
		/* Soft cancel of a READY mirror: ends in sync, no pivot. */
		json_object_object_add(a, "force", json_object_new_boolean(false));
		r = mirror_qmp(m, "block-job-cancel", a, NULL, errp);
		if (r < 0)
			return qv_error_prefix(errp, "completing the mirror of disk %u",
					       m->disks[i].index), r;
	}
	r = wait_ended(m, timeout_ms, errp);
	del_nodes(m);
	return r;
}

bool mig_mirror_abort(mig_mirror *m, int timeout_ms)
{
	if (!m)
		return true;
	m->seq = qmp_seq_cancel(m->seq);
	for (size_t i = 0; i < m->n; i++) {
		struct mirror_disk *d = &m->disks[i];
		json_object *a;

		if (!d->job_started)
			continue;
		a = mirror_job_arg(d->job);
		json_object_object_add(a, "force", json_object_new_boolean(true));
		(void)mirror_qmp(m, "block-job-cancel", a, NULL, NULL);
	}
	(void)wait_ended(m, timeout_ms, NULL);
	del_nodes(m);
	return !mig_mirror_active(m);
}

bool mig_mirror_reap(mig_mirror *m)
{
	qmp_client *c = m->get_qmp(m->userdata);

	if (!c || !qmp_client_is_open(c))
		return true;
	(void)wait_ended(m, 0, NULL);
	del_nodes(m);
	return !mig_mirror_active(m);
}

void mig_mirror_set_qmp(mig_mirror *m, mig_mirror_qmp_fn get_qmp, void *userdata)
{
	m->get_qmp = get_qmp;
	m->userdata = userdata;
}

bool mig_mirror_active(const mig_mirror *m)
{
	for (size_t i = 0; m && i < m->n; i++)
		if (m->disks[i].job_started || m->disks[i].node_added)
			return true;
	return false;
}

mig_mirror *mig_mirror_free(mig_mirror *m)
{
	if (!m)
		return NULL;
	qmp_seq_cancel(m->seq);
	free(m->disks);
	free(m);
	return NULL;
}

static int index_of(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	long i;

	if (strncmp(name, prefix, n) != 0)
		return -1;
	i = strtol(name + n, &end, 10);
	return *end || i < 0 || i > 1000 ? -1 : (int)i;
}

int mig_mirror_adopt_stale(mig_mirror_qmp_fn get_qmp, void *userdata, mig_mirror **ret)
{
	_cleanup_json_ json_object *jobs = NULL, *nodes = NULL;
	struct mig_mirror m = { .get_qmp = get_qmp, .userdata = userdata };
	struct mirror_disk d[64];
	json_object *a = json_object_new_object();
	mig_mirror *h;

	json_object_object_add(a, "flat", json_object_new_boolean(true));
	(void)mirror_qmp(&m, "query-block-jobs", NULL, &jobs, NULL);
	(void)mirror_qmp(&m, "query-named-block-nodes", a, &nodes, NULL);
	m.disks = d;
	for (size_t k = 0; jobs && k < json_object_array_length(jobs) && m.n < 64; k++) {
		json_object *v;
		int i;
		if (!json_object_object_get_ex(json_object_array_get_idx(jobs, k), "device", &v) ||
		    (i = index_of(json_object_get_string(v), "qvmig-mirror")) < 0)
			continue;
		d[m.n] = (struct mirror_disk){ .index = (unsigned)i, .job_started = true };
		snprintf(d[m.n].job, sizeof(d[m.n].job), "qvmig-mirror%d", i);
		snprintf(d[m.n].node, sizeof(d[m.n].node), "qvmig-nbd%d", i);
		m.n++;
	}
	for (size_t k = 0; nodes && k < json_object_array_length(nodes) && m.n < 64; k++) {
		json_object *v;
		bool known = false;
		int i;
		if (!json_object_object_get_ex(json_object_array_get_idx(nodes, k), "node-name", &v) ||
		    (i = index_of(json_object_get_string(v), "qvmig-nbd")) < 0)
			continue;
		for (size_t j = 0; j < m.n; j++)
			if (d[j].index == (unsigned)i) {
				d[j].node_added = true;
				known = true;
			}
		if (known)
			continue;
		d[m.n] = (struct mirror_disk){ .index = (unsigned)i, .node_added = true };
		snprintf(d[m.n].job, sizeof(d[m.n].job), "qvmig-mirror%d", i);
		snprintf(d[m.n].node, sizeof(d[m.n].node), "qvmig-nbd%d", i);
		m.n++;
	}
	*ret = NULL;
	if (!m.n)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->disks = calloc(m.n, sizeof(*h->disks)))) {
		free(h);
		return -ENOMEM;
	}
	*h = (struct mig_mirror){ .get_qmp = get_qmp, .userdata = userdata, .disks = h->disks,
				  .n = m.n };
	memcpy(h->disks, d, m.n * sizeof(*d));
	*ret = h;
	return (int)m.n;
}
